//! Where a Service's endpoints are and which identity each must present:
//! the types mesh-proxy's discovery hands out, and the endpoints file both
//! mesh-proxy (`--discovery`) and mesh-runtime's file mode read.
//!
//! File format (JSON; `identity` absent: an unmeshed endpoint, reached in
//! plaintext; `clusterIP` absent: the Service cannot be reached
//! transparently):
//!
//! ```json
//! {"services": [
//!   {"namespace": "test", "name": "podinfo", "clusterIP": "10.96.0.10",
//!    "ports": [
//!      {"port": 9898, "endpoints": [
//!        {"addr": "10.40.0.11:9898",
//!         "identity": "podinfo.test.serviceaccount.identity.linkerd.cluster.local"}]}]}]}
//! ```

use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The identity the endpoint's proxy must present; `None` for an
    /// unmeshed endpoint, which is reached in plaintext.
    pub identity: Option<String>,
}

pub type Endpoints = Arc<Vec<Endpoint>>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileDoc {
    services: Vec<FileService>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileService {
    namespace: String,
    name: String,
    #[serde(default, rename = "clusterIP")]
    cluster_ip: Option<IpAddr>,
    ports: Vec<FilePort>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FilePort {
    port: u16,
    #[serde(default)]
    endpoints: Vec<FileEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileEndpoint {
    addr: SocketAddr,
    #[serde(default)]
    identity: Option<String>,
}

/// What one good read of an endpoints file says.
#[derive(Debug, Default, PartialEq)]
pub struct Snapshot {
    pub endpoints: HashMap<ServiceKey, Endpoints>,
    /// Cluster IP and port → Service port, for Services with a `clusterIP`.
    pub by_addr: HashMap<SocketAddr, ServiceKey>,
}

/// Parses an endpoints file (format in the module docs).
pub fn parse(bytes: &[u8]) -> Result<Snapshot, String> {
    let doc: FileDoc = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut snap = Snapshot::default();
    for svc in doc.services {
        for port in svc.ports {
            let key = ServiceKey { namespace: svc.namespace.clone(), name: svc.name.clone(), port: port.port };
            if let Some(ip) = svc.cluster_ip {
                snap.by_addr.insert(SocketAddr::new(ip, port.port), key.clone());
            }
            let eps = port.endpoints.into_iter().map(|e| Endpoint { addr: e.addr, identity: e.identity }).collect();
            if snap.endpoints.insert(key.clone(), Arc::new(eps)).is_some() {
                return Err(format!("{}/{} port {} is listed twice", key.namespace, key.name, key.port));
            }
        }
    }
    Ok(snap)
}
