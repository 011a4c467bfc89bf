//! Outbound: routes the app's requests to Services (route selection,
//! weighted backends, timeouts, budgeted retries, failure accrual, peak-EWMA
//! balancing, mTLS to meshed endpoints).
//!
//! Listeners (all optional, see [`crate::Settings`]):
//! - `--outbound ADDR`: HTTP/1 and h2 on one port; each request names its
//!   Service in its authority (`name.ns.svc.<cluster domain>[:port]`,
//!   `name.ns.svc[:port]` or `name.ns[:port]`, port 80 by default). A
//!   request without an authority gets 400; an authority that is not such
//!   a name gets 502 (the proxy cannot reach it), with the reason in the
//!   body and in `l5d-proxy-error`.
//! - `--outbound-tcp LISTEN=name.ns:port`: opaque TCP to one Service port.
//! - `--outbound-transparent ADDR`: iptables-redirected connections; the
//!   original destination (a cluster IP) names the Service. Its port's
//!   protocol decides: opaque → TCP, HTTP/1 or h2 → HTTP, detect → HTTP
//!   when the first bytes are an HTTP/1 request line or the h2 preface
//!   within `--detect-timeout`, else TCP. A destination that is no known
//!   Service is egress (`outbound::egress`): `decide_egress` on the config's
//!   EgressNetworks refuses it (HTTP 403 with `l5d-proxy-error`, gRPC
//!   PERMISSION_DENIED, TLS and opaque connections closed), passes it
//!   through to the original destination, or redirects it to a Service;
//!   an address no EgressNetwork covers is passed through unchanged.
//!
//! A Service port with a TCPRoute or TLSRoutes (`mesh_proxy_api::route_connection`)
//! routes whole connections, on the transparent and `--outbound-tcp`
//! listeners: a TCPRoute sends each connection to one backend picked by
//! weight; TLSRoutes first read the ClientHello's SNI (not terminating TLS,
//! within `--detect-timeout`) and close a connection no route matches.
//!
//! The proxy's own answers: no config yet 503; no route 404 (gRPC status
//! 5); invalid or zero-weight backends 500 (13); no endpoints or all
//! ejected 503 (14); connection failure 502 (14); timeouts 504 (4). gRPC
//! calls get these as HTTP 200 trailers-only responses.

pub mod accrual;
pub mod balance;
pub mod body;
pub mod connect;
mod egress;
mod forward;
pub mod http;
mod listen;
pub mod retry;
mod sni;
pub mod target;
pub(crate) mod tcp;

use crate::Ctx;
use crate::discovery::{Discovery, ServiceKey};
use crate::metrics::Metrics;
use crate::state::ConfigRx;
use balance::Balancer;
use connect::{Dialer, EndpointClient};
use mesh_proxy_api::outbound::RetryBudget;
use retry::Budget;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use listen::serve;

/// What every outbound connection shares: config, discovery, balancers
/// (one per Service port, holding the endpoint pools) and retry budgets.
pub struct Outbound {
    pub config: ConfigRx,
    pub discovery: Arc<dyn Discovery>,
    pub metrics: Arc<Metrics>,
    pub cluster_domain: String,
    pub dialer: Dialer,
    /// How long detection waits for a client's first bytes.
    pub detect_timeout: Duration,
    /// Largest request header block accepted from the app.
    pub max_header_bytes: usize,
    balancers: Mutex<HashMap<ServiceKey, Arc<Balancer<EndpointClient>>>>,
    budgets: Mutex<HashMap<ServiceKey, (RetryBudget, Arc<Budget>)>>,
}

impl Outbound {
    pub fn new(
        config: ConfigRx,
        discovery: Arc<dyn Discovery>,
        metrics: Arc<Metrics>,
        cluster_domain: String,
        dialer: Dialer,
    ) -> Self {
        Outbound {
            config,
            discovery,
            metrics,
            cluster_domain,
            dialer,
            detect_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            balancers: Mutex::default(),
            budgets: Mutex::default(),
        }
    }

    /// The proxy's outbound side: connections from the pod IP, mTLS with
    /// the workload identity's client config of the moment.
    pub fn from_ctx(ctx: &Ctx) -> Arc<Self> {
        let identity = ctx.identity.clone();
        let pod_ips = ctx.settings.pod_ips.as_slice().into();
        let dialer = Dialer { pod_ips, tls: Arc::new(move || identity.client_config()) };
        let ob = Outbound::new(
            ctx.config.clone(),
            ctx.discovery.clone(),
            ctx.metrics.clone(),
            ctx.settings.cluster_domain.clone(),
            dialer,
        );
        Arc::new(Outbound {
            detect_timeout: ctx.settings.detect_timeout,
            max_header_bytes: ctx.settings.max_header_bytes,
            ..ob
        })
    }

    /// The Service port's balancer. One for a Service discovery does not
    /// know is not kept, so made-up names cannot grow the map.
    pub(crate) fn balancer(&self, key: &ServiceKey) -> Arc<Balancer<EndpointClient>> {
        let mut map = self.balancers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(key) {
            return b.clone();
        }
        let (dialer, max_header_bytes) = (self.dialer.clone(), self.max_header_bytes);
        let b = Arc::new(Balancer::new(
            key.clone(),
            self.discovery.clone(),
            Arc::new(move |ep| EndpointClient::new(&dialer, ep, max_header_bytes)),
        ));
        // Names discovery does not know are not remembered (clients could
        // make up any number of them); a watched Service is, even while its
        // first endpoints are on their way.
        if !b.is_empty() || b.is_watched() {
            map.insert(key.clone(), b.clone());
        }
        b
    }

    /// The retry budget of a Service (its profile's, or Linkerd's default);
    /// a changed budget config starts a fresh budget.
    pub(crate) fn budget(&self, key: &ServiceKey, cfg: &RetryBudget) -> Arc<Budget> {
        let mut map = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some((c, b)) if c == cfg => b.clone(),
            _ => {
                let b = Arc::new(Budget::new(cfg));
                map.insert(key.clone(), (cfg.clone(), b.clone()));
                b
            }
        }
    }
}
