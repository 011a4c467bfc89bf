//! The proxy's side of workload identity: the certificate requests it
//! sends the runtime ([`csr`]). Loading, reloading and the TLS configs are
//! `mesh_common::identity`.

pub mod csr;
