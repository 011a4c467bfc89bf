//! Where a Service's endpoints are and which identity each must present.
//! The static-file implementation serves tests and the local demo;
//! [`runtime::RuntimeDiscovery`] asks the runtime controller.

pub mod file;
pub mod runtime;

pub use mesh_proxy_api::endpoints::{Endpoint, Endpoints, ServiceKey};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

pub trait Discovery: Send + Sync + 'static {
    /// A Service port's endpoints, updated as they change (empty when unknown).
    fn endpoints(&self, svc: &ServiceKey) -> watch::Receiver<Endpoints>;
    /// The Service port behind a cluster IP and port (transparent outbound).
    fn service_at(&self, addr: SocketAddr) -> Option<ServiceKey>;
}

/// No endpoints anywhere: for a proxy started without `--discovery`.
pub struct NoDiscovery;

impl Discovery for NoDiscovery {
    fn endpoints(&self, _svc: &ServiceKey) -> watch::Receiver<Endpoints> {
        watch::channel(Arc::new(Vec::new())).1
    }
    fn service_at(&self, _addr: SocketAddr) -> Option<ServiceKey> {
        None
    }
}
