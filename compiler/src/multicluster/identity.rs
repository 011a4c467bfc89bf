//! Identities across clusters: the gateway's identity replaces the
//! client's in gateway mode; linked clusters need a common trust root; equal
//! identity domains make two clusters' ServiceAccounts one principal.

use super::Links;
use super::link::Mode;
use super::repository::Repository;
use crate::findings::{Code, Finding, Referent, Span};
use crate::load::RawObject;
use crate::load::yaml::Node;
use crate::model::Spec;
use crate::model::meta::IntOrString;
use crate::pipeline::{Outcome, Prepared};
use crate::query::evaluate::{self, Verdict};
use crate::resolve::index::Kind;
use crate::settings::Settings;
use crate::settings::clusters::ClusterEntry;
use mesh_proxy_api::{Client, ClientTls};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The multicluster chart's namespace and the gateway's ServiceAccount
/// (`gateway.name`, default `linkerd-gateway`).
pub const MULTICLUSTER_NAMESPACE: &str = super::chart::DEFAULT_NAMESPACE;
pub const GATEWAY_SERVICE_ACCOUNT: &str = super::chart::DEFAULT_GATEWAY_NAME;

/// A cluster's gateway: as its multicluster Helm values install it, else
/// as the chart's defaults would.
#[derive(Clone, Debug)]
pub struct Gateway {
    pub namespace: String,
    pub service_account: String,
    /// `gateway.port`: the Service's `mc-gateway` port, which requires an identity.
    pub port: u16,
    pub enabled: bool,
    /// What its certificate names: its ServiceAccount under the cluster's own identity domain.
    pub identity: String,
    /// The values it comes from; `None`: not in the repository.
    pub values: Option<super::chart::ChartValues>,
}

impl Gateway {
    pub fn of(settings: &Settings, chart: Option<&super::chart::ChartValues>) -> Gateway {
        let (namespace, service_account, port, enabled) = match chart {
            Some(v) => (v.namespace.clone(), v.gateway_name.clone(), v.gateway_port, v.gateway_enabled),
            None => (
                MULTICLUSTER_NAMESPACE.to_owned(),
                GATEWAY_SERVICE_ACCOUNT.to_owned(),
                super::chart::DEFAULT_GATEWAY_PORT,
                true,
            ),
        };
        let identity = settings.identity(&namespace, &service_account);
        Gateway { namespace, service_account, port, enabled, identity, values: chart.cloned() }
    }

    /// The identity a call through `link` carries to the target: the
    /// gateway's own; without the values in the repository the Link's
    /// `gatewayIdentity` is the best word on it (a gateway may be renamed).
    pub fn arriving(&self, link: &super::link::Link) -> String {
        match (&self.values, &link.spec.gateway_identity) {
            (None, Some(id)) => id.clone(),
            _ => self.identity.clone(),
        }
    }
}

/// Per Link, why its gateway cannot be reached as the Link says, when the
/// target's multicluster values show it (`link-gateway-mismatch`, at the
/// Link); and the chart advertising an identity its gateway does not carry
/// (at the release, once per target cluster).
pub fn gateway_problems(outcomes: &mut [Outcome], links: &Links, names: &[&str]) -> Vec<Option<String>> {
    let mut problems = vec![None; links.links.len()];
    let mut advertised_checked = HashSet::new();
    for (l, link) in links.links.iter().enumerate() {
        let Some(t) = links.target_of[l] else { continue };
        let gw = &links.gateways[t];
        let Some(values) = &gw.values else { continue };
        if !links.exports.iter().any(|e| e.link == l && e.mode == Mode::Gateway) {
            continue;
        }
        let problem = if !gw.enabled {
            Some(format!(
                "cluster {}'s multicluster values disable its gateway (gateway.enabled: false in {}): nothing \
                 answers at the Link's gatewayAddress, and every call to its gateway-mode mirrors fails",
                names[t], values.release
            ))
        } else {
            link.spec.gateway_identity.as_deref().filter(|id| *id != gw.identity).map(|id| {
                format!(
                    "the Link expects the gateway's identity {id}, but cluster {}'s gateway ({} in {}, from {}) \
                     carries {}: the client's proxy refuses its certificate",
                    names[t], gw.service_account, gw.namespace, values.release, gw.identity
                )
            })
        };
        if let Some(p) = &problem {
            let msg = format!("Link {}/{}: {p}", link.namespace, link.name);
            let f = Finding::new(Code::LinkGatewayMismatch, link.span, msg).hint(
                "regenerate the Link with `linkerd multicluster link-gen` against the target cluster, or enable its \
                 gateway; pod-to-pod links need no gateway",
            );
            outcomes[link.source_cluster].findings.push(f);
        }
        problems[l] = problem;
        if gw.enabled && advertised_checked.insert(t) && values.advertised_identity() != gw.identity {
            let msg = format!(
                "{} advertises the gateway's identity {} (values linkerdNamespace and identityTrustDomain), but its \
                 certificate carries {} (cluster {}'s control plane): Links written from the gateway Service's \
                 annotation expect the wrong identity",
                values.release,
                values.advertised_identity(),
                gw.identity,
                names[t]
            );
            let f = Finding::new(Code::LinkGatewayMismatch, values.span, msg)
                .hint("set linkerdNamespace and identityTrustDomain to the control plane's");
            outcomes[t].findings.push(f);
        }
    }
    problems
}

