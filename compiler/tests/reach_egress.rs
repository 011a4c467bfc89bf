//! `reach --to egress:HOST:PORT` through the library, on a repository whose
//! expected answers follow from Linkerd's egress rules
//! (docs/semantics/egress.md), and the egress section `compile` lowers.

use meshc::load::Input;
use meshc::pipeline::{self, Options, Outcome};
use meshc::query::classes::Classes;
use meshc::query::egress::{EgressReach, reach_egress, traffic_of};
use meshc::query::egress_ref;
use meshc::query::evaluate::Verdict;
use meshc::query::reach::{parse_client, request_of};

/// - shop: its own EgressNetworks. `internet` (Deny, default networks:
///   everything outside the cluster) with an HTTPRoute for GET /v1 on port 80
///   and a GRPCRoute on 9090; `partners` (Allow) for 198.51.100.0/24, which
///   wins there (smaller block).
/// - linkerd-egress (the global namespace): `global` (Allow) for 203.0.113.0/24
///   only, for clients of namespaces without their own (web).
const REPO: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: web, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: shop}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec: {containers: [{name: app, image: app}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy, namespace: shop}
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}, annotations: {linkerd.io/inject: disabled}}
    spec: {containers: [{name: app, image: app}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: front, namespace: web}
spec:
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec: {containers: [{name: app, image: app}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: internet, namespace: shop}
spec: {trafficPolicy: Deny}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: partners, namespace: shop}
spec:
  trafficPolicy: Allow
  networks: [{cidr: 198.51.100.0/24}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api-v1, namespace: shop}
spec:
  parentRefs: [{name: internet, kind: EgressNetwork, group: policy.linkerd.io, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /v1}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: billing, namespace: shop}
spec:
  parentRefs: [{name: internet, kind: EgressNetwork, group: policy.linkerd.io, port: 9090}]
  rules:
    - matches: [{method: {service: billing.v1.Billing}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: global, namespace: linkerd-egress}
spec:
  trafficPolicy: Allow
  networks: [{cidr: 203.0.113.0/24}]
"#;

fn outcome() -> Outcome {
    let input = Input::Text { name: "repo.yaml".into(), text: REPO.into() };
    pipeline::compile(&input, &Options::default()).expect("text input is always readable")
}

fn ask(
    o: &Outcome,
    from: &str,
    to: &str,
    method: Option<&str>,
    path: Option<&str>,
    sni: Option<&str>,
) -> Result<EgressReach, String> {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let client = parse_client(o, &classes, from)?;
    let target = egress_ref::parse(to).expect("an egress reference")?;
    let req = request_of(method, path, None, std::iter::empty());
    let traffic = traffic_of(&target, req, sni.map(str::to_owned));
    reach_egress(o, &client, &target, &traffic)
}

fn network(r: &EgressReach) -> Option<String> {
    r.network.as_ref().map(|n| format!("{}/{}", n.namespace.as_deref().unwrap_or(""), n.name))
}

#[test]
fn deny_network_refuses_what_no_route_allows() {
    let o = outcome();
    // GET /v1/charges matches api-v1 (no backendRefs: forwarded to the original destination).
    let r = ask(&o, "deploy/shop/client", "egress:192.0.2.10:80", Some("GET"), Some("/v1/charges"), None).unwrap();
    assert_eq!((r.verdict, r.status), (Verdict::Allow, None), "{r:?}");
    assert_eq!(network(&r).as_deref(), Some("shop/internet"));
    assert_eq!(r.backends.len(), 1);
    assert_eq!(r.backends[0].kind, "original");
    // A name could resolve into partners' /24 too (Allow there): the same
    // answer either way, so allow for sure, but no one network to name.
    let r = ask(&o, "deploy/shop/client", "egress:api.example.com:80", Some("GET"), Some("/v1/charges"), None).unwrap();
    assert_eq!((r.verdict, r.network.is_none()), (Verdict::Allow, true), "{r:?}");
    // Anything else on port 80 gets the default route http-egress-deny: 403.
    let r = ask(&o, "deploy/shop/client", "egress:192.0.2.10:80", Some("GET"), Some("/admin"), None).unwrap();
    assert_eq!((r.verdict, r.status), (Verdict::Deny, Some(403)));
    // TLS (443) is not HTTP: the opaque default route closes it.
    let r = ask(&o, "deploy/shop/client", "egress:192.0.2.10:443", None, None, Some("api.example.com")).unwrap();
    assert_eq!((r.verdict, r.status, r.protocol), (Verdict::Deny, None, "tls"));
}

#[test]
fn grpc_routes_on_the_port_answer_permission_denied() {
    let o = outcome();
    let r =
        ask(&o, "deploy/shop/client", "egress:198.18.0.1:9090", Some("POST"), Some("/other.v1.X/Get"), None).unwrap();
    // GRPCRoutes serve port 9090, so a Deny is grpc-status 7.
    assert_eq!((r.verdict, r.status), (Verdict::Deny, Some(7)), "{r:?}");
    let r =
        ask(&o, "deploy/shop/client", "egress:198.18.0.1:9090", Some("POST"), Some("/billing.v1.Billing/Pay"), None)
            .unwrap();
    assert_eq!(r.verdict, Verdict::Allow);
}

#[test]
fn the_smaller_network_wins_and_a_name_depends_on_its_address() {
    let o = outcome();
    let r = ask(&o, "deploy/shop/client", "egress:198.51.100.7:80", Some("GET"), Some("/admin"), None).unwrap();
    assert_eq!((r.verdict, network(&r).as_deref()), (Verdict::Allow, Some("shop/partners")));
    // A name may resolve into partners' /24 (allow) or anywhere else (deny).
    let r = ask(&o, "deploy/shop/client", "egress:partner.example:80", Some("GET"), Some("/admin"), None).unwrap();
    assert_eq!(r.verdict, Verdict::Depends, "{r:?}");
    let condition = r.condition.unwrap();
    assert!(condition.contains("shop/partners") && condition.contains("shop/internet"), "{condition}");
}

#[test]
fn clients_without_egress_networks_use_the_global_namespace() {
    let o = outcome();
    // web has none: linkerd-egress/global applies, and covers only 203.0.113.0/24.
    let r = ask(&o, "deploy/web/front", "egress:203.0.113.5:80", None, None, None).unwrap();
    assert_eq!((r.verdict, network(&r).as_deref()), (Verdict::Allow, Some("linkerd-egress/global")));
    // Outside it no EgressNetwork applies: egress-fallback forwards.
    let r = ask(&o, "deploy/web/front", "egress:192.0.2.9:80", None, None, None).unwrap();
    assert_eq!((r.verdict, r.network.is_none()), (Verdict::Allow, true));
    // A client named by ServiceAccount gets its namespace's networks.
    let r = ask(&o, "sa:shop/default", "egress:192.0.2.9:80", None, None, None).unwrap();
    assert_eq!((r.verdict, r.status), (Verdict::Deny, Some(403)));
}

#[test]
fn cluster_addresses_and_unmeshed_clients() {
    let o = outcome();
    let err = ask(&o, "deploy/shop/client", "egress:10.1.2.3:80", None, None, None).unwrap_err();
    assert!(err.contains("inside the cluster network 10.0.0.0/8"), "{err}");
    // No proxy: nothing polices the egress of an uninjected pod.
    let r = ask(&o, "deploy/shop/legacy", "egress:192.0.2.9:80", None, None, None).unwrap();
    assert_eq!(r.verdict, Verdict::Allow);
}

#[test]
fn the_client_config_carries_its_namespace_networks() {
    let o = outcome();
    let egress = |name: &str| {
        let c = o.configs.iter().flatten().find(|c| c.workload.name == name).expect("meshed");
        c.outbound.egress.networks.iter().map(|n| format!("{}/{}", n.namespace, n.name)).collect::<Vec<_>>()
    };
    // Tie order: no creationTimestamp on either, so by name.
    assert_eq!(egress("client"), ["shop/internet", "shop/partners"]);
    assert_eq!(egress("front"), ["linkerd-egress/global"]);
    let c = o.configs.iter().flatten().find(|c| c.workload.name == "client").unwrap();
    let internet = &c.outbound.egress.networks[0];
    let ports: Vec<u16> = internet.ports.iter().map(|p| p.port).collect();
    assert_eq!(ports, [80, 9090]);
    // The default networks: everything outside the cluster networks, per family.
    assert_eq!(internet.networks[0].net.to_string(), "0.0.0.0/0");
    assert!(internet.networks[0].except.iter().any(|e| e.to_string() == "10.0.0.0/8"));
}

#[test]
fn show_config_shows_the_egress_a_client_gets() {
    let o = outcome();
    let c = o.configs.iter().flatten().find(|c| c.workload.name == "client").unwrap();
    let mut text = String::new();
    meshc::query::show_egress::render(&mut text, &c.outbound.egress);
    assert!(text.contains("EgressNetwork shop/internet  Deny"), "{text}");
    assert!(text.contains("port 9090:") && text.contains("billing.v1.Billing/*"), "{text}");
    assert!(text.contains("rule 0: path /v1* → pass through"), "{text}");
    // web's client gets the global network; a namespace-less config would print nothing.
    let front = o.configs.iter().flatten().find(|c| c.workload.name == "front").unwrap();
    let mut text = String::new();
    meshc::query::show_egress::render(&mut text, &front.outbound.egress);
    assert!(text.contains("EgressNetwork linkerd-egress/global  Allow"), "{text}");
}

#[test]
fn who_can_reach_an_egress_destination() {
    let o = outcome();
    let classes = Classes::derive(&o.resolved, &o.configs);
    let target = egress_ref::parse("egress:192.0.2.9:80").unwrap().unwrap();
    let traffic = traffic_of(&target, None, None);
    let clients = meshc::query::egress_who::who_can_reach_egress(&o, &classes, &target, &traffic).unwrap();
    let verdict = |name: &str| clients.iter().find(|c| c.client.ends_with(name)).map(|c| c.verdict);
    // shop's client: internet (Deny), GET / matches no route → 403.
    assert_eq!(verdict("shop/client"), Some(Verdict::Deny));
    // legacy has no proxy; front (web) falls back: 192.0.2.9 is outside linkerd-egress/global.
    assert_eq!(verdict("shop/legacy"), Some(Verdict::Allow));
    assert_eq!(verdict("web/front"), Some(Verdict::Allow));
    let inside = egress_ref::parse("egress:10.9.9.9:80").unwrap().unwrap();
    assert!(meshc::query::egress_who::who_can_reach_egress(&o, &classes, &inside, &traffic).is_err());
}
