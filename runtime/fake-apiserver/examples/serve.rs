//! Runs a fake API server with the standard resources until Ctrl-C, and
//! writes a kubeconfig for kubectl:
//! `cargo run -p fake-apiserver --example serve -- fake.kubeconfig`.

use fake_apiserver::FakeApiServer;
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kubeconfig = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fake.kubeconfig".into()));
    let server = FakeApiServer::start().await?;
    server.kubeconfig(&kubeconfig)?;
    println!("serving on {}; kubectl --kubeconfig {}", server.url(), kubeconfig.display());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
