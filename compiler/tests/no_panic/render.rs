//! Every output meshc renders, on one generated repository (and a diff
//! between two): findings (human, json, github, sarif), the queries' text,
//! the matrix in every format, `build`, JUnit, and `diff` in every format.

use mesh_proxy_api::envelope::SigningKey;
use meshc::diff::{self, Sides, render as diff_render, traffic::Checked};
use meshc::emit::{self, BuildInfo};
use meshc::load::Input;
use meshc::meshtest::{TestResult, junit};
use meshc::pipeline::{self, Options, Outcome};
use meshc::query::classes::Classes;
use meshc::query::render::{matrix_out, text};
use meshc::query::{matrix, reach, svc, who};
use meshc::report::{Summary, ci, human, json};

pub fn compile(text: String) -> Outcome {
    let input = Input::Text { name: "fuzz.yaml".to_owned(), text };
    pipeline::compile(&input, &Options::default()).expect("text input is always readable")
}

pub fn findings(o: &Outcome) {
    let summary = Summary::new(&o.findings, o.objects, o.workloads());
    for color in [false, true] {
        assert!(!human::render(&o.findings, &o.sources, summary, color).is_empty());
    }
    serde_json::from_str::<serde_json::Value>(&json::render(&o.findings, &o.sources, summary)).expect("json parses");
    let _ = ci::github(&o.findings, &o.sources, "k8s/");
    serde_json::from_str::<serde_json::Value>(&ci::sarif(&o.findings, &o.sources, "")).expect("sarif parses");
}

pub fn queries(o: &Outcome) {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let scope = matrix::workloads_in(o, None);
    let egress = meshc::query::matrix_egress::rows(o, &classes, None);
    let mut out = Vec::new();
    matrix_out::json(&mut out, o, &classes, &scope, &egress, &|s| s).expect("writes to memory");
    serde_json::from_slice::<serde_json::Value>(&out).expect("matrix json parses");
    type Format = fn(
        &mut dyn std::io::Write,
        &Outcome,
        &Classes,
        &[usize],
        &[meshc::query::matrix_egress::EgressRow],
    ) -> std::io::Result<()>;
    for format in [matrix_out::table as Format, matrix_out::dot, matrix_out::mermaid] {
        format(&mut Vec::new(), o, &classes, &scope, &egress).expect("writes to memory");
    }
    matrix_out::html(&mut Vec::new(), o, &classes, &scope, &egress, "<title> & \"quotes\"").expect("writes to memory");
    for wi in scope.iter().copied().take(3) {
        let w = &o.resolved.workloads[wi];
        let target = format!("{}/{}/{}", w.kind, w.namespace, w.name);
        let answers = who::who_can_reach(o, &classes, wi, None);
        let _ = text::who(&target, &answers, &classes, text::Paint(true));
        for port in answers.iter().map(|a| a.port).take(2) {
            for client in ["kubelet", "unmeshed", "external", "sa:default/default"] {
                if let Ok(client) = reach::parse_client(o, &classes, client) {
                    let r = reach::reach(o, client, wi, port, None);
                    let _ = text::reach(&r, Some("GET /"), text::Paint(false));
                }
            }
        }
    }
    services(o, &classes);
}

/// Services as targets: `matrix --services`, `who-can-reach svc/...` and
/// `reach --to svc/...` from several kinds of client, in text and JSON.
fn services(o: &Outcome, classes: &Classes) {
    let targets = svc::matrix::service_targets(o, None);
    let _ = svc::matrix::table(&svc::matrix::edges(o, classes, &targets[..targets.len().min(3)]));
    let workload = o.resolved.workloads.first().map(|w| format!("{}/{}/{}", w.kind, w.namespace, w.name));
    for t in targets.iter().take(3) {
        let _ = svc::who::text(t, &svc::who::who_can_reach(o, classes, t));
        // By name too: the parser resolves it against the Service's ports.
        let _ = svc::target::parse(o, &format!("svc/{}/{}:http", t.namespace, t.name));
        for client in ["kubelet", "unmeshed:default", "external"].into_iter().map(str::to_owned).chain(workload.clone())
        {
            if let Ok(client) = reach::parse_client(o, classes, &client) {
                let req = mesh_proxy_api::HttpRequest::new("GET", "/");
                // Plain HTTP, then a TLS connection (TLSRoutes route it by SNI).
                for sni in [None, Some("a.example.com")] {
                    let r = svc::reach(o, client.clone(), t, &req, sni);
                    let _ = svc::render::text(&r, "GET /", false, text::Paint(true));
                    serde_json::to_string(&svc::render::json(&r)).expect("service reach json");
                }
            }
        }
    }
}

pub fn build(o: &Outcome) {
    let key = SigningKey::from_bytes(&[3; 32]);
    let info = BuildInfo { source_revision: "no-panic".to_owned(), sequence: 1, error_findings: 0 };
    if let Ok(built) = emit::build_outcome(o, &key, &info, &emit::ConfigOut::Keep) {
        assert!(!built.stream().is_empty());
    }
}

pub fn junit(names: &[String]) {
    let results: Vec<TestResult> = names
        .iter()
        .enumerate()
        .map(|(i, name)| TestResult {
            test: name.clone(),
            name: name.chars().rev().collect(),
            file: format!("{name}.meshtest.yaml"),
            line: i as u32,
            passed: i % 2 == 0,
            message: name.repeat(2),
            detail: name.clone(),
        })
        .collect();
    assert!(junit::render(&results).starts_with("<?xml"));
}

pub fn diff(base: &Outcome, head: &Outcome) {
    let sides = Sides::new(base, head);
    let d = diff::diff(&sides, None);
    let traffic = Checked::default();
    let _ = diff_render::human(&d, &traffic, text::Paint(true));
    serde_json::from_str::<serde_json::Value>(&diff_render::json(&d, &traffic)).expect("diff json parses");
    assert!(diff_render::markdown(&d, &traffic).len() <= diff_render::MARKDOWN_LIMIT);
    let _ = ci::sarif(&head.findings, &head.sources, "");
}
