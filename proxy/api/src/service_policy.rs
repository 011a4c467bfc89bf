//! One Service's outbound policy, signed once and shared by every client
//! that sees it alike, instead of repeated in each client's ProxyConfig.
//!
//! Linkerd's proxies ask the policy controller per destination, with their
//! own namespace as context (docs/semantics/outbound-sharing.md): the
//! routes and ServiceProfile of the Service's own namespace (the
//! producer's) apply to clients in every namespace; routes and a
//! ServiceProfile in the client's namespace (the consumer's, a TrafficSplit
//! included) change it for that namespace alone. A [`ServicePolicy`] is
//! one such view: the [`OutboundService`] as meshc lowers it, and the
//! client namespaces it is for ([`Audience`]). A client's effective
//! outbound policy is its config's own part plus, per Service, the view for
//! its namespace ([`effective_outbound`]); the per-request decisions then
//! run on that [`Outbound`] unchanged, in the proxy and in meshc alike.

use crate::envelope::{self, Envelope, VerifyError, VerifyingKey};
use crate::outbound::{Outbound, OutboundService};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// DSSE payloadType of a signed [`ServicePolicy`].
pub const SERVICE_POLICY_PAYLOAD_TYPE: &str = "application/vnd.meshc.servicepolicy+json;version=v1alpha1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePolicy {
    pub api_version: String,
    /// Which client namespaces see the Service as `service` says.
    pub audience: Audience,
    /// The Service's policy for those clients (its namespace and name inside).
    pub service: OutboundService,
    /// The signing build's sequence, as in `ProxyConfig::sequence`: a
    /// holder refuses an older one (`crate::sequence`).
    #[serde(default, skip_serializing_if = "crate::sequence::is_unset")]
    pub sequence: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Audience {
    /// Clients in every namespace that has no [`Audience::Namespace`] view
    /// of this Service: the producer's routes, profile and annotations.
    AllNamespaces,
    /// Clients in this namespace: its consumer routes next to the
    /// producer's, or its ServiceProfile (or TrafficSplit) instead of them.
    Namespace { namespace: String },
}

impl Audience {
    /// Whether clients in `client_ns` are among it.
    pub fn includes(&self, client_ns: &str) -> bool {
        match self {
            Audience::AllNamespaces => true,
            Audience::Namespace { namespace } => namespace == client_ns,
        }
    }
}

impl ServicePolicy {
    /// Whether clients in `client_ns` may use this view at all (a
    /// namespace's own view still wins over [`Audience::AllNamespaces`]).
    pub fn applies_to(&self, client_ns: &str) -> bool {
        self.audience.includes(client_ns)
    }

    /// The name of its object in the Service's namespace: the Service's
    /// for the view every namespace shares, `<service>.<client namespace>`
    /// for a namespace's own (a Service's name is a DNS label, so the two
    /// never meet).
    pub fn object_name(&self) -> String {
        object_name(&self.service.name, &self.audience)
    }

    /// Signs this policy (its sequence already set) with the ProxyConfig key.
    pub fn sign(&self, key: &envelope::SigningKey) -> Result<Envelope, String> {
        envelope::sign_value(self, SERVICE_POLICY_PAYLOAD_TYPE, key)
    }

    /// The policy an envelope signs, if a trusted key signed it.
    pub fn open(env: &Envelope, trusted: &[VerifyingKey]) -> Result<ServicePolicy, VerifyError> {
        envelope::open_value(env, SERVICE_POLICY_PAYLOAD_TYPE, trusted)
    }
}

/// [`ServicePolicy::object_name`] from the Service's name and the audience.
pub fn object_name(service: &str, audience: &Audience) -> String {
    match audience {
        Audience::AllNamespaces => service.to_owned(),
        Audience::Namespace { namespace } => format!("{service}.{namespace}"),
    }
}

/// The digest that names the set of shared views a namespace's clients
/// use: SHA-256 over the sorted, distinct payload digests (`sha256:<hex>`,
/// one per line) of every view that [`ServicePolicy::applies_to`] the
/// namespace. meshc signs it into each config of the namespace
/// ([`Outbound::service_policies`]); the runtime and the proxy compute it
/// over what they hold, so a set with a view missing, added or from
/// another build is not the one the config was verified with.
pub fn set_digest<'a>(doc_digests: impl IntoIterator<Item = &'a str>) -> String {
    let mut all: Vec<&str> = doc_digests.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    let mut text = String::with_capacity(all.len() * 72);
    for d in all {
        text.push_str(d);
        text.push('\n');
    }
    envelope::digest(text.as_bytes())
}

/// The answer a proxy reads its shared policies from, the runtime's
/// (`GET /v1/service-policies`) and a build directory's alike:
/// `{"policies": [object, …]}`, each object the JSON text of one signed
/// ServicePolicy object, in the order given.
pub fn answer_body<'a>(objects: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut body = br#"{"policies":["#.to_vec();
    for (i, object) in objects.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(object);
    }
    body.extend_from_slice(b"]}");
    body
}

