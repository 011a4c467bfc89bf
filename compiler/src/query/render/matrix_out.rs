//! `meshc matrix` output. Every format streams: class list first, then
//! edges as the ports are computed, then a summary. JSON (and the HTML page
//! built on it) groups a port's edges that differ only in the client into
//! one row naming a set of classes, and writes each distinct set once: its
//! size grows with the distinct facts, not with classes x targets. Table,
//! DOT and Mermaid draw one line per edge, as a reader wants them.

pub use super::matrix_graph::{dot, graph_parts, mermaid};
pub use super::matrix_rows::{Edge, Row, edges, rows};
use super::{html, matrix_egress_out};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::matrix::for_each_port;
use crate::query::matrix_egress::EgressRow;
use crate::query::reach::workload_label;
use fixedbitset::FixedBitSet;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{self, Write};

/// One cluster's share of a matrix: its checked outcome, classes, targets
/// in scope and egress rows. A repository of one cluster is one part
/// without a name; in a multicluster repository each part's workloads are
/// written `CLUSTER/KIND/NS/NAME` and its class ids follow the previous
/// part's (`offset`), so that one JSON, table or graph holds them all.
pub struct Part<'a> {
    pub cluster: Option<&'a str>,
    pub outcome: &'a Outcome,
    pub classes: &'a Classes<'a>,
    pub scope: &'a [usize],
    pub egress: &'a [EgressRow],
    pub offset: usize,
}

impl<'a> Part<'a> {
    /// The only part of a one-cluster repository: no cluster prefix, no offset.
    pub fn one_cluster(
        outcome: &'a Outcome,
        classes: &'a Classes<'a>,
        scope: &'a [usize],
        egress: &'a [EgressRow],
    ) -> Self {
        Part { cluster: None, outcome, classes, scope, egress, offset: 0 }
    }

    /// The workload's label, with the cluster prefix in a multicluster repository.
    pub fn workload(&self, wi: usize) -> String {
        let label = workload_label(self.outcome, wi);
        match self.cluster {
            Some(c) => format!("{c}/{label}"),
            None => label,
        }
    }

    /// Group name of a namespace: `CLUSTER / NS` in a multicluster repository.
    pub(super) fn group(&self, ns: &str) -> String {
        match self.cluster {
            Some(c) => format!("{c} / {ns}"),
            None => ns.to_owned(),
        }
    }

    pub(super) fn shifted(&self, ids: &[usize]) -> Vec<usize> {
        ids.iter().map(|c| c + self.offset).collect()
    }
}

/// Allowed calls across clusters, grouped as rows are: the classes (ids
/// of the whole matrix) that one mirror lets into one workload port alike.
pub struct AcrossRow {
    pub clients: Vec<usize>,
    /// When only some pods of the classes get through (`partial`): those pods.
    pub members: Vec<String>,
    pub target_cluster: String,
    /// `CLUSTER/KIND/NS/NAME`.
    pub workload: String,
    pub port: u16,
    pub verdict: &'static str,
    /// `CLUSTER/svc/NS/MIRROR:PORT`.
    pub via: String,
    pub mode: &'static str,
}

#[derive(Default, Serialize)]
pub struct Summary {
    pub classes: usize,
    pub workloads: usize,
    pub ports: usize,
    /// Allowed (class, port) edges, as if each were its own row.
    pub edges: usize,
    /// Rows written: a port's edges alike but for the client, grouped.
    pub rows: usize,
    /// Distinct sets of classes the rows name.
    #[serde(rename = "clientSets")]
    pub client_sets: usize,
    /// Egress (class, fact) edges, as if each were its own row.
    #[serde(rename = "egressEdges")]
    pub egress_edges: usize,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_set_writes_runs_of_three_or_more_as_ranges() {
        assert_eq!(super::set_json([0; 0]), "[]");
        assert_eq!(super::set_json([4]), "[4]");
        assert_eq!(super::set_json([0, 1, 5]), "[0,1,5]");
        assert_eq!(super::set_json([0, 2, 3, 4, 9, 10, 11, 12, 20]), "[0,[2,4],[9,12],20]");
        // Not ascending, or repeated (never written so): each id as it comes.
        assert_eq!(super::set_json([5, 4, 4, 5, 6, 7]), "[5,4,[4,7]]");
    }
}

