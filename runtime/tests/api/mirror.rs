//! Mirrored Services (`--links`): a source cluster's runtime serves the
//! Services a linked cluster exports, from that cluster's own runtime,
//! asked over mTLS with the source runtime's certificate (one trust anchor).

use crate::support::*;
use http::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GATEWAY_ID: &str = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local";
const BACKEND_ID: &str = "backend.podinfo.serviceaccount.identity.linkerd.cluster.local";

/// west's Services: podinfo (exported through the gateway) and backend (pod-to-pod).
fn west_endpoints(podinfo: &str, backend: &str) -> String {
    format!(
        r#"{{"services": [
          {{"namespace": "podinfo", "name": "podinfo", "ports": [{{"port": 9898, "endpoints": [{podinfo}]}}]}},
          {{"namespace": "podinfo", "name": "backend", "ports": [{{"port": 8080, "endpoints": [{backend}]}}]}}]}}"#
    )
}

fn links(west_api: std::net::SocketAddr) -> serde_json::Value {
    serde_json::json!({"links": [{
    "targetCluster": "west",
    "gateway": {"addresses": ["10.99.0.20"], "port": 4143, "identity": GATEWAY_ID},
    "remote": {"runtime": format!("https://{west_api}"), "runtimeIdentity": RUNTIME_ID},
    "services": [
        {"namespace": "podinfo", "name": "podinfo", "mode": "gateway", "ports": [9898], "clusterIP": "10.96.9.9"},
        {"namespace": "podinfo", "name": "backend", "mode": "remote-discovery", "ports": [8080]}
    ]}]})
}

