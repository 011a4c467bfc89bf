//! `meshc matrix` output. Every format streams: class list first, then
//! edges as the ports are computed, then a summary. JSON (and the HTML page
//! built on it) groups a port's edges that differ only in the client into
//! one row naming a set of classes, and writes each distinct set once: its
//! size grows with the distinct facts, not with classes x targets. Table,
//! DOT and Mermaid draw one line per edge, as a reader wants them.

use super::{html, matrix_egress_out};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::matrix::{PortSets, for_each_port};
use crate::query::matrix_egress::EgressRow;
use crate::query::reach::workload_label;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{self, Write};

/// One allowed edge; `client: None` is every class.
pub struct Edge<'p> {
    pub client: Option<usize>,
    /// Not allowed on every route: `routes` lists those it may use.
    pub partial: bool,
    pub routes: Vec<&'p str>,
    /// Where a route allows the class only if its pods are in the right
    /// part of the pod CIDR: the condition.
    pub condition: Option<String>,
    /// `allow` (every route), `partial` (some routes for sure), or
    /// `depends` (no route for sure, some depending on the pod CIDR).
    pub verdict: &'static str,
}

/// The edges of one port: one `*` edge when every class gets in
/// everywhere, else one per class allowed (or maybe allowed) somewhere.
/// The pod's own localhost traffic, which every proxy allows, is not an edge.
pub fn edges<'p>(ps: &'p PortSets, classes: &Classes) -> Vec<Edge<'p>> {
    if !classes.is_empty() && ps.every.count_ones(..) == classes.len() {
        return vec![Edge { client: None, partial: false, routes: Vec::new(), condition: None, verdict: "allow" }];
    }
    ps.any
        .ones()
        .filter(|&c| !classes.is_localhost(c))
        .map(|c| {
            let routes = ps.routes_of(c);
            let partial = routes.len() < ps.entries.len();
            let sure = ps.entries.iter().any(|(_, set)| set.contains(c));
            let verdict = match (ps.every.contains(c), sure) {
                (true, _) => "allow",
                (false, true) => "partial",
                (false, false) => "depends",
            };
            let condition = edge_condition(ps, classes, c);
            let routes = if partial || condition.is_some() && verdict == "partial" { routes } else { Vec::new() };
            Edge { client: Some(c), partial, routes, condition, verdict }
        })
        .collect()
}

/// The condition of class `c` on the port: alone when every route it may
/// use depends alike, else each prefixed with its route (the others are
/// allowed for sure).
fn edge_condition(ps: &PortSets, classes: &Classes, c: usize) -> Option<String> {
    if !ps.depends_on_place(c) {
        return None;
    }
    let mut found: Vec<(&str, String)> = Vec::new();
    for (i, (name, _)) in ps.entries.iter().enumerate() {
        if let Some(cond) = ps.condition(classes, i, c) {
            found.push((name, cond));
        }
    }
    let first = found.first().map(|(_, c)| c.clone())?;
    if found.len() == ps.routes_of(c).len() && found.iter().all(|(_, c)| *c == first) {
        return Some(first);
    }
    Some(found.iter().map(|(n, c)| format!("{n}: {c}")).collect::<Vec<_>>().join("; "))
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
        assert_eq!(super::set_json(&[]), "[]");
        assert_eq!(super::set_json(&[4]), "[4]");
        assert_eq!(super::set_json(&[0, 1, 5]), "[0,1,5]");
        assert_eq!(super::set_json(&[0, 2, 3, 4, 9, 10, 11, 12, 20]), "[0,[2,4],[9,12],20]");
    }
}

#[derive(Serialize)]
struct WorkloadJson<'a> {
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

/// A port's edges that say the same thing but for the client, with the
/// classes in the order their edges came (ascending); `clients: None` is
/// the `*` edge.
pub struct Row<'p> {
    pub clients: Option<Vec<usize>>,
    pub edge: Edge<'p>,
}

