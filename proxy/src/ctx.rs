//! What every listener shares: settings, the current config, identity,
//! discovery, metrics and the shutdown signal.

use crate::discovery::Discovery;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::state::ConfigRx;
use mesh_common::identity::Identity;
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
    /// Connection slots of the inbound and outbound listeners: separate,
    /// so peers holding inbound connections cannot refuse the app its own.
    inbound_slots: Arc<Semaphore>,
    outbound_slots: Arc<Semaphore>,
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
            inbound_slots: Arc::new(Semaphore::new(settings.max_inbound_connections)),
            outbound_slots: Arc::new(Semaphore::new(settings.max_outbound_connections)),
            settings,
            config,
            identity,
            discovery,
            metrics,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// The connection slots of `direction`'s listeners.
    pub fn slots(&self, direction: Direction) -> &Arc<Semaphore> {
        match direction {
            Direction::Inbound => &self.inbound_slots,
            Direction::Outbound => &self.outbound_slots,
        }
    }
}

/// Which side of the proxy a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Peers connecting to the workload.
    Inbound,
    /// The workload's app connecting out.
    Outbound,
}

impl Direction {
    /// The `direction` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}
