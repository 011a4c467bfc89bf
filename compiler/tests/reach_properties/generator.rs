//! The structured generator of small repositories.

use proptest::prelude::*;

// ---------------------------------------------------------------------------
// The generator.

pub(crate) const NAMESPACES: [&str; 2] = ["shop", "pay"];
pub(crate) const ACCOUNTS: [&str; 3] = ["default", "web", "api"];
pub(crate) const POLICIES: [&str; 6] =
    ["all-unauthenticated", "all-authenticated", "cluster-unauthenticated", "cluster-authenticated", "deny", "audit"];
/// Sub-ranges of the default cluster networks, the pod address Linkerd's
/// defaults put pods at (10.0.0.1), and places outside the cluster.
pub(crate) const NETWORKS: [(&str, Option<&str>); 11] = [
    ("10.0.0.0/8", None),
    ("10.0.0.0/8", Some("10.1.0.0/16")),
    ("10.1.0.0/16", None),
    ("10.1.0.0/16", Some("10.1.2.0/24")),
    ("10.1.2.0/24", None),
    ("10.0.0.1", None),
    ("192.168.0.0/16", None),
    ("0.0.0.0/0", None),
    ("0.0.0.0/0", Some("10.0.0.0/8")),
    ("203.0.113.0/24", None),
    ("::/0", None),
];
pub(crate) const SKIP_SUBNETS: [&str; 5] =
    ["10.1.0.0/16", "10.0.0.0/8", "192.168.0.0/16", "10.1.2.0/24", "10.0.0.1/32"];
pub(crate) const SKIP_PORTS: [&str; 4] = ["9090", "8080", "9000-9100", "4567"];
pub(crate) const OPAQUE_PORTS: [&str; 3] = ["9090", "8080", "8080,9090"];
pub(crate) const SERVER_PORTS: [&str; 5] = ["8080", "9090", "http", "grpc", "7000"];
pub(crate) const PROTOCOLS: [Option<&str>; 7] =
    [None, None, Some("HTTP/1"), Some("HTTP/2"), Some("gRPC"), Some("opaque"), Some("TLS")];
pub(crate) const PROBE_PATHS: [&str; 2] = ["/ready", "/healthz"];
pub(crate) const ROUTE_PATHS: [(&str, &str); 6] = [
    ("PathPrefix", "/"),
    ("PathPrefix", "/api"),
    ("Exact", "/api/v1/items"),
    ("Exact", "/ready"),
    ("RegularExpression", "/api/v[0-9]+/.*"),
    ("PathPrefix", "/shop.v1.Catalog"),
];
pub(crate) const HOSTNAMES: [&[&str]; 3] =
    [&["api.example.com"], &["*.example.com"], &["api.example.com", "other.test"]];
/// `(name, type, value)` for header matches; query-param matches use `debug`.
pub(crate) const HEADERS: [(&str, &str, &str); 2] =
    [("x-env", "Exact", "prod"), ("x-env", "RegularExpression", "pr.*")];
pub(crate) const METHODS: [&str; 3] = ["GET", "POST", "DELETE"];
pub(crate) const REQUEST_HOSTS: [&str; 3] = ["api.example.com", "www.example.com:8080", "other.test"];
pub(crate) const REQUEST_PATHS: [&str; 8] =
    ["/", "/api", "/api/v1/items", "/apix", "/ready", "/healthz", "/shop.v1.Catalog/Lookup", "/other"];

#[derive(Clone, Debug)]
pub(crate) struct Namespace {
    pub(crate) default_policy: Option<&'static str>,
}

#[derive(Clone, Debug)]
pub(crate) struct Deployment {
    pub(crate) ns: usize,
    pub(crate) account: usize,
    pub(crate) inject_disabled: bool,
    pub(crate) grpc_port: bool,
    /// A label several deployments share, so one Server can select many.
    pub(crate) tier: bool,
    /// Readiness probe on (8080 | 9090 | "http") with one of [`PROBE_PATHS`].
    pub(crate) probe: Option<(usize, usize)>,
    pub(crate) skip_ports: Option<usize>,
    pub(crate) skip_subnets: Option<usize>,
    pub(crate) opaque_ports: Option<usize>,
    pub(crate) pod_policy: Option<&'static str>,
}

