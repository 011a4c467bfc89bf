//! Value rules the route and policy CRDs' structural schemas declare beyond
//! types (enums, ranges, lengths, item counts and the name patterns of
//! Gateway API references), which the API server checks on every create
//! and apply (see docs/semantics/schema-oracle.md, found by applying
//! mutated manifests to a real kube-apiserver). A value outside them makes
//! the server refuse the whole object.

use super::decode::{Seg, display_path};
use crate::findings::{Code, Finding};
use crate::load::RawObject;
use crate::load::objects::span_of;
use crate::load::yaml::{Node, Value};

#[derive(Clone, Copy)]
enum Rule {
    Enum(&'static [&'static str]),
    IntEnum(&'static [i64]),
    Range(i64, i64),
    /// String length in characters.
    Len(usize, usize),
    Items(usize, usize),
    /// `^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`, at most 253.
    Group,
    /// `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`, 1 to 63.
    Kind,
    /// An RFC 1123 label, 1 to 63.
    Label,
    /// An RFC 1123 subdomain, 1 to 253.
    Subdomain,
    /// A subdomain, optionally `*.`-prefixed, 1 to 253.
    Hostname,
    /// `^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`, 1 to 256.
    HeaderName,
    /// A mapping with exactly one of these keys (a schema `oneOf` of `required`).
    ExactlyOne(&'static [&'static str]),
    /// A Gateway API filter: the field its `type` names is set and no other
    /// filter's (the CRDs' CEL rules on `filters[]`).
    FilterFields,
    /// The Gateway API duration pattern (model::cel_rules).
    GatewayDuration,
    /// A core Service backendRef names its port (a CEL rule).
    ServicePort,
    /// `timeouts.backendRequest` no longer than a non-zero `request` (a CEL rule).
    TimeoutOrder,
    /// A redirect's or rewrite's `path` sets the field of its type only (CEL rules).
    PathModifier,
    /// A Kubernetes quantity: an integer or a string of the quantity pattern.
    Quantity,
    /// A Gateway API filter list's CEL rules (`true`: an HTTPRoute's).
    FilterList(bool),
    /// A Gateway API HTTPRoute rule's CEL rules (redirects and rewrites).
    HttpRouteRuleCel,
    /// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$` with no length bound.
    LabelPattern,
    /// `^(\*|label)(\.label)*$`: a proxy identity, `*`-prefixed for a whole domain.
    IdentityPattern,
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
const MATCH_TYPES: &[&str] = &["Exact", "RegularExpression"];
const PORT: Rule = Rule::Range(1, 65535);

/// A reference's fields, under `prefix` (`spec.parentRefs[]`).
const REF: &[(&str, Rule)] = &[
    ("group", Rule::Group),
    ("kind", Rule::Kind),
    ("name", Rule::Len(1, 253)),
    ("namespace", Rule::Label),
    ("sectionName", Rule::Subdomain),
];

/// Header modifiers (`set`, `add`, `remove`) under a filter.
const MODIFIER: &[(&str, Rule)] = &[
    ("set", Rule::Items(0, 16)),
    ("set[].name", Rule::HeaderName),
    ("set[].value", Rule::Len(1, 4096)),
    ("add", Rule::Items(0, 16)),
    ("add[].name", Rule::HeaderName),
    ("add[].value", Rule::Len(1, 4096)),
    ("remove", Rule::Items(0, 16)),
];

/// Rules shared by every HTTPRoute and GRPCRoute version the CRDs serve.
const ROUTE: &[(&str, Rule)] = &[
    ("spec.hostnames", Rule::Items(0, 16)),
    ("spec.hostnames[]", Rule::Hostname),
    ("spec.parentRefs", Rule::Items(0, 32)),
    ("spec.rules", Rule::Items(0, 16)),
    ("spec.rules[].matches", Rule::Items(0, 8)),
    ("spec.rules[].matches[].headers", Rule::Items(0, 16)),
    ("spec.rules[].matches[].headers[].name", Rule::HeaderName),
    ("spec.rules[].matches[].headers[].type", Rule::Enum(MATCH_TYPES)),
    ("spec.rules[].matches[].headers[].value", Rule::Len(1, 4096)),
    ("spec.rules[].filters", Rule::Items(0, 16)),
    ("spec.rules[].backendRefs[].filters", Rule::Items(0, 16)),
];

