//! The metrics' label space is bounded by the config, not by traffic: an
//! app (or anyone who can make it send requests) cannot mint a label set
//! per made-up authority, and label sets of targets a new config removed
//! go away.

mod outbound_support;

use http::Version;
use outbound_support::{backend, discovery_json, get, loaded, proxy, send};
use serde_json::json;
use std::time::{Duration, Instant};

const H1: Version = Version::HTTP_11;

fn web_listed() -> serde_json::Value {
    json!({"services": [{"namespace": "test", "name": "web", "ports": [{"port": 80, "protocol": {"kind": "detect"}}]}]})
}

fn targets(metrics: &str) -> Vec<String> {
    let mut out: Vec<String> = metrics
        .lines()
        .filter(|l| l.starts_with("mesh_proxy_requests_total{"))
        .filter_map(|l| l.split("target=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn services_the_config_does_not_list_share_one_target_label() {
    let b = backend(|_| (200, "ok".into())).await;
    let discovery = discovery_json(&[("test", "web", 80, vec![b.addr]), ("test", "other", 80, vec![b.addr])]);
    let p = proxy(Some(web_listed()), &discovery, &[]).await;
    for authority in ["web.test:80", "other.test:80", "made-up-1.nowhere:80", "made-up-2.nowhere:8080"] {
        send(p.http, H1, get(H1, authority, "/")).await;
    }
    let metrics = p.ctx.metrics.encode();
    assert_eq!(targets(&metrics), ["test/web:80", "unlisted"], "{metrics}");
}

#[tokio::test]
async fn label_sets_of_targets_a_new_config_removed_go_away() {
    let b = backend(|_| (200, "ok".into())).await;
    let p = proxy(Some(web_listed()), &discovery_json(&[("test", "web", 80, vec![b.addr])]), &[]).await;
    mesh_proxy::metrics::prune_on_config_change(&p.ctx);
    assert_eq!(send(p.http, H1, get(H1, "web.test:80", "/")).await.status, 200);
    assert_eq!(targets(&p.ctx.metrics.encode()), ["test/web:80"]);

    p.config.send_replace(Some(loaded(json!({"services": []}))));
    let start = Instant::now();
    while !targets(&p.ctx.metrics.encode()).is_empty() {
        let metrics = p.ctx.metrics.encode();
        assert!(start.elapsed() < Duration::from_secs(3), "test/web:80 left the config, not the metrics:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let latency = p.ctx.metrics.encode();
    assert!(!latency.contains("test/web:80"), "a latency series outlived its target:\n{latency}");

    // The Service is now unlisted: counted under the shared label.
    assert_eq!(send(p.http, H1, get(H1, "web.test:80", "/")).await.status, 200);
    assert_eq!(targets(&p.ctx.metrics.encode()), ["unlisted"]);
}
