//! HTTPLocalRateLimitPolicy on the wire: booksapp-rest with a rate limit on
//! books-service, each client that `meshc reach` allows sends a burst, and
//! the number of requests that reach the app is the limit `meshc reach`
//! reports for that client; the rest are answered 429 by the proxy.
//!
//! Why the counts are exact enough to assert: the proxy's buckets start
//! full, hold `requestsPerSecond` tokens, and get one back every
//! `1/requestsPerSecond` s (linkerd2-proxy's governor quota). A burst sent
//! within `elapsed` therefore gets at least `rps` answers from the app
//! (total is far above it and the client's own bucket is full, since the
//! clients wait a full second between bursts) and at most
//! `rps + floor(elapsed * rps)`. The test measures `elapsed` and asserts
//! both bounds, so a slow machine widens the window instead of failing.

use super::clients::{self, Observed, Req};
use super::inbound::TlsCache;
use super::mesh::{self, Launch, Mesh};
use meshc::query::classes::Classes;
use meshc::query::evaluate::Verdict;
use meshc::query::places::Place;
use meshc::query::reach::{self, ClientView};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// books-service: 4 per second for webapp (an override), 2 for any other
/// identity; the total (1000) never binds here.
const POLICY: &str = "\
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata:
  name: books-rl
  namespace: booksapp
spec:
  targetRef:
    group: policy.linkerd.io
    kind: Server
    name: books-service
  total:
    requestsPerSecond: 1000
  identity:
    requestsPerSecond: 2
  overrides:
    - requestsPerSecond: 4
      clientRefs:
        - kind: ServiceAccount
          name: webapp
";

/// Requests per burst, per unit of the limit: enough that the limit must refuse some.
const BURST_FACTOR: u32 = 4;

/// Runs the bursts; returns the scopes exercised (`override`, `identity`, ...).
pub async fn bursts_match_meshc_reach() -> BTreeSet<&'static str> {
    let tmp = tempfile::tempdir().unwrap();
    let build = mesh::build_dir(&booksapp_with_rate_limit(tmp.path()));
    let o = &build.outcome;
    let classes = Classes::derive(&o.resolved, &o.configs);
    for class in &classes.classes {
        super::netns::add_address(class.client.addr);
    }
    let launch = Launch {
        build: &build,
        client_ip: classes.addrs.pod,
        discovery: serde_json::json!({ "services": [] }),
        echo_flags: BTreeMap::new(),
        proxy_flags: BTreeMap::new(),
        transparent: false,
        runtime: None,
    };
    let mesh = Mesh::start(&launch);
    let books = mesh.workloads.iter().find(|w| w.workload.name == "books").expect("booksapp has books");
    let port = 7002;
    let req = Req::get("/books.json");
    let mut tls = TlsCache::default();
    let mut scopes = BTreeSet::new();
    for class in &classes.classes {
        let Some(tls) = tls.for_client(&mesh, &class.client.tls, &books.identity) else { continue };
        let here = [(Place { addr: class.client.addr, within: Vec::new() }, class.client.clone())];
        let view = ClientView::of_client(class.label.clone(), class.members[0].kind, &here, Some(class.id));
        let predicted = reach::reach(o, view, books.wi, port, Some(&req.to_api()));
        if predicted.verdicts[0].verdict != Verdict::Allow {
            continue;
        }
        let limit = predicted.rate_limit.clone().expect("books-service has a rate limit for every allowed client");
        assert_eq!(limit.policy, "books-rl");
        let rps = limit.requests_per_second;
        let to = SocketAddr::new(books.ip, port);
        let (passed, limited, elapsed) = burst(class.client.addr, to, tls.as_ref(), &req, rps * BURST_FACTOR).await;
        let most = rps + (elapsed.as_secs_f64() * f64::from(rps)).floor() as u32;
        assert!(
            (rps..=most).contains(&passed) && passed + limited == rps * BURST_FACTOR,
            "{}: meshc reach says {} requests per second ({}); of a burst of {} in {elapsed:?}, {passed} reached \
             books and {limited} got 429 (expected {rps}..={most} to pass, the rest 429)\n{}",
            class.label,
            rps,
            limit.scope,
            rps * BURST_FACTOR,
            mesh.dump_logs()
        );
        println!("{}: {} rps ({}): {passed} passed, {limited} got 429 in {elapsed:?}", class.label, rps, limit.scope);
        scopes.insert(limit.scope);
        // Every bucket this client touched is full again after a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    scopes
}

/// Sends `n` requests one after another; counts app answers and 429s.
/// Anything else fails the test: the limit must be the only refusal.
async fn burst(
    from: std::net::IpAddr,
    to: SocketAddr,
    tls: Option<&clients::Tls>,
    req: &Req,
    n: u32,
) -> (u32, u32, Duration) {
    let (mut passed, mut limited) = (0, 0);
    let start = Instant::now();
    for _ in 0..n {
        match clients::http(from, to, tls, req, "books:7002").await {
            Observed::Response { status: 200, app: Some(app), .. } if app == "books" => passed += 1,
            Observed::Response { status: 429, app: None, .. } => limited += 1,
            other => panic!("a request to books got {other:?}: neither the app nor the rate limit"),
        }
    }
    (passed, limited, start.elapsed())
}

/// A copy of booksapp-rest with [`POLICY`] added.
fn booksapp_with_rate_limit(dir: &Path) -> PathBuf {
    let repo = dir.join("booksapp-rest");
    mesh_test_support::copy_tree(&mesh::example("booksapp-rest"), &repo);
    std::fs::write(repo.join("policy").join("ratelimit.yaml"), POLICY).unwrap();
    repo
}
