use crate::support::*;
use http::StatusCode;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_served_and_watched() {
    let files = Files::new();
    let rt = mesh_runtime::start(files.settings()).await.unwrap();
    let frontend = config("frontend");
    let tls = tls_config(Some(&files.identity(&frontend.identity)), files.pki.anchors_pem());

    let r = get(rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/podinfo/9898").await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    let version = doc["version"].as_str().unwrap().to_owned();
    assert_eq!(
        doc["endpoints"],
        serde_json::json!([
            {"addr": "10.40.0.11:9898", "identity": "podinfo.podinfo.serviceaccount.identity.linkerd.cluster.local"},
            {"addr": "10.40.0.12:9898"}
        ])
    );

    // Unknown Service or port: 200 and no endpoints.
    let r = get(rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/podinfo/80").await;
    assert_eq!((r.status, r.json()["endpoints"].clone()), (StatusCode::OK, serde_json::json!([])));
    // Without a client certificate: 403.
    let r = get(rt.api_addr, tls_config(None, files.pki.anchors_pem()), "/v1/endpoints/podinfo/podinfo/9898").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A change to another Service does not answer the poll; one to this Service does.
    let path = format!("/v1/endpoints/podinfo/podinfo/9898?after={version}&wait=30");
    let poll = tokio::spawn(get(rt.api_addr, tls.clone(), &path));
    let other = ENDPOINTS.replace("]}]}]}", r#"]}]}, {"namespace":"x","name":"y","ports":[{"port":1}]}]}"#);
    std::fs::write(&files.endpoints, other).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!poll.is_finished(), "an unrelated change keeps the poll waiting");
    std::fs::write(&files.endpoints, ENDPOINTS.replace("10.40.0.12", "10.40.0.13")).unwrap();
    let written = Instant::now();
    let r = poll.await.unwrap();
    assert!(written.elapsed() < Duration::from_secs(1), "{:?}", written.elapsed());
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert_ne!(doc["version"].as_str().unwrap(), version);
    assert_eq!(doc["endpoints"][1]["addr"], "10.40.0.13:9898");

    // A broken file keeps the last good endpoints.
    std::fs::write(&files.endpoints, "{").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = get(rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/podinfo/9898").await;
    assert_eq!(r.json()["endpoints"][1]["addr"], "10.40.0.13:9898");
    rt.shutdown.cancel();
    rt.stopped().await;
}

/// `GET /v1/services/by-cluster-ip/<ip>/<port>`: the endpoints file's
/// `clusterIP` and port give the Service port; anything else is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_found_by_cluster_ip_and_port() {
    let files = Files::new();
    let rt = mesh_runtime::start(files.settings()).await.unwrap();
    let frontend = config("frontend");
    let tls = tls_config(Some(&files.identity(&frontend.identity)), files.pki.anchors_pem());

    let r = get(rt.api_addr, tls.clone(), "/v1/services/by-cluster-ip/10.96.0.10/9898").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), serde_json::json!({"namespace": "podinfo", "name": "podinfo", "port": 9898}));
    // A port the Service does not have, an address no Service has: 404.
    for path in ["/v1/services/by-cluster-ip/10.96.0.10/80", "/v1/services/by-cluster-ip/10.96.0.11/9898"] {
        let r = get(rt.api_addr, tls.clone(), path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["/v1/services/by-cluster-ip/podinfo/9898", "/v1/services/by-cluster-ip/10.96.0.10/x"] {
        assert_eq!(get(rt.api_addr, tls.clone(), path).await.status, StatusCode::BAD_REQUEST, "{path}");
    }
    let anonymous = tls_config(None, files.pki.anchors_pem());
    let r = get(rt.api_addr, anonymous, "/v1/services/by-cluster-ip/10.96.0.10/9898").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The table follows the file: a new cluster IP answers once reloaded.
    std::fs::write(&files.endpoints, ENDPOINTS.replace("10.96.0.10", "10.96.0.12")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(rt.api_addr, tls.clone(), "/v1/services/by-cluster-ip/10.96.0.12/9898").await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the new cluster IP never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = get(rt.api_addr, tls.clone(), "/v1/services/by-cluster-ip/10.96.0.10/9898").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "the old one is gone");
    rt.shutdown.cancel();
    rt.stopped().await;
}
