//! The rules of the module doc, checked on objects as the API serves them
//! (JSON → k8s-openapi types → index), without I/O.

use super::*;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use mesh_proxy_api::endpoints::ServiceKey;
use serde_json::{Value, json};

const TD: &str = "cluster.local";

fn id(sa: &str, ns: &str) -> Option<String> {
    Some(format!("{sa}.{ns}.serviceaccount.identity.linkerd.{TD}"))
}

fn ports(ports: &[(&str, u16)]) -> Value {
    ports.iter().map(|(n, p)| if n.is_empty() { json!({"port": p}) } else { json!({"name": n, "port": p}) }).collect()
}

fn service(ns: &str, name: &str, p: &[(&str, u16)]) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": {"ports": ports(p)}})).unwrap()
}

fn slice_typed(ns: &str, name: &str, svc: &str, address_type: &str, p: &[(&str, u16)], eps: Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": {SERVICE_NAME_LABEL: svc}},
        "addressType": address_type, "ports": ports(p), "endpoints": eps,
    }))
    .unwrap()
}

fn slice(ns: &str, name: &str, svc: &str, p: &[(&str, u16)], eps: Value) -> EndpointSlice {
    slice_typed(ns, name, svc, "IPv4", p, eps)
}

/// A ready endpoint of pod `pod` (uid `uid-<pod>`).
fn ep(ip: &str, pod: &str) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": true},
           "targetRef": {"kind": "Pod", "name": pod, "uid": format!("uid-{pod}")}})
}

fn pod(ns: &str, name: &str, sa: Option<&str>, meshed: bool) -> Pod {
    let labels = if meshed { json!({MESHED_LABEL: "linkerd", "app": name}) } else { json!({"app": name}) };
    let spec = match sa {
        Some(sa) => json!({"serviceAccountName": sa, "containers": []}),
        None => json!({"containers": []}),
    };
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{name}"), "labels": labels},
        "spec": spec,
    }))
    .unwrap()
}

#[derive(Default)]
struct Fixture {
    ix: EndpointsIndex,
}

impl Fixture {
    fn service(&mut self, s: Service) -> &mut Self {
        self.ix.apply_service(objects::key_of(&s), service_info(&s));
        self
    }
    fn slice(&mut self, s: EndpointSlice) -> &mut Self {
        match slice_info(&s) {
            Some(info) => self.ix.apply_slice(objects::key_of(&s), info),
            None => self.ix.delete_slice(&objects::key_of(&s)),
        }
        self
    }
    fn pod(&mut self, p: Pod) -> &mut Self {
        self.ix.apply_pod(objects::key_of(&p), pod_info(&p, &mesh_proxy_api::IdentityDomain::new("linkerd", TD)));
        self
    }
    /// Flushes; whether an answer changed.
    fn flush(&mut self) -> bool {
        self.ix.flush()
    }
    fn get(&mut self, ns: &str, name: &str, port: u16) -> Vec<(String, Option<String>)> {
        self.ix.flush();
        let key = ServiceKey { namespace: ns.into(), name: name.into(), port };
        self.ix
            .endpoints()
            .get(&key)
            .map(|e| e.iter().map(|e| (e.addr.to_string(), e.identity.clone())).collect())
            .unwrap_or_default()
    }
}

fn web() -> Fixture {
    let mut f = Fixture::default();
    f.service(service("shop", "web", &[("http", 80), ("admin", 9090)]))
        .pod(pod("shop", "web-1", Some("web"), true))
        .pod(pod("shop", "web-2", None, false))
        .slice(slice(
            "shop",
            "web-a",
            "web",
            &[("http", 8080), ("admin", 9990)],
            json!([ep("10.0.0.1", "web-1"), ep("10.0.0.2", "web-2")]),
        ));
    f
}