/// [`edges`] grouped by (verdict, routes, condition): the rows of one port.
pub fn rows<'p>(ps: &'p PortSets, classes: &Classes) -> Vec<Row<'p>> {
    let mut out: Vec<Row<'p>> = Vec::new();
    for e in edges(ps, classes) {
        let Some(c) = e.client else {
            out.push(Row { clients: None, edge: e });
            continue;
        };
        let alike = |r: &&mut Row| {
            r.clients.is_some()
                && r.edge.verdict == e.verdict
                && r.edge.routes == e.routes
                && r.edge.condition == e.condition
        };
        match out.iter_mut().find(alike) {
            Some(row) => row.clients.get_or_insert_with(Vec::new).push(c),
            None => out.push(Row { clients: Some(vec![c]), edge: e }),
        }
    }
    out
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
    fn id(&mut self, clients: &[usize]) -> usize {
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
fn set_json(ids: &[usize]) -> String {
    let mut out = String::from("[");
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        if i > 0 {
            out.push(',');
        }
        if j - i >= 2 {
            let _ = write!(out, "[{},{}]", ids[i], ids[j]);
            i = j + 1;
        } else {
            let _ = write!(out, "{}", ids[i]);
            i += 1;
        }
    }
    out.push(']');
    out
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
    let put = |out: &mut dyn Write, s: String| out.write_all(escape(s).as_bytes());
    put(out, "{\"version\":2,\n\"classes\":".to_owned())?;
    put(out, serde_json::to_string(&classes.classes).map_err(io_err)?)?;
    put(out, ",\n\"workloads\":[".to_owned())?;
    for (n, &wi) in scope.iter().enumerate() {
        let w = &o.resolved.workloads[wi];
        let item = WorkloadJson {
            workload: workload_label(o, wi),
            kind: &w.kind,
            namespace: &w.namespace,
            name: &w.name,
            meshed: w.is_meshed(),
            ports: crate::query::who::target_ports(w, o.configs[wi].as_ref()),
        };
        let sep = if n == 0 { "\n" } else { ",\n" };
        put(out, format!("{sep}{}", serde_json::to_string(&item).map_err(io_err)?))?;
    }
    put(out, "],\n\"edges\":[".to_owned())?;
    let mut summary = Summary { classes: classes.len(), workloads: scope.len(), ..Summary::default() };
    let mut sets = ClientSets::default();
    // Written by hand, a port's rows into one buffer: serde_json values per
    // row cost more than computing the whole matrix.
    let mut buf = String::new();
    for_each_port(o, classes, scope, |ps| {
        summary.ports += 1;
        let target = serde_json::json!({"workload": workload_label(o, ps.workload), "port": ps.port}).to_string();
        buf.clear();
        for Row { clients, edge: e } in rows(&ps, classes) {
            let sep = if summary.rows == 0 { "\n" } else { ",\n" };
            summary.rows += 1;
            summary.edges += clients.as_ref().map_or(1, Vec::len);
            let clients = clients.map_or_else(|| "\"*\"".to_owned(), |c| sets.id(&c).to_string());
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
    put(out, "\n]".to_owned())?;
    put(out, matrix_egress_out::json(egress, &mut |c| sets.id(c))?)?;
    summary.egress_edges = egress.iter().map(|r| r.clients.len()).sum();
    summary.client_sets = sets.sets.len();
    put(out, ",\n\"clientSets\":[".to_owned())?;
    for (n, set) in sets.sets.into_iter().enumerate() {
        put(out, if n == 0 { format!("\n{set}") } else { format!(",\n{set}") })?;
    }
    put(out, format!("\n],\n\"summary\":{}}}\n", serde_json::to_string(&summary).map_err(io_err)?))?;
    Ok(summary)
}

pub fn html(
    out: &mut dyn Write,
    o: &Outcome,
    classes: &Classes,
    scope: &[usize],
    egress: &[EgressRow],
    title: &str,
) -> io::Result<()> {
    out.write_all(html::head(title).as_bytes())?;
    json(out, o, classes, scope, egress, &|s| html::escape_script(&s))?;
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
    writeln!(out, "{:<48} {:<44} {:<8} ROUTES", "CLIENT", "TARGET", "VERDICT")?;
    let mut summary = Summary { classes: classes.len(), workloads: scope.len(), ..Summary::default() };
    let labels: Vec<String> = (0..classes.len()).map(|c| client_label(classes, Some(c))).collect();
    let every = client_label(classes, None);
    for_each_port(o, classes, scope, |ps| {
        summary.ports += 1;
        let target = format!("{}:{}", workload_label(o, ps.workload), ps.port);
        for e in edges(&ps, classes) {
            summary.edges += 1;
            let client = e.client.map_or(&every, |c| &labels[c]);
            let mut routes = e.routes.join(", ");
            if let Some(condition) = &e.condition {
                routes = if routes.is_empty() { condition.clone() } else { format!("{routes} — {condition}") };
            }
            writeln!(out, "{client:<48} {target:<44} {:<8} {routes}", e.verdict)?;
        }
        Ok::<(), io::Error>(())
    })?;
    summary.egress_edges = matrix_egress_out::table(out, egress, classes)?;
    writeln!(
        out,
        "\n{} edges over {} ports of {} workloads, {} egress edges; {} client classes:",
        summary.edges, summary.ports, summary.workloads, summary.egress_edges, summary.classes
    )?;
    for c in &classes.classes {
        let members: Vec<&str> = c.members.iter().map(|m| m.label.as_str()).collect();
        writeln!(out, "  [{}] {}", c.id, members.join(", "))?;
    }
    Ok(())
}

/// A node id safe in DOT and Mermaid.
fn node_id(prefix: &str, s: &str) -> String {
    let clean: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{prefix}_{clean}")
}

/// The namespace a class is drawn in: its first member's, if any.
fn class_namespace<'c>(classes: &'c Classes, c: usize) -> Option<&'c str> {
    classes.classes[c].members.iter().find_map(|m| m.namespace.as_deref())
}

/// Graphviz: namespaces as clusters, client classes and workloads as nodes,
/// edges labelled with the port (dashed when partial).
/// Egress edges lead to one node per EgressNetwork (or fallback kind).
pub fn dot(
    out: &mut dyn Write,
    o: &Outcome,
    classes: &Classes,
    scope: &[usize],
    egress: &[EgressRow],
) -> io::Result<()> {
    graph(out, o, classes, (scope, egress), Syntax::Dot)
}

pub fn mermaid(
    out: &mut dyn Write,
    o: &Outcome,
    classes: &Classes,
    scope: &[usize],
    egress: &[EgressRow],
) -> io::Result<()> {
    graph(out, o, classes, (scope, egress), Syntax::Mermaid)
}

#[derive(Clone, Copy, PartialEq)]
enum Syntax {
    Dot,
    Mermaid,
}

fn quote(s: &str) -> String {
    s.replace('"', "'")
}

fn graph(
    out: &mut dyn Write,
    o: &Outcome,
    classes: &Classes,
    (scope, egress): (&[usize], &[EgressRow]),
    syntax: Syntax,
) -> io::Result<()> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for &wi in scope {
        let w = &o.resolved.workloads[wi];
        groups
            .entry(w.namespace.clone())
            .or_default()
            .push((node_id("w", &workload_label(o, wi)), workload_label(o, wi)));
    }
    let mut outside: Vec<(String, String)> =
        matrix_egress_out::nodes(egress).into_iter().map(|n| (node_id("e", &n), n)).collect();
    for c in &classes.classes {
        let node = (node_id("c", &c.id.to_string()), format!("[{}] {}", c.id, c.label()));
        match class_namespace(classes, c.id) {
            Some(ns) => groups.entry(ns.to_owned()).or_default().push(node),
            None => outside.push(node),
        }
    }
    match syntax {
        Syntax::Dot => writeln!(
            out,
            "digraph meshc {{\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n  all [label=\"every client\"];"
        )?,
        Syntax::Mermaid => writeln!(out, "flowchart LR\n  all([every client])")?,
    }
    for (id, label) in &outside {
        match syntax {
            Syntax::Dot => writeln!(out, "  {id} [label=\"{}\", shape=ellipse];", quote(label))?,
            Syntax::Mermaid => writeln!(out, "  {id}([\"{}\"])", quote(label))?,
        }
    }
    for (i, (ns, nodes)) in groups.iter().enumerate() {
        match syntax {
            Syntax::Dot => writeln!(out, "  subgraph cluster_{i} {{\n    label=\"{}\";", quote(ns))?,
            Syntax::Mermaid => writeln!(out, "  subgraph ns_{i}[\"{}\"]", quote(ns))?,
        }
        for (id, label) in nodes {
            match syntax {
                Syntax::Dot => writeln!(out, "    {id} [label=\"{}\"];", quote(label))?,
                Syntax::Mermaid => writeln!(out, "    {id}[\"{}\"]", quote(label))?,
            }
        }
        match syntax {
            Syntax::Dot => writeln!(out, "  }}")?,
            Syntax::Mermaid => writeln!(out, "  end")?,
        }
    }
    for_each_port(o, classes, scope, |ps| {
        let to = node_id("w", &workload_label(o, ps.workload));
        for e in edges(&ps, classes) {
            let from = e.client.map_or_else(|| "all".to_owned(), |c| node_id("c", &c.to_string()));
            let mut label = if e.routes.is_empty() {
                ps.port.to_string()
            } else {
                format!("{} ({})", ps.port, e.routes.join(", "))
            };
            if let Some(condition) = &e.condition {
                label = format!("{label} if {}", condition.trim_start_matches("allow when "));
            }
            match (syntax, e.verdict != "allow") {
                (Syntax::Dot, false) => writeln!(out, "  {from} -> {to} [label=\"{}\"];", quote(&label))?,
                (Syntax::Dot, true) => writeln!(out, "  {from} -> {to} [label=\"{}\", style=dashed];", quote(&label))?,
                (Syntax::Mermaid, false) => writeln!(out, "  {from} -->|\"{}\"| {to}", quote(&label))?,
                (Syntax::Mermaid, true) => writeln!(out, "  {from} -.->|\"{}\"| {to}", quote(&label))?,
            }
        }
        Ok::<(), io::Error>(())
    })?;
    for r in egress {
        let to = node_id("e", &r.outcome.target.node());
        let label = quote(&matrix_egress_out::edge_label(r));
        for &c in &r.clients {
            let from = node_id("c", &c.to_string());
            match (syntax, r.outcome.verdict != "allow") {
                (Syntax::Dot, false) => writeln!(out, "  {from} -> {to} [label=\"{label}\"];")?,
                (Syntax::Dot, true) => writeln!(out, "  {from} -> {to} [label=\"{label}\", style=dashed];")?,
                (Syntax::Mermaid, false) => writeln!(out, "  {from} -->|\"{label}\"| {to}")?,
                (Syntax::Mermaid, true) => writeln!(out, "  {from} -.->|\"{label}\"| {to}")?,
            }
        }
    }
    if syntax == Syntax::Dot {
        writeln!(out, "}}")?;
    }
    Ok(())
}
