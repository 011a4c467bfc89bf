//! The checker refuses what it must: a wrong value, an unknown scope or
//! field, a line without a value, a workload left unasserted.

use super::check;
use meshc::load::Input;
use meshc::pipeline::{self, Options, Outcome};
use std::path::Path;

fn traffic_split() -> Outcome {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/outbound-traffic-split/input");
    pipeline::compile(&Input::Path(input), &Options::default()).expect("the case compiles")
}

const SERVICES: &str = "deploy/shop/web services = shop/api\n\
                        deploy/shop/api services = shop/api\n\
                        deploy/shop/api-v2 services = shop/api\n";

/// The problems `line` alone raises (the `services` lines are given).
fn problems_of(outcome: &Outcome, line: &str) -> Vec<String> {
    check(&format!("{SERVICES}{line}\n"), outcome)
}

#[test]
fn right_lines_pass() {
    let o = traffic_split();
    for line in [
        "deploy/shop/web svc/shop/api:80 route[api-split] rule[1] backend[shop/api:80] weight = 90 # why",
        "deploy/shop/web svc/shop/api:80 request[GET /x x-canary=true] backends = shop/api-v2:80",
        "deploy/shop/web svc/shop/api timeouts.request = none",
        "# only a comment",
        "",
    ] {
        assert_eq!(problems_of(&o, line), Vec::<String>::new(), "{line}");
    }
}

#[test]
fn wrong_or_unknown_lines_fail() {
    let o = traffic_split();
    let cases = [
        ("deploy/shop/web svc/shop/api:80 route[api-split] rule[1] backend[shop/api:80] weight = 80", "has 90"),
        ("deploy/shop/web svc/shop/api:80 request[GET /x x-canary=true] backends = shop/api:80", "has shop/api-v2:80"),
        ("deploy/shop/web svc/shop/api timeouts.request = 30s", "has none"),
        ("deploy/shop/web svc/shop/api timeouts.request = 30 s", "not a duration"),
        ("deploy/shop/web services = shop/api, shop/api-v2", "has shop/api"),
        ("deploy/shop/web svc/shop/api:80 route[api-split] rule[1] backend[shop/api:80] weigth = 90", "no field"),
        ("deploy/shop/web svc/shop/api:80 route[api-split] rule[1] backend[shop/api:80] weight =", "no value"),
        ("deploy/shop/web svc/shop/api:80 route[api-split] rule[1] backend[shop/api:80] weight 90", "no ` = VALUE`"),
        ("deploy/shop/web svc/shop/api-v2 timeouts.request = none", "not listed"),
        ("deploy/shop/web svc/shop/api:81 protocol = detect", "no port 81"),
        ("deploy/shop/web svc/shop/api:80 route[api-splat] rules = 2", "no route `api-splat`"),
        ("deploy/shop/web svc/shop/api:80 route[api-split] rule[2] matches = *", "has 2 rules"),
        ("deploy/shop/web svc/shop/api retry.limit = 1", "no retry policy"),
        ("deploy/shop/web svc/shop/api accrual.max-failures = 7", "accrual is none"),
        ("deploy/shop/web svc/shop/api profile routes = x", "no ServiceProfile"),
        ("deploy/shop/nobody services = shop/api", "no workload"),
        ("deploy/shop/web rule[0] matches = *", "not a scope"),
    ];
    for (line, why) in cases {
        let problems = problems_of(&o, line);
        assert!(
            problems.len() == 1 && problems[0].contains(why) && problems[0].contains(":4:"),
            "`{line}` should fail once with `{why}` on line 4, got {problems:?}"
        );
    }
}

#[test]
fn every_workload_needs_a_services_line() {
    let problems = check("deploy/shop/web services = shop/api\n", &traffic_split());
    assert_eq!(
        problems,
        [
            "expect-outbound.txt: no `services` line for Deployment/shop/api",
            "expect-outbound.txt: no `services` line for Deployment/shop/api-v2",
        ]
    );
}