const HTTP_ROUTE: &[(&str, Rule)] = &[
    ("spec.rules[].matches[].path.type", Rule::Enum(&["Exact", "PathPrefix", "RegularExpression"])),
    ("spec.rules[].matches[].path.value", Rule::Len(0, 1024)),
    ("spec.rules[].matches[].method", Rule::Enum(METHODS)),
    ("spec.rules[].matches[].queryParams", Rule::Items(0, 16)),
    ("spec.rules[].matches[].queryParams[].name", Rule::Len(1, 256)),
    ("spec.rules[].matches[].queryParams[].type", Rule::Enum(MATCH_TYPES)),
    ("spec.rules[].matches[].queryParams[].value", Rule::Len(1, 1024)),
];

const GRPC_ROUTE: &[(&str, Rule)] = &[
    ("spec.rules[].matches[].method.type", Rule::Enum(MATCH_TYPES)),
    ("spec.rules[].matches[].method.service", Rule::Len(0, 1024)),
    ("spec.rules[].matches[].method.method", Rule::Len(0, 1024)),
];

/// Ports and weights: every Gateway API version, and Linkerd's HTTPRoute
/// from v1beta2 (earlier versions have neither field).
const PORTS_AND_WEIGHTS: &[(&str, Rule)] = &[
    ("spec.parentRefs[].port", PORT),
    ("spec.rules[].backendRefs", Rule::Items(0, 16)),
    ("spec.rules[].backendRefs[].port", PORT),
    ("spec.rules[].backendRefs[].weight", Rule::Range(0, 1_000_000)),
];

/// What only the Gateway API kinds declare: CEL rules on references, and
/// session persistence durations (HTTPRoute and GRPCRoute).
const GATEWAY_ROUTE: &[(&str, Rule)] = &[
    ("spec.rules[].backendRefs[]", Rule::ServicePort),
    ("spec.rules[].filters[].requestMirror.backendRef", Rule::ServicePort),
    ("spec.rules[].backendRefs[].filters[].requestMirror.backendRef", Rule::ServicePort),
    ("spec.rules[].sessionPersistence.absoluteTimeout", Rule::GatewayDuration),
    ("spec.rules[].sessionPersistence.idleTimeout", Rule::GatewayDuration),
];

/// The Gateway API HTTPRoute's timeouts (Linkerd's HTTPRoute types them as
/// Go durations, `format: duration`, which the API server reads with
/// `time.ParseDuration`, as meshc's decoding and lowering do).
const GATEWAY_TIMEOUTS: &[(&str, Rule)] = &[
    ("spec.rules[].timeouts", Rule::TimeoutOrder),
    ("spec.rules[].timeouts.request", Rule::GatewayDuration),
    ("spec.rules[].timeouts.backendRequest", Rule::GatewayDuration),
];

const PATH_MODIFIERS: &[&str] = &["ReplaceFullPath", "ReplacePrefixMatch"];

/// A Gateway API URLRewrite filter (Linkerd's HTTPRoute and GRPCRoute have none).
const REWRITE: &[(&str, Rule)] = &[
    ("hostname", Rule::Subdomain),
    ("path", Rule::PathModifier),
    ("path.type", Rule::Enum(PATH_MODIFIERS)),
    ("path.replaceFullPath", Rule::Len(0, 1024)),
    ("path.replacePrefixMatch", Rule::Len(0, 1024)),
];

/// ServiceProfile (both versions): a dstOverride's weight is a quantity.
const PROFILE: &[(&str, Rule)] = &[("spec.dstOverrides[].weight", Rule::Quantity)];

const GATEWAY_HTTP_FILTERS: &[&str] = &[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
];
const GRPC_FILTERS: &[&str] = &["ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef"];
const LINKERD_RULE_FILTERS: &[&str] = &["RequestHeaderModifier", "RequestRedirect"];
const LINKERD_BACKEND_FILTERS: &[&str] = &["RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect"];

