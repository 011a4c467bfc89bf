//! Inbound route attachment (§7.1): which HTTPRoutes and GRPCRoutes a
//! Server accepts, computed offline as Linkerd's status controller would
//! (git has no `.status`), and their conversion to the proxy's form.

use super::index::{Index, Kind};
use crate::findings::{Code, Finding, Referent};
use crate::model::route::{
    GrpcRouteMatch, GrpcRouteSpec, HttpRouteMatch, HttpRouteRule, HttpRouteSpec, ParentRef, RouteFilter, ValueMatch,
};
use crate::model::{Resource, Spec};
use mesh_proxy_api as api;
use std::collections::{BTreeMap, HashMap};

/// A route converted for one Server (authorizations are added later).
#[derive(Clone, Debug)]
pub enum Converted {
    Http(api::HttpRoute),
    Grpc(api::GrpcRoute),
}

#[derive(Default)]
pub struct Attached {
    /// Server resource → routes (resource indices) accepted on it, in Linkerd's order.
    pub http: HashMap<usize, Vec<usize>>,
    pub grpc: HashMap<usize, Vec<usize>>,
    pub converted: HashMap<usize, Converted>,
}

fn is_server_parent(p: &ParentRef) -> bool {
    p.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("Server"))
        && p.group.as_deref().is_some_and(|g| g.eq_ignore_ascii_case("policy.linkerd.io"))
}

fn parent_refs(r: &Resource) -> &[ParentRef] {
    match &r.spec {
        Spec::HttpRoute(h) => &h.parent_refs,
        Spec::GrpcRoute(g) => &g.parent_refs,
        _ => &[],
    }
}

pub fn attach(resources: &[Resource], index: &Index, findings: &mut Vec<Finding>) -> Attached {
    let mut out = Attached::default();
    let kinds = [Kind::GrpcRoute, Kind::PolicyHttpRoute, Kind::GatewayHttpRoute];
    let mut candidates: BTreeMap<usize, Vec<usize>> = BTreeMap::new(); // server → routes
    for &ri in kinds.iter().flat_map(|k| index.all(*k)) {
        let r = &resources[ri];
        if let Some(servers) = server_parents(r, index, findings) {
            for s in servers {
                candidates.entry(s).or_default().push(ri);
            }
        }
    }
    for (server, routes) in candidates {
        let has_grpc = routes.iter().any(|&ri| matches!(resources[ri].spec, Spec::GrpcRoute(_)));
        for ri in routes {
            let r = &resources[ri];
            let is_grpc = matches!(r.spec, Spec::GrpcRoute(_));
            if has_grpc && !is_grpc {
                let msg = format!(
                    "{} is not accepted by Server {}: a GRPCRoute attached to the same Server takes precedence (RouteReasonConflicted)",
                    r.id,
                    resources[server].name()
                );
                findings.push(not_accepted(r, msg));
                continue;
            }
            if let Some(why) = protocol_mismatch(&resources[server], is_grpc) {
                let msg = format!(
                    "{} is accepted by Server {} but never used: {why}, so requests are handled by the Server's default routes",
                    r.id,
                    resources[server].name()
                );
                findings.push(not_accepted(r, msg));
                continue;
            }
            let converted = match convert(r) {
                Ok(c) => c,
                Err(why) => {
                    let msg = format!(
                        "{} is ignored by Linkerd: {why}; it is admitted and may even show Accepted, but enforces nothing",
                        r.id
                    );
                    findings.push(not_accepted(r, msg));
                    continue;
                }
            };
            out.converted.insert(ri, converted);
            let list = if is_grpc { out.grpc.entry(server) } else { out.http.entry(server) };
            list.or_default().push(ri);
        }
    }
    for list in out.http.values_mut().chain(out.grpc.values_mut()) {
        list.sort_by(|&a, &b| route_order(&resources[a], &resources[b]));
    }
    out
}

