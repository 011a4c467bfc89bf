//! Deterministic synthetic repository for the scale benchmark: N namespaces
//! of meshed apps with Linkerd policy, laid out like a real GitOps repo.
//!
//! Per namespace: `namespace.yaml`; per app `apps/<app>.yaml` (ServiceAccount,
//! Deployment or StatefulSet, Service) and `policy/<app>.yaml` (Servers,
//! routes, AuthorizationPolicies, the app's MeshTLSAuthentication); and
//! `policy/authentications.yaml` for the namespace-wide authentications.
//!
//! App mix (drawn with a seeded LCG, so the same config gives the same bytes):
//! - 40% HTTP APIs with policy.linkerd.io/v1beta3 HTTPRoutes (read, write,
//!   sometimes admin) and an explicit probe route authorized for the kubelet
//!   network, one AuthorizationPolicy per route;
//! - 32% HTTP services with a Server-level AuthorizationPolicy only (some AND a
//!   MeshTLSAuthentication with the pod network; a few legacy ServerAuthorizations);
//! - 18% gRPC services: a gRPC Server with GRPCRoutes for the API and the
//!   health check, a Server-level policy for clients and a route policy for kubelet;
//! - 10% StatefulSet databases on an opaque port (5432).
//!
//! About 60% of the HTTP and gRPC apps also expose a `metrics` port with its own
//! Server, authorized for Prometheus (a real workload in namespace 0).
//! Namespaces default to `all-unauthenticated`, ~35% annotate `deny` and ~15%
//! `all-authenticated`.
//!
//! Outbound: some HTTP apps get an HTTPRoute on their Service (canary rule,
//! split, timeout, retries), a ServiceProfile, or a timeout annotation on
//! the Service (see `outbound.rs`).
//!
//! The configuration is correct except for one deliberate mistake per 1,000
//! apps of each of two kinds (a dangling authentication reference, a missing
//! probe route), so `meshc check` reports a handful of findings, as on a
//! healthy repository.
//!
//! With `new_kinds` (MESHC_BENCH_NEW_KINDS=1), every other namespace also
//! holds an EgressNetwork, a TLSRoute and an HTTPLocalRateLimitPolicy (see
//! `new_kinds.rs`); the rest of the repository is byte for byte the same.
//!
//! No dependencies beyond std: it is shared by the bench binary and the script.

mod apps;
pub mod invariants;
mod new_kinds;
mod outbound;
mod policy;
mod wide;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct Config {
    pub workloads: usize,
    pub namespaces: usize,
    pub seed: u64,
    pub shape: Shape,
    /// Also the Linkerd 2.17+ kinds in every other namespace (`new_kinds.rs`; apps shape only).
    pub new_kinds: bool,
}

/// Which repository `generate` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The app mix above, 100 workloads per namespace.
    Apps,
    /// Many namespaces of few HTTP APIs, many routes per Server, wide
    /// identity lists (see `wide.rs`), 50 workloads per namespace.
    Wide,
}

impl Shape {
    pub fn parse(s: &str) -> Option<Shape> {
        match s {
            "apps" => Some(Shape::Apps),
            "wide" => Some(Shape::Wide),
            _ => None,
        }
    }

    fn per_namespace(self) -> usize {
        match self {
            Shape::Apps => 100,
            Shape::Wide => 50,
        }
    }
}