/// A policy's references (AuthorizationPolicy and MeshTLSAuthentication).
const POLICY_REFS: &[(&str, Rule)] = &[
    ("spec.targetRef.group", Rule::Group),
    ("spec.targetRef.kind", Rule::Kind),
    ("spec.targetRef.name", Rule::Len(1, 253)),
    ("spec.requiredAuthenticationRefs[].group", Rule::Group),
    ("spec.requiredAuthenticationRefs[].kind", Rule::Kind),
    ("spec.requiredAuthenticationRefs[].name", Rule::Len(1, 253)),
    ("spec.requiredAuthenticationRefs[].namespace", Rule::Len(0, 253)),
    ("spec.identities", Rule::Items(1, usize::MAX)),
    ("spec.identityRefs", Rule::Items(1, usize::MAX)),
    ("spec.identityRefs[].group", Rule::Group),
    ("spec.identityRefs[].kind", Rule::Kind),
    ("spec.identityRefs[].name", Rule::Len(1, 253)),
    ("spec.identityRefs[].namespace", Rule::Len(0, 253)),
];

const RATE_LIMIT: &[(&str, Rule)] = &[
    ("spec.targetRef.group", Rule::Group),
    ("spec.targetRef.kind", Rule::Kind),
    ("spec.targetRef.name", Rule::Len(1, 253)),
    ("spec.overrides[].clientRefs[].group", Rule::Group),
    ("spec.overrides[].clientRefs[].kind", Rule::Kind),
    ("spec.overrides[].clientRefs[].namespace", Rule::Label),
    ("spec.overrides[].clientRefs[].name", Rule::Len(1, 253)),
];

/// ServerAuthorization (both versions): one way to name Servers, and names
/// and identities by pattern.
const SERVER_AUTHORIZATION: &[(&str, Rule)] = &[
    ("spec.server", Rule::ExactlyOne(&["name", "selector"])),
    ("spec.server.name", Rule::LabelPattern),
    ("spec.server.selector.matchExpressions[].operator", Rule::Enum(SELECTOR_OPERATORS)),
    ("spec.client.meshTLS.identities[]", Rule::IdentityPattern),
    ("spec.client.meshTLS.serviceAccounts[].name", Rule::LabelPattern),
    ("spec.client.meshTLS.serviceAccounts[].namespace", Rule::LabelPattern),
];

/// Server v1alpha1: `podSelector` is `oneOf` matchExpressions, matchLabels
/// (v1beta1 dropped the `oneOf`: an empty selector selects every pod).
const OLD_SERVER: &[(&str, Rule)] = &[("spec.podSelector", Rule::ExactlyOne(&["matchExpressions", "matchLabels"]))];

const SELECTOR_OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];
const SERVER: &[(&str, Rule)] = &[
    ("spec.podSelector.matchExpressions[].operator", Rule::Enum(SELECTOR_OPERATORS)),
    ("spec.externalWorkloadSelector.matchExpressions[].operator", Rule::Enum(SELECTOR_OPERATORS)),
];

