//! PLACEHOLDER (uncommitted)
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub holder: String,
    pub duration: Duration,
    pub renew_every: Duration,
}
impl LeaseSettings {
    pub fn new(ns: &str, name: &str, holder: &str) -> Self {
        LeaseSettings {
            namespace: ns.into(),
            name: name.into(),
            holder: holder.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}
pub fn spawn(_c: kube::Client, _s: LeaseSettings, sd: CancellationToken) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(true);
    (
        rx,
        tokio::spawn(async move {
            sd.cancelled().await;
            drop(tx)
        }),
    )
}
