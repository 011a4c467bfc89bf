//! `mesh-proxy-api`: the contract between meshc and mesh-proxy.
//!
//! [`ProxyConfig`] is what meshc lowers a workload's policy into and what the
//! proxy enforces. The decision functions ([`authorize`], route selection) are
//! the ones the proxy calls per request, and the ones meshc's analysis calls to
//! prove reachability, so the verifier checks exactly what will be enforced.
//! Pure: no I/O, no async.

pub mod config;

pub use config::*;
