//! `mesh-runtime`: serves proxies the signed configs `meshc build` wrote
//! (only those that verify, only to the workload they are for), the
//! endpoints of Services, and workload certificates. The API is
//! `runtime/API.md`; file mode (the only mode so far) is [`run`].
//!
//! Data flow: inputs (files now, Kubernetes objects later) go into the
//! [`store`], which decides what is served; [`hub`] publishes it to long
//! polls; [`api`] answers proxies over the TLS listener in [`serve`];
//! [`ca`] signs certificates for tokens that [`tokens`] accepts.

pub mod api;
pub mod ca;
mod cert_limits;
mod file_mode;
mod files;
pub mod hub;
pub mod kube;
mod limits;
pub mod metrics;
mod mirror;
mod quota;
pub mod run;
pub mod serve;
mod settings;
mod state_file;
pub mod store;
pub mod supervise;
pub mod tokens;
pub mod webhook;

pub use run::{Running, start};
pub use settings::{KubeSettings, Limits, Settings, WebhookSettings};