#[derive(Serialize)]
struct WorkloadJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a str>,
    workload: String,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    meshed: bool,
    ports: Vec<u16>,
}

fn io_err(e: serde_json::Error) -> io::Error {
    io::Error::other(e)
}

/// Client sets numbered in the order first named, so that a set of classes
/// many ports admit alike (a namespace's members, every authenticated
/// client) is written once. Keyed by the written form, which is short:
/// classes that behave alike sit in runs of consecutive ids.
#[derive(Default)]
struct ClientSets {
    ids: std::collections::HashMap<String, usize>,
    sets: Vec<String>,
}

impl ClientSets {
    fn id(&mut self, clients: impl IntoIterator<Item = usize>) -> usize {
        let text = set_json(clients);
        let next = self.sets.len();
        *self.ids.entry(text).or_insert_with_key(|text| {
            self.sets.push(text.clone());
            next
        })
    }
}

/// Ascending class ids as JSON: a run of three or more consecutive ids is
/// `[first,last]`, any other id is itself (`[0,[2,19],25]`).
fn set_json(ids: impl IntoIterator<Item = usize>) -> String {
    let mut out = String::from("[");
    let mut run: Option<(usize, usize)> = None;
    for id in ids {
        match &mut run {
            Some((_, last)) if last.checked_add(1) == Some(id) => *last = id,
            _ => {
                if let Some(done) = run.replace((id, id)) {
                    write_run(&mut out, done);
                }
            }
        }
    }
    if let Some(done) = run {
        write_run(&mut out, done);
    }
    out.push(']');
    out
}

/// One run of consecutive ids, after a comma unless it is the first.
fn write_run(out: &mut String, (first, last): (usize, usize)) {
    if out.len() > 1 {
        out.push(',');
    }
    let _ = match last - first {
        0 => write!(out, "{first}"),
        1 => write!(out, "{first},{last}"),
        _ => write!(out, "[{first},{last}]"),
    };
}

/// The matrix JSON (documented in docs/queries.md), written as it is
/// computed. `escape` post-processes each chunk (for embedding in HTML).
/// A row names its classes by an index into `clientSets`, written last.
pub fn json(
    out: &mut dyn Write,
    o: &Outcome,
    classes: &Classes,
    scope: &[usize],
    egress: &[EgressRow],
    escape: &dyn Fn(String) -> String,
) -> io::Result<Summary> {
    let part = Part::one_cluster(o, classes, scope, egress);
    json_parts(out, &[part], &[], escape)
}

