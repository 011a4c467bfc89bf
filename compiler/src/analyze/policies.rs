//! Findings about authorization and authentication resources themselves.

use crate::findings::{Code, Finding, Referent};
use crate::model::policy::NetworkSpec;
use crate::model::{Resource, Spec};
use crate::resolve::Resolved;
use crate::resolve::authn::is_overbroad;
use crate::resolve::index::Kind;
use crate::settings::parse_net;
use mesh_proxy_api::{IdentityMatch, Network, identity_match_from_str};
use std::collections::{BTreeMap, HashSet};

pub fn check(r: &Resolved, findings: &mut Vec<Finding>) {
    overbroad_networks(r, findings);
    redundant(r, findings);
    unused(r, findings);
    identities(r, findings);
}

fn overbroad_networks(r: &Resolved, findings: &mut Vec<Finding>) {
    let lists = r.index.all(Kind::NetworkAuthn).iter().chain(r.index.all(Kind::ServerAuthorization)).filter_map(|&i| {
        let res = &r.resources[i];
        match &res.spec {
            Spec::NetworkAuthentication(n) => Some((res, &n.networks, "spec.networks")),
            Spec::ServerAuthorization(s) => Some((res, &s.client.networks, "spec.client.networks")),
            _ => None,
        }
    });
    for (res, nets, field) in lists {
        for (i, spec) in nets.iter().enumerate() {
            if !parse_net(&spec.cidr).is_some_and(|net| is_overbroad(&Network { net, except: Vec::new() })) {
                continue;
            }
            let mut path: Vec<String> = field.split('.').map(str::to_owned).collect();
            path.extend([i.to_string(), "cidr".to_owned()]);
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let msg = format!(
                "{} allows {}{}: every source address, in the cluster or on the internet, passes this network check",
                res.id,
                spec.cidr,
                excepts(spec)
            );
            let f = Finding::new(Code::OverbroadNetwork, res.span_at(&path), msg).resource(res.id.clone());
            findings.push(f.hint("list the client networks (pod CIDR, a load balancer's range)"));
        }
    }
}

fn excepts(spec: &NetworkSpec) -> String {
    if spec.except.is_empty() { String::new() } else { format!(" (except {})", spec.except.join(", ")) }
}

/// What an AuthorizationPolicy grants to whom: namespace, target kind and
/// name, and its authentication references (kind, namespace, name) as a
/// set: sorted, without repeats. A vector, not a `BTreeSet`, whose first
/// node alone is 800 bytes for a policy's one or two references (tens of
/// megabytes at the peak of a 10,000-workload check).
type GrantKey = (String, String, String, Vec<(String, String, String)>);

/// Two AuthorizationPolicies with the same target and the same authentications.
fn redundant(r: &Resolved, findings: &mut Vec<Finding>) {
    let mut seen: BTreeMap<GrantKey, &Resource> = BTreeMap::new();
    for &pi in r.index.all(Kind::AuthorizationPolicy) {
        let p = &r.resources[pi];
        let Spec::AuthorizationPolicy(spec) = &p.spec else {
            continue;
        };
        let t = &spec.target_ref;
        let mut refs: Vec<_> = spec
            .required_authentication_refs
            .iter()
            .map(|a| {
                (
                    a.kind.to_ascii_lowercase(),
                    a.namespace.clone().unwrap_or_else(|| p.namespace().to_owned()),
                    a.name.clone(),
                )
            })
            .collect();
        refs.sort();
        refs.dedup();
        let key = (p.namespace().to_owned(), t.kind.to_ascii_lowercase(), t.name.clone(), refs);
        match seen.get(&key) {
            Some(first) => {
                let msg = format!(
                    "{} grants exactly what {} grants (same target {} {} and authentications): authorizations are OR'ed, so it adds nothing",
                    p.id,
                    first.name(),
                    t.kind,
                    t.name
                );
                findings.push(
                    Finding::new(Code::RedundantAuthorization, p.span(), msg)
                        .resource(p.id.clone())
                        .hint("delete one of the two"),
                );
            }
            None => {
                seen.insert(key, p);
            }
        }
    }
}

fn unused(r: &Resolved, findings: &mut Vec<Finding>) {
    for &ai in r.index.all(Kind::MeshTls).iter().chain(r.index.all(Kind::NetworkAuthn)) {
        if r.granted.referenced_authns.contains(&ai) {
            continue;
        }
        let a = &r.resources[ai];
        let msg = format!("{} is referenced by no AuthorizationPolicy, so it grants nothing", a.id);
        findings.push(Finding::new(Code::UnusedAuthentication, a.span(), msg).resource(a.id.clone()));
    }
}

/// Every identity the repository's workloads and ServiceAccounts can present,
/// and every dot-suffix of those, so a `*.suffix` check is one lookup.
pub(super) struct KnownIdentities {
    exact: HashSet<String>,
    suffixes: HashSet<String>,
}

