//! AuthorizationPolicy and ServerAuthorization → authorizations on Servers
//! and routes (§3, §6). Inside one policy the references are AND; across
//! policies OR. A dangling or invalid authentication makes the whole policy
//! inert: it grants nothing, which Linkerd never reports and meshc does.

use super::authn;
use super::index::{Index, Kind};
use super::selector;
use crate::findings::{Code, Finding, Referent};
use crate::model::policy::{AuthorizationPolicySpec, NamespacedTargetRef, ServerAuthorizationSpec, group_is};
use crate::model::{Resource, Spec};
use crate::settings::Settings;
use mesh_proxy_api::{Authentication, Authorization, Meta};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

/// Where each valid policy's authorization goes.
#[derive(Default)]
pub struct Granted {
    pub server: HashMap<usize, Vec<Authorization>>,
    pub route: HashMap<usize, Vec<Authorization>>,
    /// Authentication resources referenced by any AuthorizationPolicy.
    pub referenced_authns: BTreeSet<usize>,
    /// Policies that target a route, for the route-attachment check.
    pub route_targets: Vec<(usize, usize)>,
}

pub struct Ctx<'a> {
    pub resources: &'a [Resource],
    pub index: &'a Index,
    pub settings: &'a Settings,
    /// "Did you mean" hints by (kind, namespace, name).
    pub hints: RefCell<HashMap<(Kind, String, String), String>>,
}

pub fn grant(ctx: &Ctx, findings: &mut Vec<Finding>) -> Granted {
    check_authentications(ctx, findings);
    let mut g = Granted::default();
    for &pi in ctx.index.all(Kind::AuthorizationPolicy) {
        let p = &ctx.resources[pi];
        let Spec::AuthorizationPolicy(spec) = &p.spec else {
            continue;
        };
        authorization_policy(ctx, pi, p, spec, &mut g, findings);
    }
    for &si in ctx.index.all(Kind::ServerAuthorization) {
        let s = &ctx.resources[si];
        let Spec::ServerAuthorization(spec) = &s.spec else {
            continue;
        };
        server_authorization(ctx, s, spec, &mut g, findings);
    }
    g
}

/// An authentication Linkerd cannot use is reported where it is written;
/// each policy requiring it reports its own consequence.
fn check_authentications(ctx: &Ctx, findings: &mut Vec<Finding>) {
    for &i in ctx.index.all(Kind::MeshTls).iter().chain(ctx.index.all(Kind::NetworkAuthn)) {
        let a = &ctx.resources[i];
        let result = match &a.spec {
            Spec::MeshTlsAuthentication(m) => authn::mesh_tls(m, a.namespace(), ctx.settings).map(drop),
            Spec::NetworkAuthentication(n) if n.networks.is_empty() => Err("has no networks".to_owned()),
            Spec::NetworkAuthentication(n) => authn::networks(&n.networks).map(drop),
            _ => Ok(()),
        };
        if let Err(why) = result {
            let msg = format!(
                "{} is invalid: it {why}; Linkerd rejects it, and every AuthorizationPolicy requiring it is ignored",
                a.id
            );
            // At the entry at fault when there is one, so that a mistake is
            // told apart from a neighbouring entry a Flux variable left unknown.
            let bad = match &a.spec {
                Spec::NetworkAuthentication(n) => {
                    n.networks.iter().position(|net| authn::networks(std::slice::from_ref(net)).is_err())
                }
                _ => None,
            };
            let index = bad.map(|i| i.to_string());
            let path = match &index {
                Some(i) => vec!["spec", "networks", i.as_str()],
                None => vec!["spec"],
            };
            findings.push(finding(a, Code::SchemaViolation, &path, msg));
        }
    }
}

enum Target {
    Servers(Vec<usize>),
    Route(usize),
}

fn authorization_policy(
    ctx: &Ctx,
    pi: usize,
    p: &Resource,
    spec: &AuthorizationPolicySpec,
    g: &mut Granted,
    findings: &mut Vec<Finding>,
) {
    // References are looked up even when the target is broken, so that
    // every mistake in the policy is reported at once.
    let authz = policy_authorization(ctx, p, spec, g, findings);
    let Some(target) = target(ctx, p, spec, findings) else {
        return;
    };
    let Some(authz) = authz else { return };
    match target {
        Target::Servers(servers) => {
            for s in servers {
                g.server.entry(s).or_default().push(authz.clone());
            }
        }
        Target::Route(r) => {
            g.route.entry(r).or_default().push(authz);
            g.route_targets.push((pi, r));
        }
    }
}

