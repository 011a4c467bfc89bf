//! Outbound policy for the synthetic repository, per namespace in
//! `outbound.yaml`, drawn from its own seeded stream so the inbound part of
//! the repository stays what it was:
//! - 20% of the HTTP apps: a Gateway API HTTPRoute on their Service with a
//!   header-routed canary rule and a 90/10 split between the app's Service
//!   and the next app that has no route (routes do not stack), a request
//!   timeout, and retry annotations;
//! - 10% of the HTTP and gRPC apps: a Service timeout annotation;
//! - 6% of the other HTTP apps without a timeout annotation: a ServiceProfile with a
//!   retryable GET route, a timeout and a retry budget.

use super::{App, AppKind, Lcg, Out, doc};
use std::io;

pub(super) fn write_outbound(out: &mut Out, ns: &str, k: usize, apps: &[App]) -> io::Result<()> {
    let mut rng = Lcg(0x6f75_7462_6f75_6e64 ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut buf = String::new();
    let http: Vec<&App> = apps.iter().filter(|a| matches!(a.kind, AppKind::HttpRoutes | AppKind::HttpPlain)).collect();
    let routed: Vec<bool> = http.iter().map(|_| rng.pct(20)).collect();
    for (i, app) in http.iter().enumerate() {
        let a = &app.name;
        // The canary backend is an app without a route of its own: routes do not stack.
        let other = (1..http.len()).map(|d| (i + d) % http.len()).find(|&j| !routed[j]);
        match other {
            Some(j) if routed[i] => doc(&mut buf, &mut out.stats, "HTTPRoute", &route(ns, a, &http[j].name)),
            // A profile would silently replace the Service's timeout annotation.
            _ if !routed[i] && !app.service_timeout && rng.pct(6) => {
                doc(&mut buf, &mut out.stats, "ServiceProfile", &profile(ns, a))
            }
            _ => {}
        }
    }
    if buf.is_empty() { Ok(()) } else { out.write(&format!("{ns}/outbound.yaml"), &buf) }
}

/// Whether the app's Service gets a timeout annotation (drawn apart from the routes).
pub(super) fn service_timeout(k: usize, i: usize) -> bool {
    let mut rng = Lcg(0x7469_6d65_6f75_7473 ^ ((k * 1000 + i) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    rng.next();
    rng.pct(10)
}

fn route(ns: &str, a: &str, other: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {a}-canary
  namespace: {ns}
  annotations:
    retry.linkerd.io/http: 5xx
    retry.linkerd.io/limit: \"2\"
spec:
  parentRefs:
  - {{group: \"\", kind: Service, name: {a}, port: 80}}
  rules:
  - matches:
    - headers:
      - {{name: x-canary, value: \"true\"}}
    backendRefs:
    - {{name: {other}, port: 80}}
  - backendRefs:
    - {{name: {a}, port: 80, weight: 90}}
    - {{name: {other}, port: 80, weight: 10}}
    timeouts:
      request: 5s
"
    )
}

fn profile(ns: &str, a: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata:
  name: {a}.{ns}.svc.cluster.local
  namespace: {ns}
spec:
  routes:
  - name: GET /api
    condition:
      method: GET
      pathRegex: /api/.*
    isRetryable: true
    timeout: 1s
  retryBudget:
    retryRatio: 0.2
    minRetriesPerSecond: 10
    ttl: 10s
"
    )
}
