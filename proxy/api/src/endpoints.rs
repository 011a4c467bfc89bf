//! Where a Service's endpoints are and which identity each must present:
//! the types mesh-proxy's discovery hands out, the endpoints file both
//! mesh-proxy (`--discovery`) and mesh-runtime's file mode read, and the
//! runtime API's endpoints answer (`GET /v1/endpoints/...`, runtime/API.md:
//! [`encode_answer`], [`decode_answer`]), which mesh-runtime writes and
//! reads from linked clusters' runtimes, and mesh-proxy reads.
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

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

/// One endpoint, as the endpoints answer carries it too (`addr` as
/// `IP:PORT`, `[IPv6]:PORT`; `identity` absent when unmeshed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The identity the endpoint's proxy must present; `None` for an
    /// unmeshed endpoint, which is reached in plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// The body of the runtime API's `GET /v1/endpoints/<ns>/<svc>/<port>`:
/// `{"version": "...", "endpoints": [{"addr": "...", "identity": "..."}]}`.
/// One definition for the runtime that writes it and every reader; a
/// reader ignores fields it does not know, so the document may grow.
#[derive(Serialize, Deserialize)]
struct Answer<'a> {
    version: Cow<'a, str>,
    endpoints: Cow<'a, [Endpoint]>,
}

/// The endpoints answer for `endpoints` at `version`.
pub fn encode_answer(version: &str, endpoints: &[Endpoint]) -> Vec<u8> {
    let answer = Answer { version: Cow::Borrowed(version), endpoints: Cow::Borrowed(endpoints) };
    // Strings and a list only: serializing cannot fail.
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// An endpoints answer's version and endpoints.
pub fn decode_answer(body: &[u8]) -> Result<(String, Vec<Endpoint>), String> {
    let answer: Answer<'_> = serde_json::from_slice(body).map_err(|e| format!("bad endpoints document: {e}"))?;
    Ok((answer.version.into_owned(), answer.endpoints.into_owned()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_reads_back_what_it_writes() {
        let eps = vec![
            Endpoint {
                addr: "10.40.0.11:9898".parse().unwrap(),
                identity: Some("a.b.serviceaccount.identity.linkerd.cluster.local".into()),
            },
            Endpoint { addr: "[fd00::1]:9898".parse().unwrap(), identity: None },
        ];
        let body = encode_answer("17", &eps);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"version":"17","endpoints":[{"addr":"10.40.0.11:9898","identity":"a.b.serviceaccount.identity.linkerd.cluster.local"},{"addr":"[fd00::1]:9898"}]}"#
        );
        assert_eq!(decode_answer(&body).unwrap(), ("17".to_owned(), eps));
    }

    #[test]
    fn readers_ignore_new_fields_and_refuse_bad_addresses() {
        let (version, eps) =
            decode_answer(br#"{"version":"1","endpoints":[{"addr":"10.0.0.1:80","zone":"a"}],"extra":1}"#).unwrap();
        assert_eq!((version.as_str(), eps.len(), eps[0].identity.is_none()), ("1", 1, true));
        let err = decode_answer(br#"{"version":"1","endpoints":[{"addr":"x"}]}"#).unwrap_err();
        assert!(err.starts_with("bad endpoints document"), "{err}");
        assert!(decode_answer(b"{}").is_err());
    }
}
