//! Renderers for findings: human (miette, with the YAML snippet), JSON, and
//! CI formats (GitHub annotations, SARIF).

pub mod ci;
pub mod human;
pub mod json;

use crate::findings::{Finding, Severity};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub resources: usize,
    pub workloads: usize,
}

impl Summary {
    pub fn new(findings: &[Finding], resources: usize, workloads: usize) -> Self {
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        Summary {
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            infos: count(Severity::Info),
            resources,
            workloads,
        }
    }
}
