//! Observed traffic: which flows that the base allows the head denies.
//!
//! Input is a JSON array of flows, `{"from": CLIENT, "to": "WORKLOAD[:PORT]",
//! "method"?, "path"?, "count"?}` with the client and workload syntax of
//! `meshc reach`, or the output of `linkerd viz edges -o json` (rows with
//! `src`, `src_namespace`, `dst`, `dst_namespace`), whose flows have no port
//! or request: such a flow is allowed when any route of any port allows it.

use super::Sides;
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::evaluate::Verdict;
use crate::query::reach::{flow_verdict, parse_client, parse_target, request_of};
use crate::query::workload_ref;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Flow {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[derive(Deserialize)]
struct VizEdge {
    src: String,
    src_namespace: String,
    dst: String,
    dst_namespace: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Broken {
    pub flow: Flow,
    /// What the client gets after the change, and why.
    pub after: String,
}

fn flows(text: &str) -> Result<Vec<Flow>, String> {
    if let Ok(flows) = serde_json::from_str::<Vec<Flow>>(text) {
        return Ok(flows);
    }
    let edges: Vec<VizEdge> = serde_json::from_str(text).map_err(|e| {
        format!("expected a JSON array of {{\"from\",\"to\",\"method\"?,\"path\"?,\"count\"?}} or `linkerd viz edges -o json` output: {e}")
    })?;
    Ok(edges
        .into_iter()
        .map(|e| Flow {
            from: format!("{}/{}", e.src_namespace, e.src),
            to: format!("{}/{}", e.dst_namespace, e.dst),
            method: None,
            path: None,
            count: None,
        })
        .collect())
}

/// What `--traffic` found: the flows the change breaks, the rows that could
/// not be checked (they fail `--fail-on broken-traffic`: a bad file must not
/// pass), and how many rows name a workload the base does not have.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Checked {
    pub broken: Vec<Broken>,
    pub unchecked: Vec<Unchecked>,
    pub not_in_base: usize,
}

/// A row whose client or target does not parse (or is ambiguous).
#[derive(Clone, Debug, Serialize)]
pub struct Unchecked {
    /// 1-based position in the file.
    pub row: usize,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// Why a row has no verdict on a side.
enum NoVerdict {
    /// A well-formed workload reference that names no workload there.
    Absent,
    Unreadable(String),
}

/// The flow's verdict on this side, and why when it is not allowed; or why
/// there is none.
fn allowed(o: &Outcome, classes: &Classes, f: &Flow) -> Result<(Verdict, String), NoVerdict> {
    let no_verdict = |spec: &str, e: String| {
        let absent = workload_ref::matching(&o.resolved, spec).is_ok_and(|m| m.is_empty());
        if absent { NoVerdict::Absent } else { NoVerdict::Unreadable(e) }
    };
    let client = parse_client(o, classes, &f.from).map_err(|e| no_verdict(&f.from, e))?;
    let workload = f.to.rsplit_once(':').map_or(f.to.as_str(), |(w, _)| w);
    let (wi, port) = parse_target(o, &f.to).map_err(|e| no_verdict(workload, e))?;
    let req = request_of(f.method.as_deref(), f.path.as_deref(), None, []);
    let (verdict, proof) = flow_verdict(o, &client, wi, port, req.as_ref());
    if verdict == Verdict::Allow {
        return Ok((verdict, String::new()));
    }
    let why = proof.as_ref().and_then(|r| {
        let v = r.verdicts.iter().find(|v| v.verdict == verdict).or(r.verdicts.first())?;
        let status = match (&v.condition, v.status) {
            (Some(c), _) => c.clone(),
            (None, Some(s)) => s.to_string(),
            (None, None) => "connection closed".to_owned(),
        };
        Some(format!("port {}: {} ({status}): {}", r.target.port, v.verdict.as_str(), v.summary()))
    });
    Ok((verdict, why.unwrap_or_default()))
}

pub fn check_file(s: &Sides, file: &Path) -> Result<Checked, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = Checked::default();
    for (i, f) in flows(&text)?.into_iter().enumerate() {
        // Observed, so allowed where the client pod was; a base that depends
        // on the pod CIDR was allowed there.
        let before = match allowed(s.base, &s.base_classes, &f) {
            Ok((v @ (Verdict::Allow | Verdict::Depends), _)) => v,
            Ok(_) => continue,
            Err(NoVerdict::Absent) => {
                out.not_in_base += 1;
                continue;
            }
            Err(NoVerdict::Unreadable(reason)) => {
                out.unchecked.push(Unchecked { row: i + 1, from: f.from, to: f.to, reason });
                continue;
            }
        };
        // A client that is gone sends nothing; a target that is gone breaks the flow.
        if parse_client(s.head, &s.head_classes, &f.from).is_err() {
            continue;
        }
        match allowed(s.head, &s.head_classes, &f) {
            Ok((Verdict::Allow, _)) => {}
            // As uncertain as before: no more broken than it was.
            Ok((Verdict::Depends, _)) if before == Verdict::Depends => {}
            Ok((_, why)) => out.broken.push(Broken { flow: f, after: why }),
            Err(_) => {
                out.broken.push(Broken { flow: f, after: "the target is no longer in the repository".to_owned() })
            }
        }
    }
    Ok(out)
}

impl Unchecked {
    pub fn line(&self) -> String {
        format!("row {}: {} → {}: {}", self.row, self.from, self.to, self.reason.lines().next().unwrap_or_default())
    }
}

impl Broken {
    pub fn line(&self) -> String {
        let f = &self.flow;
        let req = match (&f.method, &f.path) {
            (None, None) => String::new(),
            (m, p) => format!(" {} {}", m.as_deref().unwrap_or("GET"), p.as_deref().unwrap_or("/")),
        };
        let count = f.count.map_or_else(String::new, |c| format!(" ({c} observed)"));
        format!("{} → {}{req}{count}: {}", f.from, f.to, self.after)
    }
}
