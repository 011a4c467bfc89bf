//! `mesh-certs`: make a test CA and workload identity directories for tests,
//! benchmarks and the local demo (not for production PKI: the CA key is a
//! plain file). The certificates are issued by `mesh_common::identity::pki`,
//! as the runtime's CA issues them.

use clap::{Parser, Subcommand};
use mesh_common::duration::parse_lifetime;
use mesh_common::identity::pki::{self, TestPki, Validity};
use mesh_proxy_api::IdentityDomain;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mesh-certs: make a test CA and workload certificates (not for production PKI).
#[derive(Debug, Parser)]
#[command(name = "mesh-certs", version)]
struct Cli {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Create a trust anchor and an issuer: ca.crt, ca.key, issuer.crt, issuer.key.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = mesh_proxy_api::identity::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// The issuer is `identity.<control-plane-namespace>.<trust-domain>`,
        /// and so are the identities it issues.
        #[arg(long, default_value = mesh_proxy_api::identity::DEFAULT_CONTROL_PLANE_NAMESPACE)]
        control_plane_namespace: String,
        /// Replace an existing CA in DIR.
        #[arg(long)]
        force: bool,
    },
    /// Issue a workload certificate: tls.crt (leaf then issuer), tls.key, ca.crt.
    Issue {
        /// A directory made by `mesh-certs init`.
        #[arg(long)]
        ca_dir: PathBuf,
        /// ServiceAccount name.
        #[arg(long)]
        sa: String,
        #[arg(long)]
        namespace: String,
        /// The identity directory to write.
        #[arg(long)]
        out: PathBuf,
        /// Lifetime, e.g. `90s`, `30m`, `24h`, `7d`.
        #[arg(long, default_value = "24h", value_parser = parse_lifetime)]
        valid_for: Duration,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mesh-certs: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the subcommand; returns what to print.
fn run(command: CertsCommand) -> Result<String, String> {
    match command {
        CertsCommand::Init { dir, trust_domain, control_plane_namespace, force } => {
            if !force && dir.join(pki::CA_KEY).exists() {
                return Err(format!("{}: a CA exists; pass --force to replace it", dir.display()));
            }
            let ca = TestPki::for_domain(IdentityDomain::new(&control_plane_namespace, &trust_domain))?;
            ca.write_ca_dir(&dir)?;
            Ok(format!("wrote trust anchor and issuer {} to {}", ca.domain().issuer(), dir.display()))
        }
        CertsCommand::Issue { ca_dir, sa, namespace, out, valid_for } => {
            let ca = TestPki::load(&ca_dir)?;
            let cert = ca.issue_workload(&sa, &namespace, Validity::valid_for(valid_for))?;
            pki::write_identity_dir(&out, &cert, ca.anchors_pem())?;
            Ok(format!("wrote {} to {}", cert.name, out.display()))
        }
    }
}
