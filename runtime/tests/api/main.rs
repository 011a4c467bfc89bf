//! The runtime through real sockets: file mode over a `meshc build`
//! directory, clients with real certificates, and the real binary.

mod binary;
mod certificate;
mod config;
mod endpoints;
mod kube;
mod kube_identity;
mod kube_objects;
mod kube_rollback;
mod limits;
mod mirror;
mod rollback;
#[path = "../servers/mod.rs"]
mod servers;
mod service_policies;
mod supervise;
mod support;
mod webhook;
mod webhook_kube;
