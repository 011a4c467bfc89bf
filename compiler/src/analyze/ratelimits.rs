//! Findings about HTTPLocalRateLimitPolicies that Linkerd accepts but that
//! limit nothing, or less than written.

use super::policies::KnownIdentities;
use crate::findings::{Code, Finding, Referent};
use crate::model::Spec;
use crate::model::policy::{HttpLocalRateLimitPolicySpec, group_is};
use crate::resolve::Resolved;
use crate::resolve::index::Kind;
use mesh_proxy_api::IdentityMatch;

pub fn check(r: &Resolved, findings: &mut Vec<Finding>) {
    let known = KnownIdentities::new(r);
    for ((ns, server), i) in r.rate_limits.iter() {
        let Spec::HttpLocalRateLimitPolicy(p) = &r.resources[i].spec else { continue };
        inert(r, i, ns, server, findings);
        unknown_clients(r, i, p, &known, findings);
    }
}

/// A policy on a Server that selects no pod, or that is not HTTP: the policy
/// controller sends the limit only in the HTTP protocols of a Server
/// (`policy-controller/grpc/src/inbound.rs`, `to_server`: Detect, HTTP/1,
/// HTTP/2, gRPC), so an opaque or TLS Server never limits requests.
fn inert(r: &Resolved, i: usize, ns: &str, server: &str, findings: &mut Vec<Finding>) {
    let Some(s) = r.index.get(Kind::Server, ns, server) else { return };
    let Spec::Server(spec) = &r.resources[s].spec else { return };
    let why = match spec.proxy_protocol.as_deref() {
        Some(p @ ("opaque" | "TLS")) => format!("its proxyProtocol is {p}, and Linkerd limits HTTP requests only"),
        _ if !r.bindings.selected.contains_key(&s) && spec.pod_selector.is_some() => "it selects no pod".to_owned(),
        _ => return,
    };
    let res = &r.resources[i];
    let msg =
        format!("HTTPLocalRateLimitPolicy {} targets Server {ns}/{server}, but {why}: it limits nothing", res.name());
    let span = res.span_at(&["spec", "targetRef", "name"]);
    let f = Finding::new(Code::InertPolicy, span, msg).resource(res.id.clone());
    findings.push(f.referent(Referent::object("Server", ns, server)));
}

/// Override clientRefs are ServiceAccounts (the namespace defaults to the
/// policy's), matched by the identity their pods present.
fn unknown_clients(
    r: &Resolved,
    i: usize,
    p: &HttpLocalRateLimitPolicySpec,
    known: &KnownIdentities,
    findings: &mut Vec<Finding>,
) {
    let res = &r.resources[i];
    for (o, ovr) in p.overrides.iter().enumerate() {
        for (c, client) in ovr.client_refs.iter().enumerate() {
            if !(client.kind == "ServiceAccount" && group_is(client.group.as_deref(), "core")) {
                // The controller's client_ref bails: the whole policy is dropped from its index.
                let msg = format!(
                    "HTTPLocalRateLimitPolicy {} override clientRef kind `{}` is not a ServiceAccount; Linkerd's \
                     policy controller fails to read the policy, so it limits nothing",
                    res.name(),
                    client.kind
                );
                let (o, c) = (o.to_string(), c.to_string());
                let span = res.span_at(&["spec", "overrides", &o, "clientRefs", &c, "kind"]);
                findings.push(Finding::new(Code::InertPolicy, span, msg).resource(res.id.clone()));
                continue;
            }
            let ns = client.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(res.namespace());
            let id = r.settings.identity(ns, &client.name);
            if known.matches(&IdentityMatch::Exact(id.clone())) {
                continue;
            }
            let msg = format!(
                "{} names identity {id} in an override, which no ServiceAccount or meshed workload in the \
                 repository has; fine for clients defined elsewhere, otherwise a typo, and that client gets the \
                 identity limit instead",
                res.id
            );
            let (o, c) = (o.to_string(), c.to_string());
            let span = res.span_at(&["spec", "overrides", &o, "clientRefs", &c, "name"]);
            let f = Finding::new(Code::IdentityMatchesNothing, span, msg).resource(res.id.clone());
            findings.push(f.referent(Referent::Identity(id)));
        }
    }
}
