//! Where a Service's endpoints are and which identity each must present.
//! The static-file implementation serves tests and the local demo;
//! [`runtime::RuntimeDiscovery`] asks the runtime controller.

pub mod cluster_ip;
pub mod file;
pub mod runtime;

pub use mesh_proxy_api::endpoints::{Endpoint, Endpoints, ServiceKey};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

pub trait Discovery: Send + Sync + 'static {
    /// A Service port's endpoints, updated as they change (empty when unknown).
    fn endpoints(&self, svc: &ServiceKey) -> watch::Receiver<Endpoints>;
    /// The Service port behind a cluster IP and port, from what this
    /// discovery already holds.
    fn service_at(&self, addr: SocketAddr) -> Option<ServiceKey>;
    /// The same lookup for the transparent outbound listener, which may ask
    /// the runtime: `Ok(None)` when no Service has that address, `Err` when
    /// the answer is unknown (the connection must then not bypass the
    /// Service's policy by going straight to the address).
    fn lookup_service_at(&self, addr: SocketAddr) -> Lookup<'_> {
        Box::pin(std::future::ready(Ok(self.service_at(addr))))
    }
}

pub type Lookup<'a> = Pin<Box<dyn Future<Output = Result<Option<ServiceKey>, String>> + Send + 'a>>;

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
