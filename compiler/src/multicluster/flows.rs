//! MeshTest in a multicluster repository. Each cluster's test files run
//! against it, as `meshc check` of its directory would run them; a flow
//! whose `from` or `to` names another cluster (`CLUSTER/...`), or whose
//! target is a mirrored Service, is answered here, across clusters, with
//! `multicluster::reach`; one to a Service of its own cluster whose route
//! sends part of the call to a mirror follows that backend across
//! (`multicluster::service_backends::follow`, as `reach` does).

use super::Clusters;
use super::reach::{self as cross, CrossReach};
use crate::findings::Finding;
use crate::meshtest::{self, Flow, TestResult, flows, invariants};
use crate::query::classes::Classes;
use crate::query::cluster_ref;
use crate::query::evaluate::Verdict;
use crate::query::reach::{self, request_of};
use crate::query::svc;
use std::path::PathBuf;

/// Reads and runs every cluster's tests (`files[c]`); results and findings go to each cluster.
pub fn run(m: &mut Clusters, files: Vec<Vec<(String, PathBuf)>>) {
    let mut suites = Vec::new();
    let mut findings: Vec<Vec<Finding>> = Vec::new();
    for (c, files) in m.clusters.iter_mut().zip(files) {
        let mut f = Vec::new();
        suites.push((!files.is_empty()).then(|| meshtest::read(&mut c.outcome, &files, &mut f)));
        findings.push(f);
    }
    let mut results: Vec<Vec<TestResult>> = Vec::new();
    for (c, suite) in suites.iter().enumerate() {
        let Some(suite) = suite else {
            results.push(Vec::new());
            continue;
        };
        let o = &m.clusters[c].outcome;
        let classes = Classes::derive(&o.resolved, &o.configs);
        let remote = |f: &Flow| answer(m, c, f);
        let follow = |r: &mut svc::ServiceReach, req: Option<&mesh_proxy_api::HttpRequest>| {
            super::service_backends::follow(m, c, r, req)
        };
        let mut r = flows::run_with(o, &classes, suite, &mut findings[c], &remote, &follow);
        r.extend(invariants::run(o, &classes, &suite.invariants, &mut findings[c]));
        results.push(r);
    }
    for ((cluster, f), r) in m.clusters.iter_mut().zip(findings).zip(results) {
        cluster.outcome.findings.extend(f);
        cluster.outcome.findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        cluster.outcome.tests = r;
    }
}

/// `CLUSTER/REST` when it names a cluster, else `REST` in cluster `c`.
fn locate<'s>(names: &[&str], c: usize, spec: &'s str) -> (usize, &'s str) {
    cluster_ref::split(names, spec).unwrap_or((c, spec))
}

/// The verdict of a flow of cluster `c` that crosses clusters; `None` for one within `c`.
fn answer(m: &Clusters, c: usize, f: &Flow) -> Option<Result<(&'static str, String), String>> {
    let names: Vec<&str> = m.clusters.iter().map(|x| x.name.as_str()).collect();
    let (cf, from) = locate(&names, c, &f.spec.from);
    let (ct, to) = locate(&names, c, &f.spec.to);
    let mirror = to
        .strip_prefix(svc::target::PREFIX)
        .and_then(|rest| rest.rsplit_once(':'))
        .and_then(|(s, _)| s.split_once('/'))
        .and_then(|(ns, name)| cross::path_of_mirror(m, ct, ns, name));
    if cf == c && ct == c && mirror.is_none() {
        return None;
    }
    if cf != c && ct != c {
        return Some(Err(format!("a flow of cluster {} must start or end in it", names[c])));
    }
    Some(cross_verdict(m, f, (cf, from), (ct, to), mirror.as_ref()))
}

fn cross_verdict(
    m: &Clusters,
    f: &Flow,
    (cf, from): (usize, &str),
    (ct, to): (usize, &str),
    mirror: Option<&cross::Path>,
) -> Result<(&'static str, String), String> {
    let s = &f.spec;
    let headers = s.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let req = request_of(s.method.as_deref(), s.path.as_deref(), s.host.as_deref(), headers);
    let src = &m.clusters[cf].outcome;
    let classes = Classes::derive(&src.resolved, &src.configs);
    let client = reach::parse_client(src, &classes, from)?;
    let calls: Vec<CrossReach> = match mirror {
        Some(p) if cf == ct => {
            let t = svc::target::parse(src, to)?;
            cross::backends(m, p, t.port)
                .into_iter()
                .map(|b| cross::cross(m, &client, p, t.port, b, req.as_ref()))
                .collect()
        }
        Some(_) => {
            return Err(format!("{to} is a Service of cluster {}: the client must be in it", m.clusters[ct].name));
        }
        None => {
            let tgt = &m.clusters[ct].outcome;
            let (wi, port) = reach::parse_target(tgt, to)?;
            let port = port.ok_or("a flow across clusters needs the target's port (WORKLOAD:PORT)")?;
            cross::paths_to_workload(m, cf, ct, wi, port)
                .iter()
                .map(|p| cross::cross(m, &client, p, port, (wi, port), req.as_ref()))
                .collect()
        }
    };
    let verdicts: Vec<(Verdict, String)> = calls.iter().map(|c| (verdict_of(c, req.is_some()), summary(c))).collect();
    let pick = |v: Verdict| verdicts.iter().find(|(x, _)| *x == v);
    let (v, why) = pick(Verdict::Allow).or_else(|| pick(Verdict::Depends)).or(verdicts.first()).cloned().unwrap_or((
        Verdict::NoRoute,
        format!("no Service that selects {to} is mirrored into cluster {}", m.clusters[cf].name),
    ));
    Ok((v.as_str(), why))
}

/// Allowed when every hop lets the call through and the target allows it
/// (on some route without a request).
fn verdict_of(c: &CrossReach, with_request: bool) -> Verdict {
    if let Some(v) = c.hops.iter().filter_map(|h| h.verdict).find(|v| *v != Verdict::Allow) {
        return v;
    }
    let Some((_, r)) = &c.target else { return Verdict::Deny };
    let any = |want: Verdict| r.verdicts.iter().any(|x| x.verdict == want);
    match (with_request, r.verdicts.first()) {
        (true, Some(v)) => v.verdict,
        _ if any(Verdict::Allow) => Verdict::Allow,
        _ if any(Verdict::Depends) => Verdict::Depends,
        _ => r.verdicts.first().map_or(Verdict::Deny, |v| v.verdict),
    }
}

fn summary(c: &CrossReach) -> String {
    let mut parts = vec![format!("via {} ({} mode)", c.via, c.mode)];
    for h in &c.hops {
        if let Some(step) = h.proof.last() {
            parts.push(format!("{}: {}", h.hop, step.detail));
        }
    }
    if let Some((arrives, r)) = &c.target
        && let Some(v) = r.verdicts.first()
    {
        parts.push(format!("target, reached as {arrives}: {}", v.summary()));
    }
    parts.join("; ")
}
