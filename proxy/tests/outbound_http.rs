//! The outbound HTTP listener end to end on loopback: routing by authority,
//! the proxy's own answers, route filters, retries, timeouts and failure
//! accrual against real backends.

mod outbound_support;

use bytes::Bytes;
use http::Version;
use outbound_support::{backend, backend_delayed, discovery_json, get, proxy, request, send};
use serde_json::json;
use std::time::{Duration, Instant};

const H1: Version = Version::HTTP_11;
const H2: Version = Version::HTTP_2;

fn service(name: &str, port: u16, extra: serde_json::Value) -> serde_json::Value {
    let mut svc = json!({"namespace": "test", "name": name, "ports": [{"port": port, "protocol": {"kind": "detect"}}]});
    if let (Some(s), Some(e)) = (svc.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    svc
}

#[tokio::test]
async fn routes_by_authority_keeping_the_http_version_and_authority() {
    let b = backend(|s| (200, format!("{:?} {}", s.version, s.authority))).await;
    let p =
        proxy(Some(json!({"services": []})), &discovery_json(&[("test", "podinfo", 9898, vec![b.addr])]), &[]).await;

    let r = send(p.http, H1, get(H1, "podinfo.test:9898", "/")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "HTTP/1.1 podinfo.test:9898"));
    let r = send(p.http, H2, get(H2, "podinfo.test.svc.cluster.local:9898", "/")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "HTTP/2.0 podinfo.test.svc.cluster.local:9898"));
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn the_proxy_answers_what_it_cannot_forward() {
    let p = proxy(Some(json!({"services": []})), &discovery_json(&[]), &[]).await;
    let r = send(p.http, H1, get(H1, "10.0.0.1:80", "/")).await;
    assert_eq!(r.status, 502, "not a Service name");
    assert!(r.body.contains("not a Service name"), "{}", r.body);
    let no_host = http::Request::builder().uri("/").body(http_body_util::Full::new(Bytes::new())).unwrap();
    assert_eq!(send(p.http, H1, no_host).await.status, 400);
    let r = send(p.http, H1, get(H1, "ghost.test", "/")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["l5d-proxy-error"], "test/ghost:80: no endpoints");

    let unconfigured = proxy(None, &discovery_json(&[]), &[]).await;
    let r = send(unconfigured.http, H1, get(H1, "web.test", "/")).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("no verified config"));
}

#[tokio::test]
async fn http_routes_404_unmatched_requests_and_apply_filters() {
    let b = backend(|s| (200, s.headers.get("x-added").map_or("-", |v| v.to_str().unwrap()).to_string())).await;
    let route = json!({
        "meta": {"kind": "httproute", "name": "api-only"},
        "rules": [{
            "matches": [{"path": {"type": "prefix", "value": "/api"}}],
            "filters": [
                {"type": "requestHeaderModifier", "set": [["x-added", "yes"]]},
                {"type": "responseHeaderModifier", "add": [["x-route", "api-only"]]}
            ],
            "backends": [{"target": {"kind": "service", "namespace": "test", "name": "web", "port": 80}, "weight": 1}]
        }, {
            "matches": [{"path": {"type": "exact", "value": "/old"}}],
            "filters": [{"type": "requestRedirect", "path": "/new", "status": 301}],
            "backends": [{"target": {"kind": "service", "namespace": "test", "name": "web", "port": 80}, "weight": 1}]
        }]
    });
    let mut svc = service("web", 80, json!({}));
    svc["ports"][0]["httpRoutes"] = json!([route]);
    let p = proxy(Some(json!({"services": [svc]})), &discovery_json(&[("test", "web", 80, vec![b.addr])]), &[]).await;

    let r = send(p.http, H1, get(H1, "web.test", "/api/x")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "yes"));
    assert_eq!(r.headers["x-route"], "api-only");
    let r = send(p.http, H1, get(H1, "web.test", "/other")).await;
    assert_eq!(r.status, 404);
    let r = send(p.http, H1, get(H1, "web.test", "/old?q=1")).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.headers["location"], "http://web.test/new?q=1");

    let mut grpc = request(H2, "POST", "web.test", "/pkg.Svc/Method", Bytes::new());
    grpc.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
    let r = send(p.http, H2, grpc).await;
    assert_eq!(r.status, 200, "gRPC errors are trailers-only");
    assert_eq!(r.headers["grpc-status"], "5");
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn invalid_backends_fail_with_500() {
    let mut svc = service("web", 80, json!({}));
    svc["ports"][0]["httpRoutes"] = json!([{
        "meta": {"kind": "httproute", "name": "broken"},
        "rules": [{"matches": [], "backends": [{"target": {"kind": "invalid", "reason": "no port"}, "weight": 1}]}]
    }]);
    let p = proxy(Some(json!({"services": [svc]})), &discovery_json(&[]), &[]).await;
    let r = send(p.http, H1, get(H1, "web.test", "/")).await;
    assert_eq!(r.status, 500);
}

#[tokio::test]
async fn retries_a_flaky_backend_until_success_replaying_the_body() {
    // Fails the first two requests, then echoes the body.
    let b =
        backend(|s| if s.n < 2 { (503, "down".into()) } else { (200, String::from_utf8_lossy(&s.body).into()) }).await;
    let svc = service("flaky", 80, json!({"retry": {"httpStatuses": [{"min": 500, "max": 599}], "limit": 3}}));
    let p = proxy(Some(json!({"services": [svc]})), &discovery_json(&[("test", "flaky", 80, vec![b.addr])]), &[]).await;
    let r = send(p.http, H1, request(H1, "POST", "flaky.test", "/", Bytes::from_static(b"payload"))).await;
    assert_eq!((r.status, r.body.as_str()), (200, "payload"));
    assert_eq!(b.hits(), 3);
}

