//! What the API server and Linkerd's admission webhook reject or drop, beyond
//! types: values outside an enum, and fields that only some served versions
//! have. A pruned field silently does nothing: `accessPolicy` on a v1beta2
//! Server is dropped and the Server denies.

use super::{Resource, Spec};
use crate::findings::{Code, Finding};
use crate::model::policy::{HttpLocalRateLimitPolicySpec, POLICY_GROUP, ServerSpec, group_is};
use crate::model::stream_route::StreamRoute;

/// Reports and applies what the cluster would do: prunes fields the version
/// lacks, and returns false when the object would be rejected outright.
pub fn check(r: &mut Resource, findings: &mut Vec<Finding>) -> bool {
    let mut spec = std::mem::replace(&mut r.spec, Spec::Namespace);
    let accepted = match &mut spec {
        Spec::Server(s) => {
            prune_server(r, s, findings);
            server_values(r, s, findings)
        }
        Spec::HttpLocalRateLimitPolicy(p) => rate_limit_values(r, p, findings),
        Spec::HttpRoute(h) if r.group == "policy.linkerd.io" => {
            prune_linkerd_route(r, h, findings);
            super::egress_admission::route_parent_ports(r, &h.parent_refs, findings)
        }
        Spec::HttpRoute(h) => super::egress_admission::route_parent_ports(r, &h.parent_refs, findings),
        Spec::GrpcRoute(g) => super::egress_admission::route_parent_ports(r, &g.parent_refs, findings),
        Spec::EgressNetwork(e) => super::egress_admission::egress_network_values(r, e, findings),
        Spec::TlsRoute(t) => super::stream_admission::admit(r, StreamRoute::Tls(t), findings),
        Spec::TcpRoute(t) => super::stream_admission::admit(r, StreamRoute::Tcp(t), findings),
        Spec::TrafficSplit(t) => super::traffic_split::admit(r, t, findings),
        _ => true,
    };
    r.spec = spec;
    accepted
}

fn prune_server(r: &Resource, s: &mut ServerSpec, findings: &mut Vec<Finding>) {
    let v = r.version.as_str();
    if s.access_policy.is_some() && v != "v1beta3" {
        pruned(r, &["spec", "accessPolicy"], "v1beta3", "the Server keeps its default `deny`", findings);
        s.access_policy = None;
    }
    if s.external_workload_selector.is_some() && matches!(v, "v1alpha1" | "v1beta1") {
        let effect = "it selects no external workloads";
        pruned(r, &["spec", "externalWorkloadSelector"], "v1beta2", effect, findings);
        s.external_workload_selector = None;
    }
}

fn prune_linkerd_route(r: &Resource, h: &mut crate::model::route::HttpRouteSpec, findings: &mut Vec<Finding>) {
    let v = r.version.as_str();
    for (i, rule) in h.rules.iter_mut().flatten().enumerate() {
        let idx = i.to_string();
        if rule.timeouts.is_some() && v != "v1beta3" {
            pruned(r, &["spec", "rules", &idx, "timeouts"], "v1beta3", "no timeout applies", findings);
            rule.timeouts = None;
        }
        if !rule.backend_refs.is_empty() && matches!(v, "v1alpha1" | "v1beta1") {
            let effect = "requests go to the parent";
            pruned(r, &["spec", "rules", &idx, "backendRefs"], "v1beta2", effect, findings);
            rule.backend_refs.clear();
        }
    }
}

fn pruned(r: &Resource, path: &[&str], since: &str, effect: &str, findings: &mut Vec<Finding>) {
    let field = path.last().copied().unwrap_or_default();
    let msg = format!(
        "`{field}` does not exist in {}/{} {} (added in {since}); the API server drops it, so {effect}",
        r.group, r.version, r.id.kind
    );
    let hint = format!("use apiVersion {}/{since} or later", r.group);
    findings.push(Finding::new(Code::SchemaViolation, r.span_at(path), msg).resource(r.id.clone()).hint(hint));
}

