//! A config that names shared ServicePolicies goes in force only with
//! exactly that set, composed with it.

use super::*;
use crate::state;
use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::envelope::{SigningKey, payload_digest, sign};
use mesh_proxy_api::outbound::{OutboundPort, OutboundProtocol, OutboundService};
use mesh_proxy_api::service_policy::{Audience, ServicePolicy, set_digest};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

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

/// A source that counts the `next()` calls it starts, and answers each
/// with what the test sends.
struct Gated {
    started: Arc<AtomicUsize>,
    answers: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl ConfigSource for Gated {
    async fn next(&mut self) -> Result<Vec<u8>, SourceError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        match self.answers.recv().await {
            Some(bytes) => Ok(bytes),
            None => std::future::pending().await,
        }
    }
}

fn gated() -> (Gated, Arc<AtomicUsize>, mpsc::UnboundedSender<Vec<u8>>) {
    let started = Arc::new(AtomicUsize::new(0));
    let (send, answers) = mpsc::unbounded_channel();
    (Gated { started: started.clone(), answers }, started, send)
}

/// A runtime long poll for the config stays the one call in progress while
/// the shared policies change: it is not cancelled and sent again.
#[tokio::test]
async fn a_policy_change_leaves_the_config_call_in_progress() {
    let verifier = Verifier { trusted: vec![key().verifying_key()], workload: WORKLOAD.into() };
    let (tx, _rx) = state::channel();
    let (configs, config_calls, _config_answers) = gated();
    let (policies, policy_calls, policy_answers) = gated();
    let shutdown = CancellationToken::new();
    let run =
        tokio::spawn(run_with_policies(configs, policies, verifier, tx, Arc::new(Metrics::new()), shutdown.clone()));
    let (set, _) = answer(&[policy("api", Audience::AllNamespaces)]);
    for _ in 0..3 {
        policy_answers.send(set.clone()).unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while policy_calls.load(Ordering::SeqCst) < 4 {
        assert!(tokio::time::Instant::now() < deadline, "the three policy answers were not taken");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(config_calls.load(Ordering::SeqCst), 1, "the config call was restarted");
    shutdown.cancel();
    run.await.unwrap();
}
