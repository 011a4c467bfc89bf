//! meshc: reads Kubernetes manifests (Linkerd policy, Gateway API routes,
//! workloads), resolves Linkerd's inbound policy exactly, lowers it into
//! per-workload proxy configs, and reports what will break. See ARCHITECTURE.md.

pub mod analyze;
pub mod cli;
pub mod diff;
pub mod emit;
pub mod findings;
pub mod inject;
pub mod invariants;
pub mod load;
pub mod lower;
pub mod meshtest;
pub mod model;
pub mod multicluster;
pub mod pipeline;
pub mod profile;
pub mod query;
pub mod report;
pub mod resolve;
pub mod schemas;
pub mod settings;