/// [`json`] of several clusters' parts and the edges across them. With
/// clusters, classes, workloads and targets carry a `cluster`, and rows
/// across clusters a `via` and `mode`.
pub fn json_parts(
    out: &mut dyn Write,
    parts: &[Part],
    across: &[AcrossRow],
    escape: &dyn Fn(String) -> String,
) -> io::Result<Summary> {
    let put = |out: &mut dyn Write, s: String| out.write_all(escape(s).as_bytes());
    put(out, "{\"version\":2,\n".to_owned())?;
    let names: Vec<&str> = parts.iter().filter_map(|p| p.cluster).collect();
    if !names.is_empty() {
        put(out, format!("\"clusters\":{},\n", serde_json::to_string(&names).map_err(io_err)?))?;
    }
    put(out, "\"classes\":".to_owned())?;
    put(out, classes_json(parts)?)?;
    put(out, ",\n\"workloads\":[".to_owned())?;
    let mut n = 0;
    for part in parts {
        let o = part.outcome;
        for &wi in part.scope {
            let w = &o.resolved.workloads[wi];
            let item = WorkloadJson {
                cluster: part.cluster,
                workload: part.workload(wi),
                kind: &w.kind,
                namespace: &w.namespace,
                name: &w.name,
                meshed: w.is_meshed(),
                ports: crate::query::who::target_ports(w, o.configs[wi].as_ref()),
            };
            let sep = if n == 0 { "\n" } else { ",\n" };
            n += 1;
            put(out, format!("{sep}{}", serde_json::to_string(&item).map_err(io_err)?))?;
        }
    }
    put(out, "],\n\"edges\":[".to_owned())?;
    let mut summary = Summary {
        classes: parts.iter().map(|p| p.classes.len()).sum(),
        workloads: parts.iter().map(|p| p.scope.len()).sum(),
        ..Summary::default()
    };
    let mut sets = ClientSets::default();
    // Written by hand, a port's rows into one buffer: serde_json values per
    // row cost more than computing the whole matrix.
    let mut buf = String::new();
    for part in parts {
        for_each_port(part.outcome, part.classes, part.scope, |ps| {
            summary.ports += 1;
            let mut target = serde_json::json!({"workload": part.workload(ps.workload), "port": ps.port});
            if let Some(c) = part.cluster {
                target["cluster"] = serde_json::json!(c);
            }
            let target = target.to_string();
            buf.clear();
            for Row { clients, edge: e } in rows(&ps, part.classes) {
                let sep = if summary.rows == 0 { "\n" } else { ",\n" };
                summary.rows += 1;
                summary.edges += clients.as_ref().map_or(1, |c| c.count_ones(..));
                let shifted = |c: FixedBitSet| sets.id(c.ones().map(|c| c + part.offset)).to_string();
                let clients = clients.map_or_else(|| "\"*\"".to_owned(), shifted);
                let _ = write!(buf, "{sep}{{\"clients\":{clients},\"target\":{target},\"verdict\":\"{}\"", e.verdict);
                if let Some(condition) = &e.condition {
                    let _ = write!(buf, ",\"condition\":{}", serde_json::to_string(condition).map_err(io_err)?);
                }
                if !e.routes.is_empty() {
                    let routes = serde_json::to_string(&e.routes).map_err(io_err)?;
                    let _ = write!(buf, ",\"routes\":{routes}");
                }
                buf.push('}');
            }
            put(out, std::mem::take(&mut buf))
        })?;
    }
    for r in across {
        let sep = if summary.rows == 0 { "\n" } else { ",\n" };
        summary.rows += 1;
        summary.edges += r.clients.len();
        let mut row = serde_json::json!({
            "clients": sets.id(r.clients.iter().copied()),
            "target": {"workload": r.workload, "port": r.port, "cluster": r.target_cluster},
            "verdict": r.verdict,
            "via": r.via,
            "mode": r.mode,
        });
        if !r.members.is_empty() {
            row["members"] = serde_json::json!(r.members);
        }
        put(out, format!("{sep}{}", serde_json::to_string(&row).map_err(io_err)?))?;
    }
    put(out, "\n]".to_owned())?;
    let egress: Vec<EgressRow> = parts
        .iter()
        .flat_map(|p| p.egress.iter().map(|r| EgressRow { clients: p.shifted(&r.clients), ..r.clone() }))
        .collect();
    put(out, matrix_egress_out::json(&egress, &mut |c| sets.id(c.iter().copied()))?)?;
    summary.egress_edges = egress.iter().map(|r| r.clients.len()).sum();
    summary.client_sets = sets.sets.len();
    put(out, ",\n\"clientSets\":[".to_owned())?;
    for (n, set) in sets.sets.into_iter().enumerate() {
        put(out, if n == 0 { format!("\n{set}") } else { format!(",\n{set}") })?;
    }
    put(out, format!("\n],\n\"summary\":{}}}\n", serde_json::to_string(&summary).map_err(io_err)?))?;
    Ok(summary)
}

/// The classes of every part; with clusters, each carries its cluster and its id in the whole matrix.
fn classes_json(parts: &[Part]) -> io::Result<String> {
    if let [only] = parts
        && only.cluster.is_none()
    {
        return serde_json::to_string(&only.classes.classes).map_err(io_err);
    }
    let mut all = Vec::new();
    for part in parts {
        for c in &part.classes.classes {
            let mut v = serde_json::to_value(c).map_err(io_err)?;
            v["id"] = serde_json::json!(c.id + part.offset);
            v["cluster"] = serde_json::json!(part.cluster);
            all.push(v);
        }
    }
    serde_json::to_string(&all).map_err(io_err)
}

