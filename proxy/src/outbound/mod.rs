//! Outbound: routes the app's requests to Services (route selection,
//! weighted backends, timeouts, budgeted retries, failure accrual, peak-EWMA
//! balancing, mTLS to meshed endpoints). OWNER: outbound helper.

use crate::Ctx;
use std::sync::Arc;

/// Runs until `ctx.shutdown` is cancelled; returns early only on error.
pub async fn serve(ctx: Arc<Ctx>) -> std::io::Result<()> {
    ctx.shutdown.cancelled().await;
    Ok(())
}
