//! What every listener shares: settings, the current config, identity,
//! discovery, metrics and the shutdown signal.

use crate::discovery::Discovery;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::state::ConfigRx;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct Ctx {
    pub settings: Settings,
    pub config: ConfigRx,
    pub identity: Arc<Identity>,
    pub discovery: Arc<dyn Discovery>,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the proxy starts draining: listeners stop accepting,
    /// connections finish their in-flight requests.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them to drain.
    pub tasks: TaskTracker,
    /// Bounds open connections across all listeners.
    pub connections: Arc<Semaphore>,
}

impl Ctx {
    /// Everything a proxy shares, with its limits taken from `settings`.
    pub fn new(
        settings: Settings,
        config: ConfigRx,
        identity: Arc<Identity>,
        discovery: Arc<dyn Discovery>,
        metrics: Arc<Metrics>,
    ) -> Ctx {
        Ctx {
            connections: Arc::new(Semaphore::new(settings.max_connections)),
            settings,
            config,
            identity,
            discovery,
            metrics,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }
}
