//! No input panics: arbitrary bytes, arbitrary Kubernetes-shaped YAML, and
//! mutations of the real examples go through the loader and the whole
//! pipeline; generated repositories go through every renderer and `build`.

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

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
        names in prop::collection::vec(".{0,16}", 0..4),
    ) {
        let files = example_texts();
        let example = &files[(seed % files.len() as u64) as usize];
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
