//! Issue 8's figures for mesh-runtime, measured against the release binary:
//!
//! 1. latency: a new build applied → every one of N long-polling proxies
//!    holds its new config (file mode and Kubernetes mode);
//! 2. memory: the runtime's VmRSS/VmHWM serving 0, 1,000 and 10,000
//!    ProxyConfigs;
//! 3. certs: certificates issued per second to concurrent clients;
//! 4. webhook: the admission webhook's answer time for a typical pod.
//!
//! `scripts/bench-runtime.sh` builds and runs it; `--help` lists the knobs.

mod certs;
mod figures;
mod fleet;
mod process;
mod source;
mod source_real;
mod stats;
mod webhook;
mod workloads;

use clap::Parser;
use source::{Env, Mode};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "bench_runtime")]
pub struct Args {
    /// Which figures: latency, memory, certs, webhook.
    #[arg(long, value_delimiter = ',', default_value = "latency,memory,certs,webhook")]
    figures: Vec<String>,
    /// Which modes: file, kube (the fake API server), kube-real (a real
    /// kube-apiserver; latency and memory only).
    #[arg(long, value_delimiter = ',', default_value = "file,kube")]
    modes: Vec<String>,
    /// The mesh-runtime binary (default: next to this example's directory).
    #[arg(long)]
    runtime_bin: Option<PathBuf>,
    /// Latency: workloads, each with its own long-polling proxy.
    #[arg(long, default_value_t = 1000)]
    workloads: usize,
    /// Latency: new builds applied, one after the other.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Memory: numbers of ProxyConfigs.
    #[arg(long, value_delimiter = ',', default_value = "0,1000,10000")]
    sizes: Vec<usize>,
    /// Memory: runtime starts per size.
    #[arg(long, default_value_t = 3)]
    memory_runs: usize,
    /// Webhook: AdmissionReviews timed per row.
    #[arg(long, default_value_t = 2000)]
    reviews: usize,
    /// Certs and webhook: concurrent clients.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    clients: Vec<usize>,
    /// Certs: seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Certs: measurements per client count.
    #[arg(long, default_value_t = 3)]
    cert_runs: usize,
}

impl Args {
    fn modes(&self) -> Result<Vec<Mode>, String> {
        self.modes
            .iter()
            .map(|m| match m.as_str() {
                "file" => Ok(Mode::File),
                "kube" | "kubernetes" => Ok(Mode::Kube),
                "kube-real" => Ok(Mode::KubeReal),
                other => Err(format!("--modes: unknown mode `{other}` (file, kube, kube-real)")),
            })
            .collect()
    }

    fn wants(&self, figure: &str) -> bool {
        self.figures.iter().any(|f| f == figure)
    }
}

fn default_bin() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    // target/<profile>/examples/bench_runtime → target/<profile>/mesh-runtime
    let profile = exe.parent().and_then(|p| p.parent()).ok_or("unexpected location of this program")?;
    Ok(profile.join("mesh-runtime"))
}

async fn run(args: Args) -> Result<(), String> {
    let modes = args.modes()?;
    for f in &args.figures {
        if !["latency", "memory", "certs", "webhook"].contains(&f.as_str()) {
            return Err(format!("--figures: unknown figure `{f}` (latency, memory, certs, webhook)"));
        }
    }
    if args.wants("certs") && modes.contains(&Mode::KubeReal) {
        return Err("--modes kube-real measures latency and memory only (the certificate figure's tokens are \
                    registered with the fake): add --figures latency,memory"
            .into());
    }
    let bin = match &args.runtime_bin {
        Some(b) => b.clone(),
        None => default_bin()?,
    };
    if !bin.is_file() {
        return Err(format!("{}: no such binary (cargo build --release -p mesh-runtime)", bin.display()));
    }
    let env = Env::new(bin)?;
    println!("{}", figures::machine());
    if args.wants("latency") {
        figures::latency(&env, &args, &modes).await?;
    }
    if args.wants("memory") {
        figures::memory(&env, &args, &modes).await?;
    }
    if args.wants("certs") {
        figures::certs(&env, &args, &modes).await?;
    }
    if args.wants("webhook") {
        figures::webhook(&env, &args, &modes).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