/// Why a route kind is not sent for the Server's protocol (§7.1,
/// `grpc/src/inbound.rs::to_server`); the status controller does not check
/// this, so the route still shows Accepted.
fn protocol_mismatch(server: &Resource, is_grpc: bool) -> Option<String> {
    let Spec::Server(spec) = &server.spec else { return None };
    match (spec.proxy_protocol.as_deref(), is_grpc) {
        (Some(p @ ("opaque" | "TLS")), _) => Some(format!("the Server's proxyProtocol is {p}, which is authorized per connection and has no routes")),
        (Some("gRPC"), false) => Some("the Server's proxyProtocol is gRPC, and Linkerd sends only GRPCRoutes for gRPC Servers (since edge-24.7.1, #13507)".to_owned()),
        (Some("gRPC"), true) => None,
        (_, true) => Some("GRPCRoutes are used only on Servers with proxyProtocol gRPC; this Server gets HTTPRoutes".to_owned()),
        (_, false) => None,
    }
}

/// Linkerd's inbound order: routes with a creationTimestamp first (oldest
/// first), then by name, group, kind. Offline this is name order.
fn route_order(a: &Resource, b: &Resource) -> std::cmp::Ordering {
    let ts = |r: &Resource| r.meta.creation_timestamp.clone();
    let key = |r: &Resource| (ts(r).is_none(), ts(r), r.name().to_owned(), r.group.clone(), r.id.kind.clone());
    key(a).cmp(&key(b))
}

fn not_accepted(r: &Resource, msg: String) -> Finding {
    Finding::new(Code::RouteNotAccepted, r.span_at(&["spec", "parentRefs"]), msg).resource(r.id.clone())
}

/// The Servers `r` would attach to, or `None` when the route is rejected as a whole.
fn server_parents(r: &Resource, index: &Index, findings: &mut Vec<Finding>) -> Option<Vec<usize>> {
    let ns = r.namespace();
    let mut servers = Vec::new();
    for (i, p) in parent_refs(r).iter().enumerate() {
        let at = |field: &str| r.span_at(&["spec", "parentRefs", &i.to_string(), field]);
        if !is_server_parent(p) {
            // Classic mistake: `kind: Server` without `group: policy.linkerd.io` on a Gateway API route.
            if p.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("Server")) {
                let msg = format!(
                    "{} parentRef `{}` has kind Server but group `{}`; Linkerd only attaches routes to group policy.linkerd.io, so this parent is ignored",
                    r.id,
                    p.name,
                    p.group.as_deref().unwrap_or("(default: the route's API group)")
                );
                findings.push(
                    Finding::new(Code::RouteNotAccepted, at("kind"), msg)
                        .resource(r.id.clone())
                        .hint("add `group: policy.linkerd.io`"),
                );
            } else if p.kind.is_none()
                && r.group == "policy.linkerd.io"
                && index.get(Kind::Server, ns, &p.name).is_some()
            {
                let msg = format!(
                    "{} parentRef `{}` has no kind; it defaults to Gateway, so the route does not attach to Server {}",
                    r.id, p.name, p.name
                );
                findings.push(
                    Finding::new(Code::RouteNotAccepted, at("name"), msg)
                        .resource(r.id.clone())
                        .hint("add `kind: Server`"),
                );
            }
            continue;
        }
        let reject = if p.namespace.as_deref().is_some_and(|n| n != ns) {
            Some(("namespace", "a Server parent in another namespace"))
        } else if p.port.is_some() {
            Some(("port", "a Server parentRef with `port`"))
        } else if p.section_name.is_some() {
            Some(("sectionName", "a Server parentRef with `sectionName`"))
        } else {
            None
        };
        if let Some((field, what)) = reject {
            let msg =
                format!("{} is ignored by Linkerd's inbound index: it has {what}, which rejects the whole route", r.id);
            findings.push(Finding::new(Code::RouteNotAccepted, at(field), msg).resource(r.id.clone()));
            return None;
        }
        match index.get(Kind::Server, ns, &p.name) {
            Some(s) => servers.push(s),
            None => {
                let msg = format!(
                    "{} parentRef names Server {}/{}, which does not exist; the route is not accepted (NoMatchingParent) and has no effect",
                    r.id, ns, p.name
                );
                let f = Finding::new(Code::UnresolvedReference, at("name"), msg).resource(r.id.clone());
                findings.push(f.referent(Referent::object("Server", ns, &p.name)));
            }
        }
    }
    servers.sort_unstable();
    servers.dedup();
    Some(servers)
}

