//! PLACEHOLDER (uncommitted)
use crate::hub::EndpointsHub;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio_util::sync::CancellationToken;
pub async fn run(_c: kube::Client, _h: Arc<EndpointsHub>, _td: String, s: Arc<AtomicBool>, _sd: CancellationToken) {
    s.store(true, std::sync::atomic::Ordering::Relaxed);
}
