//! `mesh-runtime`: serves proxies the signed configs `meshc build` wrote
//! (only those that verify, only to the workload they are for), the
//! endpoints of Services, and workload certificates. The API is
//! `runtime/API.md`.

pub mod store;