impl Config {
    /// The shape's workloads per namespace, at least one namespace.
    pub fn shaped(shape: Shape, workloads: usize) -> Config {
        let namespaces = workloads.div_ceil(shape.per_namespace()).max(1);
        Config { workloads, namespaces, seed: 0x6d65_7368_6300_0001, shape, new_kinds: false }
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    pub files: usize,
    pub bytes: usize,
    pub objects: usize,
    pub workloads: usize,
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Deliberate mistakes: (what, how many).
    pub mistakes: BTreeMap<&'static str, usize>,
}

/// A 64-bit LCG (Knuth's MMIX constants); the high bits are good enough here.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `pct`%.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

const TEAMS: &[&str] = &[
    "payments",
    "checkout",
    "catalog",
    "search",
    "identity",
    "ledger",
    "shipping",
    "billing",
    "inventory",
    "reviews",
    "media",
    "notify",
    "growth",
    "risk",
    "support",
    "platform",
    "data",
    "ads",
    "maps",
    "pricing",
];
const NOUNS: &[&str] = &[
    "cart", "order", "invoice", "user", "session", "token", "account", "profile", "product", "stock", "quote",
    "refund", "report", "event", "email", "sms", "image", "video", "feed", "rating",
];
const ROLES: &[&str] = &["api", "svc", "worker", "gateway", "store", "sync", "query", "writer"];

fn namespace_name(k: usize) -> String {
    if k == 0 { "monitoring".to_owned() } else { format!("{}-{:02}", TEAMS[k % TEAMS.len()], k / TEAMS.len()) }
}

/// App `i` of namespace `k`; the first app of namespace 0 is Prometheus.
fn app_name(k: usize, i: usize) -> String {
    if k == 0 && i == 0 {
        return "prometheus".to_owned();
    }
    let combos = NOUNS.len() * ROLES.len();
    let base = format!("{}-{}", NOUNS[i % NOUNS.len()], ROLES[(i / NOUNS.len()) % ROLES.len()]);
    if i < combos { base } else { format!("{base}-{}", i / combos) }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AppKind {
    HttpRoutes,
    HttpPlain,
    Grpc,
    Db,
}

struct App {
    name: String,
    kind: AppKind,
    metrics: bool,
    /// Probe paths (readiness, liveness) on the http port.
    probes: (&'static str, &'static str),
    /// Probe port written by name (`http`) or number (8080).
    probe_port_named: bool,
    version: String,
    replicas: u64,
    /// A `timeout.linkerd.io/request` annotation on the Service.
    service_timeout: bool,
}

/// What the namespace-wide authentications file must define (only what is used).
#[derive(Default)]
struct NsUses {
    kubelet: bool,
    pod_network: bool,
    prometheus: bool,
    members: bool,
}

struct Out<'a> {
    root: &'a Path,
    stats: Stats,
}

impl Out<'_> {
    fn write(&mut self, rel: &str, text: &str) -> io::Result<()> {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        self.stats.files += 1;
        self.stats.bytes += text.len();
        Ok(())
    }
}

/// Appends one document, counting it by kind.
/// apiVersion, kind and metadata with the two app labels every generated
/// object of an app carries.
fn labelled(api: &str, kind: &str, name: &str, ns: &str, app: &str) -> String {
    format!(
        "apiVersion: {api}
kind: {kind}
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: {app}
    app.kubernetes.io/part-of: {ns}
"
    )
}

fn doc(buf: &mut String, stats: &mut Stats, kind: &'static str, body: &str) {
    if !buf.is_empty() {
        buf.push_str("---\n");
    }
    buf.push_str(body);
    stats.objects += 1;
    *stats.by_kind.entry(kind).or_default() += 1;
}

