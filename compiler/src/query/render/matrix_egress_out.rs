//! The egress part of `meshc matrix` (`query::matrix_egress`): rows in the
//! JSON, lines in the table, edges to EgressNetwork nodes in the graphs.

use crate::query::classes::Classes;
use crate::query::matrix_egress::EgressRow;
use std::io::{self, Write};

/// `,"egress":[…]`: one row per fact, its classes by client-set id.
pub fn json(rows: &[EgressRow], set_id: &mut dyn FnMut(&[usize]) -> usize) -> io::Result<String> {
    let mut out = String::from(",\n\"egress\":[");
    for (n, r) in rows.iter().enumerate() {
        let mut v = serde_json::to_value(&r.outcome).map_err(io::Error::other)?;
        v["clients"] = serde_json::json!(set_id(&r.clients));
        v["namespaces"] = serde_json::json!(r.namespaces);
        out.push_str(if n == 0 { "\n" } else { ",\n" });
        out.push_str(&serde_json::to_string(&v).map_err(io::Error::other)?);
    }
    out.push_str("\n]");
    Ok(out)
}

/// One line per (class, fact), as the workload edges are written; `prefix`
/// names the cluster in a multicluster matrix (`east/`), else is empty.
pub fn table(out: &mut dyn Write, rows: &[EgressRow], classes: &Classes, prefix: &str) -> io::Result<usize> {
    let mut n = 0;
    for r in rows {
        let target = format!("egress: {}", r.outcome.target.label());
        let via = format!("to {}", r.outcome.backends.join(", "));
        let within = r.namespaces.join(", ");
        for &c in &r.clients {
            let client = format!("{prefix}[{c}] {} (workloads in {within})", classes.classes[c].label());
            writeln!(out, "{client:<48} {target:<44} {:<8} {via}", r.outcome.verdict)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The graph nodes egress edges lead to: one per EgressNetwork or fallback kind.
pub fn nodes(rows: &[EgressRow]) -> Vec<String> {
    let mut out: Vec<String> = rows.iter().map(|r| r.outcome.target.node()).collect();
    out.sort();
    out.dedup();
    out
}

/// The label of a graph edge: the route and port, or the traffic policy.
pub fn edge_label(r: &EgressRow) -> String {
    let t = &r.outcome.target;
    match (&t.route, t.port, t.traffic_policy, t.egress) {
        (Some(route), Some(port), _, _) => format!("{route} :{port}"),
        (Some(route), None, _, _) => route.clone(),
        (None, _, Some(tp), _) => format!("trafficPolicy {tp}"),
        (None, _, None, Some(kind)) => kind.to_owned(),
        _ => "egress".to_owned(),
    }
}