fn finding(p: &Resource, code: Code, path: &[&str], msg: String) -> Finding {
    Finding::new(code, p.span_at(path), msg).resource(p.id.clone())
}

fn target(ctx: &Ctx, p: &Resource, spec: &AuthorizationPolicySpec, findings: &mut Vec<Finding>) -> Option<Target> {
    let t = &spec.target_ref;
    let ns = p.namespace();
    let kind = t.kind.to_ascii_lowercase();
    let group = t.group.as_deref();
    let at = ["spec", "targetRef", "name"];
    let missing =
        |what: &str| format!("{} targets {what} {ns}/{}, which does not exist; the policy has no effect", p.id, t.name);
    match kind.as_str() {
        "server" if group_is(group, "policy.linkerd.io") => match ctx.index.get(Kind::Server, ns, &t.name) {
            Some(s) => Some(Target::Servers(vec![s])),
            None => {
                let hint = similar(ctx, Kind::Server, ns, &t.name);
                let f = finding(p, Code::UnresolvedReference, &at, missing("Server")).hint(hint);
                findings.push(f.referent(Referent::object("Server", ns, &t.name)));
                None
            }
        },
        "namespace" if group_is(group, "core") => {
            if t.name != ns {
                let msg = format!(
                    "{} targets Namespace {}, but a policy can only target its own namespace {ns}; the admission webhook rejects it (and Linkerd's index would apply it to {ns} anyway)",
                    p.id, t.name
                );
                findings.push(finding(p, Code::SchemaViolation, &at, msg));
                return None;
            }
            let servers = ctx.index.in_namespace(Kind::Server, ns).to_vec();
            if servers.is_empty() {
                let msg = format!(
                    "{} targets Namespace {ns}, which has no Server: Namespace-targeted policies apply only to Servers, never to ports that use the default policy, so it grants nothing",
                    p.id
                );
                let hint = "add Servers for the ports to protect, or change the namespace's default-inbound-policy";
                findings.push(finding(p, Code::InertPolicy, &["spec", "targetRef"], msg).hint(hint));
            }
            Some(Target::Servers(servers))
        }
        "httproute" if group_is(group, "policy.linkerd.io") || group_is(group, "gateway.networking.k8s.io") => {
            let k = if group_is(group, "policy.linkerd.io") { Kind::PolicyHttpRoute } else { Kind::GatewayHttpRoute };
            route_target(ctx, p, &t.name, k, "HTTPRoute", findings)
        }
        "grpcroute" if group_is(group, "gateway.networking.k8s.io") => {
            route_target(ctx, p, &t.name, Kind::GrpcRoute, "GRPCRoute", findings)
        }
        "server" | "httproute" | "grpcroute" => {
            let msg = format!(
                "{} targetRef kind {} has group `{}`, which does not match, so Linkerd ignores the policy",
                p.id,
                t.kind,
                group.unwrap_or("(none: core)")
            );
            let hint = if kind == "grpcroute" {
                "set `group: gateway.networking.k8s.io`"
            } else {
                "set `group: policy.linkerd.io` (or gateway.networking.k8s.io for a Gateway API HTTPRoute)"
            };
            findings.push(finding(p, Code::InertPolicy, &["spec", "targetRef"], msg).hint(hint));
            None
        }
        _ => {
            let msg = format!(
                "{} targets a {}; only Server, Namespace, HTTPRoute and GRPCRoute are allowed, so the admission webhook rejects it",
                p.id, t.kind
            );
            findings.push(finding(p, Code::SchemaViolation, &["spec", "targetRef", "kind"], msg));
            None
        }
    }
}

fn route_target(
    ctx: &Ctx,
    p: &Resource,
    name: &str,
    kind: Kind,
    what: &str,
    findings: &mut Vec<Finding>,
) -> Option<Target> {
    let ns = p.namespace();
    match ctx.index.get(kind, ns, name) {
        Some(r) => Some(Target::Route(r)),
        None => {
            let msg = format!("{} targets {what} {ns}/{name}, which does not exist; the policy has no effect", p.id);
            let hint = similar(ctx, kind, ns, name);
            let f = finding(p, Code::UnresolvedReference, &["spec", "targetRef", "name"], msg).hint(hint);
            findings.push(f.referent(Referent::object(what, ns, name)));
            None
        }
    }
}