/// A cluster's trust anchors: the certificates' bodies, and where they were read.
#[derive(Clone, Debug)]
pub struct Anchors {
    pub certificates: BTreeSet<String>,
    pub from: String,
}

/// `ca-bundle.crt` of Linkerd's `linkerd-identity-trust-roots` ConfigMap.
pub fn trust_roots_configmap(raw: &RawObject) -> Option<(String, Span)> {
    if raw.kind != "ConfigMap" || raw.api_version != "v1" {
        return None;
    }
    let name = raw.node.get("metadata").and_then(|m| m.get("name")).and_then(Node::as_str)?;
    if name != "linkerd-identity-trust-roots" {
        return None;
    }
    let bundle = raw.node.get("data").and_then(|d| d.get("ca-bundle.crt"))?;
    Some((bundle.as_str()?.to_owned(), crate::load::objects::span_of(raw.source, bundle)))
}

/// The cluster's anchors: the entry's `trustAnchors` file, else the ConfigMap in its directory.
pub fn anchors(
    repo: &Repository,
    entry: &ClusterEntry,
    span: Span,
    p: &Prepared,
    findings: &mut Vec<Finding>,
) -> Option<Anchors> {
    let (pem, from) = match &entry.trust_anchors {
        Some(file) => {
            let path = repo.root.join(file);
            let text = crate::load::discover::resolves_inside(&repo.root, &path)
                .then(|| crate::load::discover::read_text(&path).ok())
                .flatten();
            let Some(text) = text else {
                let msg = format!(
                    "meshc.yaml: cluster `{}`: trustAnchors file `{file}` cannot be read in the repository",
                    entry.name
                );
                findings.push(Finding::new(Code::MulticlusterInvalid, span, msg));
                return None;
            };
            (text, file.clone())
        }
        None => {
            let (text, _) = p.multicluster.trust_roots.clone()?;
            (text, format!("{}/ ConfigMap linkerd-identity-trust-roots", entry.directory))
        }
    };
    let certificates = certificates(&pem);
    if certificates.is_empty() {
        let msg = format!("meshc.yaml: cluster `{}`: no PEM certificate in its trust anchors ({from})", entry.name);
        findings.push(Finding::new(Code::MulticlusterInvalid, span, msg));
        return None;
    }
    Some(Anchors { certificates, from })
}

/// The base64 bodies of the PEM certificates in `pem`, whitespace removed.
fn certificates(pem: &str) -> BTreeSet<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = BTreeSet::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(end) = body.find(END) else { break };
        out.insert(body[..end].chars().filter(|c| !c.is_whitespace()).collect());
        rest = &body[end + END.len()..];
    }
    out
}

