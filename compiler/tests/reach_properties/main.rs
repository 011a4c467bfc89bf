//! Properties of the query layer on random small repositories:
//!
//! 1. `reach` with a request says what the proxy's own `decide` says.
//! 2. who-can-reach says what `reach` says, for every client class.
//! 3. The matrix's bitsets say what who-can-reach says.
//! 4. Every member of a client class gets its representative's verdicts.
//! 5. The matrix JSON's rows are its per-class edges grouped.
//!
//! Repositories come from a structured generator, so that most of them are
//! valid and policies actually interact: identities collide through a small
//! set of ServiceAccounts, named networks overlap the cluster networks and
//! each other, and policies target Servers, routes and Namespaces.

mod generator;
mod render;

use fixedbitset::FixedBitSet;
use generator::*;
use mesh_proxy_api::{Client, HttpRequest, HttpVerdict, PortPolicy, ProxyConfig, TcpVerdict, Verdict as ApiVerdict};
use meshc::findings::Code;
use meshc::pipeline::Outcome;
use meshc::query::classes::Classes;
use meshc::query::clients::{ClientKind, Member, split_identity};
use meshc::query::evaluate::{self, Unit, Verdict};
use meshc::query::reach::{self, ClientView, VerdictView};
use meshc::query::render::matrix_out;
use meshc::query::{matrix, who};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};

// ---------------------------------------------------------------------------
// The properties.

