//! `mesh-proxy init`: the pod's traffic into the proxy, as Linkerd's
//! proxy-init init container does it (docs/semantics/proxy-init.md). Inbound
//! TCP goes to the inbound port except the proxy's own ports and the
//! skipped ones; outbound TCP goes to the outbound port except the proxy's
//! own connections, loopback and the skipped ports.
//!
//! - [`ports`]: port lists and iptables' multiport batches;
//! - [`rules`]: the nat-table restore scripts (install and cleanup);
//! - [`backend`]: the iptables-nft / iptables-legacy binaries and the
//!   capability check.

pub mod backend;
pub mod ports;
pub mod rules;
#[cfg(test)]
mod tests;

use backend::{Backend, Mode};
use clap::Args;
use ipnet::{IpNet, Ipv4Net};
use ports::PortRange;
use rules::Plan;
use std::fmt;

/// The flags; the names are the ones `meshc inject` writes into the
/// `mesh-proxy-init` container.
#[derive(Clone, Debug, Args)]
pub struct InitArgs {
    /// The proxy's inbound port: inbound TCP is redirected here.
    #[arg(long, default_value_t = 4143)]
    pub inbound_port: u16,
    /// The proxy's outbound port: outbound TCP is redirected here.
    #[arg(long, default_value_t = 4140)]
    pub outbound_port: u16,
    /// The uid the proxy runs as: its own connections are not redirected.
    #[arg(long, default_value_t = 2102)]
    pub proxy_uid: u32,
    /// The proxy's admin port, never redirected (the proxy serves it itself).
    #[arg(long, default_value_t = 4191)]
    pub admin_port: u16,
    /// Inbound destination ports not redirected: `25,5000-5010`. Repeatable.
    #[arg(long)]
    pub skip_inbound_ports: Vec<String>,
    /// Outbound destination ports not redirected: `3306,5432`. Repeatable.
    #[arg(long)]
    pub skip_outbound_ports: Vec<String>,
    /// Source networks (CIDR, comma list) whose inbound connections are not
    /// redirected. Repeatable.
    #[arg(long)]
    pub skip_subnets: Vec<String>,
    /// Which iptables to run.
    #[arg(long, value_enum, default_value = "nft")]
    pub iptables_mode: Mode,
    /// Remove the chains and jumps instead of installing them.
    #[arg(long)]
    pub cleanup: bool,
}

#[derive(Debug)]
pub enum InitError {
    InvalidFlag(String),
    MissingBinary { binary: String, hint: &'static str },
    NoNetAdmin,
    Command { command: String, message: String },
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::InvalidFlag(m) => write!(f, "{m}"),
            InitError::MissingBinary { binary, hint } => {
                write!(
                    f,
                    "`{binary}` is not on PATH, so the rules cannot be installed ({hint}; or pick the other --iptables-mode)"
                )
            }
            InitError::NoNetAdmin => write!(
                f,
                "this process lacks CAP_NET_ADMIN, which changing iptables rules needs: add NET_ADMIN and NET_RAW to the init container's securityContext.capabilities (and run it as root or give the iptables binaries file capabilities)"
            ),
            InitError::Command { command, message } => write!(f, "`{command}` failed: {message}"),
        }
    }
}

/// What a run did, for the one line the command prints.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Installed { jumps_added: bool },
    Removed,
    NothingToRemove,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Installed { jumps_added: true } => write!(f, "installed the proxy-init chains and jumps"),
            Outcome::Installed { jumps_added: false } => {
                write!(f, "refreshed the proxy-init chains (jumps already in place)")
            }
            Outcome::Removed => write!(f, "removed the proxy-init chains and jumps"),
            Outcome::NothingToRemove => write!(f, "no proxy-init chains or jumps to remove"),
        }
    }
}

/// Validates everything, then checks the backend and the capability, and
/// only then touches the tables.
pub fn run(args: &InitArgs) -> Result<Outcome, InitError> {
    let plan = if args.cleanup { None } else { Some(plan(args)?) };
    let backend = Backend::find(args.iptables_mode)?;
    backend::require_net_admin()?;
    let saved = backend.save_nat()?;
    match plan {
        Some(plan) => {
            backend.restore(&rules::install_script(&plan, &saved))?;
            Ok(Outcome::Installed { jumps_added: !rules::installed(&saved) })
        }
        None => match rules::cleanup_script(&saved) {
            Some(script) => backend.restore(&script).map(|()| Outcome::Removed),
            None => Ok(Outcome::NothingToRemove),
        },
    }
}

/// The validated rule inputs. The proxy's admin port always joins the
/// inbound skip list, as Linkerd's chart puts its admin and control ports
/// first in `--inbound-ports-to-ignore`.
pub fn plan(args: &InitArgs) -> Result<Plan, InitError> {
    if args.proxy_uid == 0 {
        return Err(InitError::InvalidFlag(
            "--proxy-uid 0: the proxy must run as a uid of its own, else its connections are redirected back into it (Linkerd adds no exclusion for uid 0)".into(),
        ));
    }
    if args.inbound_port == 0 || args.outbound_port == 0 || args.inbound_port == args.outbound_port {
        return Err(InitError::InvalidFlag(
            "--inbound-port and --outbound-port must be two different non-zero ports".into(),
        ));
    }
    let mut inbound_skip = vec![PortRange::single(args.admin_port)];
    inbound_skip.extend(port_lists("--skip-inbound-ports", &args.skip_inbound_ports)?);
    Ok(Plan {
        inbound_port: args.inbound_port,
        outbound_port: args.outbound_port,
        proxy_uid: args.proxy_uid,
        inbound_skip,
        outbound_skip: port_lists("--skip-outbound-ports", &args.skip_outbound_ports)?,
        skip_subnets: subnets(&args.skip_subnets)?,
    })
}

fn port_lists(flag: &str, lists: &[String]) -> Result<Vec<PortRange>, InitError> {
    let mut out = Vec::new();
    for list in lists {
        out.extend(ports::parse_list(list).map_err(|e| InitError::InvalidFlag(format!("{flag}: {e}")))?);
    }
    Ok(out)
}

/// IPv4 networks only: `mesh-proxy init` configures the IPv4 tables (as
/// Linkerd does with `--ipv6=false`, its chart default), and an IPv6
/// network there would be refused by iptables anyway.
fn subnets(lists: &[String]) -> Result<Vec<Ipv4Net>, InitError> {
    let mut out = Vec::new();
    for entry in lists.iter().flat_map(|l| l.split(',')).map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| InitError::InvalidFlag(format!("--skip-subnets: `{entry}` {why}"));
        match entry.parse::<IpNet>().map_err(|_| bad("is not a CIDR (a.b.c.d/n)"))? {
            IpNet::V4(net) => out.push(net.trunc()),
            IpNet::V6(_) => return Err(bad("is IPv6; mesh-proxy init configures IPv4 only")),
        }
    }
    Ok(out)
}
