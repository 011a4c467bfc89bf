//! Cluster IP → Service lookups against the runtime
//! (`GET /v1/services/by-cluster-ip/<ip>/<port>`, runtime/API.md), for the
//! transparent outbound listener, with a small cache: every connection an
//! app opens to a Service asks, and cluster IPs rarely change.
//!
//! Each answer, found or not, is kept for [`TTL`], so a Service created
//! after a miss is found within that time and a deleted one is forgotten
//! as fast. At most [`MAX_CACHED`] answers are kept (expired ones are
//! dropped first); past that, lookups go to the runtime uncached, so a
//! client dialling many addresses cannot grow the cache without bound. A
//! failed lookup is not cached and is an error for the caller.

use super::ServiceKey;
use crate::source::http::RuntimeClient;
use http::StatusCode;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TTL: Duration = Duration::from_secs(10);
pub const MAX_CACHED: usize = 4096;
/// A lookup is in the path of the app's connection: fail it rather than wait long.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct ServiceAtDoc {
    namespace: String,
    name: String,
    port: u16,
}

pub struct ClusterIps {
    client: Arc<RuntimeClient>,
    cache: Mutex<HashMap<SocketAddr, (Option<ServiceKey>, Instant)>>,
}

impl ClusterIps {
    pub fn new(client: Arc<RuntimeClient>) -> ClusterIps {
        ClusterIps { client, cache: Mutex::new(HashMap::new()) }
    }

    /// A fresh cached answer, if any.
    pub fn cached(&self, addr: SocketAddr) -> Option<Option<ServiceKey>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(&addr).filter(|(_, at)| at.elapsed() < TTL).map(|(key, _)| key.clone())
    }

    /// The Service port at `addr` (`None`: no Service has it), from the
    /// cache or the runtime.
    pub async fn lookup(&self, addr: SocketAddr) -> Result<Option<ServiceKey>, String> {
        if let Some(known) = self.cached(addr) {
            return Ok(known);
        }
        let path = format!(
            "/v1/services/by-cluster-ip/{}/{}",
            crate::source::http::client::encode_segment(&addr.ip().to_string()),
            addr.port()
        );
        let reply = self.client.get(&path, LOOKUP_TIMEOUT).await?;
        let key = parse(&reply)?;
        self.remember(addr, key.clone());
        Ok(key)
    }

    fn remember(&self, addr: SocketAddr, key: Option<ServiceKey>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        if cache.len() < MAX_CACHED || cache.contains_key(&addr) {
            cache.insert(addr, (key, Instant::now()));
        }
    }
}

/// 200: the Service port; 404: no Service there; anything else an error.
fn parse(reply: &crate::source::http::Reply) -> Result<Option<ServiceKey>, String> {
    match reply.status {
        StatusCode::OK => {
            let doc: ServiceAtDoc =
                serde_json::from_slice(&reply.body).map_err(|e| format!("bad service lookup answer: {e}"))?;
            Ok(Some(ServiceKey { namespace: doc.namespace, name: doc.name, port: doc.port }))
        }
        StatusCode::NOT_FOUND => Ok(None),
        status => Err(format!("runtime answered {status}: {}", reply.error_message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::http::Reply;
    use bytes::Bytes;

    fn reply(status: u16, body: &str) -> Reply {
        Reply { status: StatusCode::from_u16(status).unwrap(), digest: None, body: Bytes::from(body.to_string()) }
    }

    #[test]
    fn answers_are_a_service_port_nothing_or_an_error() {
        let found = parse(&reply(200, r#"{"namespace":"booksapp","name":"books","port":7002}"#)).unwrap();
        assert_eq!(found, Some(ServiceKey { namespace: "booksapp".into(), name: "books".into(), port: 7002 }));
        assert_eq!(parse(&reply(404, r#"{"error":"no Service"}"#)).unwrap(), None);
        assert!(parse(&reply(200, r#"{"namespace":"x"}"#)).is_err());
        assert!(
            parse(&reply(403, r#"{"error":"a client certificate from the mesh is required"}"#))
                .unwrap_err()
                .contains("client certificate")
        );
    }
}
