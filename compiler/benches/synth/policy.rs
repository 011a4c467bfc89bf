//! The policy manifests: Servers, HTTPRoutes and GRPCRoutes,
//! AuthorizationPolicies, ServerAuthorizations and authentications.

use super::{App, AppKind, Lcg, NsUses, Out, doc};
use std::fmt::Write as _;
use std::io;

pub(super) struct PolicyCtx<'a> {
    pub(super) ns: &'a str,
    pub(super) app: &'a App,
    /// (namespace if not this one, ServiceAccount name)
    pub(super) clients: &'a [(Option<&'a str>, String)],
    pub(super) legacy: bool,
    /// Deliberate mistake: the clients policy names a MeshTLSAuthentication that does not exist.
    pub(super) dangling_ref: bool,
    /// Deliberate mistake: routes attached without a probe route.
    pub(super) missing_probe_route: bool,
}

fn server(ns: &str, a: &str, name: &str, port: &str, protocol: &str) -> String {
    let header = super::labelled("policy.linkerd.io/v1beta3", "Server", name, ns, a);
    format!(
        "{header}spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {a}
  port: {port}
  proxyProtocol: {protocol}
"
    )
}

fn http_route(ns: &str, a: &str, name: &str, server: &str, rules: &str) -> String {
    let header = super::labelled("policy.linkerd.io/v1beta3", "HTTPRoute", name, ns, a);
    format!(
        "{header}spec:
  parentRefs:
    - group: policy.linkerd.io
      kind: Server
      name: {server}
  rules:
{rules}"
    )
}

fn grpc_route(ns: &str, a: &str, name: &str, server: &str, matches: &str) -> String {
    let header = super::labelled("gateway.networking.k8s.io/v1", "GRPCRoute", name, ns, a);
    format!(
        "{header}spec:
  parentRefs:
    - group: policy.linkerd.io
      kind: Server
      name: {server}
  rules:
    - matches:
{matches}"
    )
}

/// `refs`: (kind, name) of required authentications.
fn authz(ns: &str, name: &str, target: (&str, &str, &str), refs: &[(&str, &str)]) -> String {
    let (group, kind, target) = target;
    let mut s = format!(
        "apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: {name}
  namespace: {ns}
spec:
  targetRef:
    group: {group}
    kind: {kind}
    name: {target}
  requiredAuthenticationRefs:
"
    );
    for (k, n) in refs {
        if *k == "ServiceAccount" {
            writeln!(s, "    - kind: ServiceAccount\n      name: {n}").unwrap();
        } else {
            writeln!(s, "    - group: policy.linkerd.io\n      kind: {k}\n      name: {n}").unwrap();
        }
    }
    s
}

const MTLS: &str = "MeshTLSAuthentication";
const NET: &str = "NetworkAuthentication";
const POLICY: &str = "policy.linkerd.io";
const GATEWAY: &str = "gateway.networking.k8s.io";

fn probe_rules(app: &App) -> String {
    let (ready, live) = app.probes;
    let mut s = format!(
        "    - matches:
        - method: GET
          path:
            type: Exact
            value: {ready}
"
    );
    if live != ready {
        write!(
            s,
            "        - method: GET
          path:
            type: Exact
            value: {live}
"
        )
        .unwrap();
    }
    s
}

