//! No input panics: arbitrary bytes, arbitrary Kubernetes-shaped YAML, the
//! Linkerd 2.17+ kinds written to refer to each other (EgressNetworks, routes
//! with EgressNetwork and Service parents, TLSRoutes, TCPRoutes,
//! HTTPLocalRateLimitPolicies, SMI TrafficSplits), and mutations of the real examples go through
//! the loader and the whole pipeline; generated repositories go through every
//! renderer (egress edges, `reach --to svc/` with and without an SNI) and `build`.

mod no_panic {
    pub mod render;
}

use meshc::load::Input;
use meshc::pipeline::{self, Options};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn check_text(text: String) {
    let input = Input::Text { name: "fuzz.yaml".to_owned(), text };
    let outcome = pipeline::check(&input, &Options::default()).expect("text input is always readable");
    for f in &outcome.findings {
        assert!(!f.message.is_empty());
    }
}

const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "CronJob"),
    ("policy.linkerd.io/v1beta3", "Server"),
    ("policy.linkerd.io/v1beta1", "ServerAuthorization"),
    ("policy.linkerd.io/v1alpha1", "AuthorizationPolicy"),
    ("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication"),
    ("policy.linkerd.io/v1alpha1", "NetworkAuthentication"),
    ("policy.linkerd.io/v1beta3", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    ("gateway.networking.k8s.io/v1alpha2", "TLSRoute"),
    ("gateway.networking.k8s.io/v1alpha2", "TCPRoute"),
    ("linkerd.io/v1alpha2", "ServiceProfile"),
    ("policy.linkerd.io/v1alpha1", "HTTPLocalRateLimitPolicy"),
    ("policy.linkerd.io/v1alpha1", "EgressNetwork"),
    ("split.smi-spec.io/v1alpha1", "TrafficSplit"),
    ("split.smi-spec.io/v1alpha2", "TrafficSplit"),
    ("v1", "List"),
];

/// Field names that real manifests use, so random trees reach deep into typed decoding.
const KEYS: &[&str] = &[
    "spec",
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "template",
    "containers",
    "initContainers",
    "ports",
    "containerPort",
    "port",
    "podSelector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "proxyProtocol",
    "accessPolicy",
    "targetRef",
    "group",
    "kind",
    "requiredAuthenticationRefs",
    "total",
    "identity",
    "overrides",
    "requestsPerSecond",
    "clientRefs",
    "identities",
    "identityRefs",
    "networks",
    "cidr",
    "except",
    "parentRefs",
    "trafficPolicy",
    "backendRefs",
    "rules",
    "matches",
    "path",
    "type",
    "value",
    "method",
    "headers",
    "filters",
    "hostnames",
    "backendRefs",
    "weight",
    "sectionName",
    "server",
    "client",
    "meshTLS",
    "serviceAccounts",
    "unauthenticated",
    "readinessProbe",
    "httpGet",
    "items",
    "selector",
    "serviceAccountName",
    "linkerd.io/inject",
    "config.linkerd.io/default-inbound-policy",
    "config.linkerd.io/opaque-ports",
    "config.linkerd.io/skip-inbound-ports",
    "backends",
    "weight",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (0u16..70).prop_map(|p| json!(p)),
        prop::sample::select(vec![
            "Server",
            "Service",
            "EgressNetwork",
            "policy.linkerd.io",
            "web",
            "http",
            "/",
            "PathPrefix",
            "Exact",
            "RegularExpression",
            "(",
            "0.0.0.0/0",
            "10.0.0.0/8",
            "*",
            "enabled",
            "deny",
            "audit",
            "8080,http",
            "1-65535",
            "gRPC",
            "In",
            "GET",
            "EgressNetwork",
            "Allow",
            "Deny",
            "::/0",
        ])
        .prop_map(|s| json!(s)),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())),
        ]
    })
}

fn documents(objects: &[Value]) -> String {
    objects.iter().map(|o| serde_json::to_string(o).unwrap()).collect::<Vec<_>>().join("\n---\n")
}

fn object() -> impl Strategy<Value = Value> {
    (prop::sample::select(KINDS.to_vec()), tree(), tree(), "[a-z]{1,6}").prop_map(|((api, kind), meta, spec, name)| {
        let mut metadata = match meta {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        metadata.insert("name".to_owned(), json!(name));
        json!({"apiVersion": api, "kind": kind, "metadata": metadata, "spec": spec, "items": [spec.clone()]})
    })
}

/// One of a few names, so that references between generated objects resolve
/// often enough to reach the code behind them.
fn name() -> impl Strategy<Value = String> {
    // web and voting (emojivoto), books (booksapp) are Services, Servers and ServiceAccounts of the examples.
    prop::sample::select(vec!["web", "voting", "books", "internet", "partners", "web-http"]).prop_map(str::to_owned)
}

fn namespace() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["emojivoto", "booksapp", "linkerd-egress", "other"]).prop_map(str::to_owned)
}