#[test]
fn named_ports_map_service_port_to_target_port_with_identity() {
    let mut f = web();
    assert_eq!(
        f.get("shop", "web", 80),
        vec![("10.0.0.1:8080".into(), id("web", "shop")), ("10.0.0.2:8080".into(), None)]
    );
    assert_eq!(
        f.get("shop", "web", 9090),
        vec![("10.0.0.1:9990".into(), id("web", "shop")), ("10.0.0.2:9990".into(), None)]
    );
    // Keyed by the Service port only.
    assert!(f.get("shop", "web", 8080).is_empty());
    assert_eq!(f.ix.endpoints().len(), 2);
}

#[test]
fn unnamed_ports_match_each_other_and_not_named_ones() {
    let mut f = Fixture::default();
    f.service(service("ns", "a", &[("", 80)])).pod(pod("ns", "p", Some("sa"), true)).slice(slice(
        "ns",
        "a-1",
        "a",
        &[("", 8080)],
        json!([ep("10.1.0.1", "p")]),
    ));
    assert_eq!(f.get("ns", "a", 80), vec![("10.1.0.1:8080".into(), id("sa", "ns"))]);

    f.service(service("ns", "b", &[("http", 80)])).slice(slice(
        "ns",
        "b-1",
        "b",
        &[("", 8080)],
        json!([ep("10.1.0.2", "p")]),
    ));
    assert!(f.get("ns", "b", 80).is_empty(), "a named Service port does not take an unnamed slice port");
}

#[test]
fn slices_are_merged_sorted_and_deduplicated() {
    let mut f = Fixture::default();
    f.service(service("ns", "s", &[("http", 80)]))
        .pod(pod("ns", "p1", Some("sa"), true))
        .pod(pod("ns", "p2", Some("sa"), true))
        .pod(pod("ns", "p3", Some("sa"), true))
        .slice(slice("ns", "s-b", "s", &[("http", 8080)], json!([ep("10.0.0.3", "p3"), ep("10.0.0.1", "p1")])))
        // The same endpoint in two slices (as during a slice controller
        // rebalance) is listed once.
        .slice(slice("ns", "s-a", "s", &[("http", 8080)], json!([ep("10.0.0.2", "p2"), ep("10.0.0.1", "p1")])));
    let addrs: Vec<String> = f.get("ns", "s", 80).into_iter().map(|(a, _)| a).collect();
    assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]);

    // Deleting one slice leaves the other's endpoints.
    f.ix.delete_slice(&ObjectKey::new("ns", "s-b"));
    let addrs: Vec<String> = f.get("ns", "s", 80).into_iter().map(|(a, _)| a).collect();
    assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:8080"]);
}

#[test]
fn the_answer_does_not_depend_on_the_order_objects_arrive() {
    let objects = || {
        (
            service("ns", "s", &[("", 80)]),
            [pod("ns", "p1", Some("a"), true), pod("ns", "p2", Some("b"), false)],
            [
                slice("ns", "s-1", "s", &[("", 1)], json!([ep("10.0.0.9", "p2"), ep("10.0.0.1", "p1")])),
                slice("ns", "s-2", "s", &[("", 1)], json!([ep("10.0.0.5", "p1")])),
            ],
        )
    };
    let (s, [p1, p2], [s1, s2]) = objects();
    let mut a = Fixture::default();
    a.service(s).pod(p1).pod(p2).slice(s1).slice(s2);
    let (s, [p1, p2], [s1, s2]) = objects();
    let mut b = Fixture::default();
    b.slice(s2).slice(s1).pod(p2).pod(p1).service(s);
    assert_eq!(a.get("ns", "s", 80), b.get("ns", "s", 80));
    assert_eq!(a.get("ns", "s", 80).len(), 3);
}

#[test]
fn not_ready_endpoints_are_left_out_and_unset_ready_counts_as_ready() {
    let mut f = Fixture::default();
    let eps = json!([
        {"addresses": ["10.0.0.1"], "conditions": {"ready": false}},
        {"addresses": ["10.0.0.2"], "conditions": {}},
        {"addresses": ["10.0.0.3"]},
        {"addresses": ["10.0.0.4"], "conditions": {"ready": true, "terminating": false}},
    ]);
    f.service(service("ns", "s", &[("", 80)])).slice(slice("ns", "s-1", "s", &[("", 8080)], eps));
    let addrs: Vec<String> = f.get("ns", "s", 80).into_iter().map(|(a, _)| a).collect();
    assert_eq!(addrs, ["10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080"]);
}

