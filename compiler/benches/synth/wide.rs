//! The second shape (`MESHC_BENCH_SHAPE=wide`): many namespaces of few
//! workloads (default 50 per namespace, so 200 for 10,000 workloads), every
//! app an HTTP API whose one Server carries many routes, and a wide
//! identity list per app (16 ServiceAccounts, half of them in other
//! namespaces). About 14 objects and 5 KB of YAML per workload: the shape of
//! the repository issue 23 measured (142,000 objects, 43 MB).
//!
//! Per app, `apps/<app>.yaml` as in the first shape, and `policy/<app>.yaml`:
//! one Server on `http`, five HTTPRoutes (read, list, write, admin, probe)
//! with several matches each, a Server-level AuthorizationPolicy for the
//! wide `<app>-clients` MeshTLSAuthentication, and route policies for the
//! writer (one ServiceAccount), the namespace's members (admin) and the
//! kubelet (probe). The same layout as the first shape, so `scripts/bench.sh`
//! makes its diff (one AuthorizationPolicy removed) the same way.

use super::{App, AppKind, Config, Lcg, NsUses, Out, Stats, app_name, doc, namespace_name};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// ServiceAccounts per `<app>-clients` identity list: half local, half remote.
const IDENTITIES: usize = 16;

pub fn generate(root: &Path, cfg: &Config) -> io::Result<Stats> {
    std::fs::create_dir_all(root)?;
    let mut out = Out { root, stats: Stats::default() };
    out.write("meshc.yaml", super::MESHC_YAML)?;
    let mut rng = Lcg(cfg.seed ^ 0x7769_6465);
    let nss = cfg.namespaces.max(1);
    let per_ns = |k: usize| cfg.workloads / nss + usize::from(k < cfg.workloads % nss);
    let mut global = 0usize;
    for k in 0..nss {
        let ns = namespace_name(k);
        let n = per_ns(k);
        let default_policy = match rng.below(100) {
            0..40 => Some("deny"),
            40..60 => Some("all-authenticated"),
            _ => None,
        };
        super::write_namespace(&mut out, &ns, default_policy)?;
        let mut uses = NsUses::default();
        for i in 0..n {
            let app = draw_app(&mut rng, k, i);
            super::apps::write_app(&mut out, &ns, &app, &mut rng)?;
            let clients = identities(k, i, nss, &per_ns);
            write_policy(&mut out, &ns, &app, &clients, global, &mut uses, &mut rng)?;
            global += 1;
        }
        if n > 0 {
            super::policy::write_authentications(&mut out, &ns, &uses)?;
        }
    }
    out.stats.workloads = global;
    Ok(out.stats)
}

fn draw_app(rng: &mut Lcg, k: usize, i: usize) -> App {
    let probes = match rng.below(3) {
        0 => ("/healthz", "/livez"),
        1 => ("/ready", "/live"),
        _ => ("/ping", "/ping"),
    };
    App {
        name: app_name(k, i),
        kind: AppKind::HttpRoutes,
        metrics: false,
        probes,
        probe_port_named: rng.pct(70),
        version: format!("{}.{}.{}", 1 + rng.below(4), rng.below(20), rng.below(10)),
        replicas: 1 + rng.below(4),
        service_timeout: false,
    }
}

/// App `i` of namespace `k`'s clients: (namespace if another, ServiceAccount).
fn identities(k: usize, i: usize, nss: usize, per_ns: &dyn Fn(usize) -> usize) -> Vec<(Option<String>, String)> {
    let n = per_ns(k);
    let mut out = Vec::with_capacity(IDENTITIES);
    for j in 1..=IDENTITIES / 2 {
        if n > 1 {
            out.push((None, app_name(k, (i + j) % n)));
        }
    }
    for j in 1..=IDENTITIES / 2 {
        let other = (k + 17 * j) % nss;
        let m = per_ns(other);
        if other != k && m > 0 {
            out.push((Some(namespace_name(other)), app_name(other, (i + 3 * j) % m)));
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        out.push((None, app_name(k, i)));
    }
    out
}

/// (method or empty, path match type, path)
type Match<'a> = (&'a str, &'a str, &'a str);