const PROXY_PROTOCOLS: &[&str] = &["unknown", "HTTP/1", "HTTP/2", "gRPC", "opaque", "TLS"];

/// Enum values and the selector rule; false when the Server is rejected.
fn server_values(r: &Resource, s: &ServerSpec, findings: &mut Vec<Finding>) -> bool {
    let mut ok = true;
    let mut reject = |path: &[&str], msg: String| {
        ok = false;
        let msg = format!("{msg}; it is left out of the analysis");
        findings.push(Finding::new(Code::SchemaViolation, r.span_at(path), msg).resource(r.id.clone()));
    };
    if let Some(p) = s.proxy_protocol.as_deref().filter(|p| !PROXY_PROTOCOLS.contains(p)) {
        let allowed = PROXY_PROTOCOLS.join(", ");
        let msg = format!(
            "Server {} proxyProtocol `{p}` is not one of {allowed}; the admission webhook rejects the Server",
            r.name()
        );
        reject(&["spec", "proxyProtocol"], msg);
    }
    if let Some(p) = s.access_policy.as_deref().filter(|p| !crate::settings::DEFAULT_POLICIES.contains(p)) {
        let allowed = crate::settings::DEFAULT_POLICIES.join(", ");
        let msg = format!(
            "Server {} accessPolicy `{p}` is not a default policy ({allowed}); the admission webhook rejects the Server",
            r.name()
        );
        reject(&["spec", "accessPolicy"], msg);
    }
    let selectors = usize::from(s.pod_selector.is_some()) + usize::from(s.external_workload_selector.is_some());
    if selectors != 1 {
        let msg = format!(
            "Server {} must set exactly one of podSelector and externalWorkloadSelector; the API server rejects it",
            r.name()
        );
        reject(&["spec"], msg);
    }
    ok
}

/// Linkerd's admission webhook (`policy-controller/runtime/src/admission.rs`,
/// `Validate<RateLimitPolicySpec>`): the target is a Server, every rate is
/// above zero, and no identity or override rate exceeds the total.
fn rate_limit_values(r: &Resource, p: &HttpLocalRateLimitPolicySpec, findings: &mut Vec<Finding>) -> bool {
    let mut ok = true;
    let mut reject = |path: &[&str], msg: String| {
        ok = false;
        let msg = format!("{msg}; the admission webhook rejects the policy, so it limits nothing");
        findings.push(Finding::new(Code::SchemaViolation, r.span_at(path), msg).resource(r.id.clone()));
    };
    let t = &p.target_ref;
    if !(t.kind.eq_ignore_ascii_case("Server") && group_is(t.group.as_deref(), POLICY_GROUP)) {
        reject(
            &["spec", "targetRef", "kind"],
            format!("targetRef kind `{}` is not a policy.linkerd.io Server", t.kind),
        );
    }
    let total = p.total.as_ref().map(|l| l.requests_per_second);
    let mut limits: Vec<(Vec<String>, &str, u32)> = Vec::new();
    limits.extend(total.map(|t| (vec!["total".to_owned()], "total", t)));
    limits.extend(p.identity.as_ref().map(|l| (vec!["identity".to_owned()], "identity", l.requests_per_second)));
    for (i, o) in p.overrides.iter().enumerate() {
        limits.push((vec!["overrides".to_owned(), i.to_string()], "override", o.requests_per_second));
    }
    for (field, what, rps) in &limits {
        let mut path = vec!["spec"];
        path.extend(field.iter().map(String::as_str));
        path.push("requestsPerSecond");
        if *rps == 0 {
            reject(&path, format!("{what} requestsPerSecond is 0; it must be greater than 0"));
        } else if let Some(total) = total.filter(|t| *what != "total" && rps > t) {
            reject(&path, format!("{what} requestsPerSecond {rps} is above the total {total}"));
        }
    }
    ok
}