/// `trust-anchors-differ` on each Link whose two clusters' anchors, both
/// known, share no certificate.
pub fn differing_anchors(
    outcomes: &mut [Outcome],
    links: &Links,
    anchors: &[Option<Anchors>],
    names: &[&str],
) -> Vec<bool> {
    let mut untrusted = vec![false; links.links.len()];
    for (l, link) in links.links.iter().enumerate() {
        let Some(t) = links.target_of[l] else { continue };
        let (Some(a), Some(b)) = (&anchors[link.source_cluster], &anchors[t]) else { continue };
        if a.certificates.is_disjoint(&b.certificates) {
            untrusted[l] = true;
            let msg = format!(
                "Link {}/{}: clusters {} ({}) and {} ({}) share no trust anchor: the mTLS handshake of every call \
                 through the Link fails, in gateway and in pod-to-pod mode",
                link.namespace, link.name, names[link.source_cluster], a.from, names[t], b.from
            );
            outcomes[link.source_cluster].findings.push(Finding::new(Code::TrustAnchorsDiffer, link.span, msg));
        }
    }
    untrusted
}

/// `identity-shared-across-clusters`, once per pair of linked clusters
/// with one identity domain and ServiceAccounts of the same name.
pub fn shared_identities(outcomes: &mut [Outcome], links: &Links, names: &[&str]) {
    let mut seen = HashSet::new();
    for (l, link) in links.links.iter().enumerate() {
        let (s, Some(t)) = (link.source_cluster, links.target_of[l]) else { continue };
        if !seen.insert((s.min(t), s.max(t))) {
            continue;
        }
        let (a, b) = (&outcomes[s].resolved, &outcomes[t].resolved);
        if a.settings.identity_domain() != b.settings.identity_domain() {
            continue;
        }
        let ids = |r: &crate::resolve::Resolved| -> BTreeSet<String> {
            r.workloads.iter().filter(|w| w.is_meshed()).map(|w| w.identity.clone()).collect()
        };
        let shared: Vec<String> = ids(a).intersection(&ids(b)).cloned().collect();
        if shared.is_empty() {
            continue;
        }
        let examples: Vec<&str> = shared.iter().take(3).map(String::as_str).collect();
        let msg = format!(
            "clusters {} and {} share the trust domain `{}` and control-plane namespace `{}`: {} identities exist in \
             both ({}{}), and no policy can tell the two clusters' workloads apart",
            names[s],
            names[t],
            a.settings.trust_domain,
            a.settings.control_plane_namespace,
            shared.len(),
            examples.join(", "),
            if shared.len() > 3 { ", …" } else { "" }
        );
        outcomes[s].findings.push(Finding::new(Code::IdentitySharedAcrossClusters, link.span, msg));
    }
}

/// `gateway-identity-denied`: a Service exported through the gateway whose
/// workload's policy admits some client identity of the source cluster but
/// not the gateway's, which is the identity every call through the gateway carries.
pub fn gateway_denials(outcomes: &mut [Outcome], links: &Links, names: &[&str]) {
    let mut found: Vec<(usize, Finding)> = Vec::new();
    // Per cluster, once: its meshed identities (as clients) and its workloads by namespace.
    let clients: Vec<BTreeSet<&str>> = outcomes
        .iter()
        .map(|o| o.resolved.workloads.iter().filter(|w| w.is_meshed()).map(|w| w.identity.as_str()).collect())
        .collect();
    let by_ns: Vec<HashMap<&str, Vec<usize>>> = outcomes.iter().map(|o| workloads_by_namespace(o)).collect();
    for e in links.exports.iter().filter(|e| e.mode == Mode::Gateway) {
        let link = &links.links[e.link];
        let tgt = &outcomes[e.target_cluster];
        let gateway = links.gateways[e.target_cluster].arriving(link);
        let clients = &clients[link.source_cluster];
        let in_ns = by_ns[e.target_cluster].get(e.namespace.as_str()).map_or(&[][..], Vec::as_slice);
        for (wi, port) in backing_ports_among(tgt, &e.namespace, &e.name, in_ns.iter().copied()) {
            let addr = first_pod_addr(&tgt.resolved.settings);
            let verdict = |id: &str| {
                let client = Client { addr, tls: ClientTls::Identified(id.to_owned()) };
                let gate = evaluate::gate(tgt.configs.get(wi).and_then(Option::as_ref), port, &client);
                evaluate::per_route(gate, &client)
                    .iter()
                    .any(|d| matches!(d.verdict, Verdict::Allow | Verdict::Depends))
            };
            if verdict(&gateway) {
                continue;
            }
            let Some(admitted) = clients.iter().find(|id| verdict(id)) else { continue };
            let svc = tgt.resolved.index.get(Kind::Service, &e.namespace, &e.name);
            let span = svc.map_or(link.span, |i| tgt.resolved.resources[i].span());
            let msg = format!(
                "Service {ns}/{name} of cluster {t} is exported to cluster {s} through the gateway (Link {ln} as \
                 {ns}/{mirror}); {workload} port {port} admits {admitted} but not the gateway's identity \
                 {gateway}, which every call through the gateway carries: calls from {s} are denied",
                ns = e.namespace,
                name = e.name,
                t = names[e.target_cluster],
                s = names[link.source_cluster],
                ln = link.name,
                mirror = e.mirror,
                workload = crate::query::reach::workload_label(tgt, wi),
            );
            found.push((e.target_cluster, Finding::new(Code::GatewayIdentityDenied, span, msg)));
        }
    }
    for (c, f) in found {
        outcomes[c].findings.push(f);
    }
}

