//! The proxy's side of workload identity: the certificate requests it
//! sends the runtime ([`csr`]) and the `mesh-proxy certs` test CA ([`cli`]).
//! Loading, reloading and the TLS configs are `mesh_common::identity`.

pub mod cli;
pub mod csr;
