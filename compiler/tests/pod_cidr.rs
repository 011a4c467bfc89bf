//! Issue 16: pod addresses are not in git. On `tests/golden/flow-pod-cidr-depends`
//! the /health route of web/site admits any client from 10.240.0.0/16, a
//! part of Linkerd's default cluster networks: without `podNetworks` a
//! pod's verdict there depends on its address; with `podNetworks` inside or
//! outside that network it is allow or deny. CEL invariants answer the same.

use meshc::invariants::{Env, InvariantOutcome};
use meshc::load::Input;
use meshc::pipeline::{self, Options, Outcome};
use meshc::query::classes::Classes;
use meshc::query::evaluate::Verdict;
use meshc::query::reach::{self, request_of};
use meshc::settings::SettingsFile;
use std::path::PathBuf;

fn load(pod_networks: Option<&str>) -> Outcome {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/flow-pod-cidr-depends/input");
    let overrides = SettingsFile { pod_networks: pod_networks.map(|n| vec![n.to_owned()]), ..SettingsFile::default() };
    pipeline::check(&Input::Path(root), &Options { overrides, ..Options::default() }).expect("repository loads")
}

/// The verdict and condition of `from` → web/site:8080 GET `path`.
fn health(o: &Outcome, from: &str, path: &str) -> (Verdict, Option<String>) {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let client = reach::parse_client(o, &classes, from).expect("client parses");
    let (wi, _) = reach::parse_target(o, "deploy/web/site").expect("target parses");
    let req = request_of(Some("GET"), Some(path), None, []);
    let r = reach::reach(o, client, wi, 8080, req.as_ref());
    assert_eq!(r.verdicts.len(), 1, "one verdict per request");
    (r.verdicts[0].verdict, r.verdicts[0].condition.clone())
}

const INSIDE: &str = "allow when the client pod's address is in 10.240.0.0/16";

#[test]
fn a_pod_client_depends_unless_the_pod_networks_decide() {
    let unset = load(None);
    assert_eq!(health(&unset, "deploy/web/client", "/health"), (Verdict::Depends, Some(INSIDE.to_owned())));
    assert_eq!(health(&unset, "sa:web/default", "/health"), (Verdict::Depends, Some(INSIDE.to_owned())));
    assert_eq!(health(&unset, "unmeshed:web", "/health"), (Verdict::Depends, Some(INSIDE.to_owned())));
    // Addresses that are not pods' are decided: the named network, outside it, the kubelet.
    assert_eq!(health(&unset, "ip:10.240.3.4", "/health"), (Verdict::Allow, None));
    assert_eq!(health(&unset, "external", "/health"), (Verdict::Deny, None));
    assert_eq!(health(&unset, "kubelet", "/health"), (Verdict::Deny, None));
    // No route matches wherever the client is.
    assert_eq!(health(&unset, "deploy/web/client", "/other"), (Verdict::NoRoute, None));

    let inside = load(Some("10.240.0.0/16"));
    assert_eq!(health(&inside, "deploy/web/client", "/health"), (Verdict::Allow, None));
    // A narrower pod CIDR inside the named network is inside too.
    let narrower = load(Some("10.240.8.0/21"));
    assert_eq!(health(&narrower, "deploy/web/client", "/health"), (Verdict::Allow, None));
    let outside = load(Some("10.250.0.0/16"));
    assert_eq!(health(&outside, "deploy/web/client", "/health"), (Verdict::Deny, None));
    // A wider pod CIDR that holds the named network still depends.
    let wider = load(Some("10.0.0.0/8"));
    assert_eq!(health(&wider, "deploy/web/client", "/health"), (Verdict::Depends, Some(INSIDE.to_owned())));
}

fn check(o: &Outcome, expr: &str) -> InvariantOutcome {
    let classes = Classes::derive(&o.resolved, &o.configs);
    Env::new(o, &classes).check(expr).unwrap_or_else(|e| panic!("{expr}: {e:?}"))
}

const REACHES_HEALTH: &str = r#"reachable("deploy/web/client", workload("web/site", 8080), request("GET", "/health"))"#;
const NO_UNMESHED_EDGE: &str = r#"edges.all(e, e.client.kind != "unmeshed")"#;

#[test]
fn invariants_that_turn_on_the_pod_cidr_depend() {
    let unset = load(None);
    assert!(matches!(check(&unset, REACHES_HEALTH), InvariantOutcome::Depends(_)));
    assert!(matches!(check(&unset, &format!("!{REACHES_HEALTH}")), InvariantOutcome::Depends(_)));
    assert!(matches!(
        check(&unset, r#"reachable("deploy/web/client", workload("web/site", 8080))"#),
        InvariantOutcome::Depends(_)
    ));
    // The unmeshed class (with the pods) may be on the route: a counterexample where it is.
    match check(&unset, NO_UNMESHED_EDGE) {
        InvariantOutcome::Depends(Some(c)) => assert_eq!((c.workload, c.port), (Some(0), Some(8080))),
        other => panic!("expected depends with a counterexample, got {other:?}"),
    }
    // Answers that hold wherever pods are stay definite.
    assert_eq!(check(&unset, r#"edges.all(e, e.target.port == 8080)"#), InvariantOutcome::Holds);
    assert_eq!(check(&unset, r#"!reachable("external", workload("web/site", 8080))"#), InvariantOutcome::Holds);
    assert!(matches!(
        check(&unset, r#"reachable("external", workload("web/site", 8080))"#),
        InvariantOutcome::Violated(_)
    ));

    let inside = load(Some("10.240.0.0/16"));
    assert_eq!(check(&inside, REACHES_HEALTH), InvariantOutcome::Holds);
    assert!(matches!(check(&inside, NO_UNMESHED_EDGE), InvariantOutcome::Violated(Some(_))));
    let outside = load(Some("10.250.0.0/16"));
    assert!(matches!(check(&outside, REACHES_HEALTH), InvariantOutcome::Violated(_)));
    assert_eq!(check(&outside, NO_UNMESHED_EDGE), InvariantOutcome::Holds);
}
