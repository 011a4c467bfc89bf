//! The config the proxy enforces right now. Listeners read it per request
//! (or per connection for opaque TCP), so a reload takes effect at once
//! without dropping connections.

use mesh_proxy_api::ProxyConfig;
use std::sync::Arc;
use tokio::sync::watch;

/// One verified config and where it came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: ProxyConfig,
    /// Counts accepted configs from 1; 0 is never served.
    pub generation: u64,
    /// `sha256:<hex>` of the signed payload.
    pub digest: String,
    /// Key id of the key that verified it.
    pub key_id: String,
}

/// `None` until the first config verifies: the proxy is not ready and
/// inbound traffic is refused rather than let through unchecked.
pub type Current = Option<Arc<Loaded>>;
pub type ConfigRx = watch::Receiver<Current>;
pub type ConfigTx = watch::Sender<Current>;

pub fn channel() -> (ConfigTx, ConfigRx) {
    watch::channel(None)
}

/// The config now in force, if any.
pub fn current(rx: &ConfigRx) -> Current {
    rx.borrow().clone()
}

/// A config that denies everything, for unit tests that need one.
#[cfg(test)]
pub(crate) fn deny_all_config() -> ProxyConfig {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "meshc.io/v1alpha1",
        "workload": {"kind": "Deployment", "namespace": "shop", "name": "web"},
        "identity": "web.shop.serviceaccount.identity.linkerd.cluster.local",
        "inbound": {"ports": [], "defaultServer": {
            "meta": {"kind": "default", "name": "deny"}, "protocol": {"kind": "opaque"}, "authorizations": []}}
    }))
    .expect("a valid config")
}
