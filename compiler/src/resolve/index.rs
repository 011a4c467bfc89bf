//! Lookup of resources by kind, namespace and name, and the duplicate rule:
//! `kubectl apply -f DIR` applies files in lexical order, so the last
//! definition of a kind/namespace/name is the one the cluster keeps.

use crate::findings::{Code, Finding};
use crate::model::Resource;
use std::collections::HashMap;

/// Resource kinds as meshc indexes them: HTTPRoute exists in two groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    ServiceAccount,
    Workload,
    Service,
    Server,
    ServerAuthorization,
    AuthorizationPolicy,
    MeshTls,
    NetworkAuthn,
    PolicyHttpRoute,
    GatewayHttpRoute,
    GrpcRoute,
    TlsRoute,
    TcpRoute,
    ServiceProfile,
    RateLimitPolicy,
    EgressNetwork,
    TrafficSplit,
}

pub fn kind_of(r: &Resource) -> Kind {
    use crate::model::Spec::*;
    match &r.spec {
        Namespace => Kind::Namespace,
        ServiceAccount => Kind::ServiceAccount,
        Workload(_) => Kind::Workload,
        Service(_) => Kind::Service,
        Server(_) => Kind::Server,
        ServerAuthorization(_) => Kind::ServerAuthorization,
        AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
        MeshTlsAuthentication(_) => Kind::MeshTls,
        NetworkAuthentication(_) => Kind::NetworkAuthn,
        HttpRoute(_) if r.group == "policy.linkerd.io" => Kind::PolicyHttpRoute,
        HttpRoute(_) => Kind::GatewayHttpRoute,
        HttpLocalRateLimitPolicy(_) => Kind::RateLimitPolicy,
        GrpcRoute(_) => Kind::GrpcRoute,
        TlsRoute(_) => Kind::TlsRoute,
        TcpRoute(_) => Kind::TcpRoute,
        ServiceProfile(_) => Kind::ServiceProfile,
        EgressNetwork(_) => Kind::EgressNetwork,
        TrafficSplit(_) => Kind::TrafficSplit,
    }
}

#[derive(Default)]
pub struct Index {
    by_name: HashMap<(Kind, String, String), usize>,
    by_namespace: HashMap<(Kind, String), Vec<usize>>,
    by_kind: HashMap<Kind, Vec<usize>>,
}

impl Index {
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<usize> {
        self.by_name.get(&(kind, namespace.to_owned(), name.to_owned())).copied()
    }

    /// Resources of `kind` in `namespace`, in input order.
    pub fn in_namespace(&self, kind: Kind, namespace: &str) -> &[usize] {
        self.by_namespace.get(&(kind, namespace.to_owned())).map_or(&[], Vec::as_slice)
    }

    pub fn all(&self, kind: Kind) -> &[usize] {
        self.by_kind.get(&kind).map_or(&[], Vec::as_slice)
    }
}

/// Group and kind as written, namespace, name: a Deployment and a StatefulSet may share a name.
fn key(r: &Resource) -> (&str, &str, &str, &str) {
    (r.group.as_str(), r.id.kind.as_str(), r.namespace(), r.name())
}

/// Which definitions the cluster keeps (the last of each group, kind,
/// namespace and name); each replaced one is reported.
fn winners(resources: &[Resource], sources: &[String], findings: &mut Vec<Finding>) -> Vec<bool> {
    let mut last: HashMap<_, usize> = HashMap::with_capacity(resources.len());
    for (i, r) in resources.iter().enumerate() {
        last.insert(key(r), i);
    }
    let mut win = vec![false; resources.len()];
    for (i, r) in resources.iter().enumerate() {
        let winner = last[&key(r)];
        if winner == i {
            win[i] = true;
            continue;
        }
        let w = &resources[winner];
        let at = format!("{}:{}", sources.get(w.source as usize).map_or("?", String::as_str), w.span().line);
        let msg = format!(
            "{} is defined again at {at}; `kubectl apply -f` applies that one last, so this definition is replaced",
            r.id
        );
        let f = Finding::new(Code::DuplicateResource, r.span(), msg).resource(r.id.clone());
        findings.push(f.hint("keep one definition"));
    }
    win
}

/// Drops every definition a later one replaces (reporting it), and indexes the rest.
pub fn build(resources: Vec<Resource>, sources: &[String], findings: &mut Vec<Finding>) -> (Vec<Resource>, Index) {
    let winners = winners(&resources, sources, findings);
    let kept: Vec<Resource> = resources.into_iter().zip(winners).filter_map(|(r, win)| win.then_some(r)).collect();
    let mut index = Index::default();
    for (i, r) in kept.iter().enumerate() {
        let kind = kind_of(r);
        index.by_name.insert((kind, r.namespace().to_owned(), r.name().to_owned()), i);
        index.by_namespace.entry((kind, r.namespace().to_owned())).or_default().push(i);
        index.by_kind.entry(kind).or_default().push(i);
    }
    (kept, index)
}