/// A hint naming the existing resource of `kind` in `ns` whose name is
/// closest to `name`. Cached: a broken file can leave thousands of
/// references to the same missing name.
fn similar(ctx: &Ctx, kind: Kind, ns: &str, name: &str) -> String {
    let key = (kind, ns.to_owned(), name.to_owned());
    if let Some(hint) = ctx.hints.borrow().get(&key) {
        return hint.clone();
    }
    let limit = 3.max(name.len() / 3);
    let mut best: Option<(usize, &str)> = None;
    for &i in ctx.index.in_namespace(kind, ns) {
        let candidate = ctx.resources[i].name();
        let contains = candidate.contains(name) || name.contains(candidate);
        let Some(d) = bounded_edit_distance(candidate, name, limit).or(contains.then_some(limit + 1)) else { continue };
        if best.is_none_or(|b| (d, candidate) < b) {
            best = Some((d, candidate));
        }
    }
    let hint = match best {
        Some((_, n)) => format!("did you mean `{n}`?"),
        None => format!("no resource of that kind exists in namespace {ns}"),
    };
    ctx.hints.borrow_mut().insert(key, hint.clone());
    hint
}

/// Levenshtein distance if it is at most `limit`; stops as soon as it cannot be.
pub fn bounded_edit_distance(a: &str, b: &str, limit: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        if cur.iter().min().is_some_and(|m| *m > limit) {
            return None;
        }
        prev = cur;
    }
    Some(prev[b.len()]).filter(|d| *d <= limit)
}

/// The one authorization a policy grants, or `None` when it is inert.
fn policy_authorization(
    ctx: &Ctx,
    p: &Resource,
    spec: &AuthorizationPolicySpec,
    g: &mut Granted,
    findings: &mut Vec<Finding>,
) -> Option<Authorization> {
    if let Err(why) = admission_check(&spec.required_authentication_refs) {
        let msg = format!("{}: {why}; the admission webhook rejects it", p.id);
        findings.push(finding(p, Code::SchemaViolation, &["spec", "requiredAuthenticationRefs"], msg));
        return None;
    }
    let mut authentication = Authentication::Unauthenticated;
    let mut networks = authn::all_networks();
    let mut inert = false;
    for (i, r) in spec.required_authentication_refs.iter().enumerate() {
        let ns = r.namespace.as_deref().unwrap_or(p.namespace());
        let path = ["spec", "requiredAuthenticationRefs", &i.to_string(), "name"];
        let kind = r.kind.to_ascii_lowercase();
        if kind == "serviceaccount" {
            // Linkerd does not check that the ServiceAccount exists (§3.2).
            authentication = Authentication::TlsAuthenticated {
                identities: vec![ctx.settings.identity(ns, &r.name)],
                suffixes: Vec::new(),
            };
            continue;
        }
        let index_kind = if kind == "meshtlsauthentication" { Kind::MeshTls } else { Kind::NetworkAuthn };
        let Some(ai) = ctx.index.get(index_kind, ns, &r.name) else {
            let msg = format!(
                "{} requires {} {ns}/{}, which does not exist: Linkerd ignores the whole policy, so it grants nothing and the clients it names are denied (403, or a closed connection on opaque ports)",
                p.id, r.kind, r.name
            );
            let f = finding(p, Code::UnresolvedReference, &path, msg).hint(similar(ctx, index_kind, ns, &r.name));
            findings.push(f.referent(Referent::object(&r.kind, ns, &r.name)));
            inert = true;
            continue;
        };
        g.referenced_authns.insert(ai);
        let a = &ctx.resources[ai];
        let converted = match &a.spec {
            Spec::MeshTlsAuthentication(m) => {
                authn::mesh_tls(m, a.namespace(), ctx.settings).map(|x| authentication = x)
            }
            Spec::NetworkAuthentication(n) => authn::networks(&n.networks).and_then(|nets| {
                if nets.is_empty() {
                    Err("has no networks".to_owned())
                } else {
                    networks = nets;
                    Ok(())
                }
            }),
            _ => Ok(()),
        };
        if let Err(why) = converted {
            let msg = format!(
                "{} requires {}, which Linkerd cannot use (it {why}): the whole policy is ignored and grants nothing",
                p.id, a.id
            );
            findings.push(finding(p, Code::UnresolvedReference, &path, msg).referent(Referent::from(&a.id)));
            inert = true;
        }
    }
    (!inert).then(|| Authorization { meta: Meta::resource("AuthorizationPolicy", p.name()), networks, authentication })
}

