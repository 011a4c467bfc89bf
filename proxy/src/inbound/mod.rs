//! Inbound: accepts connections for the workload, identifies the client
//! (mTLS or plaintext), detects the protocol, authorizes with
//! `mesh-proxy-api`, and forwards what is allowed to the app.

use crate::Ctx;
use std::sync::Arc;

/// Runs until `ctx.shutdown` is cancelled; returns early only on error.
pub async fn serve(ctx: Arc<Ctx>) -> std::io::Result<()> {
    ctx.shutdown.cancelled().await;
    Ok(())
}
