//! A config that names shared ServicePolicies goes in force only with
//! exactly that set, composed with it.

use super::*;
use crate::state;
use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::envelope::{SigningKey, payload_digest, sign};
use mesh_proxy_api::outbound::{OutboundPort, OutboundProtocol, OutboundService};
use mesh_proxy_api::service_policy::{Audience, ServicePolicy, set_digest};
use serde_json::json;

const WORKLOAD: &str = "Deployment/shop/web";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn policy(name: &str, audience: Audience) -> ServicePolicy {
    let port = OutboundPort {
        port: 80,
        protocol: OutboundProtocol::Http1,
        http_routes: vec![],
        grpc_routes: vec![],
        tls_routes: vec![],
        tcp_route: None,
    };
    let service = OutboundService {
        namespace: "shop".into(),
        name: name.into(),
        ports: vec![port],
        timeouts: Default::default(),
        retry: None,
        failure_accrual: None,
        profile: None,
    };
    ServicePolicy { api_version: "meshc.io/v1alpha1".into(), audience, service, sequence: 5 }
}

/// The runtime's answer for `policies`, and the digest of the set the
/// namespace `shop` sees among them.
fn answer(policies: &[ServicePolicy]) -> (Vec<u8>, String) {
    let envelopes: Vec<_> = policies.iter().map(|p| p.sign(&key()).unwrap()).collect();
    let digests: Vec<String> = envelopes
        .iter()
        .zip(policies)
        .filter(|(_, p)| p.applies_to("shop"))
        .map(|(e, _)| payload_digest(e).unwrap())
        .collect();
    let objects: Vec<_> = envelopes.iter().map(|e| json!({"spec": {"envelope": e}})).collect();
    (serde_json::to_vec(&json!({ "policies": objects })).unwrap(), set_digest(digests.iter().map(String::as_str)))
}

fn config(set: Option<String>) -> ProxyConfig {
    let mut c: ProxyConfig = serde_json::from_value(json!({
        "apiVersion": "meshc.io/v1alpha1",
        "workload": {"kind": "Deployment", "namespace": "shop", "name": "web"},
        "identity": "web.shop.serviceaccount.identity.linkerd.cluster.local",
        "inbound": {"ports": [], "defaultServer": {
            "meta": {"kind": "default", "name": "deny"}, "protocol": {"kind": "opaque"}, "authorizations": []}},
        "sequence": 5
    }))
    .unwrap();
    c.outbound.service_policies = set;
    c
}

fn envelope_bytes(c: &ProxyConfig) -> Vec<u8> {
    serde_json::to_vec(&sign(c, &key())).unwrap()
}

#[test]
fn a_config_waits_for_its_set_and_is_composed_with_it() {
    let verifier = Verifier { trusted: vec![key().verifying_key()], workload: WORKLOAD.into() };
    let (tx, rx) = state::channel();
    let metrics = Metrics::new();
    let mut loader = Loader::new(&verifier, &tx, &metrics);
    let other_ns = policy("db", Audience::Namespace { namespace: "elsewhere".into() });
    let (right, digest) = answer(&[policy("api", Audience::AllNamespaces), other_ns.clone()]);
    let (wrong, _) = answer(&[policy("cart", Audience::AllNamespaces)]);

    loader.offer_config(&envelope_bytes(&config(Some(digest)))).unwrap();
    assert!(state::current(&rx).is_none(), "not enforced without the set it names");
    loader.offer_policies(&wrong).unwrap();
    assert!(state::current(&rx).is_none(), "another set is not the one it names");
    loader.offer_policies(&right).unwrap();
    let loaded = state::current(&rx).expect("in force with its set");
    let names: Vec<&str> = loaded.config.outbound.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api"], "the views of its namespace, composed; not another namespace's");
    assert_eq!(loaded.config.outbound.service_policies, None);
}

#[test]
fn a_tampered_policy_refuses_the_answer() {
    let verifier = Verifier { trusted: vec![key().verifying_key()], workload: WORKLOAD.into() };
    let (tx, _rx) = state::channel();
    let metrics = Metrics::new();
    let mut loader = Loader::new(&verifier, &tx, &metrics);
    let env = policy("api", Audience::AllNamespaces).sign(&SigningKey::from_bytes(&[12; 32])).unwrap();
    let bytes = serde_json::to_vec(&json!({"policies": [{"spec": {"envelope": env}}]})).unwrap();
    assert_eq!(loader.offer_policies(&bytes).unwrap_err().reason(), "untrusted-key");
    assert_eq!(loader.offer_policies(b"{}").unwrap_err().reason(), "parse");
}

#[test]
fn a_config_that_stands_alone_needs_no_set() {
    let verifier = Verifier { trusted: vec![key().verifying_key()], workload: WORKLOAD.into() };
    let (tx, rx) = state::channel();
    let metrics = Metrics::new();
    Loader::new(&verifier, &tx, &metrics).offer_config(&envelope_bytes(&config(None))).unwrap();
    assert!(state::current(&rx).is_some());
}