fn convert(r: &Resource) -> Result<Converted, String> {
    match &r.spec {
        Spec::HttpRoute(h) => convert_http(r, h).map(Converted::Http),
        Spec::GrpcRoute(g) => convert_grpc(r, g).map(Converted::Grpc),
        _ => Err("not a route".to_owned()),
    }
}

pub(crate) fn meta(r: &Resource) -> api::Meta {
    api::Meta { kind: r.id.kind.to_ascii_lowercase(), name: r.name().to_owned(), group: Some(r.group.clone()) }
}

pub(crate) fn hostnames(hosts: &[String]) -> Vec<api::HostMatch> {
    hosts
        .iter()
        .map(|h| match h.strip_prefix("*.") {
            Some(suffix) => api::HostMatch::Suffix(suffix.to_ascii_lowercase()),
            None => api::HostMatch::Exact(h.to_ascii_lowercase()),
        })
        .collect()
}

fn convert_http(r: &Resource, h: &HttpRouteSpec) -> Result<api::HttpRoute, String> {
    let rules = h.effective_rules();
    let rules = rules.iter().map(convert_http_rule).collect::<Result<_, _>>()?;
    Ok(api::HttpRoute { meta: meta(r), hostnames: hostnames(&h.hostnames), rules, authorizations: Vec::new() })
}

fn convert_http_rule(rule: &HttpRouteRule) -> Result<api::HttpRule, String> {
    let default_match = [HttpRouteMatch::default()];
    let matches = rule.matches.as_deref().unwrap_or(&default_match);
    let matches = matches.iter().map(convert_http_match).collect::<Result<_, _>>()?;
    let mut filters = Vec::new();
    for f in &rule.filters {
        if let Some(f) = convert_filter(f, false)? {
            filters.push(f);
        }
    }
    Ok(api::HttpRule { matches, filters })
}

pub(crate) fn convert_http_match(m: &HttpRouteMatch) -> Result<api::HttpMatch, String> {
    // A match without `path` gets the CRD default PathPrefix `/`.
    let (ty, value) = match &m.path {
        Some(p) => (p.type_.as_deref().unwrap_or("PathPrefix"), p.value.as_deref().unwrap_or("/")),
        None => ("PathPrefix", "/"),
    };
    let path = match ty {
        "Exact" | "PathPrefix" if !value.starts_with('/') => {
            return Err(format!("path `{value}` is not absolute"));
        }
        "Exact" => api::PathMatch::Exact(value.to_owned()),
        "PathPrefix" => api::PathMatch::Prefix(value.to_owned()),
        "RegularExpression" => api::PathMatch::Regex(valid_regex(value)?),
        other => return Err(format!("path match type `{other}` is not supported")),
    };
    let headers = m.headers.iter().map(|h| value_match(h, true)).collect::<Result<Vec<_>, _>>()?;
    let query_params = m.query_params.iter().map(|q| value_match(q, false)).collect::<Result<Vec<_>, _>>()?;
    let headers = headers.into_iter().map(|(name, value)| api::HeaderMatch { name, value }).collect();
    let query_params = query_params.into_iter().map(|(name, value)| api::QueryParamMatch { name, value }).collect();
    Ok(api::HttpMatch { path: Some(path), headers, query_params, method: m.method.clone() })
}

