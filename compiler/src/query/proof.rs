//! Proofs: each link of a verdict, with the file and line of the resource
//! behind it. Configs carry `Meta` (kind, name) only; the namespace of the
//! target workload completes it, since every policy resource is local to
//! the namespace of the pods it governs.

use super::evaluate::{Decision, Gate, Unit, Verdict, route_meta};
use super::show_config::{authentication, grpc_rule, http_rule, networks, protocol};
use crate::findings::Span;
use crate::model::{Resource, Spec};
use crate::pipeline::Outcome;
use crate::resolve::index::Kind;
use crate::resolve::workload::{Workload, annotation_path};
use mesh_proxy_api::{AuthnMismatch, AuthzAttempt, AuthzSource, HttpRequest, InboundServer, Meta, NetworkMismatch};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub step: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub detail: String,
}

impl Step {
    pub fn plain(step: &'static str, detail: String) -> Self {
        Step { step, resource: None, file: None, line: None, detail }
    }
}

pub struct Prover<'o> {
    pub outcome: &'o Outcome,
}

impl<'o> Prover<'o> {
    pub fn new(outcome: &'o Outcome) -> Self {
        Prover { outcome }
    }

    fn resource(&self, i: usize) -> &'o Resource {
        &self.outcome.resolved.resources[i]
    }

    /// A step citing resource `i` at the field `path`.
    pub fn at(&self, step: &'static str, i: usize, path: &[&str], detail: String) -> Step {
        let r = self.resource(i);
        let span: Span = r.span_at(path);
        Step {
            step,
            resource: Some(ResourceRef {
                kind: r.id.kind.clone(),
                namespace: r.id.namespace.clone(),
                name: r.name().to_owned(),
            }),
            file: self.outcome.sources.get(span.source as usize).map(|s| s.name.clone()),
            line: Some(span.line),
            detail,
        }
    }

    /// The resource a config `Meta` came from, in namespace `ns`.
    pub fn locate(&self, ns: &str, meta: &Meta) -> Option<usize> {
        let kind = match (meta.kind.as_str(), meta.group.as_deref()) {
            ("server", _) => Kind::Server,
            ("authorizationpolicy", _) => Kind::AuthorizationPolicy,
            ("serverauthorization", _) => Kind::ServerAuthorization,
            ("httproute", Some("policy.linkerd.io")) => Kind::PolicyHttpRoute,
            ("httproute", _) => Kind::GatewayHttpRoute,
            ("grpcroute", _) => Kind::GrpcRoute,
            ("tlsroute", _) => Kind::TlsRoute,
            ("tcproute", _) => Kind::TcpRoute,
            _ => return None,
        };
        self.outcome.resolved.index.get(kind, ns, &meta.name)
    }

    fn workload(&self, wi: usize) -> &'o Workload {
        &self.outcome.resolved.workloads[wi]
    }

    pub fn target(&self, wi: usize) -> Step {
        let w = self.workload(wi);
        let detail = match &w.meshed {
            Ok(()) => format!("{} {}/{} is meshed; its proxy presents {}", w.kind, w.namespace, w.name, w.identity),
            Err(why) => format!(
                "{} {}/{} has no Linkerd proxy ({why}): nothing checks its inbound traffic",
                w.kind, w.namespace, w.name
            ),
        };
        self.at("target", w.resource, &[], detail)
    }

    /// How the port is governed: no proxy, a bypass, a Server or the default policy.
    pub fn gate(&self, wi: usize, port: u16, gate: &Gate) -> Step {
        let w = self.workload(wi);
        match gate {
            Gate::NoProxy => Step::plain("port", format!("port {port}: no proxy, so every client gets through")),
            Gate::SkippedPort => self.at(
                "port",
                w.resource,
                &annotation_path(&w.kind, "config.linkerd.io/skip-inbound-ports"),
                format!(
                    "port {port} is in skip-inbound-ports: traffic bypasses the proxy, no policy and no mTLS apply"
                ),
            ),
            Gate::SkippedSubnet(net) => self.at(
                "port",
                w.resource,
                &annotation_path(&w.kind, "config.linkerd.io/skip-subnets"),
                format!("the client address is in skip-subnets {net}: its traffic bypasses the proxy"),
            ),
            Gate::Server(s) if s.meta.kind == "server" => self.server(w, port, s),
            Gate::Server(s) => self.default_policy(w, port, s),
        }
    }

    fn server(&self, w: &Workload, port: u16, s: &InboundServer) -> Step {
        let detail =
            format!("Server {} selects this pod and port {port} (protocol {})", s.meta.name, protocol(&s.protocol));
        match self.locate(&w.namespace, &s.meta) {
            Some(i) => self.at("server", i, &["spec", "port"], detail),
            None => Step::plain("server", detail),
        }
    }

    fn default_policy(&self, w: &Workload, port: u16, s: &InboundServer) -> Step {
        let from = w.default_policy.from;
        if s.meta.name != w.default_policy.policy {
            // Linkerd tightens the policy on require-identity ports and names
            // the server after the result (resolve::defaults::effective_default_policy).
            let detail = format!(
                "no Server selects port {port}: the default policy `{}` ({from}) is tightened to `{}` because the port is in proxy-require-identity-inbound-ports, protocol {}",
                w.default_policy.policy,
                s.meta.name,
                protocol(&s.protocol)
            );
            let key = "config.linkerd.io/proxy-require-identity-inbound-ports";
            return self.at("server", w.resource, &annotation_path(&w.kind, key), detail);
        }
        let detail = format!(
            "no Server selects port {port}: the default policy `{}` applies ({from}), protocol {}",
            s.meta.name,
            protocol(&s.protocol)
        );
        const KEY: &str = "config.linkerd.io/default-inbound-policy";
        let r = &self.outcome.resolved;
        match from {
            "pod annotation" => self.at("server", w.resource, &annotation_path(&w.kind, KEY), detail),
            "namespace annotation" => match r.index.get(Kind::Namespace, "", &w.namespace) {
                Some(n) => self.at("server", n, &["metadata", "annotations", KEY], detail),
                None => Step::plain("server", format!("{detail}, from meshc.yaml `namespaces`")),
            },
            _ => Step::plain("server", format!("{detail}: meshc.yaml, the Linkerd HelmRelease, or Linkerd's default")),
        }
    }

    /// The route step: which route handled the traffic and why it won.
    pub fn route(&self, wi: usize, s: &InboundServer, d: &Decision, req: Option<&HttpRequest>) -> Option<Step> {
        let w = self.workload(wi);
        match (d.unit, d.route) {
            (Unit::Bypass, _) => None,
            (Unit::Connection, _) => Some(Step::plain(
                "route",
                "the connection is authorized as a whole, against the server's authorizations only (route authorizations never apply to TCP)".to_owned(),
            )),
            (_, None) => {
                let names: Vec<String> = (0..route_count(s)).map(|i| route_name(route_meta(s, i))).collect();
                let req = req.map_or_else(String::new, |r| format!(" {} {}", r.method, r.path));
                Some(Step::plain(
                    "route",
                    format!("no route matches the request{req}; the routes are: {}", names.join(", ")),
                ))
            }
            (_, Some((ri, rule))) => Some(self.matched_route(w, s, d, ri, rule)),
        }
    }

    fn matched_route(&self, w: &Workload, s: &InboundServer, d: &Decision, ri: usize, rule: Option<usize>) -> Step {
        let meta = route_meta(s, ri);
        let rules = rule_texts(s, ri);
        let mut detail = match rule {
            Some(rule) => {
                format!("{} rule {rule} matches ({})", route_name(meta), rules.get(rule).map_or("", String::as_str))
            }
            None => format!("{}: {}", route_name(meta), rules.join(" | ")),
        };
        if let Some(best) = d.ranked.first() {
            detail.push_str(&format!("; precedence {}", best.precedence));
        }
        let losers: Vec<String> = d
            .ranked
            .iter()
            .skip(1)
            .filter(|r| r.selection.route != ri)
            .map(|r| {
                format!("{} rule {} ({})", route_name(route_meta(s, r.selection.route)), r.selection.rule, r.precedence)
            })
            .collect();
        if !losers.is_empty() {
            detail.push_str(&format!(
                "; it wins over {} (Linkerd ranks hostname, then path match length, header count, query-param count, method; ties go to the oldest route, then by name)",
                losers.join(", ")
            ));
        }
        if meta.kind == "default" {
            detail.push_str(match meta.name.as_str() {
                "probe" => ": Linkerd's built-in probe route, present while no route is attached",
                _ => ": Linkerd's built-in route, present while no route is attached",
            });
            return match self.locate(&w.namespace, &s.meta) {
                Some(i) => self.at("route", i, &[], detail),
                None => Step::plain("route", detail),
            };
        }
        match self.locate(&w.namespace, meta) {
            Some(i) => {
                let path = rule.map(|r| r.to_string());
                let at: Vec<&str> = match &path {
                    Some(p) => vec!["spec", "rules", p.as_str()],
                    None => vec!["spec", "rules"],
                };
                self.at("route", i, &at, detail)
            }
            None => Step::plain("route", detail),
        }
    }

    /// One step per authorization tried, and the authentications behind the one that allowed.
    pub fn authorizations(&self, wi: usize, d: &Decision) -> Vec<Step> {
        let ns = &self.workload(wi).namespace;
        let mut out = Vec::new();
        for a in &d.attempts {
            out.push(self.attempt(ns, a));
        }
        if let Some(a) = d.attempts.last().filter(|a| a.matched()) {
            out.extend(self.authentications(ns, &a.authorization.meta));
        }
        if d.verdict == Verdict::Deny && d.attempts.len() == 1 {
            out.push(Step::plain(
                "authorization",
                "nothing authorizes this traffic but localhost: no policy grants it".to_owned(),
            ));
        }
        out
    }

    fn attempt(&self, ns: &str, a: &AuthzAttempt) -> Step {
        let authz = a.authorization;
        let whom = format!("{} from {}", authentication(&authz.authentication), networks(&authz.networks));
        let source = match a.source {
            AuthzSource::Route(_) => "route authorization",
            AuthzSource::Server(_) => "server authorization",
            AuthzSource::Localhost => "localhost authorization",
        };
        let name = match authz.meta.kind.as_str() {
            "default" => format!("default:{}", authz.meta.name),
            _ => authz.meta.name.clone(),
        };
        let detail = if a.matched() {
            format!("{source} {name} allows: {whom}")
        } else {
            let mut why = Vec::new();
            if let Some(n) = a.network {
                why.push(network_reason(n));
            }
            if let Some(m) = a.authentication {
                why.push(authn_reason(m).to_owned());
            }
            format!("{source} {name} does not match ({}): it allows {whom}", why.join("; "))
        };
        match self.locate(ns, &authz.meta) {
            Some(i) => self.at("authorization", i, &[], detail),
            None => Step::plain("authorization", detail),
        }
    }

    /// The authentication resources an AuthorizationPolicy requires.
    pub fn authentications(&self, ns: &str, meta: &Meta) -> Vec<Step> {
        let Some(pi) = self.locate(ns, meta) else { return Vec::new() };
        let Spec::AuthorizationPolicy(spec) = &self.resource(pi).spec else { return Vec::new() };
        let r = &self.outcome.resolved;
        spec.required_authentication_refs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let ref_ns = a.namespace.as_deref().unwrap_or(ns);
                let kind = match a.kind.to_ascii_lowercase().as_str() {
                    "meshtlsauthentication" => Some(Kind::MeshTls),
                    "networkauthentication" => Some(Kind::NetworkAuthn),
                    _ => None,
                };
                let detail = format!("{} requires {} {ref_ns}/{}", meta.name, a.kind, a.name);
                match kind.and_then(|k| r.index.get(k, ref_ns, &a.name)) {
                    Some(ai) => self.at("authentication", ai, &[], detail),
                    None => {
                        let idx = i.to_string();
                        self.at("authentication", pi, &["spec", "requiredAuthenticationRefs", &idx], detail)
                    }
                }
            })
            .collect()
    }
}

