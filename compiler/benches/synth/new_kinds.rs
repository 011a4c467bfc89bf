//! The Linkerd 2.17+ kinds, in every other namespace when
//! `MESHC_BENCH_NEW_KINDS=1` (`Config::new_kinds`), in `new-kinds.yaml`, so
//! that `meshc check` can be timed with and without them on otherwise the
//! same repository:
//! - an EgressNetwork `internet` (Deny, default networks: everything
//!   outside the cluster);
//! - a TLSRoute on a `<app>-tls` Service (port 443, protocol detection, no
//!   other route) of the namespace's first HTTP app, routing its hostname to
//!   that Service;
//! - an HTTPLocalRateLimitPolicy on that app's Server (total, per identity,
//!   and an override for the next app's ServiceAccount).
//!
//! All of it is valid; each EgressNetwork adds the `egress-deny-all` info
//! (Deny with no route: everything external refused), 50 in all.

use super::{App, AppKind, Out, doc, labelled};
use std::io;

pub(super) fn write(out: &mut Out, ns: &str, apps: &[App]) -> io::Result<()> {
    let mut buf = String::new();
    doc(&mut buf, &mut out.stats, "EgressNetwork", &egress_network(ns));
    let http = |a: &&App| matches!(a.kind, AppKind::HttpRoutes | AppKind::HttpPlain) && a.name != "prometheus";
    if let Some(app) = apps.iter().find(http) {
        let a = &app.name;
        doc(&mut buf, &mut out.stats, "Service", &tls_service(ns, a));
        doc(&mut buf, &mut out.stats, "TLSRoute", &tls_route(ns, a));
        let client = apps.iter().map(|x| x.name.as_str()).find(|n| n != a).unwrap_or(a);
        doc(&mut buf, &mut out.stats, "HTTPLocalRateLimitPolicy", &rate_limit(ns, a, client));
    }
    out.write(&format!("{ns}/new-kinds.yaml"), &buf)
}

fn egress_network(ns: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata:
  name: internet
  namespace: {ns}
spec:
  trafficPolicy: Deny
"
    )
}

fn tls_service(ns: &str, a: &str) -> String {
    format!(
        "{}spec:
  selector:
    app.kubernetes.io/name: {a}
  ports:
    - name: tls
      port: 443
      targetPort: http
",
        labelled("v1", "Service", &format!("{a}-tls"), ns, a)
    )
}

fn tls_route(ns: &str, a: &str) -> String {
    format!(
        "{}spec:
  parentRefs:
    - {{group: core, kind: Service, name: {a}-tls, port: 443}}
  hostnames: [{a}.{ns}.example.com]
  rules:
    - backendRefs:
        - {{name: {a}-tls, port: 443}}
",
        labelled("gateway.networking.k8s.io/v1alpha2", "TLSRoute", &format!("{a}-tls"), ns, a)
    )
}

fn rate_limit(ns: &str, a: &str, client: &str) -> String {
    format!(
        "{}spec:
  targetRef:
    group: policy.linkerd.io
    kind: Server
    name: {a}-http
  total:
    requestsPerSecond: 1000
  identity:
    requestsPerSecond: 100
  overrides:
    - requestsPerSecond: 500
      clientRefs:
        - {{kind: ServiceAccount, name: {client}}}
",
        labelled("policy.linkerd.io/v1alpha1", "HTTPLocalRateLimitPolicy", &format!("{a}-rl"), ns, a)
    )
}