/// The findings for every value of `raw` outside its CRD's rules; the API
/// server rejects the object when there is one.
pub fn check(raw: &RawObject, group: &str, version: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut run = |rules: &[(&str, Rule)], prefix: &str| {
        for (path, rule) in rules {
            let full = match (prefix.is_empty(), path.is_empty()) {
                (true, _) => (*path).to_owned(),
                (false, true) => prefix.to_owned(),
                (false, false) => format!("{prefix}.{path}"),
            };
            visit(raw, &raw.node, &parse(&full), &mut Vec::new(), *rule, &mut findings);
        }
    };
    let gateway = group == "gateway.networking.k8s.io";
    let linkerd_route = group == "policy.linkerd.io" && raw.kind == "HTTPRoute";
    match raw.kind.as_str() {
        "HTTPRoute" | "GRPCRoute" if gateway || linkerd_route => {
            run(ROUTE, "");
            for prefix in ["spec.parentRefs[]", "spec.rules[].backendRefs[]"] {
                run(REF, prefix);
            }
            let filters = ["spec.rules[].filters[]", "spec.rules[].backendRefs[].filters[]"];
            for prefix in filters {
                run(MODIFIER, &format!("{prefix}.requestHeaderModifier"));
                run(MODIFIER, &format!("{prefix}.responseHeaderModifier"));
                run(REDIRECT, &format!("{prefix}.requestRedirect"));
            }
            if raw.kind == "GRPCRoute" {
                run(GRPC_ROUTE, "");
                run(&[("type", Rule::Enum(GRPC_FILTERS))], filters[0]);
                run(&[("type", Rule::Enum(GRPC_FILTERS))], filters[1]);
            } else {
                run(HTTP_ROUTE, "");
                let (rule, backend) = if gateway {
                    (GATEWAY_HTTP_FILTERS, GATEWAY_HTTP_FILTERS)
                } else {
                    (LINKERD_RULE_FILTERS, LINKERD_BACKEND_FILTERS)
                };
                run(&[("type", Rule::Enum(rule))], filters[0]);
                run(&[("type", Rule::Enum(backend))], filters[1]);
            }
            if gateway {
                run(GATEWAY_ROUTE, "");
                let http = raw.kind == "HTTPRoute";
                let lists = ["spec.rules[].filters", "spec.rules[].backendRefs[].filters"];
                run(&[(lists[0], Rule::FilterList(http)), (lists[1], Rule::FilterList(http))], "");
                if http {
                    run(&[("spec.rules[]", Rule::HttpRouteRuleCel)], "");
                }
                for prefix in filters {
                    run(&[("", Rule::FilterFields)], prefix);
                    if raw.kind == "HTTPRoute" {
                        run(&[("path", Rule::PathModifier)], &format!("{prefix}.requestRedirect"));
                        run(REWRITE, &format!("{prefix}.urlRewrite"));
                    }
                }
                if raw.kind == "HTTPRoute" {
                    run(GATEWAY_TIMEOUTS, "");
                }
            }
            if gateway || matches!(version, "v1beta2" | "v1beta3") {
                run(PORTS_AND_WEIGHTS, "");
            }
        }
        "ServiceProfile" if group == "linkerd.io" => run(PROFILE, ""),
        // Their counts, hostnames, ports and the Service port rule are model::stream_admission's.
        "TLSRoute" | "TCPRoute" if gateway => {
            for prefix in ["spec.parentRefs[]", "spec.rules[].backendRefs[]"] {
                run(REF, prefix);
            }
        }
        "AuthorizationPolicy" | "MeshTLSAuthentication" if group == "policy.linkerd.io" => run(POLICY_REFS, ""),
        "HTTPLocalRateLimitPolicy" if group == "policy.linkerd.io" => run(RATE_LIMIT, ""),
        "ServerAuthorization" if group == "policy.linkerd.io" => run(SERVER_AUTHORIZATION, ""),
        "Server" if group == "policy.linkerd.io" => {
            run(SERVER, "");
            if version == "v1alpha1" {
                run(OLD_SERVER, "");
            }
        }
        _ => {}
    }
    findings
}

/// Fields meshc's shared route types read (for the Gateway API kinds) that
/// a CRD lacks: an unknown field to the API server, which rejects the object
/// (`fieldValidation=Strict`, kubectl and Argo CD) or drops the field
/// (Flux). Reported as decode reports an unknown field; the object is kept.
/// Linkerd's HTTPRoute (every version) has two rule filters and no rule
/// names, retries or session persistence; GRPCRoute has no redirect or
/// rewrite filter in any version.
const LINKERD_ROUTE_LACKS: &[&str] = &[
    "spec.rules[].name",
    "spec.rules[].retry",
    "spec.rules[].sessionPersistence",
    "spec.rules[].filters[].responseHeaderModifier",
    "spec.rules[].filters[].requestMirror",
    "spec.rules[].filters[].urlRewrite",
    "spec.rules[].filters[].extensionRef",
    "spec.rules[].filters[].cors",
    "spec.rules[].filters[].externalAuth",
];
const GRPC_ROUTE_LACKS: &[&str] = &[
    "spec.rules[].filters[].requestRedirect",
    "spec.rules[].filters[].urlRewrite",
    "spec.rules[].filters[].cors",
    "spec.rules[].filters[].externalAuth",
];

/// Findings for the fields of `raw` its CRD does not have (see
/// [`LINKERD_ROUTE_LACKS`]).
pub fn absent_fields(raw: &RawObject, group: &str) -> Vec<Finding> {
    let lacks = match (group, raw.kind.as_str()) {
        ("policy.linkerd.io", "HTTPRoute") => LINKERD_ROUTE_LACKS,
        ("gateway.networking.k8s.io", "GRPCRoute") => GRPC_ROUTE_LACKS,
        _ => return Vec::new(),
    };
    let mut findings = Vec::new();
    for path in lacks {
        let steps = parse(path);
        let mut found = Vec::new();
        present(&raw.node, &steps, &mut Vec::new(), &mut found);
        for (at, key) in found {
            let name = at.last().map(|s| display_path(std::slice::from_ref(s))).unwrap_or_default();
            let msg = format!("{} has no field `{}` (unknown field `{name}`)", raw.kind, display_path(&at));
            let hint = "the API server drops unknown fields (or kubectl rejects them): check the field against the CRD";
            let span = crate::findings::Span { source: span_of(raw.source, &raw.node).source, ..key };
            findings.push(Finding::new(Code::SchemaViolation, span, msg).hint(hint));
        }
    }
    findings
}

