//! Behaviour of the decision functions, reasoned from the Linkerd semantics
//! reference (`reference/linkerd-semantics.md`) and the linkerd2-proxy tests
//! it cites. One test binary keeps link time down.

mod authz;
mod common;
mod decide;
mod grpc;
mod hosts;
mod routes;
mod schema;
