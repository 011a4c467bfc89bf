//! The `meshc` command line. Thin: parses flags, runs the pipeline, renders.

/// `println!` for command output. A reader that closes the pipe early
/// (`meshc reach ... | head`) made the standard macro panic; here it ends the
/// process quietly with success, as `matrix` does for its streamed output:
/// the reader chose to stop, nothing failed.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print_text(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for command output; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::print_text(format_args!($($arg)*))
    };
}

mod build;
mod build_clusters;
mod check;
mod diff;
mod diff_checkout;
mod explain;
mod inject;
mod keygen;
mod query_clusters;
mod reach;
mod reach_clusters;
mod show_config;
mod test;
mod verify_bundle;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Writes command output; see [`outln!`].
pub(crate) fn print_text(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(i32::from(EXIT_USAGE));
        }
    }
}

/// Exit codes (DESIGN.md): 0 clean, 1 findings at or above --fail-on, 2 usage or input error.
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "meshc", version, about = "Verify Linkerd and Gateway API mesh policy from git, before rollout")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load manifests, resolve Linkerd's inbound policy, and report what will break.
    Check(Box<check::CheckArgs>),
    /// Print the catalogue entry for a finding code (or list all codes).
    Explain(explain::ExplainArgs),
    /// Print what one workload's proxy will enforce, per port (offline `linkerd diagnostics policy`).
    ShowConfig(show_config::ShowConfigArgs),
    /// One client, one workload port: allow, deny, no-route or depends (on the pod CIDR), with the proof (file:line).
    Reach(Box<reach::ReachArgs>),
    /// Every client class that gets into a workload, per port and route.
    WhoCanReach(reach::WhoArgs),
    /// Every allowed edge client class → workload:port (table, json, dot, mermaid, html).
    Matrix(reach::MatrixArgs),
    /// What a change does to reachability, findings and configs, between two git revisions or directories.
    Diff(Box<diff::DiffArgs>),
    /// Run the MeshTest files (*.meshtest.yaml): flows with the verdict they expect.
    Test(test::TestArgs),
    /// Write the JSON Schemas of meshc.yaml, the resources meshc reads, and ProxyConfig.
    Schemas(explain::SchemasArgs),
    /// Mesh every pod template that asks for it: the mesh-proxy sidecar, its init container and volumes.
    Inject(Box<inject::InjectArgs>),
    /// Make an ed25519 key pair for signing builds (NAME.key, NAME.pub).
    Keygen(keygen::KeygenArgs),
    /// Check, then sign every workload's ProxyConfig into Kubernetes objects for GitOps.
    Build(Box<build::BuildArgs>),
    /// Verify a build's signatures, digests and completeness against trusted public keys.
    VerifyBundle(verify_bundle::VerifyBundleArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match cli.command {
        Command::Check(args) => check::run(*args),
        Command::Explain(args) => explain::run(args),
        Command::Schemas(args) => explain::schemas(args),
        Command::ShowConfig(args) => show_config::run(args),
        Command::Reach(args) => reach::run_reach(*args),
        Command::WhoCanReach(args) => reach::run_who(args),
        Command::Matrix(args) => reach::run_matrix(args),
        Command::Diff(args) => diff::run(*args),
        Command::Test(args) => test::run(args),
        Command::Inject(args) => inject::run(*args),
        Command::Keygen(args) => keygen::run(args),
        Command::Build(args) => build::run(*args),
        Command::VerifyBundle(args) => verify_bundle::run(args),
    }
}