/// Every place `steps` leads to an existing key, with the key's position.
fn present(node: &Node, steps: &[Step], at: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, crate::findings::Span)>) {
    let Some((step, rest)) = steps.split_first() else { return };
    match (step, &node.value) {
        (Step::Key(k), Value::Map(entries)) => {
            if let Some((key, child)) = entries.iter().find(|(key, _)| &key.name == k) {
                at.push(Seg::Key(k.clone()));
                if rest.is_empty() {
                    let span =
                        crate::findings::Span { source: 0, line: key.line, column: key.column, offset: key.offset };
                    out.push((at.clone(), span));
                } else {
                    present(child, rest, at, out);
                }
                at.pop();
            }
        }
        (Step::Each, Value::Seq(items)) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Seg::Index(i));
                present(item, rest, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

const REDIRECT: &[(&str, Rule)] = &[
    ("scheme", Rule::Enum(&["http", "https"])),
    ("hostname", Rule::Subdomain),
    ("port", PORT),
    ("statusCode", Rule::IntEnum(&[301, 302])),
    ("path.type", Rule::Enum(&["ReplaceFullPath", "ReplacePrefixMatch"])),
    ("path.replaceFullPath", Rule::Len(0, 1024)),
    ("path.replacePrefixMatch", Rule::Len(0, 1024)),
];

/// `spec.rules[].matches` → `[Key(spec), Key(rules), Each, Key(matches)]`.
#[derive(Clone, PartialEq)]
enum Step {
    Key(String),
    Each,
}

fn parse(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, each) = part.strip_suffix("[]").map_or((part, false), |k| (k, true));
        if !key.is_empty() {
            steps.push(Step::Key(key.to_owned()));
        }
        if each {
            steps.push(Step::Each);
        }
    }
    steps
}