/// A parentRef to an EgressNetwork or a Service, sometimes with a port,
/// sometimes in another namespace or with a wrong group.
fn parent_ref() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            ("policy.linkerd.io", "EgressNetwork"),
            ("core", "Service"),
            ("", "Service"),
            ("x", "EgressNetwork"),
        ]),
        name(),
        prop::option::of(namespace()),
        prop::option::of(prop_oneof![(0u16..100).prop_map(|p| json!(p)), Just(json!(443)), Just(json!("http"))]),
    )
        .prop_map(|((group, kind), name, ns, port)| {
            let mut r = json!({"group": group, "kind": kind, "name": name});
            if let Some(ns) = ns {
                r["namespace"] = json!(ns);
            }
            if let Some(port) = port {
                r["port"] = port;
            }
            r
        })
}

fn backend_ref() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["EgressNetwork", "Service", "Pod"]),
        name(),
        prop::option::of(0u32..70000),
        prop::option::of(0i64..3),
    )
        .prop_map(|(kind, name, port, weight)| {
            let mut b = json!({"kind": kind, "name": name});
            if kind == "EgressNetwork" {
                b["group"] = json!("policy.linkerd.io");
            }
            if let Some(p) = port {
                b["port"] = json!(p);
            }
            if let Some(w) = weight {
                b["weight"] = json!(w - 1);
            }
            b
        })
}

/// A hostname as the route CRDs take it, or something they refuse.
fn hostname() -> impl Strategy<Value = Value> {
    prop::sample::select(vec!["api.example.com", "*.example.com", "*", "Bad_Name", "example.com.", ""])
        .prop_map(|h| json!(h))
}