#[test]
fn endpoints_without_a_pod_reference_are_unmeshed() {
    let mut f = Fixture::default();
    let eps = json!([
        {"addresses": ["192.168.1.10"]},
        {"addresses": ["192.168.1.11"], "targetRef": {"kind": "Node", "name": "n1"}},
    ]);
    f.service(service("ns", "db", &[("", 5432)])).slice(slice("ns", "db-1", "db", &[("", 5432)], eps));
    assert_eq!(f.get("ns", "db", 5432), vec![("192.168.1.10:5432".into(), None), ("192.168.1.11:5432".into(), None)]);
}

#[test]
fn an_unknown_pod_is_left_out_until_it_is_known() {
    let mut f = Fixture::default();
    f.service(service("ns", "s", &[("", 80)])).slice(slice(
        "ns",
        "s-1",
        "s",
        &[("", 8080)],
        json!([ep("10.0.0.1", "p")]),
    ));
    assert!(f.get("ns", "s", 80).is_empty(), "neither plaintext nor a guessed identity");
    f.pod(pod("ns", "p", Some("sa"), true));
    assert!(f.flush(), "the pod's arrival changes the Service's answer");
    assert_eq!(f.get("ns", "s", 80), vec![("10.0.0.1:8080".into(), id("sa", "ns"))]);
}

#[test]
fn a_deleted_or_recreated_pod_gives_no_identity() {
    let mut f = web();
    f.ix.delete_pod(&ObjectKey::new("shop", "web-1"));
    assert_eq!(f.get("shop", "web", 80), vec![("10.0.0.2:8080".into(), None)]);

    // Same name, another uid: not the pod the slice names.
    let mut again = pod("shop", "web-1", Some("intruder"), true);
    again.metadata.uid = Some("uid-other".into());
    f.pod(again);
    assert_eq!(f.get("shop", "web", 80), vec![("10.0.0.2:8080".into(), None)]);

    f.pod(pod("shop", "web-1", Some("web"), true));
    assert_eq!(f.get("shop", "web", 80)[0], ("10.0.0.1:8080".into(), id("web", "shop")));
}

#[test]
fn a_pod_relabelled_unmeshed_loses_its_identity_and_its_service_account_counts() {
    let mut f = web();
    f.pod(pod("shop", "web-1", Some("web"), false));
    assert_eq!(f.get("shop", "web", 80)[0], ("10.0.0.1:8080".into(), None));
    f.pod(pod("shop", "web-1", None, true));
    assert_eq!(f.get("shop", "web", 80)[0], ("10.0.0.1:8080".into(), id("default", "shop")));
    f.pod(pod("shop", "web-1", Some("other"), true));
    assert_eq!(f.get("shop", "web", 80)[0], ("10.0.0.1:8080".into(), id("other", "shop")));
}

#[test]
fn a_pod_update_that_changes_nothing_we_keep_marks_nothing() {
    let mut f = web();
    f.flush();
    let mut p = pod("shop", "web-1", Some("web"), true);
    p.metadata.annotations = Some([("restarted".to_string(), "now".to_string())].into());
    f.pod(p);
    assert!(!f.ix.is_dirty());
    // A pod no slice names marks nothing either.
    f.pod(pod("shop", "lonely", Some("x"), true));
    assert!(!f.ix.is_dirty());
}

#[test]
fn deleting_the_service_removes_its_ports_and_recreating_it_restores_them() {
    let mut f = web();
    f.flush();
    f.ix.delete_service(&ObjectKey::new("shop", "web"));
    assert!(f.flush());
    assert!(f.ix.endpoints().is_empty());
    f.service(service("shop", "web", &[("http", 81)]));
    assert_eq!(f.get("shop", "web", 81).len(), 2);
    assert!(f.get("shop", "web", 80).is_empty(), "the old port is gone");
}

