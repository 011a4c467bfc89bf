//! SMI TrafficSplits, lowered as the linkerd-smi extension's adaptor does
//! (`pkg/adaptor/controller.go`, docs/semantics/smi.md): the backends become
//! the `dstOverrides` of the apex Service's ServiceProfile
//! `<apex>.<namespace>.svc.<cluster domain>` in the TrafficSplit's namespace.
//! The adaptor creates that profile when it does not exist, replaces the
//! dstOverrides of one that does (keeping its routes), and leaves a profile
//! annotated `smi.linkerd.io/skip` alone. From there the profile is an
//! ordinary one (§8.5): with targets or routes it replaces the Service's
//! HTTPRoutes and annotations for the clients that see it.

use super::Policy;
use super::profile::Lowered;
use crate::findings::{Code, Finding, Referent};
use crate::model::traffic_split::{TrafficSplitSpec, decimilli};
use crate::model::{Resource, Spec};
use crate::resolve::Resolved;
use crate::resolve::index::Kind;
use mesh_proxy_api::outbound::{DstOverride, Profile, RetryBudget};
use std::collections::BTreeMap;

/// `ignoreServiceProfileAnnotation`: the adaptor neither updates nor cleans
/// up a profile that carries it.
const SKIP_ANNOTATION: &str = "smi.linkerd.io/skip";

/// Writes every TrafficSplit into its apex Service's profile; reports what
/// breaks or never applies.
pub fn apply(r: &Resolved, p: &mut Policy, findings: &mut Vec<Finding>) {
    let mut by_apex: BTreeMap<(usize, String), Vec<usize>> = BTreeMap::new();
    for &ri in r.index.all(Kind::TrafficSplit) {
        let res = &r.resources[ri];
        let Spec::TrafficSplit(spec) = &res.spec else { continue };
        let Some(si) = p.find(res.namespace(), &spec.service) else {
            let msg = format!(
                "{} names apex Service {}/{}, which does not exist in the repository: linkerd-smi still writes \
                 ServiceProfile {}, but no client calls that name, so nothing is split",
                res.id,
                res.namespace(),
                spec.service,
                fqdn(&spec.service, res.namespace(), &r.settings.cluster_domain)
            );
            let missing = Referent::object("Service", res.namespace(), &spec.service);
            report_missing(findings, res, &["spec", "service"], msg, missing);
            continue;
        };
        check_backends(p, res, spec, si, findings);
        by_apex.entry((si, res.namespace().to_owned())).or_default().push(ri);
    }
    for ((si, namespace), mut list) in by_apex {
        list.sort_by(|a, b| r.resources[*a].name().cmp(r.resources[*b].name()));
        let Some(&winner) = list.last() else { continue };
        for &loser in &list[..list.len() - 1] {
            let (res, won) = (&r.resources[loser], &r.resources[winner]);
            let msg = format!(
                "{} and {} both split Service {namespace}/{}: linkerd-smi writes each into the same ServiceProfile, \
                 so the one synced last wins; meshc takes {} (last in name order, as after the adaptor restarts), \
                 and any change to this one makes it win instead",
                res.id,
                won.id,
                p.bases[si].svc.name,
                won.name()
            );
            report(findings, Code::TrafficSplitConflict, res, &["spec", "service"], msg);
        }
        into_profile(r, p, si, &namespace, winner, findings);
    }
}

fn fqdn(service: &str, namespace: &str, domain: &str) -> String {
    format!("{service}.{namespace}.svc.{domain}")
}

fn report(findings: &mut Vec<Finding>, code: Code, res: &Resource, path: &[&str], msg: String) {
    findings.push(Finding::new(code, res.span_at(path), msg).resource(res.id.clone()));
}

/// A Service the split names that does not exist.
fn report_missing(findings: &mut Vec<Finding>, res: &Resource, path: &[&str], msg: String, missing: Referent) {
    let f = Finding::new(Code::TrafficSplitUnresolved, res.span_at(path), msg).resource(res.id.clone());
    findings.push(f.referent(missing));
}

