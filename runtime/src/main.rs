use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let settings = mesh_runtime::Settings::parse();
    init_logging(&settings.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mesh-runtime: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("mesh-runtime: {e}");
            ExitCode::from(2)
        }
    }
}

/// Serves until a signal, or until a background task fails: then the
/// runtime stops and the process exits non-zero, for its supervisor to
/// start it again with fresh state.
async fn run(settings: mesh_runtime::Settings) -> Result<(), String> {
    let running = mesh_runtime::start(settings).await?;
    let failure = tokio::select! {
        signal = wait_for_signal() => { signal?; None }
        failure = running.failed() => Some(failure),
    };
    tracing::info!("shutting down");
    running.shutdown.cancel();
    running.stopped().await;
    failure.map_or(Ok(()), Err)
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("SIGINT handler: {e}"))?,
    }
    Ok(())
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MESH_RUNTIME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" { builder.json().init() } else { builder.init() }
}