/// The admission webhook's rules on requiredAuthenticationRefs (§3.2).
fn admission_check(refs: &[NamespacedTargetRef]) -> Result<(), String> {
    let count = |k: &str| refs.iter().filter(|r| r.kind.eq_ignore_ascii_case(k)).count();
    for r in refs {
        let ok = match r.kind.to_ascii_lowercase().as_str() {
            "meshtlsauthentication" | "networkauthentication" => group_is(r.group.as_deref(), "policy.linkerd.io"),
            "serviceaccount" => group_is(r.group.as_deref(), "core"),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "requiredAuthenticationRefs may not name a {} (group `{}`)",
                r.kind,
                r.group.as_deref().unwrap_or("")
            ));
        }
    }
    let (mtls, sa, net) = (count("MeshTLSAuthentication"), count("ServiceAccount"), count("NetworkAuthentication"));
    if mtls > 1 || sa > 1 || net > 1 {
        return Err(
            "at most one MeshTLSAuthentication, one ServiceAccount and one NetworkAuthentication may be required"
                .to_owned(),
        );
    }
    if mtls == 1 && sa == 1 {
        return Err("a MeshTLSAuthentication and a ServiceAccount cannot both be required".to_owned());
    }
    Ok(())
}

fn server_authorization(
    ctx: &Ctx,
    s: &Resource,
    spec: &ServerAuthorizationSpec,
    g: &mut Granted,
    findings: &mut Vec<Finding>,
) {
    let Some(authz) = server_authorization_authz(ctx, s, spec, findings) else {
        return;
    };
    let ns = s.namespace();
    let servers: Vec<usize> = match (&spec.server.name, &spec.server.selector) {
        (Some(name), _) => match ctx.index.get(Kind::Server, ns, name) {
            Some(i) => vec![i],
            None => {
                let msg = format!("{} names Server {ns}/{name}, which does not exist; it authorizes nothing", s.id);
                let hint = similar(ctx, Kind::Server, ns, name);
                let f = finding(s, Code::UnresolvedReference, &["spec", "server", "name"], msg).hint(hint);
                findings.push(f.referent(Referent::object("Server", ns, name)));
                return;
            }
        },
        // The selector matches Servers' own labels, not pods (§6.1).
        (None, Some(sel)) => ctx
            .index
            .in_namespace(Kind::Server, ns)
            .iter()
            .copied()
            .filter(|&i| selector::matches(sel, &ctx.resources[i].meta.labels))
            .collect(),
        (None, None) => {
            let msg = format!(
                "{} has neither spec.server.name nor spec.server.selector; the admission webhook rejects it",
                s.id
            );
            findings.push(finding(s, Code::SchemaViolation, &["spec", "server"], msg));
            return;
        }
    };
    for i in servers {
        g.server.entry(i).or_default().push(authz.clone());
    }
}

fn server_authorization_authz(
    ctx: &Ctx,
    s: &Resource,
    spec: &ServerAuthorizationSpec,
    findings: &mut Vec<Finding>,
) -> Option<Authorization> {
    let c = &spec.client;
    let reject = |findings: &mut Vec<Finding>, why: &str| {
        let msg = format!("{}: {why}; Linkerd rejects it, so it authorizes nothing", s.id);
        findings.push(finding(s, Code::SchemaViolation, &["spec", "client"], msg));
        None
    };
    let authentication = match (c.unauthenticated == Some(true), &c.mesh_tls) {
        (true, Some(_)) => {
            return reject(findings, "`unauthenticated` and `meshTLS` are exclusive");
        }
        (true, None) => Authentication::Unauthenticated,
        (false, Some(m)) if m.unauthenticated_tls == Some(true) => {
            if !m.identities.is_empty() || !m.service_accounts.is_empty() {
                return reject(findings, "`unauthenticatedTLS` excludes identities and serviceAccounts");
            }
            Authentication::TlsUnauthenticated
        }
        (false, Some(m)) if !m.identities.is_empty() || !m.service_accounts.is_empty() => {
            let ids = m.identities.iter().map(|i| mesh_proxy_api::identity_match_from_str(i));
            let sas = m.service_accounts.iter().map(|sa| {
                mesh_proxy_api::IdentityMatch::Exact(
                    ctx.settings.identity(sa.namespace.as_deref().unwrap_or(s.namespace()), &sa.name),
                )
            });
            Authentication::tls_authenticated(ids.chain(sas))
        }
        _ => {
            return reject(
                findings,
                "client sets none of unauthenticated, meshTLS.unauthenticatedTLS, identities or serviceAccounts",
            );
        }
    };
    // Empty networks mean the cluster networks here, unlike AuthorizationPolicy (§6.3).
    let networks = if c.networks.is_empty() {
        authn::to_networks(&ctx.settings.cluster_networks)
    } else {
        match authn::networks(&c.networks) {
            Ok(n) => n,
            Err(why) => return reject(findings, &why),
        }
    };
    Some(Authorization { meta: Meta::resource("ServerAuthorization", s.name()), networks, authentication })
}
