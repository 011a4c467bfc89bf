use crate::support::*;
use http::StatusCode;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_is_served_only_to_its_workloads_identity() {
    let files = Files::new();
    let rt = mesh_runtime::start(files.settings()).await.unwrap();
    let primary = config("podinfo-primary");
    let frontend = config("frontend");
    let anchors = files.pki.anchors_pem().to_owned();
    let podinfo_tls = tls_config(Some(&files.identity(&primary.identity)), &anchors);
    let frontend_tls = tls_config(Some(&files.identity(&frontend.identity)), &anchors);

    let r = get(rt.api_addr, podinfo_tls.clone(), &config_path(&workload_key(&primary), None, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let object = r.json();
    assert_eq!(object["kind"], "ProxyConfig");
    assert_eq!(object["spec"]["identity"], primary.identity.as_str());
    assert_eq!(r.digest(), object["spec"]["digest"].as_str().unwrap());
    assert_eq!(r.headers["content-type"], "application/json");

    // The same certificate fetches the canary too: both run as ServiceAccount podinfo.
    let canary = config("podinfo-canary");
    assert_eq!(canary.identity, primary.identity);
    let r = get(rt.api_addr, podinfo_tls.clone(), &config_path(&workload_key(&canary), None, None)).await;
    assert_eq!(r.status, StatusCode::OK);

    // Another workload's identity, and no certificate at all: 403.
    let r = get(rt.api_addr, frontend_tls.clone(), &config_path(&workload_key(&primary), None, None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json()["error"].as_str().unwrap().contains("has no config to read for"));
    let none = tls_config(None, &anchors);
    let r = get(rt.api_addr, none, &config_path(&workload_key(&primary), None, None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A workload with no config: the same 403, so its absence does not show.
    let r = get(rt.api_addr, frontend_tls.clone(), &config_path("Deployment/podinfo/nope", None, None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = get(rt.api_addr, frontend_tls.clone(), "/v1/config").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let (status, ready) = admin_get(rt.admin_addr, "/ready").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert!(ready.contains(&format!("configs {}", configs().len())), "{ready}");
    let (_, metrics) = admin_get(rt.admin_addr, "/metrics").await;
    assert!(metrics.contains("mesh_runtime_configs_served_total 2"), "{metrics}");
    assert!(metrics.contains(&format!("mesh_runtime_configs {}", configs().len())), "{metrics}");
    assert!(metrics.contains("mesh_runtime_issuer_expiry_timestamp_seconds "), "{metrics}");
    rt.shutdown.cancel();
    rt.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_within_a_second_of_a_new_build() {
    let files = Files::new();
    let rt = mesh_runtime::start(files.settings()).await.unwrap();
    let frontend = config("frontend");
    let tls = tls_config(Some(&files.identity(&frontend.identity)), files.pki.anchors_pem());
    let path = config_path(&workload_key(&frontend), None, None);
    let first = get(rt.api_addr, tls.clone(), &path).await.digest();

    // Nothing new: held for `wait`, then 304.
    let started = Instant::now();
    let r = get(rt.api_addr, tls.clone(), &config_path(&workload_key(&frontend), Some(&first), Some(1))).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(started.elapsed() >= Duration::from_millis(900), "held for the wait");

    let poll_path = config_path(&workload_key(&frontend), Some(&first), Some(30));
    let poll = tokio::spawn(get(rt.api_addr, tls.clone(), &poll_path));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, metrics) = admin_get(rt.admin_addr, "/metrics").await;
    assert!(metrics.contains("mesh_runtime_long_polls_open 1"), "{metrics}");
    write_build(&files.dist, &changed("frontend"), &files.key, "r2");
    let written = Instant::now();
    let r = poll.await.unwrap();
    let latency = written.elapsed();
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.digest(), first);
    assert_eq!(r.json()["spec"]["digest"].as_str().unwrap(), r.digest());
    assert!(latency < Duration::from_secs(1), "new config reached the poll in {latency:?}");
    eprintln!("build written → long poll answered: {latency:?}");
    rt.shutdown.cancel();
    rt.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_config_is_refused_and_the_last_good_one_stays_served() {
    let files = Files::new();
    let rt = mesh_runtime::start(files.settings()).await.unwrap();
    let frontend = config("frontend");
    let tls = tls_config(Some(&files.identity(&frontend.identity)), files.pki.anchors_pem());
    let path = config_path(&workload_key(&frontend), None, None);
    let good = get(rt.api_addr, tls.clone(), &path).await;
    let poll = tokio::spawn(get(
        rt.api_addr,
        tls.clone(),
        &config_path(&workload_key(&frontend), Some(&good.digest()), Some(2)),
    ));

    // A different signed payload (another build's) under this build's
    // bundle, and then a forged payload: both refused.
    let file = files.config_file("frontend");
    let other = tempfile::tempdir().unwrap();
    write_build(&other.path().join("dist"), &changed("frontend"), &files.key, "r9");
    let foreign = std::fs::read(other.path().join("dist/configs/podinfo/deployment-frontend.yaml")).unwrap();
    std::fs::write(&file, &foreign).unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let text = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
    let at = text.find("\"payload\": \"").unwrap() + 20;
    let mut forged = text.into_bytes();
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&file, &forged).unwrap();

    assert_eq!(poll.await.unwrap().status, StatusCode::NOT_MODIFIED, "no refused config reaches a watcher");
    let now = get(rt.api_addr, tls.clone(), &path).await;
    assert_eq!(now.status, StatusCode::OK);
    assert_eq!(now.digest(), good.digest(), "the last good config stays");
    assert_eq!(now.body, good.body);
    let (_, metrics) = admin_get(rt.admin_addr, "/metrics").await;
    assert!(
        metrics.contains(r#"mesh_runtime_objects_rejected_total{kind="ProxyConfig",reason="bundle-mismatch"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"mesh_runtime_objects_rejected_total{kind="ProxyConfig",reason="signature"} 1"#),
        "{metrics}"
    );
    rt.shutdown.cancel();
    rt.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_namespaces_workloads_are_refused_before_their_existence_shows() {
    let files = Files::new();
    let rt = mesh_runtime::start(files.settings()).await.unwrap();
    let frontend = config("frontend");
    let tls = tls_config(Some(&files.identity(&frontend.identity)), files.pki.anchors_pem());
    let ask = |workload: &str| {
        let (addr, tls, path) = (rt.api_addr, tls.clone(), config_path(workload, None, None));
        async move { get(addr, tls, &path).await }
    };

    // The frontend (namespace podinfo) asks about namespace other: 403,
    // whether or not the workload exists there, so nothing is enumerated.
    for workload in ["Deployment/other/nope", "Deployment/other/podinfo-primary"] {
        let r = ask(workload).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{workload}: {:?}", r.body);
        assert!(r.json()["error"].as_str().unwrap().contains("has no config to read for"), "{workload}");
    }
    // In its own namespace too: another workload's config and a missing one
    // get the same status and the same message (but for the name asked).
    let existing = ask(&workload_key(&config("podinfo-primary"))).await;
    let missing = ask("Deployment/podinfo/nope").await;
    assert_eq!((existing.status, missing.status), (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN));
    let message = |r: &Reply, name: &str| r.json()["error"].as_str().unwrap().replace(name, "NAME");
    assert_eq!(message(&existing, "podinfo-primary"), message(&missing, "nope"));
    // Not a workload reference at all: 400.
    for workload in ["Deployment/podinfo", "podinfo", "Deployment//x", "Deployment/podinfo/x/y"] {
        assert_eq!(ask(workload).await.status, StatusCode::BAD_REQUEST, "{workload}");
    }
    rt.shutdown.cancel();
    rt.stopped().await;
}