#[derive(Clone, Debug)]
pub(crate) struct Server {
    pub(crate) deploy: usize,
    pub(crate) by_tier: bool,
    pub(crate) port: usize,
    pub(crate) protocol: usize,
    pub(crate) access_policy: Option<&'static str>,
    /// Label value ServerAuthorization selectors match on.
    pub(crate) group_a: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Match {
    pub(crate) method: Option<usize>,
    pub(crate) path: Option<usize>,
    pub(crate) header: Option<usize>,
    pub(crate) query: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) server: usize,
    pub(crate) gateway: bool,
    pub(crate) grpc: bool,
    pub(crate) hostnames: Option<usize>,
    /// `None`: no `rules` (the CRD default, PathPrefix `/`); a rule with no matches likewise.
    pub(crate) rules: Option<Vec<Vec<Match>>>,
}

#[derive(Clone, Debug)]
pub(crate) enum MeshIds {
    Identities(Vec<usize>),
    /// `(account, namespace)`, or a Namespace ref when the account is `None`.
    Refs(Vec<(Option<usize>, usize)>),
}

#[derive(Clone, Debug)]
pub(crate) struct MeshAuthn {
    pub(crate) ns: usize,
    pub(crate) ids: MeshIds,
}

#[derive(Clone, Debug)]
pub(crate) struct NetAuthn {
    pub(crate) ns: usize,
    pub(crate) networks: Vec<usize>,
}

#[derive(Clone, Debug)]
pub(crate) enum Target {
    Server(usize),
    Route(usize),
    Namespace(usize),
    /// A Server that does not exist, in this namespace.
    Missing(usize),
}

#[derive(Clone, Debug)]
pub(crate) enum Identity {
    None,
    /// Index into the MeshTLSAuthentications; past the end is a dangling ref.
    Mesh(usize),
    ServiceAccount(usize, Option<usize>),
}

#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) target: Target,
    /// Route targets name the route's API group, except when this is false.
    pub(crate) group_ok: bool,
    pub(crate) identity: Identity,
    /// Index into the NetworkAuthentications; past the end is a dangling ref.
    pub(crate) network: Option<usize>,
    /// Write the authentication refs' namespace even when it is the policy's.
    pub(crate) explicit_ns: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum SaClient {
    Unauthenticated,
    UnauthenticatedTls,
    Identities(Vec<usize>),
    ServiceAccounts(Vec<(usize, Option<usize>)>),
}

#[derive(Clone, Debug)]
pub(crate) struct ServerAuthz {
    /// By name; `None` selects Servers by label (`group: a|b`) in `ns`.
    pub(crate) server: Option<usize>,
    pub(crate) ns: usize,
    pub(crate) group_a: bool,
    pub(crate) client: SaClient,
    pub(crate) networks: Vec<usize>,
}

#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) kubelet_ip: Option<&'static str>,
    pub(crate) probe_networks: Option<Vec<&'static str>>,
    pub(crate) cluster_networks: Option<Vec<&'static str>>,
    pub(crate) pod_networks: Option<Vec<&'static str>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) method: usize,
    pub(crate) path: usize,
    pub(crate) grpc: bool,
    pub(crate) host: Option<usize>,
    /// `x-env: prod` or `x-env: dev`.
    pub(crate) env: Option<bool>,
    pub(crate) query: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Repo {
    pub(crate) namespaces: Vec<Namespace>,
    pub(crate) deployments: Vec<Deployment>,
    pub(crate) servers: Vec<Server>,
    pub(crate) routes: Vec<Route>,
    pub(crate) mesh: Vec<MeshAuthn>,
    pub(crate) nets: Vec<NetAuthn>,
    pub(crate) policies: Vec<Policy>,
    pub(crate) server_authzs: Vec<ServerAuthz>,
    pub(crate) settings: Settings,
    pub(crate) requests: Vec<Request>,
}