fn workloads_by_namespace(o: &Outcome) -> HashMap<&str, Vec<usize>> {
    let mut out: HashMap<&str, Vec<usize>> = HashMap::new();
    for (wi, w) in o.resolved.workloads.iter().enumerate() {
        out.entry(w.namespace.as_str()).or_default().push(wi);
    }
    out
}

/// The workloads behind a Service and the pod port each of its TCP ports reaches.
pub fn backing_ports(o: &Outcome, namespace: &str, name: &str) -> Vec<(usize, u16)> {
    backing_ports_among(o, namespace, name, 0..o.resolved.workloads.len())
}

/// [`backing_ports`] among the workloads `candidates`.
fn backing_ports_among(
    o: &Outcome,
    namespace: &str,
    name: &str,
    candidates: impl Iterator<Item = usize>,
) -> Vec<(usize, u16)> {
    let Some(ri) = o.resolved.index.get(Kind::Service, namespace, name) else { return Vec::new() };
    let Spec::Service(spec) = &o.resolved.resources[ri].spec else { return Vec::new() };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else { return Vec::new() };
    let mut out = Vec::new();
    for wi in candidates {
        let w = &o.resolved.workloads[wi];
        if w.namespace != namespace || !selector.iter().all(|(k, v)| w.labels.get(k) == Some(v)) {
            continue;
        }
        for sp in spec.ports.iter().filter(|p| p.protocol.as_deref().is_none_or(|x| x.eq_ignore_ascii_case("TCP"))) {
            let pod_port = match sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port)) {
                IntOrString::Int(n) => u16::try_from(n).ok(),
                IntOrString::Str(n) => w.ports.iter().find(|p| p.name.as_deref() == Some(n.as_str())).map(|p| p.port),
            };
            out.extend(pod_port.map(|p| (wi, p)));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The gateway pod's address stands for "a pod of the target cluster".
fn first_pod_addr(settings: &Settings) -> std::net::IpAddr {
    settings
        .pod_space()
        .iter()
        .find_map(|n| n.hosts().next())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)))
}

/// `identity-matches-nothing` is about one cluster; across a Link, an
/// identity that a workload of a linked cluster has, or the gateway's of
/// this cluster when another links to it, does match something.
pub fn drop_matched_elsewhere(outcomes: &mut [Outcome], links: &Links) {
    let mut known: Vec<BTreeSet<String>> = vec![BTreeSet::new(); outcomes.len()];
    for (l, link) in links.links.iter().enumerate() {
        let (s, Some(t)) = (link.source_cluster, links.target_of[l]) else { continue };
        let ids = |o: &Outcome| -> Vec<String> {
            o.resolved.workloads.iter().filter(|w| w.is_meshed()).map(|w| w.identity.clone()).collect()
        };
        let (from_s, from_t) = (ids(&outcomes[s]), ids(&outcomes[t]));
        known[t].extend(from_s);
        known[s].extend(from_t);
        known[t].insert(links.gateways[t].arriving(link));
        known[t].insert(links.gateways[t].identity.clone());
    }
    for (o, ids) in outcomes.iter_mut().zip(known) {
        o.findings.retain(|f| match &f.referent {
            Some(Referent::Identity(id)) if f.code == Code::IdentityMatchesNothing => !ids.contains(id),
            _ => true,
        });
    }
}