impl KnownIdentities {
    pub(super) fn new(r: &Resolved) -> Self {
        let mut exact: HashSet<String> =
            r.workloads.iter().filter(|w| w.is_meshed()).map(|w| w.identity.clone()).collect();
        for &i in r.index.all(Kind::ServiceAccount) {
            let sa = &r.resources[i];
            exact.insert(r.settings.identity(sa.namespace(), sa.name()));
        }
        let suffixes = exact.iter().flat_map(|id| id.match_indices('.').map(|(i, _)| id[i..].to_owned())).collect();
        KnownIdentities { exact, suffixes }
    }

    /// Linkerd's suffixes keep their leading dot (`.ns.serviceaccount...`).
    pub(super) fn matches(&self, m: &IdentityMatch) -> bool {
        match m {
            IdentityMatch::Exact(id) => self.exact.contains(id),
            IdentityMatch::Suffix(sfx) => sfx.is_empty() || self.suffixes.contains(sfx),
        }
    }
}

/// Each identity a resource names, with the field it is written at.
fn named_identities(r: &Resolved, res: &Resource) -> Vec<(IdentityMatch, Vec<String>)> {
    let s = &r.settings;
    let field = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    let mut out = Vec::new();
    match &res.spec {
        Spec::MeshTlsAuthentication(m) => {
            for (i, id) in m.identities.iter().flatten().enumerate() {
                out.push((identity_match_from_str(id), field(&["spec", "identities", &i.to_string()])));
            }
            for (i, ir) in m.identity_refs.iter().flatten().enumerate() {
                let Some(name) = &ir.name else { continue };
                let at = field(&["spec", "identityRefs", &i.to_string(), "name"]);
                match ir.kind.to_ascii_lowercase().as_str() {
                    "serviceaccount" => out.push((
                        IdentityMatch::Exact(s.identity(ir.namespace.as_deref().unwrap_or(res.namespace()), name)),
                        at,
                    )),
                    "namespace" => out.push((IdentityMatch::Suffix(s.namespace_identity_suffix(name)), at)),
                    _ => {}
                }
            }
        }
        Spec::ServerAuthorization(a) => {
            let Some(m) = &a.client.mesh_tls else {
                return out;
            };
            for (i, id) in m.identities.iter().enumerate() {
                out.push((
                    identity_match_from_str(id),
                    field(&["spec", "client", "meshTLS", "identities", &i.to_string()]),
                ));
            }
            for (i, sa) in m.service_accounts.iter().enumerate() {
                let id = s.identity(sa.namespace.as_deref().unwrap_or(res.namespace()), &sa.name);
                out.push((
                    IdentityMatch::Exact(id),
                    field(&["spec", "client", "meshTLS", "serviceAccounts", &i.to_string()]),
                ));
            }
        }
        Spec::AuthorizationPolicy(p) => {
            for (i, a) in p.required_authentication_refs.iter().enumerate() {
                if a.kind.eq_ignore_ascii_case("ServiceAccount") {
                    let id = s.identity(a.namespace.as_deref().unwrap_or(res.namespace()), &a.name);
                    out.push((
                        IdentityMatch::Exact(id),
                        field(&["spec", "requiredAuthenticationRefs", &i.to_string()]),
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

fn identities(r: &Resolved, findings: &mut Vec<Finding>) {
    let known = KnownIdentities::new(r);
    let default_suffix = r.settings.identity_domain().service_account_suffix();
    let kinds = [Kind::MeshTls, Kind::ServerAuthorization, Kind::AuthorizationPolicy];
    for &i in kinds.iter().flat_map(|k| r.index.all(*k)) {
        let res = &r.resources[i];
        for (m, field) in named_identities(r, res) {
            let path: Vec<&str> = field.iter().map(String::as_str).collect();
            let text = match &m {
                IdentityMatch::Exact(id) => id.clone(),
                IdentityMatch::Suffix(sfx) if sfx.is_empty() => continue,
                IdentityMatch::Suffix(sfx) => format!("*{sfx}"),
            };
            let matched = known.matches(&m);
            if let IdentityMatch::Exact(id) = &m
                && id.starts_with("default.")
                && id.ends_with(&default_suffix)
            {
                let ns = id.trim_start_matches("default.").trim_end_matches(&default_suffix);
                let msg = format!(
                    "{} grants identity {id}, the `default` ServiceAccount of {ns}: every pod there without its own serviceAccountName runs as it, including workloads added later",
                    res.id
                );
                let f =
                    Finding::new(Code::SharedDefaultServiceAccount, res.span_at(&path), msg).resource(res.id.clone());
                findings.push(f.hint("give the client its own ServiceAccount and grant that one"));
            }
            if !matched {
                let msg = format!(
                    "{} names identity {text}, which no ServiceAccount or meshed workload in the repository has; fine for clients defined elsewhere, otherwise a typo that grants nothing",
                    res.id
                );
                let f = Finding::new(Code::IdentityMatchesNothing, res.span_at(&path), msg).resource(res.id.clone());
                findings.push(f.referent(Referent::Identity(text)));
            }
        }
    }
}