/// Per Service, the view clients in `client_ns` get: their namespace's own
/// if there is one, else the one for all namespaces. Sorted by namespace
/// then name, as [`Outbound::services`] is.
pub fn services_for<'a>(
    policies: impl IntoIterator<Item = &'a ServicePolicy>,
    client_ns: &str,
) -> Vec<OutboundService> {
    let mut chosen: BTreeMap<(&str, &str), &ServicePolicy> = BTreeMap::new();
    for p in policies.into_iter().filter(|p| p.applies_to(client_ns)) {
        let key = (p.service.namespace.as_str(), p.service.name.as_str());
        let own_namespace = matches!(p.audience, Audience::Namespace { .. });
        match chosen.get(&key) {
            Some(held) if matches!(held.audience, Audience::Namespace { .. }) || !own_namespace => {}
            _ => {
                chosen.insert(key, p);
            }
        }
    }
    chosen.into_values().map(|p| p.service.clone()).collect()
}

/// What a workload in `client_ns` enforces outbound: its config's own part
/// (default opaque ports, egress, and any Service it lists itself, which
/// wins) plus the shared views of every other Service for its namespace.
pub fn effective_outbound<'a>(
    own: &Outbound,
    policies: impl IntoIterator<Item = &'a ServicePolicy>,
    client_ns: &str,
) -> Outbound {
    let shared = services_for(policies, client_ns);
    // Field by field: `..own.clone()` would copy its services a second time.
    let Outbound { services: own_services, default_opaque_ports, egress, service_policies: _ } = own;
    let mut services = own_services.clone();
    services.extend(shared.into_iter().filter(|s| own.service(&s.namespace, &s.name).is_none()));
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Outbound {
        services,
        default_opaque_ports: default_opaque_ports.clone(),
        egress: egress.clone(),
        service_policies: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{OutboundPort, OutboundProtocol};

    fn service(ns: &str, name: &str, port: u16) -> OutboundService {
        OutboundService {
            namespace: ns.into(),
            name: name.into(),
            ports: vec![OutboundPort {
                port,
                protocol: OutboundProtocol::Http1,
                http_routes: vec![],
                grpc_routes: vec![],
                tls_routes: vec![],
                tcp_route: None,
            }],
            timeouts: Default::default(),
            retry: None,
            failure_accrual: None,
            profile: None,
        }
    }

    fn policy(audience: Audience, svc: OutboundService) -> ServicePolicy {
        ServicePolicy { api_version: "meshc.io/v1alpha1".into(), audience, service: svc, sequence: 7 }
    }

    fn ns(n: &str) -> Audience {
        Audience::Namespace { namespace: n.into() }
    }

    #[test]
    fn a_namespace_view_wins_for_that_namespace_only() {
        let all = policy(Audience::AllNamespaces, service("shop", "api", 80));
        let web = policy(ns("web"), service("shop", "api", 8080));
        for order in [[&all, &web], [&web, &all]] {
            assert_eq!(services_for(order, "web"), vec![service("shop", "api", 8080)]);
            assert_eq!(services_for(order, "other"), vec![service("shop", "api", 80)]);
        }
    }

    #[test]
    fn a_namespace_view_alone_is_for_its_namespace() {
        let web = policy(ns("web"), service("shop", "api", 8080));
        assert_eq!(services_for([&web], "web").len(), 1);
        assert!(services_for([&web], "shop").is_empty());
    }

    #[test]
    fn effective_outbound_keeps_own_part_and_is_sorted() {
        let own = Outbound {
            services: vec![service("b", "own", 1)],
            default_opaque_ports: vec![crate::PortRange { start: 25, end: 25 }],
            ..Default::default()
        };
        let shared = [
            policy(Audience::AllNamespaces, service("c", "z", 2)),
            policy(Audience::AllNamespaces, service("a", "y", 3)),
        ];
        let out = effective_outbound(&own, &shared, "web");
        let names: Vec<&str> = out.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["y", "own", "z"]);
        assert_eq!(out.default_opaque_ports, own.default_opaque_ports);
        assert!(out.service("c", "z").is_some(), "binary search needs the sorted order");
    }

    #[test]
    fn a_service_the_config_lists_itself_wins() {
        let own = Outbound { services: vec![service("shop", "api", 1)], ..Default::default() };
        let shared = [policy(Audience::AllNamespaces, service("shop", "api", 2))];
        assert_eq!(effective_outbound(&own, &shared, "web").services, vec![service("shop", "api", 1)]);
    }

    #[test]
    fn the_set_digest_ignores_order_and_repeats_and_sees_any_change() {
        let (a, b) = ("sha256:aa", "sha256:bb");
        assert_eq!(set_digest([a, b]), set_digest([b, a, b]));
        assert_ne!(set_digest([a, b]), set_digest([a]));
        assert_ne!(set_digest([]), set_digest([a]));
        assert!(set_digest([a]).starts_with("sha256:"));
    }

    #[test]
    fn signed_policies_open_with_the_key_and_not_as_configs() {
        let key = envelope::SigningKey::from_bytes(&[9; 32]);
        let p = policy(ns("web"), service("shop", "api", 80));
        let env = p.sign(&key).expect("signs");
        assert_eq!(ServicePolicy::open(&env, &[key.verifying_key()]), Ok(p));
        let other = envelope::SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(ServicePolicy::open(&env, &[other]).is_err());
        assert!(envelope::verify(&env, &[key.verifying_key()]).is_err(), "payload type keeps kinds apart");
    }

    #[test]
    fn answers_list_the_objects_in_the_order_given() {
        assert_eq!(answer_body([]), br#"{"policies":[]}"#);
        let body = answer_body([&br#"{"a":1}"#[..], br#"{"b":2}"#]);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed, serde_json::json!({"policies": [{"a": 1}, {"b": 2}]}));
    }
}