#[test]
fn ipv6_slices_count_and_fqdn_slices_do_not() {
    let mut f = Fixture::default();
    f.service(service("ns", "s", &[("", 80)]))
        .pod(pod("ns", "p", Some("sa"), true))
        .slice(slice_typed("ns", "s-v6", "s", "IPv6", &[("", 8080)], json!([ep("fd00::1", "p")])))
        .slice(slice_typed("ns", "s-fqdn", "s", "FQDN", &[("", 8080)], json!([{"addresses": ["db.example.com"]}])));
    assert_eq!(f.get("ns", "s", 80), vec![("[fd00::1]:8080".into(), id("sa", "ns"))]);
}

#[test]
fn only_the_first_address_and_only_tcp_ports_are_used() {
    let mut f = Fixture::default();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "kube-system", "name": "dns"},
        "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]},
    }))
    .unwrap();
    let sl: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "kube-system", "name": "dns-1", "labels": {SERVICE_NAME_LABEL: "dns"}},
        "addressType": "IPv4",
        "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}, {"name": "dns-tcp", "port": 5354}],
        "endpoints": [{"addresses": ["10.0.0.10", "10.0.0.11"]}],
    }))
    .unwrap();
    f.service(svc).slice(sl);
    assert_eq!(f.get("kube-system", "dns", 53), vec![("10.0.0.10:5354".into(), None)]);
}

#[test]
fn odd_slices_contribute_nothing() {
    let unlabelled: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "x"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
    }))
    .unwrap();
    assert_eq!(slice_info(&unlabelled), None);
    let odd = slice(
        "ns",
        "s-1",
        "s",
        &[],
        json!([
            {"addresses": ["not-an-ip"]},
            {"addresses": ["10.0.0.2"], "targetRef": {"kind": "Pod"}},
        ]),
    );
    let info = slice_info(&odd).unwrap();
    assert!(info.endpoints.is_empty(), "bad address and nameless pod reference are dropped: {info:?}");
    let no_number: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "s-2", "labels": {SERVICE_NAME_LABEL: "s"}},
        "addressType": "IPv4", "ports": [{"name": "http"}], "endpoints": [],
    }))
    .unwrap();
    assert!(slice_info(&no_number).unwrap().ports.is_empty());
}

#[test]
fn a_slice_moving_to_another_service_leaves_the_first() {
    let mut f = web();
    f.service(service("shop", "web2", &[("http", 80)]));
    assert_eq!(f.get("shop", "web", 80).len(), 2);
    f.slice(slice("shop", "web-a", "web2", &[("http", 8080)], json!([ep("10.0.0.1", "web-1")])));
    assert!(f.get("shop", "web", 80).is_empty());
    assert_eq!(f.get("shop", "web2", 80), vec![("10.0.0.1:8080".into(), id("web", "shop"))]);
    // Losing its label (slice_info → None) removes it as well.
    let mut unlabelled = slice("shop", "web-a", "web2", &[("http", 8080)], json!([]));
    unlabelled.metadata.labels = None;
    f.slice(unlabelled);
    assert!(f.get("shop", "web2", 80).is_empty());
    assert_eq!(f.ix.counts(), (2, 0, 2));
}

#[test]
fn an_address_claimed_with_two_identities_is_left_out() {
    let mut f = Fixture::default();
    f.service(service("ns", "s", &[("", 80)]))
        .pod(pod("ns", "a", Some("a"), true))
        .pod(pod("ns", "b", Some("b"), true))
        .slice(slice("ns", "s-1", "s", &[("", 8080)], json!([ep("10.0.0.1", "a"), ep("10.0.0.2", "a")])))
        .slice(slice("ns", "s-2", "s", &[("", 8080)], json!([ep("10.0.0.1", "b")])));
    assert_eq!(f.get("ns", "s", 80), vec![("10.0.0.2:8080".into(), id("a", "ns"))]);
}

