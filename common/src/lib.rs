//! `mesh-common`: what mesh-proxy and mesh-runtime both run, so neither
//! links the other. The pure parts of the contract (configs, envelopes,
//! the endpoints file) are in `mesh-proxy-api`; this crate holds the parts
//! that do I/O or need the TLS and HTTP stacks.
//!
//! [`verify`] decides whether a signed config is acceptable (the runtime
//! serves only what a proxy would enforce); [`identity`] loads and reloads a
//! workload certificate and builds the rustls configs, and [`identity::pki`]
//! issues certificates; [`http_server`] serves one HTTP connection;
//! [`duration`] parses the flags' durations; [`metrics`] holds the shared
//! metric pieces.

pub mod duration;
pub mod http_server;
pub mod identity;
pub mod metrics;
pub mod verify;

use std::hash::{DefaultHasher, Hash, Hasher};

/// A cheap fingerprint of a file's bytes, to notice that a polled file
/// changed without keeping or comparing whole copies. Not for security:
/// what is trusted is verified separately.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}
