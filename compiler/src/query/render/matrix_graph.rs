//! `meshc matrix --format dot` and `--format mermaid`: namespaces (with
//! clusters, `CLUSTER / NS`) as groups, client classes and workloads as
//! nodes, one edge per allowed (class, port), dashed when not on every route.

use super::matrix_egress_out;
use super::matrix_out::{AcrossRow, Part, edges};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::matrix::for_each_port;
use crate::query::matrix_egress::EgressRow;
use std::io::{self, Write};

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
    let part = Part::one_cluster(o, classes, scope, egress);
    graph(out, &[part], &[], Syntax::Dot)
}

pub fn mermaid(
    out: &mut dyn Write,
    o: &Outcome,
    classes: &Classes,
    scope: &[usize],
    egress: &[EgressRow],
) -> io::Result<()> {
    let part = Part::one_cluster(o, classes, scope, egress);
    graph(out, &[part], &[], Syntax::Mermaid)
}

/// [`dot`] or [`mermaid`] (`mermaid: true`) of several clusters: a group
/// per cluster and namespace (`CLUSTER / NS`), and the edges across
/// clusters labelled with the mirror they go through.
pub fn graph_parts(out: &mut dyn Write, parts: &[Part], across: &[AcrossRow], mermaid: bool) -> io::Result<()> {
    graph(out, parts, across, if mermaid { Syntax::Mermaid } else { Syntax::Dot })
}

#[derive(Clone, Copy, PartialEq)]
enum Syntax {
    Dot,
    Mermaid,
}

fn quote(s: &str) -> String {
    s.replace('"', "'")
}

fn write_edge(
    out: &mut dyn Write,
    syntax: Syntax,
    (from, to): (&str, &str),
    label: &str,
    sure: bool,
) -> io::Result<()> {
    match (syntax, sure) {
        (Syntax::Dot, true) => writeln!(out, "  {from} -> {to} [label=\"{label}\"];"),
        (Syntax::Dot, false) => writeln!(out, "  {from} -> {to} [label=\"{label}\", style=dashed];"),
        (Syntax::Mermaid, true) => writeln!(out, "  {from} -->|\"{label}\"| {to}"),
        (Syntax::Mermaid, false) => writeln!(out, "  {from} -.->|\"{label}\"| {to}"),
    }
}

fn graph(out: &mut dyn Write, parts: &[Part], across: &[AcrossRow], syntax: Syntax) -> io::Result<()> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut nodes: Vec<String> = parts.iter().flat_map(|p| matrix_egress_out::nodes(p.egress)).collect();
    nodes.sort();
    nodes.dedup();
    let mut outside: Vec<(String, String)> = nodes.into_iter().map(|n| (node_id("e", &n), n)).collect();
    for part in parts {
        let o = part.outcome;
        for &wi in part.scope {
            let w = &o.resolved.workloads[wi];
            let label = part.workload(wi);
            groups.entry(part.group(&w.namespace)).or_default().push((node_id("w", &label), label));
        }
        let prefix = part.cluster.map_or_else(String::new, |c| format!("{c}/"));
        for c in &part.classes.classes {
            let id = c.id + part.offset;
            let node = (node_id("c", &id.to_string()), format!("{prefix}[{}] {}", c.id, c.label()));
            match class_namespace(part.classes, c.id) {
                Some(ns) => groups.entry(part.group(ns)).or_default().push(node),
                None => outside.push(node),
            }
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
    for part in parts {
        for_each_port(part.outcome, part.classes, part.scope, |ps| {
            let to = node_id("w", &part.workload(ps.workload));
            for e in edges(&ps, part.classes) {
                let from = e.client.map_or_else(|| "all".to_owned(), |c| node_id("c", &(c + part.offset).to_string()));
                let mut label = if e.routes.is_empty() {
                    ps.port.to_string()
                } else {
                    format!("{} ({})", ps.port, e.routes.join(", "))
                };
                if let Some(condition) = &e.condition {
                    label = format!("{label} if {}", condition.trim_start_matches("allow when "));
                }
                write_edge(out, syntax, (from.as_str(), to.as_str()), &quote(&label), e.verdict == "allow")?;
            }
            Ok::<(), io::Error>(())
        })?;
    }
    for r in across {
        let to = node_id("w", &r.workload);
        let label = quote(&format!("{} via {}", r.port, r.via));
        for &c in &r.clients {
            let from = node_id("c", &c.to_string());
            write_edge(out, syntax, (from.as_str(), to.as_str()), &label, r.verdict == "allow")?;
        }
    }
    for part in parts {
        for r in part.egress {
            let to = node_id("e", &r.outcome.target.node());
            let label = quote(&matrix_egress_out::edge_label(r));
            for &c in &r.clients {
                let from = node_id("c", &(c + part.offset).to_string());
                write_edge(out, syntax, (from.as_str(), to.as_str()), &label, r.outcome.verdict == "allow")?;
            }
        }
    }
    if syntax == Syntax::Dot {
        writeln!(out, "}}")?;
    }
    Ok(())
}
