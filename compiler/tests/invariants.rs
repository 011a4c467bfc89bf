//! CEL invariants (`meshc::invariants`) on the policy examples: invariants
//! that hold, that fail with the right counterexample, errors with their
//! place, each function of the environment; and, ignored by default, the
//! scale measurement on the synthetic 10,000-workload repository:
//!
//!     cargo test --release -p meshc --test invariants -- --ignored --nocapture
//!
//! (MESHC_BENCH_DIR=DIR uses a repository generated there with
//! `check_scale --generate DIR` instead of generating one.)

#[allow(dead_code)]
#[path = "../benches/synth/mod.rs"]
mod synth;

// The property tests' generator of small repositories.
#[allow(dead_code)]
#[path = "reach_properties/generator.rs"]
mod generator;
#[allow(dead_code)]
#[path = "reach_properties/render.rs"]
mod render;

use mesh_proxy_api::HttpRequest;
use meshc::invariants::{CelError, Counterexample, Env, InvariantOutcome};
use meshc::load::Input;
use meshc::pipeline::{self, Options, Outcome};
use meshc::query::classes::Classes;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn load(root: &Path) -> Outcome {
    pipeline::check(&Input::Path(root.to_path_buf()), &Options::default()).expect("repository loads")
}

fn example(name: &str) -> Outcome {
    load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("policies-examples").join(name))
}

/// Runs `f` with the invariant environment of example `name`.
fn with_env(name: &str, f: impl FnOnce(&Env)) {
    let o = example(name);
    let classes = Classes::derive(&o.resolved, &o.configs);
    f(&Env::new(&o, &classes));
}

fn holds(env: &Env, expr: &str) {
    assert_eq!(env.check(expr), Ok(InvariantOutcome::Holds), "{expr}");
}

fn violated(env: &Env, expr: &str) -> Option<Counterexample> {
    match env.check(expr) {
        Ok(InvariantOutcome::Violated(c)) => c,
        other => panic!("{expr}: expected a violation, got {other:?}"),
    }
}

fn counterexample(env: &Env, expr: &str) -> Counterexample {
    violated(env, expr).unwrap_or_else(|| panic!("{expr}: no counterexample"))
}

fn error(env: &Env, expr: &str) -> CelError {
    match env.check(expr) {
        Err(e) => e,
        other => panic!("{expr}: expected an error, got {other:?}"),
    }
}

// booksapp: classes 0 kubelet (+ the probe network), 1 localhost, 2 unmeshed
// and external, 3 authors, 4 books, 5 traffic, 6 webapp; workloads 0
// authors (7001), 1 books (7002), 2 traffic, 3 webapp (7000).