pub(crate) fn policy_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(POLICIES.to_vec())
}

pub(crate) fn namespace() -> impl Strategy<Value = Namespace> {
    prop::option::weighted(0.8, policy_name()).prop_map(|default_policy| Namespace { default_policy })
}

prop_compose! {
    fn deployment()(
        ns in 0usize..2,
        account in 0usize..ACCOUNTS.len(),
        inject_disabled in prop::bool::weighted(0.15),
        grpc_port in any::<bool>(),
        tier in any::<bool>(),
        probe in prop::option::weighted(0.4, (0usize..3, 0usize..PROBE_PATHS.len())),
        skip_ports in prop::option::weighted(0.2, 0usize..SKIP_PORTS.len()),
        skip_subnets in prop::option::weighted(0.2, 0usize..SKIP_SUBNETS.len()),
        opaque_ports in prop::option::weighted(0.2, 0usize..OPAQUE_PORTS.len()),
        pod_policy in prop::option::weighted(0.15, policy_name()),
    ) -> Deployment {
        Deployment {
            ns, account, inject_disabled, grpc_port, tier, probe, skip_ports, skip_subnets, opaque_ports, pod_policy,
        }
    }
}

prop_compose! {
    fn server()(
        deploy in 0usize..4,
        by_tier in prop::bool::weighted(0.2),
        port in 0usize..SERVER_PORTS.len(),
        protocol in 0usize..PROTOCOLS.len(),
        access_policy in prop::option::weighted(0.4, policy_name()),
        group_a in any::<bool>(),
    ) -> Server {
        Server { deploy, by_tier, port, protocol, access_policy, group_a }
    }
}

pub(crate) fn route_match() -> impl Strategy<Value = Match> {
    (
        prop::option::of(0usize..2),
        prop::option::weighted(0.8, 0usize..ROUTE_PATHS.len()),
        prop::option::weighted(0.15, 0usize..HEADERS.len()),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(method, path, header, query)| Match { method, path, header, query })
}

prop_compose! {
    fn route()(
        server in 0usize..4,
        gateway in any::<bool>(),
        grpc in prop::bool::weighted(0.15),
        hostnames in prop::option::weighted(0.2, 0usize..HOSTNAMES.len()),
        rules in prop::option::weighted(0.9, prop::collection::vec(prop::collection::vec(route_match(), 0..3), 1..3)),
    ) -> Route {
        Route { server, gateway, grpc, hostnames, rules }
    }
}

pub(crate) fn mesh_authn() -> impl Strategy<Value = MeshAuthn> {
    let ids = prop_oneof![
        prop::collection::vec(0usize..identity_strings().len(), 1..3).prop_map(MeshIds::Identities),
        prop::collection::vec((prop::option::weighted(0.8, 0usize..ACCOUNTS.len()), 0usize..2), 1..3)
            .prop_map(MeshIds::Refs),
    ];
    (0usize..2, ids).prop_map(|(ns, ids)| MeshAuthn { ns, ids })
}

pub(crate) fn net_authn() -> impl Strategy<Value = NetAuthn> {
    (0usize..2, prop::collection::vec(0usize..NETWORKS.len(), 1..3))
        .prop_map(|(ns, networks)| NetAuthn { ns, networks })
}

pub(crate) fn policy() -> impl Strategy<Value = Policy> {
    let target = prop_oneof![
        3 => (0usize..4).prop_map(Target::Server),
        3 => (0usize..4).prop_map(Target::Route),
        2 => (0usize..2).prop_map(Target::Namespace),
        1 => (0usize..2).prop_map(Target::Missing),
    ];
    let identity = prop_oneof![
        1 => Just(Identity::None),
        3 => (0usize..4).prop_map(Identity::Mesh),
        2 => (0usize..ACCOUNTS.len(), prop::option::of(0usize..2)).prop_map(|(a, n)| Identity::ServiceAccount(a, n)),
    ];
    (target, prop::bool::weighted(0.9), identity, prop::option::of(0usize..4), any::<bool>()).prop_map(
        |(target, group_ok, identity, network, explicit_ns)| Policy {
            target,
            group_ok,
            identity,
            network,
            explicit_ns,
        },
    )
}

