use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mesh-proxy: the meshc sidecar. Enforces exactly the signed ProxyConfig
/// `meshc build` produced, with mTLS between meshed workloads.
#[derive(Parser)]
#[command(name = "mesh-proxy", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy for one workload.
    Run(Box<mesh_proxy::Settings>),
    /// Install the pod's iptables rules that send its TCP traffic through
    /// the proxy (run once, as the pod's init container), or remove them.
    Init(mesh_proxy::init::InitArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(settings) => {
            mesh_proxy::run::bound_allocator();
            init_logging(&settings.log_format);
            let rt = match mesh_proxy::run::runtime(settings.cores) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("mesh-proxy: starting the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(mesh_proxy::run::run(*settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("mesh-proxy: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Init(args) => match mesh_proxy::init::run(&args) {
            Ok(outcome) => {
                println!("mesh-proxy init: {outcome}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mesh-proxy init: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MESH_PROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" { builder.json().init() } else { builder.init() }
}
