//! JUnit XML of test results: one testsuite per MeshTest, one testcase per flow.

use super::TestResult;
use std::collections::BTreeMap;
use std::fmt::Write;

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

pub fn render(results: &[TestResult]) -> String {
    let mut suites: BTreeMap<&str, Vec<&TestResult>> = BTreeMap::new();
    for r in results {
        suites.entry(&r.test).or_default().push(r);
    }
    let failures = results.iter().filter(|r| !r.passed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"meshc\" tests=\"{}\" failures=\"{failures}\">", results.len());
    for (name, cases) in suites {
        let failed = cases.iter().filter(|r| !r.passed).count();
        let _ = writeln!(out, "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">", xml(name), cases.len());
        for r in cases {
            let class = xml(&format!("{}:{}", r.file, r.line));
            if r.passed {
                let _ = writeln!(out, "    <testcase name=\"{}\" classname=\"{class}\"/>", xml(&r.name));
            } else {
                let _ = writeln!(out, "    <testcase name=\"{}\" classname=\"{class}\">", xml(&r.name));
                let body = if r.detail.is_empty() { &r.message } else { &r.detail };
                let _ = writeln!(out, "      <failure message=\"{}\">{}</failure>", xml(&r.message), xml(body));
                let _ = writeln!(out, "    </testcase>");
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}