/// Polls `path` on `addr` until its endpoints are `want`, for up to 5 s.
async fn until_endpoints(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
    want: serde_json::Value,
) {
    let start = Instant::now();
    loop {
        let r = get(addr, tls.clone(), path).await;
        if r.status == StatusCode::OK && r.json()["endpoints"] == want {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{path}: {} {}", r.status, r.json());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_services_follow_the_linked_clusters_runtime() {
    let west = Files::new();
    let one_pod = format!(r#"{{"addr": "10.20.0.7:8080", "identity": "{BACKEND_ID}"}}"#);
    std::fs::write(&west.endpoints, west_endpoints(r#"{"addr": "10.20.0.5:9898"}"#, &one_pod)).unwrap();
    let west_rt = mesh_runtime::start(west.settings()).await.unwrap();

    // east: its own files, the same trust anchor and issuer as west.
    let east = Files::new();
    west.pki.write_ca_dir(&east.ca_dir).unwrap();
    std::fs::remove_file(east.ca_dir.join("ca.key")).unwrap();
    let links_file = east.tmp.path().join("links.json");
    std::fs::write(&links_file, serde_json::to_vec(&links(west_rt.api_addr)).unwrap()).unwrap();
    let mut settings = east.settings();
    settings.links = Some(links_file);
    let east_rt = mesh_runtime::start(settings).await.unwrap();
    let tls = tls_config(Some(&west.identity(FRONTEND_ID)), west.pki.anchors_pem());

    // Gateway mode: the gateway's address and identity; pod-to-pod: west's pod itself.
    let gateway = serde_json::json!([{"addr": "10.99.0.20:4143", "identity": GATEWAY_ID}]);
    until_endpoints(east_rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/podinfo-west/9898", gateway.clone()).await;
    let pods = serde_json::json!([{"addr": "10.20.0.7:8080", "identity": BACKEND_ID}]);
    until_endpoints(east_rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/backend-west/8080", pods).await;
    let r = get(east_rt.api_addr, tls.clone(), "/v1/services/by-cluster-ip/10.96.9.9/9898").await;
    assert_eq!(r.json(), serde_json::json!({"namespace": "podinfo", "name": "podinfo-west", "port": 9898}));
    // east's own Services are still served beside the mirrors.
    let r = get(east_rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/podinfo/9898").await;
    assert_eq!(r.json()["endpoints"][0]["addr"], "10.40.0.11:9898");

    // west changes: a second backend pod, and podinfo without endpoints,
    // which takes the gateway out of podinfo-west (Linkerd's mirror does the same).
    let two_pods = format!(r#"{one_pod}, {{"addr": "10.20.0.8:8080", "identity": "{BACKEND_ID}"}}"#);
    std::fs::write(&west.endpoints, west_endpoints("", &two_pods)).unwrap();
    let pods = serde_json::json!([
        {"addr": "10.20.0.7:8080", "identity": BACKEND_ID}, {"addr": "10.20.0.8:8080", "identity": BACKEND_ID}]);
    until_endpoints(east_rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/backend-west/8080", pods.clone()).await;
    until_endpoints(east_rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/podinfo-west/9898", serde_json::json!([]))
        .await;

    // west's runtime gone: east keeps the last answer.
    west_rt.shutdown.cancel();
    west_rt.stopped().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = get(east_rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/backend-west/8080").await;
    assert_eq!(r.json()["endpoints"], pods);
    east_rt.shutdown.cancel();
    east_rt.stopped().await;
}

/// A linked runtime whose certificate chains to another trust anchor is
/// never believed: its Services stay without endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_runtime_of_another_trust_anchor_is_not_believed() {
    let west = Files::new();
    let west_rt = mesh_runtime::start(west.settings()).await.unwrap();
    let east = Files::new();
    let links_file = east.tmp.path().join("links.json");
    std::fs::write(&links_file, serde_json::to_vec(&links(west_rt.api_addr)).unwrap()).unwrap();
    let mut settings = east.settings();
    settings.links = Some(links_file);
    let east_rt = mesh_runtime::start(settings).await.unwrap();
    let tls = tls_config(Some(&east.identity(FRONTEND_ID)), east.pki.anchors_pem());
    tokio::time::sleep(Duration::from_millis(800)).await;
    for path in ["/v1/endpoints/podinfo/podinfo-west/9898", "/v1/endpoints/podinfo/backend-west/8080"] {
        let r = get(east_rt.api_addr, tls.clone(), path).await;
        assert_eq!((r.status, r.json()["endpoints"].clone()), (StatusCode::OK, serde_json::json!([])), "{path}");
    }
    east_rt.shutdown.cancel();
    east_rt.stopped().await;
    west_rt.shutdown.cancel();
    west_rt.stopped().await;
}

/// A linked cluster's endpoints from a file instead of its runtime: read
/// at start, and again when it changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_clusters_endpoints_can_come_from_a_file() {
    let east = Files::new();
    let west_file = east.tmp.path().join("west-endpoints.json");
    let one_pod = format!(r#"{{"addr": "10.20.0.7:8080", "identity": "{BACKEND_ID}"}}"#);
    std::fs::write(&west_file, west_endpoints("", &one_pod)).unwrap();
    let links = serde_json::json!({"links": [{
    "targetCluster": "west",
    "gateway": {"addresses": ["10.99.0.20"], "port": 4143, "identity": GATEWAY_ID},
    "remote": {"endpointsFile": west_file},
    "services": [
        {"namespace": "podinfo", "name": "podinfo", "mode": "gateway", "ports": [9898]},
        {"namespace": "podinfo", "name": "backend", "mode": "remote-discovery", "ports": [8080]}
    ]}]});
    let links_file = east.tmp.path().join("links.json");
    std::fs::write(&links_file, serde_json::to_vec(&links).unwrap()).unwrap();
    let mut settings = east.settings();
    settings.links = Some(links_file);
    let rt = mesh_runtime::start(settings).await.unwrap();
    let tls = tls_config(Some(&east.identity(FRONTEND_ID)), east.pki.anchors_pem());
    let pods = serde_json::json!([{"addr": "10.20.0.7:8080", "identity": BACKEND_ID}]);
    until_endpoints(rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/backend-west/8080", pods).await;
    // west's podinfo has no endpoints: no gateway behind its mirror, until it has one.
    until_endpoints(rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/podinfo-west/9898", serde_json::json!([])).await;
    std::fs::write(&west_file, west_endpoints(r#"{"addr": "10.20.0.5:9898"}"#, &one_pod)).unwrap();
    let gateway = serde_json::json!([{"addr": "10.99.0.20:4143", "identity": GATEWAY_ID}]);
    until_endpoints(rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/podinfo-west/9898", gateway).await;
    rt.shutdown.cancel();
    rt.stopped().await;
}

/// A federated Service (`podinfo-federated`): east's own `podinfo` and
/// west's, pod to pod, one list; west drops out when the links file, written
/// again, no longer names it, and an invalid rewrite changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_service_unions_its_members_until_one_leaves() {
    let east = Files::new();
    let west_file = east.tmp.path().join("west-endpoints.json");
    let west_pod = format!(r#"{{"addr": "10.20.0.5:9898", "identity": "{BACKEND_ID}"}}"#);
    std::fs::write(&west_file, west_endpoints(&west_pod, "")).unwrap();
    let links = |remote_members: &[&str]| {
        serde_json::json!({
        "links": [{"targetCluster": "west", "remote": {"endpointsFile": west_file}, "services": []}],
        "federated": [{"namespace": "podinfo", "name": "podinfo", "ports": [9898], "clusterIP": "10.96.9.10",
                       "localMember": true, "remoteMembers": remote_members}]})
    };
    let links_file = east.tmp.path().join("links.json");
    std::fs::write(&links_file, serde_json::to_vec(&links(&["west"])).unwrap()).unwrap();
    let mut settings = east.settings();
    settings.links = Some(links_file.clone());
    let rt = mesh_runtime::start(settings).await.unwrap();
    let tls = tls_config(Some(&east.identity(FRONTEND_ID)), east.pki.anchors_pem());

    // east's own podinfo endpoints (the endpoints file's), then west's pod.
    let east_pods = serde_json::json!([
        {"addr": "10.40.0.11:9898", "identity": "podinfo.podinfo.serviceaccount.identity.linkerd.cluster.local"},
        {"addr": "10.40.0.12:9898"}]);
    let mut both = east_pods.as_array().unwrap().clone();
    both.push(serde_json::json!({"addr": "10.20.0.5:9898", "identity": BACKEND_ID}));
    let path = "/v1/endpoints/podinfo/podinfo-federated/9898";
    until_endpoints(rt.api_addr, tls.clone(), path, serde_json::Value::Array(both)).await;
    let r = get(rt.api_addr, tls.clone(), "/v1/services/by-cluster-ip/10.96.9.10/9898").await;
    assert_eq!(r.json(), serde_json::json!({"namespace": "podinfo", "name": "podinfo-federated", "port": 9898}));

    std::fs::write(&links_file, serde_json::to_vec(&links(&[])).unwrap()).unwrap();
    until_endpoints(rt.api_addr, tls.clone(), path, east_pods.clone()).await;
    std::fs::write(&links_file, b"{\"links\": [], \"federated\": [{}]}").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = get(rt.api_addr, tls.clone(), path).await;
    assert_eq!(r.json()["endpoints"], east_pods, "an invalid links file keeps the links in force");
    rt.shutdown.cancel();
    rt.stopped().await;
}
