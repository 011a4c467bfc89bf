//! How much an end-to-end comparison with `meshc reach` covered. A run that
//! checked nothing agrees with every prediction, and one that saw only
//! allowed requests proves nothing about denial: each test states the
//! floor and the verdicts its example must produce.

use meshc::query::evaluate::Verdict;
use std::collections::BTreeMap;

/// The checks one run made: how many, per verdict, and per verdict and status.
#[derive(Debug, Default)]
pub struct Checks {
    pub total: usize,
    by_verdict: BTreeMap<&'static str, usize>,
    /// `Allow 200`, `Deny 403`, `NoRoute 404`, `Deny connection`, ...
    tally: BTreeMap<String, usize>,
}

impl Checks {
    /// One request (or connection) compared; `outcome` says how it ended.
    pub fn record(&mut self, verdict: Verdict, outcome: &str) {
        self.total += 1;
        *self.by_verdict.entry(verdict.as_str()).or_default() += 1;
        *self.tally.entry(format!("{verdict:?} {outcome}")).or_default() += 1;
    }

    pub fn tally(&self) -> &BTreeMap<String, usize> {
        &self.tally
    }

    /// Panics unless at least `want.floor()` checks ran and every verdict of
    /// `want.verdicts` was among them.
    pub fn assert_covers(&self, example: &str, want: &Coverage) {
        let floor = want.floor();
        assert!(
            self.total >= floor,
            "{example}: only {} checks ran, fewer than the {floor} the example implies \
             ({} requests × {} client classes); verdicts: {:?}",
            self.total,
            want.requests,
            want.classes,
            self.tally
        );
        let missing: Vec<&str> =
            want.verdicts.iter().map(|v| v.as_str()).filter(|v| !self.by_verdict.contains_key(v)).collect();
        assert!(
            missing.is_empty(),
            "{example}: no check had verdict {missing:?}, which the example holds; verdicts: {:?}",
            self.tally
        );
    }
}

/// What a run over an example must at least cover, reasoned from the
/// example and the requests `inbound::check_example` sends: every client
/// class sends every request to every target port, so the floor is the
/// requests per class (summed over ports) times the classes the example's
/// policies tell apart; and the verdicts its README's table holds.
pub struct Coverage {
    pub requests: usize,
    pub classes: usize,
    pub verdicts: &'static [Verdict],
}

impl Coverage {
    pub fn floor(&self) -> usize {
        self.requests * self.classes
    }
}

/// What every HTTP port gets before its workload's probes: `GET /`,
/// `GET /api/x`, `GET /books.json`, `POST /` and a gRPC call, which an
/// HTTP/1 Server's port is not sent (gRPC needs HTTP/2).
const BASE: usize = 5;
const BASE_HTTP1: usize = BASE - 1;
/// The injector adds the proxy's `/live` and `/ready` probes to every pod
/// (§7.3 item 5); the test sends every probe of the workload to each port.
const PROXY_PROBES: usize = 2;

/// booksapp-rest: webapp, authors and books each serve one port with an
/// HTTP/1 Server (traffic serves none, and no Server covers the admin port,
/// so it is no target), each with the two `GET /ping` probes: 3 × (4 + 2 +
/// 2). The policies tell apart 7 clients: the kubelet (probe routes),
/// localhost, an unmeshed pod (nothing), and traffic, webapp, authors and
/// books, each granted different routes. Allowed (traffic → webapp),
/// denied (anyone else → webapp: 403) and no route (`GET /` on authors: 404).
pub const BOOKSAPP: Coverage = Coverage {
    requests: 3 * (BASE_HTTP1 + 2 + PROXY_PROBES),
    classes: 7,
    verdicts: &[Verdict::Allow, Verdict::Deny, Verdict::NoRoute],
};

/// emojivoto-grpc, probes counted are the HTTP ones (Linkerd ignores gRPC
/// probes, §1.4):
/// - web: 8080 (HTTP/1 Server) and 4191 (Server linkerd-admin, HTTP/1),
///   with `/readyz` and `/healthz`: 2 × (4 + 2 + 2);
/// - emoji, voting: 8080 (gRPC Server) and 4191 (HTTP/1): (5 + 2) + (4 + 2) each;
/// - edge-gateway 8080 and prometheus 9090, no Server (detect), each with
///   two HTTP probes: (5 + 2 + 2) each.
///
/// At least 6 classes: the kubelet (health and probe routes), localhost,
/// an unmeshed pod, web (emoji and voting APIs), edge-gateway (meshed and
/// in 10.244.0.0/16: web) and prometheus (`/metrics`). Allowed, denied
/// (PERMISSION_DENIED for non-web callers of the APIs, 403 on web) and no
/// route (NOT_FOUND for other VotingService methods, 404 on the admin port).
pub const EMOJIVOTO: Coverage = Coverage {
    requests: 2 * (BASE_HTTP1 + 2 + PROXY_PROBES)
        + 2 * ((BASE + PROXY_PROBES) + (BASE_HTTP1 + PROXY_PROBES))
        + 2 * (BASE + 2 + PROXY_PROBES),
    classes: 6,
    verdicts: &[Verdict::Allow, Verdict::Deny, Verdict::NoRoute],
};

/// podinfo-canary, inbound: podinfo-primary and podinfo-canary serve 9898
/// (HTTP/1 Server podinfo-http) with `/readyz` and `/healthz`; the frontend
/// serves 8080 (no Server: the namespace default, detect) with `/readyz`:
/// 2 × (4 + 2 + 2) + (5 + 1 + 2). 4 classes: the frontend (allowed on
/// podinfo), the kubelet (probes), localhost and an unmeshed pod (nothing).
/// No Server here has routes, so the default route matches every request:
/// allowed and denied (403), never no route.
pub const PODINFO_INBOUND: Coverage = Coverage {
    requests: 2 * (BASE_HTTP1 + 2 + PROXY_PROBES) + (BASE + 1 + PROXY_PROBES),
    classes: 4,
    verdicts: &[Verdict::Allow, Verdict::Deny],
};

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Coverage = Coverage { requests: 1, classes: 2, verdicts: &[Verdict::Allow, Verdict::Deny] };

    fn run(verdicts: &[Verdict]) -> Checks {
        let mut checks = Checks::default();
        for &v in verdicts {
            checks.record(v, "200");
        }
        checks
    }

    #[test]
    #[should_panic(expected = "only 0 checks ran")]
    fn a_run_without_checks_fails() {
        run(&[]).assert_covers("example", &SMALL);
    }

    #[test]
    #[should_panic(expected = "no check had verdict [\"deny\"]")]
    fn a_run_of_only_allowed_requests_fails() {
        run(&[Verdict::Allow, Verdict::Allow, Verdict::Allow]).assert_covers("example", &SMALL);
    }

    #[test]
    fn a_run_with_the_floor_and_the_verdicts_passes() {
        run(&[Verdict::Allow, Verdict::Deny]).assert_covers("example", &SMALL);
    }
}