fn route(ns: &str, a: &str, name: &str, matches: &[Match]) -> String {
    let mut s = format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata:
  name: {a}-{name}
  namespace: {ns}
spec:
  parentRefs:
    - group: policy.linkerd.io
      kind: Server
      name: {a}-http
  rules:
    - matches:
"
    );
    for (method, kind, path) in matches {
        if !method.is_empty() {
            writeln!(s, "        - method: {method}\n          path:").unwrap();
        } else {
            writeln!(s, "        - path:").unwrap();
        }
        writeln!(s, "            type: {kind}\n            value: {path}").unwrap();
    }
    s
}

fn authz(ns: &str, name: &str, target: (&str, &str, &str), r: (&str, &str)) -> String {
    let (group, kind, target) = target;
    let reference = if r.0 == "ServiceAccount" {
        format!("    - kind: ServiceAccount\n      name: {}\n", r.1)
    } else {
        format!("    - group: policy.linkerd.io\n      kind: {}\n      name: {}\n", r.0, r.1)
    };
    format!(
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
{reference}"
    )
}

fn write_policy(
    out: &mut Out,
    ns: &str,
    app: &App,
    clients: &[(Option<String>, String)],
    global: usize,
    uses: &mut NsUses,
    rng: &mut Lcg,
) -> io::Result<()> {
    let a = app.name.as_str();
    let stats = &mut out.stats;
    let mut buf = String::new();
    let srv = format!("{a}-http");
    let header = super::labelled("policy.linkerd.io/v1beta3", "Server", &srv, ns, a);
    let body = format!(
        "{header}spec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: {a}\n  port: http\n  proxyProtocol: HTTP/1\n"
    );
    doc(&mut buf, stats, "Server", &body);
    let base = format!("/api/v{}/{}", 1 + rng.below(3), a.replace('-', "/"));
    let (items, search, export) = (format!("{base}/items/"), format!("{base}/search"), format!("{base}/export/"));
    let (ready, live) = app.probes;
    let routes: [(&str, Vec<Match>); 5] = [
        ("read", vec![("GET", "Exact", &base), ("GET", "PathPrefix", &items)]),
        ("list", vec![("GET", "Exact", &search), ("GET", "PathPrefix", &export)]),
        ("write", vec![("POST", "Exact", &base), ("PUT", "PathPrefix", &items)]),
        ("admin", vec![("", "PathPrefix", "/admin/"), ("", "PathPrefix", "/debug/")]),
        ("probe", vec![("GET", "Exact", ready), ("GET", "Exact", live)]),
    ];
    for (name, matches) in &routes {
        doc(&mut buf, stats, "HTTPRoute", &route(ns, a, name, matches));
    }
    // The Server-level policy admits the wide list on every route; the
    // route policies add the writer, the namespace and the kubelet.
    let dangling = global % 1000 == 500;
    let clients_authn = format!("{a}-clients");
    let clients_ref = if dangling { format!("{a}-client") } else { clients_authn.clone() };
    if dangling {
        *stats.mistakes.entry("dangling requiredAuthenticationRef").or_default() += 1;
    }
    let server_target = ("policy.linkerd.io", "Server", srv.as_str());
    let clients_policy =
        authz(ns, &format!("{a}-http-clients"), server_target, ("MeshTLSAuthentication", &clients_ref));
    doc(&mut buf, stats, "AuthorizationPolicy", &clients_policy);
    let writer = clients.iter().find(|(cns, _)| cns.is_none()).map_or(a, |(_, sa)| sa.as_str());
    let write_name = format!("{a}-write");
    let admin_name = format!("{a}-admin");
    let probe_name = format!("{a}-probe");
    let policies = [
        ("write-writer", write_name.as_str(), ("ServiceAccount", writer)),
        ("admin-members", admin_name.as_str(), ("MeshTLSAuthentication", "namespace-members")),
        ("probe-kubelet", probe_name.as_str(), ("NetworkAuthentication", "kubelet")),
    ];
    uses.members = true;
    uses.kubelet = true;
    for (suffix, target, r) in policies {
        let policy = authz(ns, &format!("{a}-{suffix}"), ("policy.linkerd.io", "HTTPRoute", target), r);
        doc(&mut buf, stats, "AuthorizationPolicy", &policy);
    }
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
    for (cns, sa) in clients {
        writeln!(body, "    - kind: ServiceAccount\n      name: {sa}").unwrap();
        if let Some(cns) = cns {
            writeln!(body, "      namespace: {cns}").unwrap();
        }
    }
    doc(&mut buf, stats, "MeshTLSAuthentication", &body);
    out.write(&format!("{ns}/policy/{a}.yaml"), &buf)
}
