//! The runtime through real sockets: file mode over a `meshc build`
//! directory, clients with real certificates, and the real binary.

mod binary;
mod certificate;
mod config;
mod endpoints;
mod kube;
mod kube_real;
mod limits;
mod rollback;
mod supervise;
mod support;