/// How many comparisons a property made, and what it saw.
#[derive(Clone, Debug, Default)]
struct Stats {
    checks: usize,
    allow: usize,
    deny: usize,
    no_route: usize,
    bypass: usize,
    skipped_subnet: usize,
    connection: usize,
    grpc: usize,
    /// who-can-reach entries with both allowed and denied classes.
    split_entries: usize,
    classes: usize,
    cidr_members: usize,
    identity_members: usize,
    /// Members of classes with more than one member.
    shared_members: usize,
    /// Clients that are no member but behave as some class.
    outsiders: usize,
    /// Verdicts that depend on where the client pod is.
    depends: usize,
    /// Matrix rows naming several classes, and ports with several rows.
    grouped_rows: usize,
    split_ports: usize,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.checks += o.checks;
        self.allow += o.allow;
        self.deny += o.deny;
        self.no_route += o.no_route;
        self.bypass += o.bypass;
        self.skipped_subnet += o.skipped_subnet;
        self.connection += o.connection;
        self.grpc += o.grpc;
        self.split_entries += o.split_entries;
        self.classes += o.classes;
        self.cidr_members += o.cidr_members;
        self.identity_members += o.identity_members;
        self.shared_members += o.shared_members;
        self.outsiders += o.outsiders;
        self.depends += o.depends;
        self.grouped_rows += o.grouped_rows;
        self.split_ports += o.split_ports;
    }

    fn verdict(&mut self, v: Verdict, unit: Unit) {
        match v {
            Verdict::Allow => self.allow += 1,
            Verdict::Deny => self.deny += 1,
            Verdict::NoRoute => self.no_route += 1,
            Verdict::Depends => self.depends += 1,
        }
        match unit {
            Unit::Bypass => self.bypass += 1,
            Unit::Connection => self.connection += 1,
            Unit::Grpc => self.grpc += 1,
            Unit::Http => {}
        }
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

/// The ways a user can name `m` on the command line; all must mean `m`.
fn specs_of(o: &Outcome, m: &Member) -> Vec<String> {
    match m.kind {
        ClientKind::Workload => vec![m.label.clone(), m.label.replacen("Deployment/", "deploy/", 1)],
        ClientKind::Identity => {
            let id = m.identity.clone().expect("identity members present an identity");
            let sa = split_identity(&id, &o.resolved.settings).map(|(sa, ns)| format!("sa:{ns}/{sa}"));
            std::iter::once(id).chain(sa).collect()
        }
        ClientKind::Unmeshed => vec!["unmeshed".to_owned(), "unmeshed:shop".to_owned()],
        ClientKind::Kubelet => vec!["kubelet".to_owned()],
        ClientKind::Localhost => vec!["localhost".to_owned()],
        ClientKind::External => vec!["external".to_owned()],
        ClientKind::Cidr => vec![format!("ip:{}", m.client.addr)],
    }
}

/// Addresses no member need stand for: the property holds for any client.
const EXTRA_IPS: [&str; 5] = ["10.1.2.3", "10.200.0.1", "192.168.1.1", "8.8.8.8", "::1"];

fn http_request(r: &Request) -> HttpRequest {
    let target = if r.query { format!("{}?debug=1", REQUEST_PATHS[r.path]) } else { REQUEST_PATHS[r.path].to_owned() };
    let mut req = HttpRequest::new(METHODS[r.method], &target);
    if r.grpc {
        req = req.with_header("content-type", "application/grpc");
    }
    if let Some(h) = r.host {
        req = req.with_host(REQUEST_HOSTS[h]);
    }
    if let Some(prod) = r.env {
        req = req.with_header("x-env", if prod { "prod" } else { "dev" });
    }
    req
}

/// What the proxy does with `req` from `client` on `port`: the verdict and
/// the status the client sees (none when the application answers or the
/// connection is closed).
fn proxy_says(config: Option<&ProxyConfig>, port: u16, client: &Client, req: &HttpRequest) -> (Verdict, Option<u32>) {
    let Some(c) = config else { return (Verdict::Allow, None) };
    let server = match c.inbound.lookup(port) {
        PortPolicy::Skipped => return (Verdict::Allow, None),
        PortPolicy::Server(s) => s,
    };
    if c.inbound.skips_source(client.addr) {
        return (Verdict::Allow, None);
    }
    // The proxy answers in gRPC form only gRPC requests, whatever the
    // server's protocol (linkerd2-proxy `errors/respond.rs`).
    let grpc = req.header_values("content-type").any(|v| v.starts_with("application/grpc"));
    let status = |v: &HttpVerdict| if grpc { v.grpc_status() } else { u32::from(v.http_status()) };
    match mesh_proxy_api::decide(server, client, req) {
        ApiVerdict::Http(HttpVerdict::Allowed { .. }) => (Verdict::Allow, None),
        ApiVerdict::Http(v @ HttpVerdict::Unauthorized { .. }) => (Verdict::Deny, Some(status(&v))),
        ApiVerdict::Http(v @ HttpVerdict::NoRoute) => (Verdict::NoRoute, Some(status(&v))),
        ApiVerdict::Tcp(TcpVerdict::Allowed { .. }) => (Verdict::Allow, None),
        ApiVerdict::Tcp(TcpVerdict::Closed) => (Verdict::Deny, None),
    }
}

/// Addresses a pod may have, besides the places meshc picks: the extra
/// addresses inside the pod space, and each pod-space network's first and last hosts.
fn pod_addresses(o: &Outcome) -> Vec<std::net::IpAddr> {
    let space = o.resolved.settings.pod_space();
    let kubelet = o.resolved.settings.kubelet_ip;
    let mut out: Vec<std::net::IpAddr> = EXTRA_IPS.iter().map(|ip| ip.parse().expect("literal address")).collect();
    out.extend(
        ["10.1.0.9", "10.1.2.200", "10.0.0.1", "192.168.77.1", "fd00::9"]
            .iter()
            .map(|ip| ip.parse::<std::net::IpAddr>().expect("literal address")),
    );
    out.extend(space.iter().flat_map(|n| [n.hosts().next(), Some(n.broadcast())]).flatten());
    out.retain(|ip| *ip != kubelet && space.iter().any(|n| n.contains(ip)));
    out
}

/// What the proxy says wherever the client may be, combined as meshc must
/// combine it: the common verdict, else `depends` (and no status).
fn proxy_says_anywhere(
    config: Option<&ProxyConfig>,
    port: u16,
    view: &ClientView,
    req: &HttpRequest,
) -> (Verdict, Option<u32>) {
    let says: Vec<(Verdict, Option<u32>)> = view.at.iter().map(|(_, c)| proxy_says(config, port, c, req)).collect();
    match says.first() {
        None => proxy_says(config, port, &view.client, req),
        Some(first) if says.iter().all(|s| s.0 == first.0) => *first,
        Some(_) => (Verdict::Depends, None),
    }
}

fn ports_of(o: &Outcome, wi: usize) -> Vec<u16> {
    who::target_ports(&o.resolved.workloads[wi], o.configs[wi].as_ref())
}

/// Property 1: `reach` with a request agrees with `mesh_proxy_api::decide`.
fn reach_agrees_with_proxy(repo: &Repo, o: &Outcome) -> Result<Stats, String> {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let mut stats = Stats { classes: classes.len(), ..Stats::default() };
    let requests: Vec<HttpRequest> = repo.requests.iter().map(http_request).collect();
    let mut specs: Vec<(String, Option<(usize, &Client)>)> = Vec::new();
    for class in &classes.classes {
        ensure!(class.id < classes.len() && classes.classes[class.id].id == class.id, "class ids are positions");
        for m in &class.members {
            stats.cidr_members += usize::from(m.kind == ClientKind::Cidr);
            stats.identity_members += usize::from(m.kind == ClientKind::Identity);
            specs.extend(specs_of(o, m).into_iter().map(|s| (s, Some((class.id, &m.client)))));
        }
    }
    specs.extend(EXTRA_IPS.iter().map(|ip| (format!("ip:{ip}"), None)));
    let mut turn = 0;
    for (spec, member) in &specs {
        let view = reach::parse_client(o, &classes, spec).map_err(|e| format!("parse_client({spec}): {e}"))?;
        if let Some((id, client)) = member {
            ensure!(&view.client == *client, "`{spec}` parses to {:?}, the member is {:?}", view.client, client);
            ensure!(view.class == Some(*id), "`{spec}` is in class {id}, parse_client says {:?}", view.class);
        }
        for wi in 0..o.resolved.workloads.len() {
            for port in ports_of(o, wi) {
                // Two requests per triple, rotating, keep the cost linear in the repository.
                for k in 0..2 {
                    let req = &requests[(turn + k) % requests.len()];
                    let want = proxy_says_anywhere(o.configs[wi].as_ref(), port, &view, req);
                    let got = reach::reach(o, view.clone(), wi, port, Some(req));
                    ensure!(got.verdicts.len() == 1, "one verdict per request, got {}", got.verdicts.len());
                    let v = &got.verdicts[0];
                    ensure!(
                        (v.verdict, v.status) == want,
                        "reach {spec} → {}:{port} {req:?}: reach says {:?}/{:?}, the proxy {:?}/{:?}",
                        reach::workload_label(o, wi),
                        v.verdict,
                        v.status,
                        want.0,
                        want.1
                    );
                    // A definite verdict for a pod holds wherever in the pod space it is.
                    if v.verdict != Verdict::Depends && view.kind.is_pod() {
                        for ip in pod_addresses(o) {
                            let moved = Client { addr: ip, tls: view.client.tls.clone() };
                            let there = proxy_says(o.configs[wi].as_ref(), port, &moved, req);
                            ensure!(
                                there.0 == v.verdict,
                                "reach {spec} → {}:{port} {req:?} says {:?}, but from {ip} the proxy says {:?}",
                                reach::workload_label(o, wi),
                                v.verdict,
                                there.0
                            );
                        }
                    }
                    let gate = evaluate::gate(o.configs[wi].as_ref(), port, &view.client);
                    stats.skipped_subnet += usize::from(matches!(gate, evaluate::Gate::SkippedSubnet(_)));
                    stats.verdict(v.verdict, v.unit);
                    stats.checks += 1;
                }
                turn += 1;
            }
        }
    }
    Ok(stats)
}

fn route_label(v: &VerdictView) -> Option<String> {
    v.route
        .as_ref()
        .map(|r| if r.kind == "default" { format!("default:{}", r.name) } else { format!("{} {}", r.kind, r.name) })
}

/// Property 2: who-can-reach agrees with `reach` on each class's representative.
fn who_agrees_with_reach(o: &Outcome) -> Result<Stats, String> {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let mut stats = Stats { classes: classes.len(), ..Stats::default() };
    let views: Vec<_> = classes
        .classes
        .iter()
        .map(|c| {
            let spec = specs_of(o, &c.members[0]).remove(0);
            let view = reach::parse_client(o, &classes, &spec).map_err(|e| format!("parse_client({spec}): {e}"))?;
            ensure!(view.client == c.client, "`{spec}` is not class {}'s representative", c.id);
            Ok(view)
        })
        .collect::<Result<_, String>>()?;
    for wi in 0..o.resolved.workloads.len() {
        let ports = ports_of(o, wi);
        let all = who::who_can_reach(o, &classes, wi, None);
        ensure!(all.iter().map(|a| a.port).collect::<Vec<_>>() == ports, "who_can_reach answers for its target ports");
        for answer in &all {
            let port = answer.port;
            let at = format!("{}:{port}", reach::workload_label(o, wi));
            ensure!(!answer.entries.is_empty(), "{at}: no entries");
            for e in &answer.entries {
                let depending = e.depends.iter().map(|d| d.class);
                let mut seen: Vec<usize> = e.allowed.iter().chain(&e.denied).copied().chain(depending).collect();
                seen.sort_unstable();
                ensure!(
                    seen == (0..classes.len()).collect::<Vec<_>>(),
                    "{at}: allowed, denied and depends partition the classes"
                );
                ensure!(e.bypass.iter().all(|c| e.allowed.contains(c)), "{at}: bypassing classes are allowed");
                stats.split_entries += usize::from(!e.allowed.is_empty() && !e.denied.is_empty());
            }
            for (class, view) in classes.classes.iter().zip(&views) {
                let got = reach::reach(o, view.clone(), wi, port, None);
                let id = class.id;
                match got.verdicts.as_slice() {
                    [v] if v.unit == Unit::Bypass => {
                        ensure!(v.verdict == Verdict::Allow, "{at}: a bypass allows");
                        for e in &answer.entries {
                            ensure!(
                                e.allowed.contains(&id),
                                "{at}: class {id} bypasses but is not allowed on {:?}",
                                e.route
                            );
                            // Without a server everyone bypasses, and the answer has one entry saying so.
                            let whole_port = e.unit == Unit::Bypass;
                            ensure!(whole_port || e.bypass.contains(&id), "{at}: class {id} bypasses, not listed");
                        }
                        stats.verdict(v.verdict, v.unit);
                        stats.checks += 1;
                    }
                    verdicts => {
                        ensure!(
                            verdicts.len() == answer.entries.len(),
                            "{at}: class {id} has {} verdicts, who-can-reach {} entries",
                            verdicts.len(),
                            answer.entries.len()
                        );
                        for (e, v) in answer.entries.iter().zip(verdicts) {
                            ensure!(e.unit == v.unit, "{at}: entry unit {:?}, verdict unit {:?}", e.unit, v.unit);
                            ensure!(
                                e.route == route_label(v),
                                "{at}: entry {:?}, verdict {:?}",
                                e.route,
                                route_label(v)
                            );
                            ensure!(!e.bypass.contains(&id), "{at}: class {id} listed as bypassing");
                            let depends = e.depends.iter().find(|d| d.class == id).map(|d| &d.condition);
                            ensure!(
                                depends == v.condition.as_ref() && depends.is_some() == (v.verdict == Verdict::Depends),
                                "{at} {:?}: class {id} depends {depends:?}, reach says {:?} {:?}",
                                e.route,
                                v.verdict,
                                v.condition
                            );
                            ensure!(
                                e.allowed.contains(&id) == (v.verdict == Verdict::Allow),
                                "{at} {:?}: class {id} ({}) allowed={} but reach says {:?}",
                                e.route,
                                class.label(),
                                e.allowed.contains(&id),
                                v.verdict
                            );
                            stats.verdict(v.verdict, v.unit);
                            stats.checks += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(stats)
}

fn ones(set: &FixedBitSet) -> Vec<usize> {
    set.ones().collect()
}

/// Property 3: the matrix's bitsets are who-can-reach's allowed lists.
fn matrix_agrees_with_who(o: &Outcome) -> Result<Stats, String> {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let mut stats = Stats { classes: classes.len(), ..Stats::default() };
    let mut expected = Vec::new();
    for wi in 0..o.resolved.workloads.len() {
        for port in ports_of(o, wi) {
            let at = format!("{}:{port}", reach::workload_label(o, wi));
            let answer = who::port_answer(o, &classes, wi, port);
            let sets = matrix::port_sets(o, &classes, wi, port);
            ensure!(sets.workload == wi && sets.port == port, "{at}: port_sets names its port");
            ensure!(
                sets.entries.len() == answer.entries.len(),
                "{at}: matrix has {} entries, who-can-reach {}",
                sets.entries.len(),
                answer.entries.len()
            );
            let (mut any, mut every) = (Vec::new(), (0..classes.len()).collect::<Vec<_>>());
            for (i, ((name, set), e)) in sets.entries.iter().zip(&answer.entries).enumerate() {
                let depends: Vec<usize> = e.depends.iter().map(|d| d.class).collect();
                ensure!(
                    ones(&sets.depends[i]) == depends,
                    "{at} {name}: matrix depends {:?}, who {depends:?}",
                    ones(&sets.depends[i])
                );
                for d in &e.depends {
                    let got = sets.condition(&classes, i, d.class);
                    ensure!(
                        got.as_ref() == Some(&d.condition),
                        "{at} {name}: condition {got:?}, who {:?}",
                        d.condition
                    );
                }
                any.extend(depends);
                let mut allowed = e.allowed.clone();
                allowed.sort_unstable();
                ensure!(
                    ones(set) == allowed,
                    "{at} {name} / {:?}: matrix {:?}, who-can-reach {allowed:?}",
                    e.route,
                    ones(set)
                );
                let want_name = e
                    .route
                    .clone()
                    .unwrap_or_else(|| if e.unit == Unit::Bypass { "*" } else { "connection" }.to_owned());
                ensure!(*name == want_name, "{at}: matrix entry {name}, who-can-reach {want_name}");
                any.extend(allowed.iter().copied());
                every.retain(|c| allowed.contains(c));
                stats.checks += 1;
            }
            any.sort_unstable();
            any.dedup();
            ensure!(ones(&sets.any) == any, "{at}: `any` is the union");
            ensure!(ones(&sets.every) == every, "{at}: `every` is the intersection");
            expected.push((wi, port, sets.entries));
        }
    }
    // Streaming in parallel chunks hands over the same sets, in order.
    let scope = matrix::workloads_in(o, None);
    let mut streamed = Vec::new();
    matrix::for_each_port(o, &classes, &scope, |s| {
        streamed.push((s.workload, s.port, s.entries));
        Ok::<(), ()>(())
    })
    .expect("never fails");
    ensure!(streamed == expected, "for_each_port differs from port_sets");
    Ok(stats)
}

/// Property 5: the rows `matrix --format json` writes, built by splitting
/// a port's classes by its sets, are the per-class edges grouped by
/// (verdict, routes, condition) one class at a time, in the order of their
/// first class: the grouping `matrix` did before rows were built from sets.
fn rows_group_the_edges(o: &Outcome) -> Result<Stats, String> {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let mut stats = Stats { classes: classes.len(), ..Stats::default() };
    for wi in 0..o.resolved.workloads.len() {
        for port in ports_of(o, wi) {
            let at = format!("{}:{port}", reach::workload_label(o, wi));
            let sets = matrix::port_sets(o, &classes, wi, port);
            // (clients, verdict, routes, condition); `None` clients is the `*` edge.
            type Grouped = Vec<(Option<Vec<usize>>, &'static str, Vec<String>, Option<String>)>;
            let mut want: Grouped = Vec::new();
            for e in matrix_out::edges(&sets, &classes) {
                let routes: Vec<String> = e.routes.iter().map(|r| r.to_string()).collect();
                let alike = want.iter_mut().find(|w| {
                    w.0.is_some() && e.client.is_some() && w.1 == e.verdict && w.2 == routes && w.3 == e.condition
                });
                match (alike, e.client) {
                    (Some(w), Some(c)) => w.0.get_or_insert_with(Vec::new).push(c),
                    (_, client) => want.push((client.map(|c| vec![c]), e.verdict, routes, e.condition)),
                }
            }
            let got: Grouped = matrix_out::rows(&sets, &classes)
                .into_iter()
                .map(|r| {
                    let routes = r.edge.routes.iter().map(|r| r.to_string()).collect();
                    (r.clients.as_ref().map(ones), r.edge.verdict, routes, r.edge.condition)
                })
                .collect();
            ensure!(got == want, "{at}: rows {got:?}, edges grouped {want:?}");
            // One comparison per port, even when both sides are empty: a
            // repository that denies everything has no rows, and that too
            // must agree with its (empty) edges.
            stats.checks += 1;
            stats.depends += got.iter().filter(|r| r.3.is_some()).count();
            stats.grouped_rows += got.iter().filter(|r| r.0.as_ref().is_some_and(|c| c.len() > 1)).count();
            stats.split_ports += usize::from(got.len() > 1);
        }
    }
    Ok(stats)
}

/// Clients no member need be: plaintext from anywhere, and identities
/// (named by policies or not) from the pod network and elsewhere.
fn outsiders(o: &Outcome) -> Vec<Client> {
    let ips: Vec<std::net::IpAddr> = EXTRA_IPS.iter().map(|ip| ip.parse().expect("literal address")).collect();
    let mut ids = identity_strings();
    ids.retain(|i| !i.starts_with('*'));
    ids.push(o.resolved.settings.identity("pay", "meshc-stranger"));
    ids.push("spiffe://cluster.local/ns/shop/sa/web".to_owned());
    let mut out: Vec<Client> = ips.iter().map(|&ip| Client::plaintext(ip)).collect();
    for id in &ids {
        out.extend(ips.iter().take(2).map(|&ip| Client::identified(ip, id.clone())));
    }
    out
}

/// Property 4: every member of a class, and every other client the class
/// claims, gets the representative's verdicts on every port.
fn classes_are_sound(o: &Outcome) -> Result<Stats, String> {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let mut stats = Stats { classes: classes.len(), ..Stats::default() };
    let verdicts = |config: Option<&ProxyConfig>, port: u16, c: &Client| -> Vec<(Unit, Verdict)> {
        evaluate::per_route(evaluate::gate(config, port, c), c).iter().map(|d| (d.unit, d.verdict)).collect()
    };
    let space = o.resolved.settings.pod_space();
    for p in &classes.addrs.places {
        ensure!(space.iter().any(|n| n.contains(&p.addr)), "place {} is where a pod may be", p.addr);
    }
    // Each client at every place: a pod moves with the place, anything else stays.
    let mut claimed: Vec<Vec<(String, Vec<Client>)>> = classes
        .classes
        .iter()
        .map(|c| {
            let shared = c.members.len() > 1;
            stats.shared_members += if shared { c.members.len() } else { 0 };
            c.members.iter().map(|m| (m.label.clone(), classes.addrs.at_places(m.kind, &m.client))).collect()
        })
        .collect();
    for m in classes.classes.iter().flat_map(|c| &c.members) {
        let id = classes.class_of(m.kind, &m.client);
        ensure!(
            id.is_some_and(|id| classes.classes[id].members.contains(m)),
            "{} is in the class it behaves as",
            m.label
        );
    }
    for c in outsiders(o) {
        if let Some(id) = classes.class_of(ClientKind::Cidr, &c) {
            stats.outsiders += 1;
            claimed[id].push((format!("{:?}", c), classes.addrs.at_places(ClientKind::Cidr, &c)));
        }
    }
    for wi in 0..o.resolved.workloads.len() {
        let config = o.configs[wi].as_ref();
        for port in ports_of(o, wi) {
            for (class, clients) in classes.classes.iter().zip(&claimed) {
                for (k, rep) in class.at.iter().enumerate() {
                    let want = verdicts(config, port, rep);
                    for (label, at) in clients {
                        let got = verdicts(config, port, &at[k]);
                        ensure!(
                            got == want,
                            "{}:{port}: {label} at place {k} gets {got:?}, its class {} ({}) {want:?}",
                            reach::workload_label(o, wi),
                            class.id,
                            class.label()
                        );
                        stats.checks += 1;
                    }
                    for &(unit, v) in &want {
                        stats.verdict(v, unit);
                    }
                }
            }
        }
    }
    Ok(stats)
}

fn run(repo: &Repo, property: impl Fn(&Repo, &Outcome) -> Result<Stats, String>) -> Result<(), TestCaseError> {
    let outcome = repo.check();
    let stats = property(repo, &outcome).map_err(|e| TestCaseError::fail(format!("{e}\n{}", repo.describe())))?;
    prop_assert!(stats.checks > 0, "nothing compared\n{}", repo.describe());
    Ok(())
}

proptest! {
    // Failures print the repository; nothing is written next to the sources.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reach_agrees_with_the_proxy(repo in repo()) {
        run(&repo, reach_agrees_with_proxy)?;
    }

    #[test]
    fn who_can_reach_agrees_with_reach(repo in repo()) {
        run(&repo, |_, o| who_agrees_with_reach(o))?;
    }

    #[test]
    fn matrix_agrees_with_who_can_reach(repo in repo()) {
        run(&repo, |_, o| matrix_agrees_with_who(o))?;
    }

    #[test]
    fn matrix_rows_group_its_edges(repo in repo()) {
        run(&repo, |_, o| rows_group_the_edges(o))?;
    }

    #[test]
    fn class_members_share_verdicts(repo in repo()) {
        run(&repo, |_, o| classes_are_sound(o))?;
    }
}

/// The properties are only as good as the repositories: over a fixed sample,
/// the generator must produce every kind of verdict and the places they come from.
#[test]
fn generator_exercises_every_verdict() {
    let mut runner = TestRunner::deterministic();
    let strategy = repo();
    let (mut total, mut mixed, mut dangling, mut unmeshed) = (Stats::default(), 0, 0, 0);
    let mut row_conditions = 0;
    for _ in 0..50 {
        let repo = strategy.new_tree(&mut runner).expect("generator never rejects").current();
        let o = repo.check();
        let reach = reach_agrees_with_proxy(&repo, &o).unwrap_or_else(|e| panic!("{e}\n{}", repo.describe()));
        let who = who_agrees_with_reach(&o).unwrap_or_else(|e| panic!("{e}\n{}", repo.describe()));
        let sound = classes_are_sound(&o).unwrap_or_else(|e| panic!("{e}\n{}", repo.describe()));
        let rows = rows_group_the_edges(&o).unwrap_or_else(|e| panic!("{e}\n{}", repo.describe()));
        mixed += usize::from(reach.allow > 0 && reach.deny > 0);
        dangling += usize::from(o.findings.iter().any(|f| f.code == Code::UnresolvedReference));
        unmeshed += usize::from(o.resolved.workloads.iter().any(|w| !w.is_meshed()));
        total.add(&reach);
        total.split_entries += who.split_entries;
        total.shared_members += sound.shared_members;
        total.outsiders += sound.outsiders;
        total.grouped_rows += rows.grouped_rows;
        total.split_ports += rows.split_ports;
        row_conditions += rows.depends;
    }
    eprintln!("over 50 repositories: {total:?}; {mixed} with both allow and deny, {dangling} with dangling references");
    assert!(total.allow > 0 && total.deny > 0, "both allow and deny occur: {total:?}");
    assert!(mixed >= 25, "most repositories mix allow and deny: {mixed} of 50");
    assert!(total.no_route > 0, "some request matches no route: {total:?}");
    assert!(total.bypass > 0 && total.skipped_subnet > 0, "bypasses occur, skip-subnets among them: {total:?}");
    assert!(total.connection > 0 && total.grpc > 0, "opaque/TLS and gRPC servers occur: {total:?}");
    assert!(total.split_entries > 0, "some route admits some classes and not others: {total:?}");
    assert!(total.cidr_members > 0 && total.identity_members > 0, "named networks and identities occur: {total:?}");
    assert!(total.depends > 0, "some verdict depends on where the client pod is: {total:?}");
    assert!(total.shared_members > 0 && total.outsiders > 0, "classes have several members, and outsiders: {total:?}");
    assert!(
        total.grouped_rows > 0 && total.split_ports > 0 && row_conditions > 0,
        "matrix rows group several classes, ports have several rows, rows carry conditions: {total:?}, \
         {row_conditions} with a condition"
    );
    assert!(dangling > 0 && unmeshed > 0, "dangling references ({dangling}) and unmeshed workloads ({unmeshed}) occur");
}
