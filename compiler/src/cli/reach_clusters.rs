//! `meshc reach` in a multicluster repository: references carry a cluster
//! prefix (`query::cluster_ref`); within one cluster the usual query runs on
//! that cluster, across clusters `multicluster::reach` proves each hop.

use super::reach::{Common, Format, ReachArgs, fail, load_compiled, reach_in, reach_json, reach_service_with, request};
use crate::load::Input;
use crate::multicluster::reach::{self as cross, CrossReach, Path};
use crate::multicluster::{self, Clusters};
use crate::pipeline::Options;
use crate::query::classes::Classes;
use crate::query::cluster_ref;
use crate::query::reach::{self, workload_label};
use crate::query::render::text;
use crate::query::svc;
use mesh_proxy_api::HttpRequest;
use std::fmt::Write as _;
use std::process::ExitCode;

/// Whether the path's settings declare `clusters:` (read before loading anything).
pub fn is_multicluster(c: &Common) -> bool {
    let options = Options { settings_file: c.settings.clone(), ..Options::default() };
    matches!(multicluster::repository(&Input::Path(c.path.clone()), &options), Ok(Some(_)))
}

pub fn run_reach(a: &ReachArgs) -> ExitCode {
    let mut o = match load_compiled(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let Some(m) = o.multicluster.as_deref_mut() else { return fail("the repository declares no clusters") };
    let names: Vec<String> = m.clusters.iter().map(|c| c.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (cf, from) = match cluster_ref::split(&names, &a.from) {
        Ok(x) => x,
        Err(e) => return fail(format!("--from {e}")),
    };
    let (ct, to) = match cluster_ref::split(&names, &a.to) {
        Ok(x) => x,
        Err(e) => return fail(format!("--to {e}")),
    };
    for c in [cf, ct] {
        crate::lower::outbound::complete(&mut m.clusters[c].outcome);
    }
    let m: &Clusters = m;
    let req = match request(a) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Some(rest) = to.strip_prefix(svc::target::PREFIX)
        && let Some((ns, name)) = rest.rsplit_once(':').and_then(|(svc, _)| svc.split_once('/'))
        && let Some(path) = cross::path_of_mirror(m, ct, ns, name)
    {
        if cf != ct {
            return fail(format!("{} is a Service of cluster {}: the client must be in that cluster", a.to, names[ct]));
        }
        return through_mirror(m, a, from, to, &path, req.as_ref());
    }
    if cf == ct && svc::target::is_service(to) {
        // A backend of the Service's route may be a mirror: followed across.
        let follow = |r: &mut svc::ServiceReach, req: Option<&HttpRequest>| {
            multicluster::service_backends::follow(m, cf, r, req);
        };
        return reach_service_with(&m.clusters[cf].outcome, a, from, to, follow);
    }
    if cf == ct {
        return reach_in(&m.clusters[cf].outcome, a, from, to);
    }
    to_remote_workload(m, a, (cf, from), (ct, to), req.as_ref())
}

/// `--to CLUSTER/svc/NS/MIRROR:PORT`: every workload behind the mirrored Service.
fn through_mirror(
    m: &Clusters,
    a: &ReachArgs,
    from: &str,
    to: &str,
    path: &Path,
    req: Option<&HttpRequest>,
) -> ExitCode {
    let src = &m.clusters[path.source].outcome;
    let classes = Classes::derive(&src.resolved, &src.configs);
    let client = match reach::parse_client(src, &classes, from) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let target = match svc::target::parse(src, to) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let calls: Vec<CrossReach> = cross::backends(m, path, target.port)
        .into_iter()
        .map(|b| cross::cross(m, &client, path, target.port, b, req))
        .collect();
    if calls.is_empty() {
        return fail(format!(
            "{}: no workload of cluster {} answers Service {}/{} port {}",
            a.to, m.clusters[path.target].name, path.namespace, path.service, target.port
        ));
    }
    render(m, a, &calls, req)
}

/// `--to OTHER/KIND/NS/NAME:PORT`: through each mirror of a Service that selects it.
fn to_remote_workload(
    m: &Clusters,
    a: &ReachArgs,
    (cf, from): (usize, &str),
    (ct, to): (usize, &str),
    req: Option<&HttpRequest>,
) -> ExitCode {
    let (src, tgt) = (&m.clusters[cf].outcome, &m.clusters[ct].outcome);
    let classes = Classes::derive(&src.resolved, &src.configs);
    let client = match reach::parse_client(src, &classes, from) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let (wi, port) = match reach::parse_target(tgt, to) {
        Ok((wi, Some(p))) => (wi, p),
        Ok((wi, None)) => {
            match crate::query::who::target_ports(&tgt.resolved.workloads[wi], tgt.configs[wi].as_ref()).as_slice() {
                [one] => (wi, *one),
                ports => {
                    return fail(format!("{} has ports {ports:?}: name one as WORKLOAD:PORT", workload_label(tgt, wi)));
                }
            }
        }
        Err(e) => return fail(e),
    };
    let paths = cross::paths_to_workload(m, cf, ct, wi, port);
    if paths.is_empty() {
        let msg = format!(
            "{} → {}: no-route: no Service of cluster {} that selects {}:{port} is mirrored into cluster {} (export it \
             with the label a Link of {} selects)",
            a.from,
            a.to,
            m.clusters[ct].name,
            workload_label(tgt, wi),
            m.clusters[cf].name,
            m.clusters[cf].name
        );
        return match a.format {
            Format::Json => {
                let v = serde_json::json!({"version": 1, "client": a.from, "target": a.to, "verdict": "no-route", "paths": [], "detail": msg});
                outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
                ExitCode::SUCCESS
            }
            Format::Text => {
                outln!("{msg}");
                ExitCode::SUCCESS
            }
        };
    }
    let calls: Vec<CrossReach> = paths
        .iter()
        .map(|p| {
            let svc_port = service_port(m, p, wi, port);
            cross::cross(m, &client, p, svc_port, (wi, port), req)
        })
        .collect();
    render(m, a, &calls, req)
}

/// The Service port of the path's Service that leads to `pod_port` of `wi`.
fn service_port(m: &Clusters, p: &Path, wi: usize, pod_port: u16) -> u16 {
    let o = &m.clusters[p.target].outcome;
    let ports = o
        .resolved
        .index
        .get(crate::resolve::index::Kind::Service, p.namespace, p.service)
        .map(|ri| svc::target::service_ports(o, ri).to_vec())
        .unwrap_or_default();
    ports
        .iter()
        .filter_map(|sp| u16::try_from(sp.port).ok())
        .find(|sp| cross::backends(m, p, *sp).contains(&(wi, pod_port)))
        .unwrap_or(pod_port)
}

fn render(_m: &Clusters, a: &ReachArgs, calls: &[CrossReach], req: Option<&HttpRequest>) -> ExitCode {
    match a.format {
        Format::Json => {
            let paths: Vec<serde_json::Value> = calls.iter().map(|c| json(c, req.is_some())).collect();
            let v = serde_json::json!({"version": 1, "client": a.from, "target": a.to, "paths": paths});
            outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Format::Text => {
            let line = req.map(|r| format!("{} {}", r.method, r.path));
            let mut out = String::new();
            for c in calls {
                out.push_str(&text_of(c, line.as_deref(), req.is_some()));
            }
            out!("{out}");
        }
    }
    ExitCode::SUCCESS
}

fn json(c: &CrossReach, with_request: bool) -> serde_json::Value {
    let hops: Vec<serde_json::Value> = c
        .hops
        .iter()
        .map(|h| serde_json::json!({"hop": h.hop, "cluster": h.cluster, "verdict": h.verdict.map(|v| v.as_str()), "proof": h.proof}))
        .collect();
    let target = c.target.as_ref().map(|(arrives, r)| {
        let mut v: serde_json::Value = serde_json::from_str(&reach_json(r, with_request)).expect("reach json");
        v["arrives"] = serde_json::json!(arrives);
        v
    });
    serde_json::json!({
        "via": c.via, "mode": c.mode, "hops": hops, "target": target, "verdict": c.verdict(with_request),
    })
}

fn text_of(c: &CrossReach, request: Option<&str>, with_request: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} via {} ({} mode): {}", c.client, c.via, c.mode, c.verdict(with_request));
    for (i, h) in c.hops.iter().enumerate() {
        let verdict = h.verdict.map_or("", |v| v.as_str());
        let _ = writeln!(out, "  hop {} {} ({}): {verdict}", i + 1, h.hop, h.cluster);
        for s in &h.proof {
            let place = match (&s.file, s.line) {
                (Some(f), Some(l)) => format!(" [{f}:{l}]"),
                _ => String::new(),
            };
            let _ = writeln!(out, "    {}: {}{place}", s.step, s.detail);
        }
    }
    if let Some((arrives, r)) = &c.target {
        let _ = writeln!(out, "  hop {} target ({arrives}):", c.hops.len() + 1);
        for l in text::reach(r, request, text::Paint(false)).lines() {
            let _ = writeln!(out, "    {l}");
        }
    }
    out
}