pub(super) fn write_policy(out: &mut Out, c: &PolicyCtx, uses: &mut NsUses, rng: &mut Lcg) -> io::Result<()> {
    let (ns, app) = (c.ns, c.app);
    let a = app.name.as_str();
    let stats = &mut out.stats;
    let mut buf = String::new();
    // Whether a policy here requires the app's `<app>-clients` MeshTLSAuthentication.
    let mut clients_used = false;
    let clients_authn = format!("{a}-clients");
    let clients_ref = if c.dangling_ref { format!("{a}-client") } else { clients_authn.clone() };
    match app.kind {
        AppKind::HttpRoutes => {
            let srv = format!("{a}-http");
            doc(&mut buf, stats, "Server", &server(ns, a, &srv, "http", "HTTP/1"));
            let base = format!("/api/v{}/{}", 1 + rng.below(3), a.replace('-', "/"));
            let tenant = if rng.pct(20) {
                "          headers:\n            - name: x-tenant\n              value: internal\n"
            } else {
                ""
            };
            let read = format!(
                "    - matches:
        - method: GET
          path:
            type: Exact
            value: {base}
{tenant}        - method: GET
          path:
            type: PathPrefix
            value: {base}/
{tenant}"
            );
            let write = format!(
                "    - matches:
        - method: POST
          path:
            type: Exact
            value: {base}
    - matches:
        - method: PUT
          path:
            type: PathPrefix
            value: {base}/
        - method: PATCH
          path:
            type: PathPrefix
            value: {base}/
        - method: DELETE
          path:
            type: PathPrefix
            value: {base}/
"
            );
            let r = |s: &str| format!("{a}-{s}");
            doc(&mut buf, stats, "HTTPRoute", &http_route(ns, a, &r("read"), &srv, &read));
            doc(&mut buf, stats, "HTTPRoute", &http_route(ns, a, &r("write"), &srv, &write));
            let admin = rng.pct(30);
            if admin {
                let rules = "    - matches:
        - path:
            type: PathPrefix
            value: /admin/
";
                doc(&mut buf, stats, "HTTPRoute", &http_route(ns, a, &r("admin"), &srv, rules));
            }
            if c.missing_probe_route {
                *stats.mistakes.entry("routes attached without a probe route").or_default() += 1;
            } else {
                let rules = probe_rules(app);
                doc(&mut buf, stats, "HTTPRoute", &http_route(ns, a, &r("probe"), &srv, &rules));
            }
            fn route(n: &str) -> (&str, &str, &str) {
                (POLICY, "HTTPRoute", n)
            }
            let read_name = r("read");
            clients_used = true;
            doc(
                &mut buf,
                stats,
                "AuthorizationPolicy",
                &authz(ns, &r("read-clients"), route(&read_name), &[(MTLS, &clients_ref)]),
            );
            // The first client may write: a ServiceAccount reference, no authentication object.
            let writer = match &c.clients[0] {
                (None, sa) => sa.clone(),
                (Some(_), _) => a.to_owned(),
            };
            let write_name = r("write");
            doc(
                &mut buf,
                stats,
                "AuthorizationPolicy",
                &authz(ns, &r("write-writer"), route(&write_name), &[("ServiceAccount", &writer)]),
            );
            if admin {
                uses.members = true;
                let admin_name = r("admin");
                doc(
                    &mut buf,
                    stats,
                    "AuthorizationPolicy",
                    &authz(ns, &r("admin-members"), route(&admin_name), &[(MTLS, "namespace-members")]),
                );
            }
            if !c.missing_probe_route {
                uses.kubelet = true;
                let probe_name = r("probe");
                doc(
                    &mut buf,
                    stats,
                    "AuthorizationPolicy",
                    &authz(ns, &r("probe-kubelet"), route(&probe_name), &[(NET, "kubelet")]),
                );
            }
        }
        AppKind::HttpPlain => {
            let srv = format!("{a}-http");
            doc(&mut buf, stats, "Server", &server(ns, a, &srv, "http", "HTTP/1"));
            if c.legacy && rng.pct(50) {
                let mut body = format!(
                    "apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata:
  name: {a}-clients
  namespace: {ns}
spec:
  server:
    name: {srv}
  client:
    meshTLS:
      serviceAccounts:
"
                );
                for (cns, sa) in c.clients {
                    writeln!(body, "        - name: {sa}").unwrap();
                    if let Some(cns) = cns {
                        writeln!(body, "          namespace: {cns}").unwrap();
                    }
                }
                doc(&mut buf, stats, "ServerAuthorization", &body);
            } else {
                clients_used = true;
                let mut refs = vec![(MTLS, clients_ref.as_str())];
                if rng.pct(50) {
                    uses.pod_network = true;
                    refs.push((NET, "pod-network"));
                }
                doc(
                    &mut buf,
                    stats,
                    "AuthorizationPolicy",
                    &authz(ns, &format!("{a}-http-clients"), (POLICY, "Server", &srv), &refs),
                );
            }
        }
        AppKind::Grpc => {
            let srv = format!("{a}-grpc");
            doc(&mut buf, stats, "Server", &server(ns, a, &srv, "grpc", "gRPC"));
            let service = format!(
                "{}.{}.v{}.{}Service",
                ns.split('-').next().unwrap_or(ns),
                a.replace('-', "_"),
                1 + rng.below(2),
                capitalize(a.split('-').next().unwrap_or(a))
            );
            let api = format!(
                "        - method:
            type: Exact
            service: {service}
"
            );
            let health = "        - method:
            type: Exact
            service: grpc.health.v1.Health
            method: Check
";
            let (api_name, health_name) = (format!("{a}-api"), format!("{a}-health"));
            doc(&mut buf, stats, "GRPCRoute", &grpc_route(ns, a, &api_name, &srv, &api));
            doc(&mut buf, stats, "GRPCRoute", &grpc_route(ns, a, &health_name, &srv, health));
            clients_used = true;
            doc(
                &mut buf,
                stats,
                "AuthorizationPolicy",
                &authz(ns, &format!("{a}-grpc-clients"), (POLICY, "Server", &srv), &[(MTLS, &clients_ref)]),
            );
            uses.kubelet = true;
            doc(
                &mut buf,
                stats,
                "AuthorizationPolicy",
                &authz(ns, &format!("{a}-health-kubelet"), (GATEWAY, "GRPCRoute", &health_name), &[(NET, "kubelet")]),
            );
        }
        AppKind::Db => {
            let srv = format!("{a}-postgres");
            doc(&mut buf, stats, "Server", &server(ns, a, &srv, "postgres", "opaque"));
            clients_used = true;
            doc(
                &mut buf,
                stats,
                "AuthorizationPolicy",
                &authz(ns, &format!("{a}-postgres-clients"), (POLICY, "Server", &srv), &[(MTLS, &clients_ref)]),
            );
        }
    }
    if app.metrics {
        uses.prometheus = true;
        let srv = format!("{a}-metrics");
        doc(&mut buf, stats, "Server", &server(ns, a, &srv, "metrics", "HTTP/1"));
        doc(
            &mut buf,
            stats,
            "AuthorizationPolicy",
            &authz(ns, &format!("{a}-metrics-prometheus"), (POLICY, "Server", &srv), &[(MTLS, "prometheus")]),
        );
    }
    if clients_used && c.dangling_ref {
        *stats.mistakes.entry("dangling requiredAuthenticationRef").or_default() += 1;
    }
    if clients_used {
        let mut body = format!(
            "# Who may call {a}.
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata:
  name: {clients_authn}
  namespace: {ns}
spec:
  identityRefs:
"
        );
        for (cns, sa) in c.clients {
            writeln!(body, "    - kind: ServiceAccount\n      name: {sa}").unwrap();
            if let Some(cns) = cns {
                writeln!(body, "      namespace: {cns}").unwrap();
            }
        }
        doc(&mut buf, stats, MTLS, &body);
    }
    out.write(&format!("{ns}/policy/{a}.yaml"), &buf)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

pub(super) fn write_authentications(out: &mut Out, ns: &str, uses: &NsUses) -> io::Result<()> {
    let stats = &mut out.stats;
    let mut buf = String::new();
    if uses.kubelet {
        doc(
            &mut buf,
            stats,
            NET,
            &format!(
                "# Where kubelet probes come from (= probeNetworks in meshc.yaml).
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata:
  name: kubelet
  namespace: {ns}
spec:
  networks:
    - cidr: 10.10.0.0/22
"
            ),
        );
    }
    if uses.pod_network {
        doc(
            &mut buf,
            stats,
            NET,
            &format!(
                "apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata:
  name: pod-network
  namespace: {ns}
spec:
  networks:
    - cidr: 10.20.0.0/16
"
            ),
        );
    }
    if uses.prometheus {
        doc(
            &mut buf,
            stats,
            MTLS,
            &format!(
                "apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata:
  name: prometheus
  namespace: {ns}
spec:
  identityRefs:
    - kind: ServiceAccount
      name: prometheus
      namespace: monitoring
"
            ),
        );
    }
    if uses.members {
        doc(
            &mut buf,
            stats,
            MTLS,
            &format!(
                "# Every workload of this namespace.
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata:
  name: namespace-members
  namespace: {ns}
spec:
  identityRefs:
    - kind: Namespace
      name: {ns}
"
            ),
        );
    }
    if buf.is_empty() {
        return Ok(());
    }
    out.write(&format!("{ns}/policy/authentications.yaml"), &buf)
}