#[test]
fn booksapp_reachers_hold_and_fail_with_the_first_class() {
    with_env("booksapp-rest", |env| {
        holds(
            env,
            r#"reachers(workload("booksapp/books", "service")).all(c, c.kind == "kubelet" || c.namespace == "booksapp")"#,
        );
        let c = counterexample(env, r#"reachers(workload("deploy/booksapp/books", 7002)).all(c, c.name != "webapp")"#);
        assert_eq!((c.class, c.workload, c.port, c.route.as_deref()), (Some(6), Some(1), Some(7002), None));
        assert!(c.detail.contains(r#"name: "webapp""#), "{}", c.detail);
        // Classes come in id order: the kubelet's is first.
        let c = counterexample(
            env,
            r#"reachers(workload("booksapp/authors", "service")).all(c, c.namespace == "booksapp")"#,
        );
        assert_eq!(c.class, Some(0));
        assert!(c.detail.starts_with(r#"{kind: "kubelet", name: "kubelet", namespace: """#), "{}", c.detail);
    });
}

#[test]
fn booksapp_reachers_of_a_request_name_the_route_and_request() {
    with_env("booksapp-rest", |env| {
        holds(
            env,
            r#"reachers(workload("booksapp/authors", "service"), request("DELETE", "/authors/1.json")).all(c, c.name == "webapp")"#,
        );
        let c = counterexample(
            env,
            r#"reachers(workload("booksapp/books", "service"), request("GET", "/books.json")).all(c, c.name == "webapp")"#,
        );
        assert_eq!((c.class, c.workload, c.port), (Some(3), Some(1), Some(7002)));
        assert_eq!(c.route.as_deref(), Some("HTTPRoute books-read"));
        assert_eq!(c.request, Some(HttpRequest::get("/books.json")));
    });
}

#[test]
fn booksapp_edges() {
    with_env("booksapp-rest", |env| {
        holds(env, r#"edges.all(e, e.client.kind == "kubelet" || e.client.namespace == e.target.namespace)"#);
        holds(env, r#"!edges.exists(e, e.client.kind == "unmeshed" || e.client.kind == "localhost")"#);
        holds(
            env,
            r#"edges.exists(e, e.partial) && edges.all(e, e.route.startsWith("HTTPRoute ") || e.route.startsWith("default:") || e.route == "connection")"#,
        );
        holds(
            env,
            r#"size(edges) == 11 && edges[0].client == clients[0] && edges[0] in edges && !(edges[0] in edges.filter(e, e.client.id != 0))"#,
        );
        let c = counterexample(env, r#"edges.all(e, e.client.name != "webapp" || e.route != "HTTPRoute books-write")"#);
        assert_eq!((c.class, c.workload, c.port), (Some(6), Some(1), Some(7002)));
        assert_eq!(c.route.as_deref(), Some("HTTPRoute books-write"));
        assert!(c.detail.contains(r#"route: "HTTPRoute books-write", partial: true}"#), "{}", c.detail);
        // `!exists` fails on the first edge that exists.
        let c = counterexample(env, r#"!edges.exists(e, e.target.port == 7000 && e.client.name == "traffic")"#);
        assert_eq!((c.class, c.workload, c.port), (Some(5), Some(3), Some(7000)));
        // A positive `exists` that finds nothing has no counterexample.
        assert_eq!(violated(env, r#"edges.exists(e, e.client.kind == "external")"#), None);
    });
}

#[test]
fn booksapp_workloads_targets_and_reachable() {
    with_env("booksapp-rest", |env| {
        holds(
            env,
            r#"workloads.all(w, w.meshed && w.identity.endsWith(".booksapp.serviceaccount.identity.linkerd.cluster.local"))"#,
        );
        holds(
            env,
            r#"workloads.exists_one(w, w.ports == []) && workloads.all(w, w.labels["app.kubernetes.io/part-of"] == "booksapp")"#,
        );
        holds(
            env,
            r#"targets.all(t, t.portName == "service" && t.workload == t.kind + "/" + t.namespace + "/" + t.name)"#,
        );
        let c = counterexample(env, r#"workload("booksapp/webapp").all(t, t.port != 7000)"#);
        assert_eq!((c.class, c.workload, c.port), (None, Some(3), Some(7000)));
        let c = counterexample(env, r#"workloads.all(w, w.name != "traffic")"#);
        assert_eq!((c.class, c.workload, c.port), (None, Some(2), None));
        holds(env, r#"reachable("deploy/booksapp/traffic", workload("booksapp/webapp", "service"))"#);
        holds(env, r#"!reachable("deploy/booksapp/traffic", "booksapp/books:service")"#);
        holds(env, r#"reachable(workloads[1], "booksapp/authors:service", request("GET", "/authors/1.json"))"#);
        holds(env, r#"!reachable(clients[4], "booksapp/authors:service", request("DELETE", "/authors/1.json"))"#);
        holds(env, r#"reachable("kubelet", workload("booksapp/authors", 7001), request("GET", "/ping"))"#);
        holds(
            env,
            r#"!reachable("unmeshed", "booksapp/books:service") && reachable("localhost", "booksapp/books:service")"#,
        );
        holds(
            env,
            r#"reachable("sa:booksapp/webapp", "booksapp/books:service", request("PUT", "/books/1.json", {"x-user": "alice"}))"#,
        );
    });
}

#[test]
fn booksapp_clients_and_resources() {
    with_env("booksapp-rest", |env| {
        holds(
            env,
            r#"size(clients) == 7 && clients.exists_one(c, c.kind == "unmeshed") && clients.map(c, c.id) == lists.range(7)"#,
        );
        holds(env, r#"clients[1].kind == "localhost" && !(clients[1] in reachers(workload("booksapp/books", 7002)))"#);
        holds(
            env,
            r#"clients.filter(c, c.kind == "workload").all(c, c.members[0].split("/")[1].upperAscii() == "BOOKSAPP")"#,
        );
        holds(
            env,
            r#"clients.filter(c, has(c.labels)).all(c, c.labels["app.kubernetes.io/part-of"] == "booksapp") && !has(clients[0].labels)"#,
        );
        holds(
            env,
            r#"clients[0].members.exists(m, m.startsWith("cidr:") && cidr(m.substring(5)).containsIP("10.10.0.1"))"#,
        );
        holds(
            env,
            // A class has 7 fields (`cluster` included), and `labels` when its first member is a workload.
            r#"type(clients[0]) == map && "members" in clients[0] && size(clients[6]) == 8 && size(clients[0]) == 7"#,
        );
        holds(env, r#"servers.map(s, s.name).sort() == ["authors-service", "books-service", "webapp-service"]"#);
        holds(env, r#"routes.all(r, r.kind == "HTTPRoute" && r.namespace == "booksapp") && size(routes) == 6"#);
        holds(
            env,
            r#"policies.exists(p, p.kind == "NetworkAuthentication" && p.name == "kubelet" && p.apiVersion.startsWith("policy.linkerd.io/"))"#,
        );
        let c = counterexample(env, r#"servers.all(s, s.name != "books-service")"#);
        assert_eq!((c.class, c.workload, c.port), (None, None, None));
        assert!(c.detail.contains(r#"name: "books-service""#), "{}", c.detail);
    });
}

#[test]
fn kubernetes_ip_and_cidr_library() {
    with_env("booksapp-rest", |env| {
        holds(
            env,
            r#"isIP("10.0.0.1") && isIP("::1") && !isIP("10.0.0.256") && !isIP("::ffff:10.0.0.1") && !isIP("010.0.0.1")"#,
        );
        holds(
            env,
            r#"ip("10.0.0.1").family() == 4 && ip("::1").family() == 6 && ip("::1").isLoopback() && ip("0.0.0.0").isUnspecified()"#,
        );
        holds(
            env,
            r#"ip("fe80::1").isLinkLocalUnicast() && ip("224.0.0.1").isLinkLocalMulticast() && ip("10.0.0.1").isGlobalUnicast() && !ip("127.0.0.1").isGlobalUnicast()"#,
        );
        holds(
            env,
            r#"ip.isCanonical("2001:db8::1") && !ip.isCanonical("2001:DB8::1") && string(ip("2001:DB8::1")) == "2001:db8::1""#,
        );
        holds(
            env,
            r#"isCIDR("10.0.0.0/8") && !isCIDR("10.0.0.0") && cidr("10.0.0.1/8").masked() == cidr("10.0.0.0/8") && cidr("10.0.0.1/8").ip() == ip("10.0.0.1")"#,
        );
        holds(
            env,
            r#"cidr("10.0.0.0/8").containsIP(ip("10.1.2.3")) && cidr("10.0.0.0/8").containsIP("10.1.2.3") && !cidr("10.0.0.0/8").containsIP("11.0.0.1")"#,
        );
        holds(
            env,
            r#"cidr("10.0.0.0/8").containsCIDR("10.1.0.0/16") && !cidr("10.1.0.0/16").containsCIDR(cidr("10.0.0.0/8")) && cidr("10.0.0.0/8").prefixLength() == 8"#,
        );
        holds(env, r#"string(cidr("10.0.0.0/8")) == "10.0.0.0/8" && type(ip("::1")) == net.IP"#);
        holds(env, r#"math.greatest(1, 2) == 2 && [3, 1, 3].distinct() == [3, 1] && "a-b".replace("-", "+") == "a+b""#);
        let e = error(env, r#"ip("10.0.0.300").family() == 4"#);
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.message.contains("10.0.0.300"), "{e}");
    });
}

// emojivoto: classes 0 kubelet (+ probe network), 1 localhost, 2 unmeshed,
// external and the pod network, 3 emoji, voting and any other identity,
// 4 edge-gateway, 5 prometheus, 6 web; workloads 0 emoji, 1 edge-gateway,
// 2 prometheus, 3 voting, 4 web.

#[test]
fn emojivoto() {
    with_env("emojivoto-grpc", |env| {
        holds(env, r#"reachers(workload("emojivoto/voting", "grpc")).all(c, c.kind == "kubelet" || c.name == "web")"#);
        let c =
            counterexample(env, r#"reachers(workload("emojivoto/emoji", "grpc")).all(c, c.namespace == "emojivoto")"#);
        assert_eq!((c.class, c.workload, c.port), (Some(0), Some(0), Some(8080)));
        holds(
            env,
            r#"edges.all(e, e.target.namespace != "emojivoto" || e.client.kind == "kubelet" || e.client.namespace in ["emojivoto", "ingress", "monitoring"])"#,
        );
        holds(env, r#"!edges.exists(e, e.client.kind == "unmeshed" && e.target.namespace == "emojivoto")"#);
        holds(env, r#"reachers(workload("ingress/edge-gateway", "http")).exists(c, "external" in c.members)"#);
        let vote =
            r#"request("POST", "/emojivoto.voting.v1.VotingService/CastVote", {"content-type": "application/grpc"})"#;
        holds(env, &format!(r#"reachable("deploy/emojivoto/web", "emojivoto/voting:grpc", {vote})"#));
        holds(env, &format!(r#"!reachable("deploy/emojivoto/emoji", "emojivoto/voting:grpc", {vote})"#));
        holds(env, &format!(r#"reachers(workload("emojivoto/voting", "grpc"), {vote}).map(c, c.name) == ["web"]"#));
        let c = counterexample(
            env,
            &format!(r#"reachers(workload("emojivoto/voting", 8080), {vote}).all(c, c.name != "web")"#),
        );
        assert_eq!((c.class, c.workload, c.port), (Some(6), Some(3), Some(8080)));
        assert_eq!(c.route.as_deref(), Some("GRPCRoute voting-api"));
        // Metrics are scraped by Prometheus only.
        let c = counterexample(env, r#"edges.all(e, e.target.port != 4191 || e.client.kind == "kubelet")"#);
        assert_eq!((c.class, c.workload, c.port), (Some(5), Some(0), Some(4191)));
        assert_eq!(c.route.as_deref(), Some("HTTPRoute linkerd-admin-metrics"));
        // A conjunct's counterexample.
        let c = counterexample(env, r#"size(clients) == 7 && workloads.all(w, w.namespace != "monitoring")"#);
        assert_eq!(c.workload, Some(2));
    });
}

#[test]
fn errors_are_placed_in_the_expression() {
    with_env("booksapp-rest", |env| {
        let e = error(env, "reachers(");
        assert_eq!((e.line, e.column), (1, 10), "{e}");
        assert!(e.message.starts_with("syntax error"), "{e}");
        let e = error(env, "clients.all(c,\n  c.name == 'a' &&\n  x.name == 'b')");
        assert_eq!((e.line, e.column, e.message.as_str()), (3, 3, "undeclared reference to 'x'"));
        let e = error(env, r#"edges.all(e, e.client.nmespace == "")"#);
        assert_eq!((e.line, e.column), (1, 22), "{e}");
        assert!(e.message.contains("no field `nmespace` on a client class"), "{e}");
        let e = error(env, r#"workload("booksapp/books", 7002).prot == 1"#);
        assert_eq!((e.line, e.column), (1, 33), "{e}");
        let e = error(env, r#"clients.all(c, c.id > "a")"#);
        assert_eq!((e.line, e.column), (1, 21), "{e}");
        let e = error(env, "frobnicate(1) == 2");
        assert_eq!((e.line, e.column), (1, 1), "{e}");
        assert!(e.message.contains("frobnicate"), "{e}");
        let e = error(env, "size(clients)");
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.message.contains("must evaluate to bool") && e.message.contains("int"), "{e}");
        let e = error(env, r#"size(edges) > 0 && workload("nowhere/nothing").size() > 0"#);
        assert_eq!((e.line, e.column), (1, 20), "{e}");
        assert!(e.message.contains("no workload `nowhere/nothing`"), "{e}");
        let e = error(env, r#"clients.all(c, c.name.startsWith(1))"#);
        assert_eq!((e.line, e.column, e.message.contains("startsWith")), (1, 23, true), "{e}");
        let e = error(env, r#"reachable(clients[0], workload("booksapp/books", "nope"))"#);
        assert!(e.message.contains("no port named `nope`"), "{e}");
        let e = error(env, r#"reachers(1).size() > 0"#);
        assert!(e.message.contains("the target must be a string"), "{e}");
        let e = error(env, r#"reachable("kubelet", "booksapp/books:service", request("GET", "books"))"#);
        assert!(e.message.contains("must start with /"), "{e}");
        let e = error(env, r#"reachers(workload("booksapp/books")).size() > 0"#);
        assert!(e.message.contains("name one, or iterate"), "{e}");
    });
}

/// The cel crate recurses deeply with large frames; a stack overflow would
/// abort the process, so such text must be refused or evaluated in bounds.
#[test]
fn hostile_expressions_are_errors_or_answers() {
    with_env("booksapp-rest", |env| {
        let e = error(env, &format!("{}true{}", "(".repeat(1000), ")".repeat(1000)));
        assert_eq!((e.line, e.column), (1, 49), "{e}");
        let e = error(env, &format!("size({}true{}) == 1", "[".repeat(3000), "]".repeat(3000)));
        assert!(e.message.contains("deeper than 48"), "{e}");
        let e = error(env, &format!("{} == 1", vec!["1"; 20000].join(" + ")));
        assert!(e.message.contains("the limit is 8192"), "{e}");
        assert_eq!(env.check(&format!("{}true{}", "(".repeat(47), ")".repeat(47))), Ok(InvariantOutcome::Holds));
        assert_eq!(env.check(&format!("{}1 == 1", "- -".repeat(15))), Ok(InvariantOutcome::Holds));
        // The longest chains the limits let through.
        assert_eq!(env.check(&format!("{} == 2700", vec!["1"; 2700].join("+ "))), Ok(InvariantOutcome::Holds));
        assert_eq!(env.check(&format!("'a'{} == 'a'", ".lowerAscii()".repeat(620))), Ok(InvariantOutcome::Holds));
        assert!(env.check(&format!("[[1]]{} == 1", "[0]".repeat(2700))).is_err());
        assert!(env.check(&format!("clients[0]{} == 1", ".name".repeat(1600))).is_err());
        let or = vec!["c.id == 99"; 550].join(" || ");
        assert_eq!(env.check(&format!("!clients.exists(c, {or})")), Ok(InvariantOutcome::Holds));
        let junk =
            ["", " ", "\u{0}", r"'\xff' == 1", "{1: 2, 1: 3}.size() == 1", "edges.all(e, e.all(k, k == k))", "a.?b"];
        for j in junk.into_iter().chain([r#""(((" == '(' && ')))' != "(""#]) {
            let _ = env.check(j);
        }
    });
}

#[test]
fn element_errors_follow_cel_semantics() {
    with_env("booksapp-rest", |env| {
        // A false element wins over an error on another; without one, the error is the result.
        let c = counterexample(env, r#"clients.all(c, c.kind == "kubelet" ? 1 / 0 == 1 : false)"#);
        assert_eq!(c.class, Some(1));
        let e = error(env, r#"clients.all(c, c.kind == "kubelet" ? 1 / 0 == 1 : true)"#);
        assert_eq!((e.line, e.column), (1, 40), "{e}");
        let e = error(env, r#"edges.all(e, e.client.kind == "kubelet" ? e.route + 1 == "" : true)"#);
        assert!(e.message.contains("add") || e.message.contains("+"), "{e}");
        holds(env, r#"edges.exists(e, e.client.kind == "kubelet" ? e.route + 1 == "" : true)"#);
        // A conjunction: false wins over an error, in either order.
        assert_eq!(violated(env, "1 / 0 == 1 && false"), None);
        assert_eq!(violated(env, "false && 1 / 0 == 1"), None);
        assert!(env.check("true && 1 / 0 == 1").is_err());
    });
}

/// The edge search groups edges; it must answer as the interpreter does on
/// the listed edges, counterexample included.
#[test]
fn edge_search_agrees_with_plain_evaluation() {
    for name in ["booksapp-rest", "emojivoto-grpc"] {
        with_env(name, |env| {
            for p in EDGE_PREDICATES.iter().chain(&[r#"e.client.labels["app.kubernetes.io/name"] != "books""#]) {
                agrees(env, p).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        });
    }
}

/// Predicates over an edge `e` that read different parts of it, for
/// comparing the edge search with the interpreter's own iteration.
const EDGE_PREDICATES: &[&str] = &[
    "e.client.namespace == e.target.namespace",
    r#"e.client.kind == "kubelet" || e.route.startsWith("HTTPRoute")"#,
    "e.partial || e.target.port > 8000",
    "e.client in reachers(e.target)",
    "reachable(e.client, e.target) && e.client.id != 5",
    r#"has(e.client.labels) ? e.client.labels["app"] != "books" : e.target.portName != "grpc""#,
    "size(e.client) == 8 || e.client.members.size() > 1",
    "e != edges[3]",
    r#"e.client.identity.endsWith(".shop.serviceaccount.identity.linkerd.cluster.local") || e.route == "*""#,
    r#"reachable(e.client, e.target, request("GET", "/api/v1/items")) || e.client.kind != "workload""#,
    r#"e["client"]["namespace"] != "pay" || e["route"] != "*""#,
];

/// `edges.all` / `!edges.exists` (the edge search) against the same over
/// `edges.filter(x, true)` (a list the interpreter iterates).
fn agrees(env: &Env, p: &str) -> Result<(), String> {
    for (fast, plain) in [
        (format!("edges.all(e, {p})"), format!("edges.filter(x, true).all(e, {p})")),
        (format!("!edges.exists(e, {p})"), format!("!edges.filter(x, true).exists(e, {p})")),
        (format!("edges.exists(e, {p})"), format!("edges.filter(x, true).exists(e, {p})")),
    ] {
        // The texts differ, and so do the places of errors: compare messages.
        let (a, b) = (env.check(&fast).map_err(|e| e.message), env.check(&plain).map_err(|e| e.message));
        if a != b {
            return Err(format!("{fast}\n  search: {a:?}\n  plain:  {b:?}"));
        }
    }
    Ok(())
}

// 16 cases keep a debug run near 5 s (parsing dominates); 400 were run in release.
proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 16, ..Default::default() })]
    #[test]
    fn edge_search_agrees_on_generated_repositories(repo in generator::repo()) {
        let o = repo.check();
        let classes = Classes::derive(&o.resolved, &o.configs);
        let env = Env::new(&o, &classes);
        for p in EDGE_PREDICATES {
            if let Err(e) = agrees(&env, p) {
                return Err(proptest::test_runner::TestCaseError::fail(format!("{e}\n{}", repo.describe())));
            }
        }
    }
}

#[test]
fn env_is_shared_across_threads() {
    fn sync<T: Sync>(_: &T) {}
    with_env("booksapp-rest", |env| {
        sync(env);
        std::thread::scope(|s| {
            let a = s.spawn(|| env.check("edges.all(e, e.client.kind != 'external')"));
            let b = s.spawn(|| env.check("clients.exists(c, 'external' in c.members)"));
            assert_eq!(a.join().ok(), Some(Ok(InvariantOutcome::Holds)));
            assert_eq!(b.join().ok(), Some(Ok(InvariantOutcome::Holds)));
        });
    });
    // Every rayon worker checking, on a fresh environment: the first use of
    // `edges` must not wait for a rayon worker.
    with_env("emojivoto-grpc", |env| {
        use rayon::prelude::*;
        let results: Vec<_> = (0..8).into_par_iter().map(|_| env.check("edges.all(e, e.client.id != 1)")).collect();
        assert!(results.iter().all(|r| *r == Ok(InvariantOutcome::Holds)), "{results:?}");
    });
}

// ---------------------------------------------------------------------------
// Scale: 50 invariants over `edges` on the synthetic 10,000-workload repository.

/// `VmHWM` (peak) or `VmRSS` (now) of this process, in MiB.
fn rss_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

#[test]
#[ignore = "scale measurement: run with --release -- --ignored --nocapture"]
fn scale_fifty_edge_invariants() {
    let (_tmp, dir) = match std::env::var_os("MESHC_BENCH_DIR") {
        Some(d) => (None, PathBuf::from(d)),
        None => {
            let tmp = tempfile::tempdir().expect("temporary directory");
            let cfg = synth::Config::shaped(synth::Shape::Apps, 10_000);
            synth::generate(tmp.path(), &cfg).expect("generate the synthetic repository");
            let dir = tmp.path().to_path_buf();
            (Some(tmp), dir)
        }
    };
    let t = Instant::now();
    let o = load(&dir);
    let check = t.elapsed();
    let t = Instant::now();
    let classes = Classes::derive(&o.resolved, &o.configs);
    let derive = t.elapsed();
    let rss_before = rss_mib("VmRSS:");
    let env = Env::new(&o, &classes);
    let mut namespaces: Vec<String> = o.resolved.workloads.iter().map(|w| w.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    let invariants = synth::invariants::fifty(&namespaces);

    let t = Instant::now();
    let first = env.check("size(edges) >= 0");
    let tables = t.elapsed();
    assert_eq!(first, Ok(InvariantOutcome::Holds));
    let edges = match env.check("size(edges) > 30000000") {
        Ok(InvariantOutcome::Holds) => "over 30 million",
        _ => "30 million or fewer",
    };

    let mut times: Vec<(Duration, &str, &'static str)> = Vec::new();
    let t = Instant::now();
    for inv in &invariants {
        let ti = Instant::now();
        let verdict = match env.check(inv) {
            Ok(InvariantOutcome::Holds) => "holds",
            Ok(InvariantOutcome::Violated(_)) => "violated",
            Ok(InvariantOutcome::Depends(_)) => "depends",
            Err(e) => panic!("{inv}: {e}"),
        };
        times.push((ti.elapsed(), inv, verdict));
    }
    let fifty_seq = t.elapsed();
    let t = Instant::now();
    let parallel: Vec<bool> = {
        use rayon::prelude::*;
        invariants.par_iter().map(|inv| env.check(inv).is_ok()).collect()
    };
    let fifty_par = t.elapsed();
    assert!(parallel.iter().all(|ok| *ok));
    times.sort_by_key(|x| std::cmp::Reverse(x.0));
    let held = times.iter().filter(|x| x.2 == "holds").count();

    let total = derive + tables + fifty_seq;
    println!("repository: {} workloads, {} client classes, {} edges", o.resolved.workloads.len(), classes.len(), edges);
    println!("pipeline::check (in process):      {:>8.3} s", check.as_secs_f64());
    println!("Classes::derive:                   {:>8.3} s", derive.as_secs_f64());
    println!("edge tables (first use of edges):  {:>8.3} s", tables.as_secs_f64());
    println!(
        "50 invariants, one thread:         {:>8.3} s  ({held} hold, {} violated)",
        fifty_seq.as_secs_f64(),
        50 - held
    );
    for (d, inv, verdict) in times.iter().take(3) {
        println!("  slowest: {:>7.1} ms  {verdict:8}  {inv}", d.as_secs_f64() * 1000.0);
    }
    println!("  median:  {:>7.1} ms", times[times.len() / 2].0.as_secs_f64() * 1000.0);
    println!("50 invariants, rayon ({} threads):   {:>8.3} s", rayon::current_num_threads(), fifty_par.as_secs_f64());
    println!("classes + tables + 50 invariants:  {:>8.3} s", total.as_secs_f64());
    println!(
        "(check + all that) / check:        {:>8.2}  (budget < 2)",
        (check + total).as_secs_f64() / check.as_secs_f64()
    );
    println!("RSS before invariants, after:      {:>8.0} MiB, {:.0} MiB", rss_before, rss_mib("VmRSS:"));
    println!("peak RSS:                          {:>8.0} MiB", rss_mib("VmHWM:"));
    if !cfg!(debug_assertions) {
        assert!(check + total < 2 * check, "check {check:?}, invariants side {total:?}");
    }
}