/// The Linkerd 2.17+ kinds, written to refer to each other (routes with
/// EgressNetwork or Service parents, rate limits on Servers, EgressNetworks
/// with networks and exceptions), with values in and out of their schemas.
fn new_kind() -> impl Strategy<Value = Value> {
    let route = (
        prop::sample::select(vec![
            ("gateway.networking.k8s.io/v1", "HTTPRoute"),
            ("policy.linkerd.io/v1beta3", "HTTPRoute"),
            ("gateway.networking.k8s.io/v1", "GRPCRoute"),
            ("gateway.networking.k8s.io/v1alpha2", "TLSRoute"),
            ("gateway.networking.k8s.io/v1alpha2", "TCPRoute"),
        ]),
        prop::collection::vec(parent_ref(), 0..3),
        prop::collection::vec(hostname(), 0..3),
        prop::collection::vec(prop::collection::vec(backend_ref(), 0..3), 0..3),
        tree(),
    )
        .prop_map(|((api, kind), parents, hosts, rules, matches)| {
            let rules: Vec<Value> = rules.into_iter().map(|b| json!({"backendRefs": b, "matches": [matches.clone()]})).collect();
            json!({"apiVersion": api, "kind": kind, "spec": {"parentRefs": parents, "hostnames": hosts, "rules": rules}})
        });
    let network = prop::sample::select(vec![
        "0.0.0.0/0",
        "::/0",
        "203.0.113.0/24",
        "10.0.0.0/8",
        "10.1.0.0/16",
        "nonsense",
        "1.2.3.4/40",
    ]);
    let egress = (
        prop::sample::select(vec!["Allow", "Deny", "allow", ""]),
        prop::option::of(prop::collection::vec((network.clone(), prop::collection::vec(network, 0..2)), 0..3)),
    )
        .prop_map(|(policy, networks)| {
            let mut spec = json!({"trafficPolicy": policy});
            if let Some(n) = networks {
                spec["networks"] =
                    n.into_iter().map(|(cidr, except)| json!({"cidr": cidr, "except": except})).collect();
            }
            json!({"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "EgressNetwork", "spec": spec})
        });
    let rps = || prop_oneof![(0i64..2000).prop_map(|n| json!(n)), Just(json!(-1)), Just(json!("ten"))];
    let rate_limit = (
        name(),
        prop::sample::select(vec!["Server", "Service"]),
        prop::option::of(rps()),
        prop::option::of(rps()),
        prop::collection::vec((rps(), prop::collection::vec(name(), 0..3)), 0..3),
    )
        .prop_map(|(target, kind, total, identity, overrides)| {
            let mut spec = json!({"targetRef": {"group": "policy.linkerd.io", "kind": kind, "name": target}});
            if let Some(t) = total {
                spec["total"] = json!({"requestsPerSecond": t});
            }
            if let Some(i) = identity {
                spec["identity"] = json!({"requestsPerSecond": i});
            }
            spec["overrides"] = overrides
                .into_iter()
                .map(|(r, sas)| {
                    let refs: Vec<Value> =
                        sas.into_iter().map(|n| json!({"kind": "ServiceAccount", "name": n})).collect();
                    json!({"requestsPerSecond": r, "clientRefs": refs})
                })
                .collect();
            json!({"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "HTTPLocalRateLimitPolicy", "spec": spec})
        });
    // Weights of every type and sign either version may hold, apexes and backends that exist or not.
    let weight = prop_oneof![
        (-2i64..2000).prop_map(|n| json!(n)),
        Just(json!(0.5)),
        Just(json!(1e300)),
        Just(json!(true)),
        prop::sample::select(vec!["500m", "1", "0m", "-1", "1Ki", "1e3", "1e99", "half", "", "."])
            .prop_map(|s| json!(s))
    ];
    let split = (
        prop::sample::select(vec!["v1alpha1", "v1alpha2", "v1alpha4"]),
        name(),
        prop::collection::vec((name(), weight), 0..4),
    )
        .prop_map(|(version, apex, backends)| {
            let backends: Vec<Value> = backends.into_iter().map(|(s, w)| json!({"service": s, "weight": w})).collect();
            json!({"apiVersion": format!("split.smi-spec.io/{version}"), "kind": "TrafficSplit",
                   "spec": {"service": apex, "backends": backends}})
        });
    (prop_oneof![route, egress, rate_limit, split], name(), namespace()).prop_map(|(mut o, name, ns)| {
        o["metadata"] = json!({"name": name, "namespace": ns});
        o
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn new_kinds_referring_to_each_other(seed in any::<u64>(), objects in prop::collection::vec(new_kind(), 1..10)) {
        // After a real example, so that Services, Servers and workloads exist to be referred to.
        let files = example_texts();
        let example = &files[(seed % files.len() as u64) as usize];
        check_text(format!("{example}\n---\n{}", documents(&objects)));
    }

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_text(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn arbitrary_yaml_text(text in "[a-z:{}\\[\\]\\-,'\"&*!|>#% \n\t]{0,200}") {
        check_text(text);
    }

    #[test]
    fn kubernetes_shaped_documents(objects in prop::collection::vec(object(), 1..8)) {
        check_text(documents(&objects));
    }

    #[test]
    fn mutated_examples(seed in any::<u64>(), edits in prop::collection::vec((any::<u32>(), any::<u8>(), 0u8..3), 1..12)) {
        let files = example_texts();
        let mut text = files[(seed % files.len() as u64) as usize].clone().into_bytes();
        for (pos, byte, op) in edits {
            let at = pos as usize % (text.len() + 1);
            match op {
                0 => text.insert(at, byte),
                1 if at < text.len() => { text.remove(at); }
                _ if at < text.len() => text[at] = byte,
                _ => {}
            }
        }
        check_text(String::from_utf8_lossy(&text).into_owned());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A generated repository (random objects after a mutated example, so
    /// workloads and policies exist) through every renderer and `build`;
    /// the next one as its diff's head.
    #[test]
    fn every_renderer_on_generated_repositories(
        seed in any::<u64>(),
        base in prop::collection::vec(object(), 0..6),
        head in prop::collection::vec(object(), 0..6),
        base_new in prop::collection::vec(new_kind(), 0..5),
        head_new in prop::collection::vec(new_kind(), 0..5),
        names in prop::collection::vec(".{0,16}", 0..4),
    ) {
        let files = example_texts();
        let example = &files[(seed % files.len() as u64) as usize];
        let (base, head) = ([base, base_new].concat(), [head, head_new].concat());
        let base = no_panic::render::compile(format!("{example}\n---\n{}", documents(&base)));
        let head = no_panic::render::compile(format!("{example}\n---\n{}", documents(&head)));
        no_panic::render::findings(&head);
        no_panic::render::queries(&head);
        no_panic::render::build(&head);
        no_panic::render::junit(&names);
        no_panic::render::diff(&base, &head);
    }
}

fn example_texts() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                out.push(std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn pathological_inputs() {
    // Deep nesting, alias bombs, huge scalars and odd documents must not panic or hang.
    check_text("[".repeat(5000));
    check_text(format!("a: &a [{}]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b]\n", "x,".repeat(50)));
    check_text(format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {}}}\n", "x".repeat(1 << 20)));
    check_text("--- !!binary aGVsbG8=\n--- 12\n--- [1, 2]\n---\n".to_owned());
    check_text(
        "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: Pod}]}]\n"
            .to_owned(),
    );
}
