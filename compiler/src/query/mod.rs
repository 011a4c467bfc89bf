//! Queries over a checked repository (what one workload's proxy enforces).

pub mod show_config;
pub mod workload_ref;