#[tokio::test]
async fn retries_stop_at_the_limit_and_large_bodies_are_sent_once() {
    let b = backend(|_| (503, "down".into())).await;
    let svc = service("flaky", 80, json!({"retry": {"httpStatuses": [{"min": 503, "max": 503}], "limit": 2}}));
    let p = proxy(Some(json!({"services": [svc]})), &discovery_json(&[("test", "flaky", 80, vec![b.addr])]), &[]).await;
    let r = send(p.http, H1, get(H1, "flaky.test", "/")).await;
    assert_eq!(r.status, 503, "the backend's last answer");
    assert_eq!(b.hits(), 3, "one attempt plus two retries");

    let big = Bytes::from(vec![b'x'; 64 * 1024 + 1]);
    let r = send(p.http, H1, request(H1, "POST", "flaky.test", "/", big)).await;
    assert_eq!(r.status, 503);
    assert_eq!(b.hits(), 4, "over 64 KiB: no retry");
}

#[tokio::test]
async fn request_timeout_answers_504() {
    let b = backend_delayed(Duration::from_millis(1500), |_| (200, "late".into())).await;
    let svc = service("slow", 80, json!({"timeouts": {"requestMs": 200}}));
    let p = proxy(Some(json!({"services": [svc]})), &discovery_json(&[("test", "slow", 80, vec![b.addr])]), &[]).await;
    let start = Instant::now();
    let r = send(p.http, H1, get(H1, "slow.test", "/")).await;
    assert_eq!(r.status, 504);
    assert!(start.elapsed() < Duration::from_millis(1200), "{:?}", start.elapsed());
}

#[tokio::test]
async fn failure_accrual_ejects_a_failing_endpoint_and_fails_fast_when_all_are_out() {
    let bad = backend(|_| (500, "bad".into())).await;
    // Slower than the failing one, so the balancer prefers the bad endpoint
    // (fast failures attract load) until accrual takes it out.
    let good = backend_delayed(Duration::from_millis(40), |_| (200, "good".into())).await;
    let accrual = json!({"failureAccrual": {"kind": "consecutive", "maxFailures": 2,
        "backoff": {"minPenaltyMs": 60000, "maxPenaltyMs": 60000, "jitterPpm": 0}}});
    let svc = service("web", 80, accrual.clone());
    let eps = discovery_json(&[("test", "web", 80, vec![bad.addr, good.addr])]);
    let p = proxy(Some(json!({"services": [svc]})), &eps, &[]).await;
    let mut fives = 0;
    for _ in 0..10 {
        fives += usize::from(send(p.http, H1, get(H1, "web.test", "/")).await.status == 500);
    }
    assert_eq!(fives, 2, "two consecutive failures eject the bad endpoint");
    assert_eq!(bad.hits(), 2);

    let only_bad = proxy(
        Some(json!({"services": [service("web", 80, accrual)]})),
        &discovery_json(&[("test", "web", 80, vec![bad.addr])]),
        &[],
    )
    .await;
    for _ in 0..2 {
        assert_eq!(send(only_bad.http, H1, get(H1, "web.test", "/")).await.status, 500);
    }
    let r = send(only_bad.http, H1, get(H1, "web.test", "/")).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("ejected"), "{}", r.body);
}

#[tokio::test]
async fn service_profiles_retry_their_failures_and_split_by_dst_overrides() {
    let flaky = backend(|s| if s.n == 0 { (500, "x".into()) } else { (200, "v1".into()) }).await;
    let v2 = backend(|_| (200, "v2".into())).await;
    let profile = json!({"profile": {
        "name": "web.test.svc.cluster.local", "namespace": "test",
        "routes": [{"name": "GET /", "condition": {"type": "method", "value": "GET"}, "isRetryable": true}],
        "retryBudget": {"retryRatioPpm": 200000, "minRetriesPerSecond": 10, "ttlMs": 10000},
        "dstOverrides": [{"authority": "web-v2.test.svc.cluster.local:80", "weight": 10000}]
    }});
    let split = service("web", 80, profile);
    let eps = discovery_json(&[("test", "web", 80, vec![flaky.addr]), ("test", "web-v2", 80, vec![v2.addr])]);
    let p = proxy(Some(json!({"services": [split]})), &eps, &[]).await;
    let r = send(p.http, H1, get(H1, "web.test", "/")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "v2"), "all weight on the override");

    let retrying = service(
        "web",
        80,
        json!({"profile": {
            "name": "web.test.svc.cluster.local", "namespace": "test",
            "routes": [{"name": "GET /", "condition": {"type": "method", "value": "GET"}, "isRetryable": true}],
            "retryBudget": {"retryRatioPpm": 200000, "minRetriesPerSecond": 10, "ttlMs": 10000}
        }}),
    );
    let p = proxy(Some(json!({"services": [retrying]})), &eps, &[]).await;
    let r = send(p.http, H1, get(H1, "web.test", "/")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "v1"));
    assert_eq!(flaky.hits(), 2);
}