pub(crate) fn server_authz() -> impl Strategy<Value = ServerAuthz> {
    let client = prop_oneof![
        Just(SaClient::Unauthenticated),
        Just(SaClient::UnauthenticatedTls),
        prop::collection::vec(0usize..identity_strings().len(), 1..3).prop_map(SaClient::Identities),
        prop::collection::vec((0usize..ACCOUNTS.len(), prop::option::of(0usize..2)), 1..3)
            .prop_map(SaClient::ServiceAccounts),
    ];
    (
        prop::option::weighted(0.7, 0usize..4),
        0usize..2,
        any::<bool>(),
        client,
        prop::collection::vec(0usize..NETWORKS.len(), 0..3),
    )
        .prop_map(|(server, ns, group_a, client, networks)| ServerAuthz { server, ns, group_a, client, networks })
}

pub(crate) fn settings() -> impl Strategy<Value = Settings> {
    (
        prop::option::weighted(0.3, prop::sample::select(vec!["10.1.2.3", "192.168.5.5", "203.0.113.9"])),
        prop::option::weighted(0.2, Just(vec!["10.1.0.0/16"])),
        prop::option::weighted(0.2, Just(vec!["10.0.0.0/8"])),
        prop::option::weighted(
            0.3,
            prop::sample::select(vec![vec!["10.1.0.0/16"], vec!["10.1.2.0/24"], vec!["10.0.0.0/8"]]),
        ),
    )
        .prop_map(|(kubelet_ip, probe_networks, cluster_networks, pod_networks)| Settings {
            kubelet_ip,
            probe_networks,
            cluster_networks,
            pod_networks,
        })
}

pub(crate) fn request() -> impl Strategy<Value = Request> {
    (
        0usize..METHODS.len(),
        0usize..REQUEST_PATHS.len(),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.4, 0usize..REQUEST_HOSTS.len()),
        prop::option::weighted(0.3, any::<bool>()),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(method, path, grpc, host, env, query)| Request { method, path, grpc, host, env, query })
}

pub(crate) fn repo() -> impl Strategy<Value = Repo> {
    (
        prop::collection::vec(namespace(), 1..3),
        prop::collection::vec(deployment(), 2..5),
        prop::collection::vec(server(), 0..5),
        prop::collection::vec(route(), 0..4),
        prop::collection::vec(mesh_authn(), 0..3),
        prop::collection::vec(net_authn(), 0..3),
        prop::collection::vec(policy(), 0..5),
        prop::collection::vec(server_authz(), 0..2),
        settings(),
        prop::collection::vec(request(), 2..5),
    )
        .prop_map(
            |(namespaces, deployments, servers, routes, mesh, nets, policies, server_authzs, settings, requests)| {
                Repo {
                    namespaces,
                    deployments,
                    servers,
                    routes,
                    mesh,
                    nets,
                    policies,
                    server_authzs,
                    settings,
                    requests,
                }
            },
        )
}

/// Identities policies name: every ServiceAccount of the small set in both
/// namespaces, patterns, and one no workload has.
pub(crate) fn identity_strings() -> Vec<String> {
    let id = |sa: &str, ns: &str| format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local");
    let mut out: Vec<String> = NAMESPACES.iter().flat_map(|ns| ACCOUNTS.iter().map(move |sa| id(sa, ns))).collect();
    out.push("*".to_owned());
    out.extend(NAMESPACES.iter().map(|ns| format!("*.{ns}.serviceaccount.identity.linkerd.cluster.local")));
    out.push(id("ghost", "shop"));
    out
}
