//! MeshTest files (`*.meshtest.yaml`, kind `MeshTest`, apiVersion
//! `meshc.io/v1alpha1`): the intent of a repository as concrete flows, each
//! with the verdict it must get. `meshc check` runs every test file it finds
//! under its path; `meshc test` runs only the tests.

pub mod flows;
pub mod invariants;
pub mod junit;

use crate::findings::{Code, Finding, Span};
use crate::load::discover::{self, Source};
use crate::load::{RawObject, objects};
use crate::model::decode::{Seg, decode, node_at};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const API_VERSION: &str = "meshc.io/v1alpha1";
pub const SUFFIX: &str = ".meshtest.yaml";

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct MeshTestSpec {
    /// Concrete expectations: a client, a workload port, an optional request, and the verdict.
    #[serde(default)]
    pub flows: Vec<FlowSpec>,
    /// CEL expressions over the whole mesh graph that must be true.
    #[serde(default)]
    pub invariants: Vec<InvariantSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct InvariantSpec {
    pub name: String,
    /// A CEL expression that must evaluate to true (README, "Invariants").
    pub expr: String,
    /// What the invariant means, shown when it is violated.
    #[serde(default)]
    pub message: Option<String>,
}

/// One invariant of one file: where it is, and where its expression starts.
pub struct Invariant {
    pub spec: InvariantSpec,
    pub span: Span,
    pub expr_span: Span,
    pub test: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct FlowSpec {
    /// A client as `meshc reach --from` takes it.
    pub from: String,
    /// `WORKLOAD:PORT` (port by number or container port name), or
    /// `svc/NAMESPACE/NAME:PORT` (port by number or Service port name), or
    /// `egress:HOST:PORT` (a destination outside the cluster).
    pub to: String,
    /// TLS SNI for an egress target (default on port 443 without a request: HOST).
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `allow`, `deny`, `no-route` (needs a request), `depends`, or for a
    /// `svc/` target `partial` (the backends answer differently).
    pub expect: String,
    /// A name for reports; defaults to `FROM → TO [METHOD PATH]`.
    #[serde(default)]
    pub name: Option<String>,
}

/// One flow of one file, and where it is written.
pub struct Flow {
    pub spec: FlowSpec,
    pub span: Span,
    pub test: String,
}

/// Test files read into the outcome's sources, and their flows.
#[derive(Default)]
pub struct Suite {
    pub flows: Vec<Flow>,
    pub invariants: Vec<Invariant>,
}

/// Reads and decodes the test files, adding them to the outcome's sources.
pub fn read(o: &mut Outcome, files: &[(String, PathBuf)], findings: &mut Vec<Finding>) -> Suite {
    let mut suite = Suite::default();
    for (name, path) in files {
        let source = o.sources.len() as u32;
        let text = match discover::read_text(path) {
            Ok(t) => t,
            Err(e) => {
                findings.push(Finding::new(Code::TestError, Span::file(source), format!("{name}: {e}")));
                o.sources.push(Source { name: name.clone(), text: String::new() });
                continue;
            }
        };
        let (raws, parse_findings) = objects::objects_of(source, name, &text);
        findings.extend(parse_findings);
        o.sources.push(Source { name: name.clone(), text });
        for raw in raws {
            read_object(&raw, &mut suite, findings);
        }
    }
    suite
}

fn read_object(raw: &RawObject, suite: &mut Suite, findings: &mut Vec<Finding>) {
    if raw.kind != "MeshTest" || raw.api_version != API_VERSION {
        let msg = format!(
            "a test file holds `kind: MeshTest` objects of apiVersion {API_VERSION}; this is {} {}",
            raw.api_version, raw.kind
        );
        findings.push(Finding::new(Code::TestError, raw.span(), msg));
        return;
    }
    let Some(env) = decode::<MeshTestSpec>(raw, true, findings) else { return };
    let test = env.metadata.name.clone().unwrap_or_else(|| "(unnamed)".to_owned());
    let Some(spec) = env.spec else { return };
    for (i, f) in spec.flows.into_iter().enumerate() {
        let path = [Seg::Key("spec".into()), Seg::Key("flows".into()), Seg::Index(i)];
        let span = objects::span_of(raw.source, node_at(&raw.node, &path));
        suite.flows.push(Flow { spec: f, span, test: test.clone() });
    }
    for (i, spec) in spec.invariants.into_iter().enumerate() {
        let mut path = vec![Seg::Key("spec".into()), Seg::Key("invariants".into()), Seg::Index(i)];
        let span = objects::span_of(raw.source, node_at(&raw.node, &path));
        path.push(Seg::Key("expr".into()));
        let expr_span = objects::span_of(raw.source, node_at(&raw.node, &path));
        suite.invariants.push(Invariant { spec, span, expr_span, test: test.clone() });
    }
}

/// One testcase's result, for reports and JUnit.
#[derive(Clone, Debug, Serialize)]
pub struct TestResult {
    pub test: String,
    pub name: String,
    pub file: String,
    pub line: u32,
    pub passed: bool,
    /// The verdict against the expectation (`expected deny, got allow`), or the error.
    pub message: String,
    /// For a failure: the proof of the verdict it got.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Discovers, reads and runs the tests for a checked repository: failures
/// become findings on the test file's line (the caller sorts and filters).
/// `found`: the test files the loader found under the path; `extra`: given with `--tests`.
pub fn run(o: &mut Outcome, mut found: Vec<(String, PathBuf)>, extra: &[PathBuf]) -> Vec<TestResult> {
    found.extend(extra.iter().map(|p| (p.display().to_string(), p.clone())));
    let files = found;
    if files.is_empty() {
        return Vec::new();
    }
    let mut findings = Vec::new();
    let suite = read(o, &files, &mut findings);
    if suite.flows.is_empty() && suite.invariants.is_empty() {
        o.findings.extend(findings);
        return Vec::new();
    }
    let classes = Classes::derive(&o.resolved, &o.configs);
    let mut results = flows::run(o, &classes, &suite, &mut findings);
    results.extend(invariants::run(o, &classes, &suite.invariants, &mut findings));
    o.findings.extend(findings);
    results
}