/// Backends that take traffic must exist and declare every port of the
/// apex: the adaptor writes the authority without a port, and the
/// destination controller adds the port the client called (`toDstOverrides`).
fn check_backends(p: &Policy, res: &Resource, spec: &TrafficSplitSpec, apex: usize, findings: &mut Vec<Finding>) {
    let ns = res.namespace();
    let apex_svc = &p.bases[apex].svc;
    for (i, b) in spec.backends.iter().enumerate() {
        if decimilli(&b.weight).is_none_or(|w| w == 0) {
            continue; // takes no traffic
        }
        let path = ["spec", "backends", &i.to_string(), "service"];
        let Some(bi) = p.find(ns, &b.service) else {
            let msg = format!(
                "{} sends part of Service {ns}/{}'s requests to Service {ns}/{}, which does not exist in the \
                 repository: the client's proxy finds no endpoints for it and fails those requests",
                res.id, apex_svc.name, b.service
            );
            let missing = Referent::object("Service", ns, &b.service);
            report_missing(findings, res, &path, msg, missing);
            continue;
        };
        let backend = &p.bases[bi].svc;
        let missing: Vec<String> = apex_svc
            .ports
            .iter()
            .filter(|ap| !backend.ports.iter().any(|bp| bp.port == ap.port))
            .map(|ap| ap.port.to_string())
            .collect();
        if !missing.is_empty() {
            let msg = format!(
                "{} sends part of Service {ns}/{}'s requests to Service {ns}/{}, which declares no port {} (the \
                 apex's): requests to that port sent there find no endpoints and fail",
                res.id,
                apex_svc.name,
                b.service,
                missing.join(", ")
            );
            report(findings, Code::TrafficSplitUnresolved, res, &path, msg);
        }
    }
}

/// The adaptor's `syncHandler`: create or update the apex's profile.
fn into_profile(r: &Resolved, p: &mut Policy, si: usize, ns: &str, ri: usize, findings: &mut Vec<Finding>) {
    let res = &r.resources[ri];
    let Spec::TrafficSplit(spec) = &res.spec else { return };
    let domain = &r.settings.cluster_domain;
    let name = fqdn(&spec.service, ns, domain);
    let in_git = r.index.get(Kind::ServiceProfile, ns, &name).map(|i| &r.resources[i]);
    if let Some(sp) = in_git.filter(|sp| sp.meta.annotation(SKIP_ANNOTATION).is_some()) {
        let msg = format!(
            "{} carries `{SKIP_ANNOTATION}`: linkerd-smi leaves it as it is, so {} splits nothing",
            sp.id, res.id
        );
        report(findings, Code::TrafficSplitIgnored, res, &["spec", "service"], msg);
        return;
    }
    if let Some(sp) = in_git.filter(|sp| matches!(&sp.spec, Spec::ServiceProfile(s) if !s.dst_overrides.is_empty())) {
        let msg = format!(
            "{}: linkerd-smi replaces these dstOverrides with the backends of {}: the ones written here never \
             apply while it exists, and whichever of the adaptor and the tool applying this file writes last decides",
            sp.id, res.id
        );
        report(findings, Code::TrafficSplitConflict, sp, &["spec", "dstOverrides"], msg);
    }
    // Zero weights never reach the balancer: the proxy drops such
    // overrides (`service-profiles/src/proto.rs`, `convert_dst_override`).
    let dst_overrides: Vec<DstOverride> = spec
        .backends
        .iter()
        .filter_map(|b| {
            let weight = decimilli(&b.weight).filter(|w| *w > 0)?;
            Some(DstOverride { authority: fqdn(&b.service, ns, domain), weight })
        })
        .collect();
    let existing = p.profiles[si].remove(ns);
    let had_profile = existing.is_some();
    let mut profile = existing.unwrap_or_else(|| Profile {
        name: name.clone(),
        namespace: ns.to_owned(),
        routes: Vec::new(),
        retry_budget: RetryBudget::default(),
        dst_overrides: Vec::new(),
    });
    profile.dst_overrides = dst_overrides;
    if profile.dst_overrides.is_empty() {
        let apex = &p.bases[si].svc.name;
        let then = if profile.routes.is_empty() {
            "the profile is left with neither targets nor routes and overrides nothing"
        } else {
            "the profile's routes still apply"
        };
        let msg = format!(
            "every backend of {} has weight 0 (or none is listed): the proxy drops zero-weight dstOverrides, so \
             requests to Service {ns}/{apex} are not split and go to its own endpoints; {then}",
            res.id
        );
        report(findings, Code::TrafficSplitIgnored, res, &["spec", "backends"], msg);
        if profile.routes.is_empty() {
            return;
        }
    }
    p.splits.insert((si, ns.to_owned()), ri);
    if !had_profile {
        let lowered = Lowered { service: si, namespace: ns.to_owned(), resource: ri, profile: profile.clone() };
        p.report_override(r, &lowered, findings);
    }
    p.profiles[si].insert(ns.to_owned(), profile);
}
