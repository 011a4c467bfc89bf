//! Admin server: `/live`, `/ready`, `/metrics`. OWNER: admin/metrics helper.

use crate::Ctx;
use std::sync::Arc;

/// Runs until `ctx.shutdown` is cancelled; returns early only on error.
pub async fn serve(ctx: Arc<Ctx>) -> std::io::Result<()> {
    ctx.shutdown.cancelled().await;
    Ok(())
}