pub fn generate(root: &Path, cfg: &Config) -> io::Result<Stats> {
    if cfg.shape == Shape::Wide {
        return wide::generate(root, cfg);
    }
    std::fs::create_dir_all(root)?;
    let mut out = Out { root, stats: Stats::default() };
    out.write("meshc.yaml", MESHC_YAML)?;
    let mut rng = Lcg(cfg.seed);
    let nss = cfg.namespaces.max(1);
    let per_ns = |k: usize| cfg.workloads / nss + usize::from(k < cfg.workloads % nss);
    let mut global = 0usize;
    for k in 0..nss {
        let ns = namespace_name(k);
        let n = per_ns(k);
        let next_ns = namespace_name((k + 1) % nss);
        let next_n = per_ns((k + 1) % nss);
        let apps: Vec<App> = (0..n).map(|i| draw_app(&mut rng, k, i)).collect();
        let mut uses = NsUses::default();
        let default_policy = match rng.below(100) {
            0..35 => Some("deny"),
            35..50 => Some("all-authenticated"),
            _ => None,
        };
        let legacy = rng.pct(10);
        write_namespace(&mut out, &ns, default_policy)?;
        for (i, app) in apps.iter().enumerate() {
            apps::write_app(&mut out, &ns, app, &mut rng)?;
            // Clients: two neighbours in the namespace, sometimes one app of the next namespace.
            let mut clients: Vec<(Option<&str>, String)> = Vec::new();
            for d in [1, 3] {
                if n > d {
                    clients.push((None, apps[(i + d) % n].name.clone()));
                }
            }
            if next_n > 0 && nss > 1 && rng.pct(15) {
                clients.push((Some(next_ns.as_str()), app_name((k + 1) % nss, (i + 7) % next_n)));
            }
            if clients.is_empty() {
                clients.push((None, app.name.clone()));
            }
            let ctx = policy::PolicyCtx {
                ns: &ns,
                app,
                clients: &clients,
                legacy,
                dangling_ref: global % 1000 == 500,
                missing_probe_route: global % 1000 == 999,
            };
            policy::write_policy(&mut out, &ctx, &mut uses, &mut rng)?;
            global += 1;
        }
        if n > 0 {
            policy::write_authentications(&mut out, &ns, &uses)?;
            outbound::write_outbound(&mut out, &ns, k, &apps)?;
            if cfg.new_kinds && k % 2 == 1 {
                new_kinds::write(&mut out, &ns, &apps)?;
            }
        }
    }
    out.stats.workloads = global;
    Ok(out.stats)
}

fn draw_app(rng: &mut Lcg, k: usize, i: usize) -> App {
    let prometheus = k == 0 && i == 0;
    let kind = if prometheus {
        AppKind::HttpPlain // prometheus
    } else {
        match rng.below(100) {
            0..40 => AppKind::HttpRoutes,
            40..72 => AppKind::HttpPlain,
            72..90 => AppKind::Grpc,
            _ => AppKind::Db,
        }
    };
    let probes = match rng.below(3) {
        0 => ("/healthz", "/livez"),
        1 => ("/ready", "/live"),
        _ => ("/ping", "/ping"),
    };
    App {
        name: app_name(k, i),
        kind,
        metrics: kind != AppKind::Db && !prometheus && rng.pct(60),
        probes,
        probe_port_named: rng.pct(70),
        version: format!("{}.{}.{}", 1 + rng.below(4), rng.below(20), rng.below(10)),
        replicas: 1 + rng.below(4),
        service_timeout: kind != AppKind::Db && outbound::service_timeout(k, i),
    }
}

const MESHC_YAML: &str = "\
# Mesh settings for meshc: cluster-wide facts the manifests do not carry.
defaultInboundPolicy: all-unauthenticated
clusterNetworks:
  - 10.20.0.0/16
  - 10.30.0.0/16
  - 10.10.0.0/22
trustDomain: cluster.local
controlPlaneNamespace: linkerd
probeNetworks:
  - 10.10.0.0/22
";

fn write_namespace(out: &mut Out, ns: &str, default_policy: Option<&str>) -> io::Result<()> {
    let mut buf = String::new();
    let mut body = format!(
        "# Namespace {ns}: meshed; owned by team {team}.
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    app.kubernetes.io/part-of: {team}
    team: {team}
  annotations:
    linkerd.io/inject: enabled
",
        team = ns.split('-').next().unwrap_or(ns)
    );
    if let Some(p) = default_policy {
        writeln!(body, "    config.linkerd.io/default-inbound-policy: {p}").unwrap();
    }
    doc(&mut buf, &mut out.stats, "Namespace", &body);
    out.write(&format!("{ns}/namespace.yaml"), &buf)
}
