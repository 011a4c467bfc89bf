//! Egress: transparent connections to an address that is no known Service.
//! Every decision is `mesh_proxy_api::outbound::egress::decide_egress` on
//! the current config's `outbound.egress` (the function `meshc reach --to
//! egress:` runs); this module only reads what it needs and acts:
//!
//! - an address in the cluster networks, or one no EgressNetwork covers,
//!   is passed through unchanged (Linkerd's `egress-fallback`);
//! - otherwise `EgressNetwork::reads` says what to read first: HTTP
//!   detection (each request decided on its own: 403 with `l5d-proxy-error`,
//!   gRPC PERMISSION_DENIED, 500, or sent on), the ClientHello's SNI (a port
//!   TLSRoutes serve), or nothing (a TCPRoute takes every connection);
//! - a connection is closed when refused, passed through to the original
//!   destination, or forwarded to the Service a route redirects it to.

use super::body::BoxBody;
use super::connect::EndpointClient;
use super::forward::Plan;
use super::http::{Counted, CountedTarget};
use super::{Outbound, sni, tcp};
use crate::detect::{self, Protocol, Rewind};
use crate::discovery::{Endpoint, ServiceKey};
use crate::filters;
use crate::http_util::{api_request, is_grpc, local, strip_hop_by_hop};
use crate::metrics::Labels;
use crate::state;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_proxy_api::HttpFilter;
use mesh_proxy_api::outbound::egress::{
    EgressBackend, EgressDecision, EgressOutcome, EgressRead, EgressTarget, EgressTraffic, Refusal, decide_egress,
    pick_egress_backend,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// What the config says to read of a connection to `dst`; `None`: not
/// policed (no config, in the cluster, or no EgressNetwork covers it).
fn reads(ob: &Outbound, dst: SocketAddr) -> Option<EgressRead> {
    let loaded = state::current(&ob.config)?;
    match decide_egress(&loaded.config.outbound.egress, dst.ip(), dst.port(), EgressTraffic::Opaque) {
        EgressDecision::Network { network, .. } => Some(network.reads(dst.port())),
        EgressDecision::InCluster | EgressDecision::Fallback => None,
    }
}

/// Serves a transparent connection headed for `dst`, which is no Service.
pub async fn serve(
    shutdown: &CancellationToken,
    ob: Arc<Outbound>,
    mut stream: TcpStream,
    peer: SocketAddr,
    dst: SocketAddr,
) {
    match reads(&ob, dst) {
        None => tcp::passthrough(&ob, dst, stream, Bytes::new()).await,
        Some(EgressRead::Nothing) => connection(&ob, dst, stream, Bytes::new(), None).await,
        Some(EgressRead::Sni) => {
            let (sni, prefix) = sni::read_sni(&mut stream, ob.detect_timeout).await;
            connection(&ob, dst, stream, prefix, Some(sni.as_deref())).await
        }
        Some(EgressRead::Detect) => match detect::detect(&mut stream, ob.detect_timeout).await {
            Ok((Protocol::Http, prefix)) => {
                let target = super::http::Target::Egress(dst);
                super::listen::serve_http(shutdown, ob, target, peer, Rewind::new(prefix, stream)).await
            }
            Ok((Protocol::Tcp, prefix)) => connection(&ob, dst, stream, prefix, None).await,
            Err(e) => tracing::debug!(%dst, error = %e, "egress detection failed; closing"),
        },
    }
}

/// Where a whole connection goes.
enum Conn {
    Pass,
    Service(ServiceKey),
    Close(String),
}

/// Decides and carries a connection that is not HTTP. `sni`: `Some` when
/// the port required reading a ClientHello (its SNI, if it had one).
async fn connection(ob: &Outbound, dst: SocketAddr, stream: TcpStream, prefix: Bytes, sni: Option<Option<&str>>) {
    let plan = {
        let Some(loaded) = state::current(&ob.config) else {
            return tcp::passthrough(ob, dst, stream, prefix).await;
        };
        let traffic = match sni {
            Some(Some(name)) => EgressTraffic::Tls { sni: name },
            _ => EgressTraffic::Opaque,
        };
        connection_plan(decide_egress(&loaded.config.outbound.egress, dst.ip(), dst.port(), traffic))
    };
    match plan {
        Conn::Pass => tcp::passthrough(ob, dst, stream, prefix).await,
        Conn::Service(key) => tcp::forward(ob, &key, stream, prefix).await,
        Conn::Close(why) => {
            tracing::info!(%dst, sni = sni.flatten().unwrap_or(""), why, "egress connection closed");
            ob.metrics.connection(&Labels {
                direction: "outbound",
                target: crate::metrics::PASSTHROUGH.into(),
                verdict: "deny",
                ..Labels::default()
            });
        }
    }
}

fn connection_plan(d: EgressDecision<'_>) -> Conn {
    let EgressDecision::Network { network, outcome } = d else { return Conn::Pass };
    let by = format!("EgressNetwork {}/{}", network.namespace, network.name);
    if let Some(refusal) = outcome.refusal() {
        return Conn::Close(format!("{by}: {}", refusal_reason(&outcome, refusal)));
    }
    let backends: &[EgressBackend] = match &outcome {
        EgressOutcome::Connection { backends, .. } => backends,
        EgressOutcome::Route { rule, .. } => rule.backends,
        EgressOutcome::TrafficPolicy { .. } | EgressOutcome::SniRequired => return Conn::Pass,
    };
    match pick_egress_backend(backends, fastrand::u64(..)).map(|b| &b.target) {
        Some(EgressTarget::Original) => Conn::Pass,
        Some(EgressTarget::Service { namespace, name, port }) => {
            Conn::Service(ServiceKey { namespace: namespace.clone(), name: name.clone(), port: *port })
        }
        Some(EgressTarget::Invalid { reason }) => Conn::Close(format!("{by}: invalid backend: {reason}")),
        None => Conn::Close(format!("{by}: every backend has weight 0")),
    }
}

fn refusal_reason(outcome: &EgressOutcome<'_>, refusal: Refusal) -> String {
    match (outcome, refusal) {
        (EgressOutcome::SniRequired, _) => "TLSRoutes serve this port and the connection has no SNI".to_owned(),
        (EgressOutcome::TrafficPolicy { policy, via }, _) => format!("traffic not allowed ({})", via.name(*policy)),
        (EgressOutcome::Route { route, .. } | EgressOutcome::Connection { route, .. }, _) => {
            format!("every backend of {} {} is invalid or weighted 0", route.kind, route.name)
        }
    }
}

/// Where one HTTP request goes.
enum Req<'a> {
    Refuse(StatusCode, bool, String),
    Original { filters: Vec<&'a HttpFilter>, timeout: Option<Duration> },
    Service(Box<Plan<'a>>),
}

/// Decides and answers one HTTP request on an egress connection to `dst`.
pub async fn route_request(
    ob: &Arc<Outbound>,
    loaded: state::Current,
    dst: SocketAddr,
    req: Request<Incoming>,
    counted: &mut Counted<'_>,
) -> Response<BoxBody> {
    let grpc = is_grpc(&req);
    counted.target = CountedTarget::Fixed(crate::metrics::PASSTHROUGH);
    counted.verdict = "error";
    let Some(loaded) = loaded else {
        return local(StatusCode::SERVICE_UNAVAILABLE, grpc, Some("proxy has no verified config yet"));
    };
    let view = api_request(&req);
    let decision = decide_egress(&loaded.config.outbound.egress, dst.ip(), dst.port(), EgressTraffic::Http(&view));
    match request_plan(decision, grpc) {
        Req::Refuse(status, grpc, reason) => {
            counted.verdict = "deny";
            tracing::info!(%dst, path = view.path, reason, "egress request refused");
            local(status, grpc, Some(&reason))
        }
        Req::Service(plan) => {
            counted.verdict = "allow";
            super::forward::forward(ob, *plan, req, grpc).await
        }
        Req::Original { filters, timeout } => {
            counted.verdict = "allow";
            let sent = to_original(ob, dst, req, &filters, grpc);
            match timeout {
                Some(t) => tokio::time::timeout(t, sent).await.unwrap_or_else(|_| {
                    local(StatusCode::GATEWAY_TIMEOUT, grpc, Some(&format!("egress {dst}: request timeout")))
                }),
                None => sent.await,
            }
        }
    }
}

fn request_plan(d: EgressDecision<'_>, grpc: bool) -> Req<'_> {
    let EgressDecision::Network { network, outcome } = d else {
        return Req::Original { filters: Vec::new(), timeout: None };
    };
    let by = format!("EgressNetwork {}/{}", network.namespace, network.name);
    if let Some(refusal) = outcome.refusal() {
        let why = format!("{by}: {}", refusal_reason(&outcome, refusal));
        return match refusal {
            Refusal::Http403 | Refusal::Close => Req::Refuse(StatusCode::FORBIDDEN, grpc, why),
            Refusal::Grpc7 => Req::Refuse(StatusCode::FORBIDDEN, true, why),
            Refusal::Http500 => Req::Refuse(StatusCode::INTERNAL_SERVER_ERROR, grpc, why),
        };
    }
    let (backends, filters, timeout): (&[EgressBackend], Vec<&HttpFilter>, Option<Duration>) = match &outcome {
        EgressOutcome::Route { rule, .. } => {
            (rule.backends, rule.filters.iter().collect(), rule.timeouts.request_ms.map(Duration::from_millis))
        }
        EgressOutcome::Connection { backends, .. } => (backends, Vec::new(), None),
        EgressOutcome::TrafficPolicy { .. } | EgressOutcome::SniRequired => (&[], Vec::new(), None),
    };
    if backends.is_empty() {
        return Req::Original { filters, timeout };
    }
    match pick_egress_backend(backends, fastrand::u64(..)).map(|b| &b.target) {
        Some(EgressTarget::Service { namespace, name, port }) => {
            let key = ServiceKey { namespace: namespace.clone(), name: name.clone(), port: *port };
            Req::Service(Box::new(Plan { filters, request_timeout: timeout, ..Plan::direct(key, None) }))
        }
        Some(EgressTarget::Invalid { reason }) => {
            Req::Refuse(StatusCode::INTERNAL_SERVER_ERROR, grpc, format!("{by}: invalid backend: {reason}"))
        }
        Some(EgressTarget::Original) => Req::Original { filters, timeout },
        None => Req::Refuse(StatusCode::INTERNAL_SERVER_ERROR, grpc, format!("{by}: every backend has weight 0")),
    }
}

/// Sends the request to the address the client dialled, in plaintext as it
/// came (the app's own TLS, if any, would have made it opaque).
async fn to_original(
    ob: &Outbound,
    dst: SocketAddr,
    req: Request<Incoming>,
    rule_filters: &[&HttpFilter],
    grpc: bool,
) -> Response<BoxBody> {
    let (mut parts, body) = req.into_parts();
    let applied =
        match super::forward::outgoing(&mut parts, rule_filters.iter().copied(), None, || dst.to_string(), grpc) {
            Ok(a) => a,
            Err(answer) => return *answer,
        };
    let client = EndpointClient::single_use(&ob.dialer, &Endpoint { addr: dst, identity: None }, ob.max_header_bytes);
    match client.send(Request::from_parts(parts, super::body::boxed(body))).await {
        Ok(resp) => {
            let (mut head, body) = resp.into_parts();
            strip_hop_by_hop(&mut head.headers);
            for m in applied.response {
                filters::modify_headers(&mut head.headers, m);
            }
            Response::from_parts(head, super::body::boxed(body))
        }
        Err(e) => local(StatusCode::BAD_GATEWAY, grpc, Some(&format!("egress {dst}: {e}"))),
    }
}