fn visit(raw: &RawObject, node: &Node, steps: &[Step], at: &mut Vec<Seg>, rule: Rule, out: &mut Vec<Finding>) {
    let Some((step, rest)) = steps.split_first() else {
        if let Some(why) = violation(node, rule) {
            let msg = format!(
                "{} is invalid at {}: {why}; the API server rejects it, so it is left out of the analysis",
                raw.kind,
                display_path(at)
            );
            out.push(Finding::new(Code::SchemaViolation, span_of(raw.source, node), msg));
        }
        return;
    };
    match (step, &node.value) {
        (Step::Key(k), Value::Map(entries)) => {
            if let Some((_, child)) = entries.iter().find(|(key, _)| &key.name == k) {
                at.push(Seg::Key(k.clone()));
                visit(raw, child, rest, at, rule, out);
                at.pop();
            }
        }
        (Step::Each, Value::Seq(items)) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Seg::Index(i));
                visit(raw, item, rest, at, rule, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Why `node` breaks `rule`; None when it does not (or is of another type,
/// which typed decoding reports).
fn violation(node: &Node, rule: Rule) -> Option<String> {
    match (&node.value, rule) {
        (Value::Str(s), Rule::Enum(allowed)) if !allowed.contains(&&**s) => {
            Some(format!("`{s}` is not one of {}", allowed.join(", ")))
        }
        (Value::Int(i), Rule::IntEnum(allowed)) if !allowed.contains(i) => {
            Some(format!("{i} is not one of {allowed:?}"))
        }
        (Value::Int(i), Rule::Range(lo, hi)) if !(lo..=hi).contains(i) => Some(format!("{i} is outside {lo}..={hi}")),
        (Value::Str(s), Rule::Len(lo, hi)) => length(s, lo, hi),
        (Value::Seq(items), Rule::Items(lo, hi)) if !(lo..=hi).contains(&items.len()) => Some(format!(
            "{} items, outside {lo}..={}",
            items.len(),
            if hi == usize::MAX { "".into() } else { hi.to_string() }
        )),
        (Value::Str(s), Rule::Group) => {
            (!s.is_empty()).then(|| named(s, 1, 253, is_subdomain, "a DNS subdomain")).flatten()
        }
        (Value::Str(s), Rule::Kind) => named(s, 1, 63, is_kind, "a kind name (a letter, then letters, digits and `-`)"),
        (Value::Str(s), Rule::Label) => named(s, 1, 63, is_label, "an RFC 1123 label"),
        (Value::Str(s), Rule::Subdomain) => named(s, 1, 253, is_subdomain, "a DNS subdomain"),
        (Value::Str(s), Rule::Hostname) => {
            named(s, 1, 253, |h| is_subdomain(h.strip_prefix("*.").unwrap_or(h)), "a hostname")
        }
        (Value::Str(s), Rule::HeaderName) => named(s, 1, 256, is_token, "an HTTP header name"),
        (Value::Map(entries), Rule::ExactlyOne(keys)) => {
            let set = keys.iter().filter(|k| entries.iter().any(|(e, _)| e.name == **k)).count();
            (set != 1).then(|| format!("exactly one of {} must be set ({set} are)", keys.join(", ")))
        }
        (Value::Map(_), Rule::FilterFields) => filter_fields(node),
        (Value::Str(s), Rule::GatewayDuration) => super::cel_rules::gateway_duration_ms(s)
            .is_none()
            .then(|| format!("`{s}` should match '^([0-9]{{1,5}}(h|m|s|ms)){{1,4}}$'")),
        (Value::Map(_), Rule::ServicePort) => super::cel_rules::service_port(node),
        (Value::Map(_), Rule::TimeoutOrder) => super::cel_rules::timeout_order(node),
        (Value::Map(_), Rule::PathModifier) => super::cel_rules::path_modifier(node),
        (_, Rule::Quantity) => super::cel_rules::quantity(node),
        (Value::Seq(_), Rule::FilterList(http)) => super::cel_rules::filter_list(node, http),
        (Value::Map(_), Rule::HttpRouteRuleCel) => super::cel_rules::http_rule(node),
        (Value::Str(s), Rule::LabelPattern) => (!is_label(s)).then(|| format!("`{s}` is not an RFC 1123 label")),
        (Value::Str(s), Rule::IdentityPattern) => (!is_identity(s))
            .then(|| format!("`{s}` is not a proxy identity (dot-separated lowercase labels, the first may be `*`)")),
        _ => None,
    }
}

/// The filter field each Gateway API filter type requires, and forbids on
/// every other type.
const FILTER_FIELDS: &[(&str, &str)] = &[
    ("RequestHeaderModifier", "requestHeaderModifier"),
    ("ResponseHeaderModifier", "responseHeaderModifier"),
    ("RequestMirror", "requestMirror"),
    ("RequestRedirect", "requestRedirect"),
    ("URLRewrite", "urlRewrite"),
    ("ExtensionRef", "extensionRef"),
];

fn filter_fields(filter: &Node) -> Option<String> {
    let ty = filter.get("type").and_then(Node::as_str)?;
    let wrong: Vec<String> = FILTER_FIELDS
        .iter()
        .filter_map(|(t, field)| match (*t == ty, filter.get(field).is_some()) {
            (true, false) => Some(format!("`{field}` must be set for type {ty}")),
            (false, true) => Some(format!("`{field}` must not be set for type {ty}")),
            _ => None,
        })
        .collect();
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

fn length(s: &str, lo: usize, hi: usize) -> Option<String> {
    let n = s.chars().count();
    (!(lo..=hi).contains(&n)).then(|| format!("{n} characters, outside {lo}..={hi}"))
}

fn named(s: &str, lo: usize, hi: usize, ok: impl Fn(&str) -> bool, what: &str) -> Option<String> {
    length(s, lo, hi).or_else(|| (!ok(s)).then(|| format!("`{s}` is not {what}")))
}

fn is_label(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(alnum) && s.ends_with(alnum) && s.chars().all(|c| alnum(c) || c == '-')
}

fn is_identity(s: &str) -> bool {
    let (first, rest) = s.split_once('.').map_or((s, None), |(f, r)| (f, Some(r)));
    (first == "*" || is_label(first)) && rest.is_none_or(is_subdomain)
}

fn is_subdomain(s: &str) -> bool {
    s.split('.').all(is_label)
}

fn is_kind(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn is_token(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