pub fn route_count(s: &InboundServer) -> usize {
    if s.protocol == mesh_proxy_api::Protocol::Grpc { s.grpc_routes.len() } else { s.http_routes.len() }
}

pub fn route_name(m: &Meta) -> String {
    match m.kind.as_str() {
        "default" => format!("default:{}", m.name),
        "grpcroute" => format!("GRPCRoute {}", m.name),
        _ => format!("HTTPRoute {}", m.name),
    }
}

/// Each rule of a route, in words.
pub fn rule_texts(s: &InboundServer, ri: usize) -> Vec<String> {
    if s.protocol == mesh_proxy_api::Protocol::Grpc {
        s.grpc_routes[ri].rules.iter().map(grpc_rule).collect()
    } else {
        s.http_routes[ri].rules.iter().map(http_rule).collect()
    }
}

fn network_reason(n: NetworkMismatch) -> String {
    match n {
        NetworkMismatch::NotListed => "the client address is in none of its networks".to_owned(),
        NetworkMismatch::Excepted { net, except } => format!("the client address is in {net} but excepted by {except}"),
    }
}

fn authn_reason(m: AuthnMismatch) -> &'static str {
    match m {
        AuthnMismatch::TlsRequired => "it requires mTLS and the client is plaintext",
        AuthnMismatch::IdentityRequired => "it requires a client identity and the client presents none",
        AuthnMismatch::IdentityNotAllowed => "the client identity is not one it names",
        AuthnMismatch::UriIdentityNeedsExactMatch => "a URI identity must be listed exactly; suffixes do not apply",
    }
}
