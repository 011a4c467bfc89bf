//! File mode refuses an older signed build put back in the build
//! directory, and remembers the newest one in `--state-dir` across a
//! restart. (Kubernetes mode's case is in `kube.rs`.)

use crate::support::*;
use http::StatusCode;
use mesh_test_support::copy_tree;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLLBACK_REFUSED: &str = r#"mesh_runtime_objects_rejected_total{kind="MeshBundle",reason="rollback"} "#;

/// The frontend's config as served: its digest, or the status when none is.
async fn frontend(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Result<String, StatusCode> {
    let r = get(addr, tls.clone(), &config_path(&workload_key(&config("frontend")), None, None)).await;
    if r.status == StatusCode::OK { Ok(r.digest()) } else { Err(r.status) }
}

async fn wait_for_frontend(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>, digest: &str) {
    let start = Instant::now();
    while frontend(addr, tls).await.as_deref() != Ok(digest) {
        assert!(start.elapsed() < Duration::from_secs(10), "the frontend never got {digest}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the runtime has refused a MeshBundle as a rollback `n` times.
async fn wait_for_refusals(admin: SocketAddr, n: u32) {
    let start = Instant::now();
    loop {
        let (_, metrics) = admin_get(admin, "/metrics").await;
        let count = metrics.lines().find_map(|l| l.strip_prefix(ROLLBACK_REFUSED)).map(|c| c.trim().to_owned());
        if count == Some(n.to_string()) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no rollback refusal #{n}: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn floor_file(state: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(state.join("rollback-floor.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_file_mode_refuses_the_previous_build_also_after_a_restart() {
    let files = Files::new();
    let state = files.tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let settings = || mesh_runtime::Settings { state_dir: Some(state.clone()), ..files.settings() };
    let (older, newer) = (files.tmp.path().join("older"), files.tmp.path().join("newer"));
    copy_tree(&files.dist, &older);
    let tls = tls_config(Some(&files.identity(&config("frontend").identity)), files.pki.anchors_pem());

    let rt = mesh_runtime::start(settings()).await.unwrap();
    let old_digest = frontend(rt.api_addr, &tls).await.unwrap();
    write_build(&files.dist, &changed("frontend"), &files.key, "r2");
    copy_tree(&files.dist, &newer);
    let new_digest = std::fs::read_to_string(newer.join("configs/podinfo/deployment-frontend.yaml")).unwrap();
    let new_digest = new_digest.split("\"digest\": \"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert_ne!(new_digest, old_digest);
    wait_for_frontend(rt.api_addr, &tls, &new_digest).await;
    let (old_seq, new_seq) = (sequence_of(&older), sequence_of(&newer));
    assert!(old_seq < new_seq);

    // The older build put back: refused, the newer one stays served.
    copy_tree(&older, &files.dist);
    wait_for_refusals(rt.admin_addr, 1).await;
    assert_eq!(frontend(rt.api_addr, &tls).await, Ok(new_digest.clone()));
    let (_, ready) = admin_get(rt.admin_addr, "/ready").await;
    assert!(ready.contains("bundle r2"), "{ready}");
    assert_eq!(floor_file(&state)["sequence"], new_seq, "the newest accepted sequence is recorded");
    rt.shutdown.cancel();
    rt.stopped().await;

    // A restart with the older build still in place: the recorded floor
    // refuses it, so nothing is served rather than the older configs.
    let rt = mesh_runtime::start(settings()).await.unwrap();
    wait_for_refusals(rt.admin_addr, 1).await;
    assert_eq!(frontend(rt.api_addr, &tls).await, Err(StatusCode::FORBIDDEN), "nothing served: 403 (runtime/API.md)");
    let (_, ready) = admin_get(rt.admin_addr, "/ready").await;
    assert!(ready.contains("bundle none"), "{ready}");
    // The newer build back: served; the older once more: refused again.
    copy_tree(&newer, &files.dist);
    wait_for_frontend(rt.api_addr, &tls, &new_digest).await;
    copy_tree(&older, &files.dist);
    wait_for_refusals(rt.admin_addr, 2).await;
    assert_eq!(frontend(rt.api_addr, &tls).await, Ok(new_digest));
    assert_eq!(floor_file(&state)["sequence"], new_seq);
    rt.shutdown.cancel();
    rt.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_a_corrupt_floor_file_stops_the_start() {
    let files = Files::new();
    let state = files.tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("rollback-floor.json"), "{\"sequence\": \"high\"}").unwrap();
    let settings = mesh_runtime::Settings { state_dir: Some(state.clone()), ..files.settings() };
    let err = mesh_runtime::start(settings).await.err().expect("a corrupt floor must not be ignored");
    assert!(err.contains("rollback-floor.json") && err.contains("delete it"), "{err}");
}