fn value_match(v: &ValueMatch, header: bool) -> Result<(String, api::StringMatch), String> {
    if header && !is_header_name(&v.name) {
        return Err(format!("`{}` is not a valid header name", v.name));
    }
    let value = match v.type_.as_deref().unwrap_or("Exact") {
        "Exact" => api::StringMatch::Exact(v.value.clone()),
        "RegularExpression" => api::StringMatch::Regex(valid_regex(&v.value)?),
        other => return Err(format!("match type `{other}` is not supported")),
    };
    Ok((v.name.clone(), value))
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The proxy refuses a server whose route has a regex that does not compile.
fn valid_regex(re: &str) -> Result<String, String> {
    api::validate_regex(re).map(|()| re.to_owned()).map_err(|e| format!("regular expression `{re}` is invalid: {e}"))
}

/// Linkerd converts header modifiers and redirects; inbound it drops
/// response header modifiers, and it fails the whole inbound route on
/// anything else (§7.1). `outbound` keeps response header modifiers.
pub(crate) fn convert_filter(f: &RouteFilter, outbound: bool) -> Result<Option<api::HttpFilter>, String> {
    let modifier = |m: &Option<crate::model::route::HeaderModifier>| {
        let m = m.clone().unwrap_or_default();
        let pairs =
            |v: &[crate::model::route::HeaderValue]| v.iter().map(|h| (h.name.clone(), h.value.clone())).collect();
        api::HeaderModifier { set: pairs(&m.set), add: pairs(&m.add), remove: m.remove }
    };
    match f.type_.as_str() {
        "RequestHeaderModifier" => {
            Ok(Some(api::HttpFilter::RequestHeaderModifier(modifier(&f.request_header_modifier))))
        }
        "ResponseHeaderModifier" if outbound => {
            Ok(Some(api::HttpFilter::ResponseHeaderModifier(modifier(&f.response_header_modifier))))
        }
        "ResponseHeaderModifier" => Ok(None),
        "RequestRedirect" => {
            let rr = f.request_redirect.as_ref().ok_or("RequestRedirect filter without `requestRedirect`")?;
            let path =
                rr.path.as_ref().and_then(|p| p.replace_full_path.clone().or_else(|| p.replace_prefix_match.clone()));
            Ok(Some(api::HttpFilter::RequestRedirect {
                scheme: rr.scheme.clone(),
                hostname: rr.hostname.clone(),
                path,
                port: rr.port.and_then(|p| u16::try_from(p).ok()),
                status: rr.status_code.and_then(|s| u16::try_from(s).ok()).unwrap_or(302),
            }))
        }
        other => Err(format!("filter `{other}` is not supported by Linkerd")),
    }
}

fn convert_grpc(r: &Resource, g: &GrpcRouteSpec) -> Result<api::GrpcRoute, String> {
    let mut rules = Vec::new();
    for rule in &g.rules {
        for f in &rule.filters {
            convert_filter(f, false)?;
        }
        let matches = rule.matches.iter().map(convert_grpc_match).collect::<Result<_, _>>()?;
        rules.push(api::GrpcRule { matches });
    }
    if g.rules.is_empty() {
        rules.push(api::GrpcRule { matches: Vec::new() });
    }
    Ok(api::GrpcRoute { meta: meta(r), hostnames: hostnames(&g.hostnames), rules, authorizations: Vec::new() })
}

pub(crate) fn convert_grpc_match(m: &GrpcRouteMatch) -> Result<api::GrpcMatch, String> {
    let method = m.method.clone().unwrap_or_default();
    if method.type_.as_deref().is_some_and(|t| t != "Exact") {
        return Err("gRPC method match type RegularExpression is not supported".to_owned());
    }
    let headers = m.headers.iter().map(|h| value_match(h, true)).collect::<Result<Vec<_>, _>>()?;
    let headers = headers.into_iter().map(|(name, value)| api::HeaderMatch { name, value }).collect();
    Ok(api::GrpcMatch { service: method.service, method: method.method, headers })
}