#[test]
fn replace_all_deletes_what_a_relist_lacks_and_keeps_the_rest_quiet() {
    let mut f = web();
    f.service(service("shop", "gone", &[("", 1)])).slice(slice(
        "shop",
        "gone-1",
        "gone",
        &[("", 1)],
        json!([{"addresses": ["10.9.9.9"]}]),
    ));
    f.flush();
    assert_eq!(f.ix.endpoints().len(), 3);

    // The same services listed again: nothing changes.
    let listed: HashMap<_, _> =
        [service("shop", "web", &[("http", 80), ("admin", 9090)]), service("shop", "gone", &[("", 1)])]
            .iter()
            .map(|s| (objects::key_of(s), service_info(s)))
            .collect();
    f.ix.replace_all(listed);
    assert!(!f.ix.is_dirty());

    // A relist without "gone" deletes it; its slice waits for a Service.
    let listed: HashMap<_, _> = [service("shop", "web", &[("http", 80), ("admin", 9090)])]
        .iter()
        .map(|s| (objects::key_of(s), service_info(s)))
        .collect();
    f.ix.replace_all(listed);
    assert!(f.flush());
    assert_eq!(f.ix.endpoints().len(), 2);
    assert_eq!(f.ix.counts(), (1, 2, 2));

    // A pod relist without web-1 takes its endpoint away.
    let listed: HashMap<_, _> = [pod("shop", "web-2", None, false)]
        .iter()
        .map(|p| (objects::key_of(p), pod_info(p, &mesh_proxy_api::IdentityDomain::new("linkerd", TD))))
        .collect();
    f.ix.replace_all(listed);
    assert_eq!(f.get("shop", "web", 80), vec![("10.0.0.2:8080".into(), None)]);
}

#[test]
fn relist_buffers_until_init_done_and_then_replaces_the_kind() {
    let mut ix = EndpointsIndex::new();
    let mut r: Relist<ServiceInfo> = Relist::default();
    let s = |name: &str| {
        (
            ObjectKey::new("ns", name),
            Some(ServiceInfo { ports: vec![NamedPort { name: String::new(), port: 80 }], cluster_ips: Vec::new() }),
        )
    };
    let (k, v) = s("a");
    r.apply(&mut ix, Update::Init);
    r.apply(&mut ix, Update::InitApply(k, v));
    assert_eq!(ix.counts().0, 0, "nothing before InitDone");
    assert!(!r.synced);
    r.apply(&mut ix, Update::InitDone);
    assert!(r.synced);
    assert_eq!(ix.counts().0, 1);

    // A relist that lists b only: a goes, b comes, in one step.
    let (k, v) = s("b");
    r.apply(&mut ix, Update::Init);
    r.apply(&mut ix, Update::InitApply(k, v));
    assert_eq!(ix.counts().0, 1);
    r.apply(&mut ix, Update::InitDone);
    let (k, _) = s("b");
    r.apply(&mut ix, Update::Apply(k.clone(), None));
    assert_eq!(ix.counts().0, 0, "an object that stops contributing is deleted");
}

#[test]
fn the_hub_encodes_again_only_the_lists_the_index_changed() {
    let mut f = web();
    f.service(service("shop", "api", &[("", 81)])).slice(slice(
        "shop",
        "api-1",
        "api",
        &[("", 8081)],
        json!([ep("10.0.0.1", "web-1")]),
    ));
    f.flush();
    let hub = crate::hub::EndpointsHub::default();
    hub.replace(f.ix.endpoints());
    let before = hub.subscribe().borrow().clone();

    f.pod(pod("shop", "web-2", Some("web"), true));
    assert!(f.flush());
    hub.replace(f.ix.endpoints());
    let after = hub.subscribe().borrow().clone();
    let api = ServiceKey { namespace: "shop".into(), name: "api".into(), port: 81 };
    let web = ServiceKey { namespace: "shop".into(), name: "web".into(), port: 80 };
    // The untouched Service's answer is the very same bytes.
    assert_eq!(hub.answer(&before, &api).body.as_ptr(), hub.answer(&after, &api).body.as_ptr());
    assert_ne!(hub.answer(&before, &web).version, hub.answer(&after, &web).version);
    let body: Value = serde_json::from_slice(&hub.answer(&after, &web).body).unwrap();
    assert_eq!(body["endpoints"][1]["identity"], json!(id("web", "shop")));
}