pub fn html(
    out: &mut dyn Write,
    o: &Outcome,
    classes: &Classes,
    scope: &[usize],
    egress: &[EgressRow],
    title: &str,
) -> io::Result<()> {
    let part = Part::one_cluster(o, classes, scope, egress);
    html_parts(out, &[part], &[], title)
}

/// [`html`] of several clusters: the page groups rows and columns by cluster, then namespace.
pub fn html_parts(out: &mut dyn Write, parts: &[Part], across: &[AcrossRow], title: &str) -> io::Result<()> {
    out.write_all(html::head(title).as_bytes())?;
    json_parts(out, parts, across, &|s| html::escape_script(&s))?;
    out.write_all(html::tail().as_bytes())
}

fn client_label(classes: &Classes, c: Option<usize>) -> String {
    c.map_or_else(|| "every client".to_owned(), |c| format!("[{c}] {}", classes.classes[c].label()))
}

/// One line per edge, then one per egress edge, then the class legend.
pub fn table(
    out: &mut dyn Write,
    o: &Outcome,
    classes: &Classes,
    scope: &[usize],
    egress: &[EgressRow],
) -> io::Result<()> {
    let part = Part::one_cluster(o, classes, scope, egress);
    table_parts(out, &[part], &[])
}

/// [`table`] of several clusters: each cluster's edges, then the edges
/// across clusters (with the mirror they go through), then each legend.
pub fn table_parts(out: &mut dyn Write, parts: &[Part], across: &[AcrossRow]) -> io::Result<()> {
    writeln!(out, "{:<48} {:<44} {:<8} ROUTES", "CLIENT", "TARGET", "VERDICT")?;
    let mut summary = Summary {
        classes: parts.iter().map(|p| p.classes.len()).sum(),
        workloads: parts.iter().map(|p| p.scope.len()).sum(),
        ..Summary::default()
    };
    let mut labels: Vec<String> = Vec::new();
    for part in parts {
        let prefix = part.cluster.map_or_else(String::new, |c| format!("{c}/"));
        let classes = part.classes;
        labels.extend((0..classes.len()).map(|c| format!("{prefix}{}", client_label(classes, Some(c)))));
        let every = format!("{prefix}{}", client_label(classes, None));
        for_each_port(part.outcome, classes, part.scope, |ps| {
            summary.ports += 1;
            let target = format!("{}:{}", part.workload(ps.workload), ps.port);
            for e in edges(&ps, classes) {
                summary.edges += 1;
                let client = e.client.map_or(&every, |c| &labels[c + part.offset]);
                let mut routes = e.routes.join(", ");
                if let Some(condition) = &e.condition {
                    routes = if routes.is_empty() { condition.clone() } else { format!("{routes} — {condition}") };
                }
                writeln!(out, "{client:<48} {target:<44} {:<8} {routes}", e.verdict)?;
            }
            Ok::<(), io::Error>(())
        })?;
    }
    for r in across {
        let target = format!("{}:{}", r.workload, r.port);
        for &c in &r.clients {
            summary.edges += 1;
            let client = labels.get(c).map_or("?", String::as_str);
            let only = if r.members.is_empty() { String::new() } else { format!(", only {}", r.members.join(", ")) };
            writeln!(out, "{client:<48} {target:<44} {:<8} via {} ({} mode){only}", r.verdict, r.via, r.mode)?;
        }
    }
    for part in parts {
        let prefix = part.cluster.map_or_else(String::new, |c| format!("{c}/"));
        summary.egress_edges += matrix_egress_out::table(out, part.egress, part.classes, &prefix)?;
    }
    writeln!(
        out,
        "\n{} edges over {} ports of {} workloads, {} egress edges; {} client classes:",
        summary.edges, summary.ports, summary.workloads, summary.egress_edges, summary.classes
    )?;
    for part in parts {
        if let Some(c) = part.cluster {
            writeln!(out, "cluster {c}:")?;
        }
        for c in &part.classes.classes {
            let members: Vec<&str> = c.members.iter().map(|m| m.label.as_str()).collect();
            writeln!(out, "  [{}] {}", c.id, members.join(", "))?;
        }
    }
    Ok(())
}
