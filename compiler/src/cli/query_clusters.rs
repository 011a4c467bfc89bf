//! `meshc who-can-reach` and `meshc matrix` in a multicluster repository.
//! Within a cluster each answers as for that cluster alone; across
//! clusters every pod of another cluster calls the target through
//! each mirror that leads there (`multicluster::edges`), with the identity
//! that arrives (the gateway's, or the client's pod-to-pod).

use super::reach::{
    Format, MatrixArgs, MatrixFormat, WhoArgs, fail, load, run_who_egress, who_service_in, write_service_edges,
};
use crate::multicluster::edges::{self, CrossEdge};
use crate::multicluster::reach as cross;
use crate::multicluster::{Clusters, edges::pod_clients, service_backends};
use crate::query::classes::Classes;
use crate::query::cluster_ref;
use crate::query::matrix_egress::EgressRow;
use crate::query::reach::{self, workload_label};
use crate::query::render::matrix_out::{self, AcrossRow, Part};
use crate::query::render::text;
use crate::query::{egress_ref, matrix, svc, who};
use mesh_proxy_api::HttpRequest;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

fn cluster_names(m: &Clusters) -> Vec<String> {
    m.clusters.iter().map(|c| c.name.clone()).collect()
}

pub fn run_who(a: &WhoArgs) -> ExitCode {
    let mut o = match load(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let Some(m) = o.multicluster.as_deref_mut() else { return fail("the repository declares no clusters") };
    let names = cluster_names(m);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (ct, rest) = match cluster_ref::split(&names, &a.target) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    if let Some(target) = egress_ref::parse(rest) {
        return match target {
            Ok(target) => run_who_egress(&m.clusters[ct].outcome, &target, a.format),
            Err(e) => fail(e),
        };
    }
    if svc::target::is_service(rest) {
        if let Some((ns, name)) = service_name(rest)
            && let Some(p) = cross::path_of_mirror(m, ct, ns, name)
        {
            return who_through_mirror(m, a, rest, &p);
        }
        crate::lower::outbound::complete(&mut m.clusters[ct].outcome);
        let m: &Clusters = m;
        // A backend of the Service's route may be a mirror: followed across, as `reach` does.
        let follow = |r: &mut svc::ServiceReach, req: Option<&HttpRequest>| service_backends::follow(m, ct, r, req);
        return who_service_in(&m.clusters[ct].outcome, rest, a.format, &follow);
    }
    let m: &Clusters = m;
    let tgt = &m.clusters[ct];
    let (wi, port) = match reach::parse_target(&tgt.outcome, rest) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let classes = Classes::derive(&tgt.outcome.resolved, &tgt.outcome.configs);
    let answers = who::who_can_reach(&tgt.outcome, &classes, wi, port);
    let across = edges::into_workload(m, ct, wi, port);
    let label = format!("{}/{}", tgt.name, workload_label(&tgt.outcome, wi));
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "version": 1,
                "cluster": tgt.name,
                "workload": label,
                "ports": answers,
                "classes": classes.classes,
                "acrossClusters": across,
            });
            outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Format::Text => {
            out!("{}", text::who(&label, &answers, &classes, text::Paint::detect()));
            out!("{}", across_text(&across, "no Service that selects it is mirrored into another cluster"));
        }
    }
    ExitCode::SUCCESS
}

/// `NS/NAME` of `svc/NS/NAME:PORT`.
fn service_name(spec: &str) -> Option<(&str, &str)> {
    spec.strip_prefix(svc::target::PREFIX)?.rsplit_once(':')?.0.split_once('/')
}

