//! Test PKI: a trust anchor, an issuer and workload certificates, made with
//! rcgen (the `mesh-proxy certs` subcommand and the tests use it).
//! OWNER: identity helper.
