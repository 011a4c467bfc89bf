//! `mesh-proxy`: the sidecar that enforces exactly the signed ProxyConfig
//! meshc verified. Per request it calls the same `mesh-proxy-api` decision
//! functions `meshc reach` calls, so what was proved is what is enforced.
//!
//! Data flow: a [`source`] delivers signed configs, which are verified and
//! published in [`state`]; [`identity`] holds the workload certificate;
//! [`inbound`] authorizes and forwards to the app; [`outbound`] routes the
//! app's requests to Services whose endpoints come from [`discovery`];
//! [`admin`] serves health and [`metrics`].

mod access_log;
mod admin;
mod ctx;
mod detect;
pub mod discovery;
mod filters;
pub mod gateway;
mod http_util;
pub mod identity;
pub mod inbound;
pub mod init;
mod listen;
pub mod metrics;
pub mod net;
pub mod outbound;
mod pool;
pub mod run;
mod settings;
pub mod source;
pub mod state;

pub use ctx::Ctx;
pub use settings::Settings;