/// `who-can-reach CLUSTER/svc/NS/MIRROR:PORT`: every pod of the mirror's
/// cluster calling each workload behind the exported Service.
fn who_through_mirror(m: &Clusters, a: &WhoArgs, rest: &str, p: &cross::Path) -> ExitCode {
    let src = &m.clusters[p.source].outcome;
    let t = match svc::target::parse(src, rest) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let classes = Classes::derive(&src.resolved, &src.configs);
    let clients = pod_clients(&classes);
    let across: Vec<CrossEdge> =
        cross::backends(m, p, t.port).into_iter().flat_map(|b| edges::through(m, &clients, p, t.port, b)).collect();
    match a.format {
        Format::Json => {
            let v = serde_json::json!({ "version": 1, "service": a.target, "acrossClusters": across });
            outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Format::Text => {
            let mut out = format!(
                "{} — mirror of {}'s Service {}/{} ({} mode, Link {}/{}): who can reach it, pod by pod\n",
                a.target,
                m.clusters[p.target].name,
                p.namespace,
                p.service,
                p.mode.as_str(),
                p.link.namespace,
                p.link.name,
            );
            out.push_str(&across_text(&across, "no workload of the target cluster answers this port"));
            out!("{out}");
        }
    }
    ExitCode::SUCCESS
}

/// The calls across clusters, one line each, with why when not allowed.
fn across_text(across: &[CrossEdge], none: &str) -> String {
    let mut out = String::from("\nfrom other clusters, through mirrored Services:\n");
    if across.is_empty() {
        let _ = writeln!(out, "  none: {none}");
    }
    for e in across {
        let arrives = e.arrives.as_ref().map_or_else(String::new, |a| format!(", arrives as {a}"));
        let _ = writeln!(
            out,
            "  {:<8} {}/[{}] {} → {}:{} via {} ({} mode){arrives}",
            e.verdict, e.client_cluster, e.class, e.client, e.workload, e.port, e.via, e.mode
        );
        if e.verdict != "allow" && !e.why.is_empty() {
            let _ = writeln!(out, "           {}", e.why);
        }
    }
    out
}

/// `matrix` of every cluster: each cluster's classes and workloads (ids
/// and labels of the whole matrix), then the allowed edges across clusters.
pub fn run_matrix(a: &MatrixArgs) -> ExitCode {
    if a.services {
        return run_matrix_services(a);
    }
    let o = match load(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let Some(m) = o.multicluster.as_deref() else { return fail("the repository declares no clusters") };
    let ns = a.namespace.as_deref();
    let classes: Vec<Classes> =
        m.clusters.iter().map(|c| Classes::derive(&c.outcome.resolved, &c.outcome.configs)).collect();
    let scopes: Vec<Vec<usize>> = m.clusters.iter().map(|c| matrix::workloads_in(&c.outcome, ns)).collect();
    if let Some(ns) = ns
        && scopes.iter().all(Vec::is_empty)
    {
        return fail(format!("namespace {ns} has no workloads in any cluster of {}", a.common.path.display()));
    }
    let egress: Vec<Vec<EgressRow>> =
        m.clusters.iter().zip(&classes).map(|(c, cl)| crate::query::matrix_egress::rows(&c.outcome, cl, ns)).collect();
    let mut offsets = Vec::new();
    let mut next = 0;
    for cl in &classes {
        offsets.push(next);
        next += cl.len();
    }
    let parts: Vec<Part> = m
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| Part {
            cluster: Some(c.name.as_str()),
            outcome: &c.outcome,
            classes: &classes[i],
            scope: &scopes[i],
            egress: &egress[i],
            offset: offsets[i],
        })
        .collect();
    let across = across_rows(m, &classes, &offsets, ns);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let title = format!("meshc matrix: {}", a.common.path.display());
    let written = match a.format {
        MatrixFormat::Json => matrix_out::json_parts(&mut out, &parts, &across, &|s| s).map(drop),
        MatrixFormat::Table => matrix_out::table_parts(&mut out, &parts, &across),
        MatrixFormat::Dot => matrix_out::graph_parts(&mut out, &parts, &across, false),
        MatrixFormat::Mermaid => matrix_out::graph_parts(&mut out, &parts, &across, true),
        MatrixFormat::Html => matrix_out::html_parts(&mut out, &parts, &across, &title),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// `matrix --services` of every cluster: each cluster's client → Service
/// edges as for one cluster, with every backend that is a mirror followed
/// across clusters (`multicluster::service_backends::follow`, as `reach`
/// and `who-can-reach` do); Services and clients prefixed with their
/// cluster, class ids running across the repository (as `matrix`'s).
fn run_matrix_services(a: &MatrixArgs) -> ExitCode {
    let mut o = match load(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let Some(m) = o.multicluster.as_deref_mut() else { return fail("the repository declares no clusters") };
    for c in &mut m.clusters {
        crate::lower::outbound::complete(&mut c.outcome);
    }
    let m: &Clusters = m;
    let ns = a.namespace.as_deref();
    let (mut all, mut offset) = (Vec::new(), 0);
    for (ci, c) in m.clusters.iter().enumerate() {
        let o = &c.outcome;
        let classes = Classes::derive(&o.resolved, &o.configs);
        let targets = svc::matrix::service_targets(o, ns);
        let follow = |r: &mut svc::ServiceReach, req: Option<&HttpRequest>| service_backends::follow(m, ci, r, req);
        for mut s in svc::matrix::edges_following(o, &classes, &targets, &follow) {
            s.service = format!("{}/{}", c.name, s.service);
            for e in &mut s.edges {
                e.class += offset;
                e.clients.iter_mut().for_each(|client| *client = format!("{}/{client}", c.name));
            }
            all.push(s);
        }
        offset += classes.len();
    }
    if let Some(ns) = ns
        && all.is_empty()
    {
        return fail(format!("namespace {ns} has no Services in any cluster of {}", a.common.path.display()));
    }
    let names = cluster_names(m);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    write_service_edges(&all, a.format, Some(names.as_slice()))
}

/// The allowed (or partly, or maybe allowed) calls across clusters into
/// targets in scope, by class (ids of the whole matrix): a class of pods
/// that all get the same verdict is named whole; one whose pods differ
/// (pod-to-pod, the target tells their identities apart), or that also
/// holds clients no mirror serves (the kubelet, unmeshed or external
/// clients its cluster's policies do not tell apart from its pods), is
/// `partial`, with the pods that get through.
fn across_rows(m: &Clusters, classes: &[Classes], offsets: &[usize], ns: Option<&str>) -> Vec<AcrossRow> {
    // (mirror, target workload, port, source cluster, class) → each pod's verdict, the target cluster, the mode.
    type Key = (String, String, u16, usize, usize);
    type Pods = (Vec<(String, &'static str)>, String, &'static str);
    let mut per_class: BTreeMap<Key, Pods> = BTreeMap::new();
    for e in edges::all(m) {
        let (Some(s), Some(t)) = (m.find(&e.client_cluster), m.find(&e.target_cluster)) else { continue };
        let w = &m.clusters[t].outcome.resolved.workloads[e.workload_index];
        if ns.is_some_and(|ns| w.namespace != ns) {
            continue;
        }
        let key = (e.via.clone(), e.workload.clone(), e.port, s, e.class);
        let slot = per_class.entry(key).or_insert_with(|| (Vec::new(), e.target_cluster.clone(), e.mode));
        slot.0.push((e.client.clone(), e.verdict));
    }
    let mut rows: BTreeMap<(String, String, u16, &'static str, Vec<String>), AcrossRow> = BTreeMap::new();
    for ((via, workload, port, s, class), (pods, target_cluster, mode)) in per_class {
        let allowed: Vec<&(String, &'static str)> =
            pods.iter().filter(|(_, v)| matches!(*v, "allow" | "partial" | "depends")).collect();
        let Some(first) = allowed.first().map(|(_, v)| *v) else { continue };
        let members = classes[s].classes.get(class).map_or(0, |c| c.members.len());
        let whole = allowed.len() == members && allowed.iter().all(|(_, v)| *v == first);
        let (verdict, members) =
            if whole { (first, Vec::new()) } else { ("partial", allowed.iter().map(|(p, _)| p.clone()).collect()) };
        let key = (via.clone(), workload.clone(), port, verdict, members.clone());
        let row = rows.entry(key).or_insert_with(|| AcrossRow {
            clients: Vec::new(),
            members,
            target_cluster,
            workload,
            port,
            verdict,
            via,
            mode,
        });
        row.clients.push(offsets[s] + class);
    }
    rows.into_values().collect()
}
