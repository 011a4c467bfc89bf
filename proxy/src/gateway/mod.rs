//! Gateway mode (`--gateway LISTEN --gateway-cluster NAME`): the proxy of
//! a multicluster gateway, as linkerd2-proxy's inbound `direct` stack and
//! `linkerd/app/gateway` (docs/semantics/multicluster.md, "How a gateway
//! connection works"):
//!
//! 1. only mTLS connections with a client identity are accepted (the
//!    gateway's port requires identity: `RefusedNoIdentity`);
//! 2. the gateway's own inbound policy for LISTEN's port authorizes each
//!    request (routes, authorizations: 404 / 403 as inbound);
//! 3. a request that already passed this gateway (the client's identity is
//!    the gateway's own, or a `forwarded` header says `by=` it) is a loop: 508;
//! 4. the request names the mirrored Service (`<service>-<NAME>`, the name
//!    the source cluster's service mirror gave it); the gateway forwards it
//!    to `<service>` in its own cluster through its outbound side (that
//!    Service's routes, load balancing, mTLS **with the gateway's own
//!    identity**), with `forwarded: by=<gateway>;for=<client>;host=…;proto=https`
//!    and, for HTTP/1, `Host` set to the Service's name. A name that is no
//!    mirror of this cluster is 404 (`GatewayDomainInvalid`).
//!
//! Opaque connections cross too, as Linkerd's (`linkerd/app/gateway/src/opaq.rs`):
//! a client proxy names the Service in a transport header ([`header`],
//! negotiated by ALPN); the gateway's own policy for its port authorizes
//! the connection as TCP (the Server's authorizations, not its routes:
//! Linkerd's `authorize_tcp`), and again when a new config arrives (a
//! revoked authorization closes it, as on any inbound port); the stream
//! then goes to `<service>` through the outbound side (its TCPRoute,
//! balancing, mTLS with the gateway's identity). Linkerd checks loops for
//! HTTP only; so does this gateway.
//!
//! Where it departs from Linkerd: linkerd2-proxy's client side names the
//! target Service itself (`<service>.<ns>.svc.<domain>`, from the
//! endpoint's authority override) in a transport header on every gateway
//! connection, HTTP too; mesh-proxy clients send HTTP as it is and a
//! header only on opaque connections, naming the mirror, so the gateway
//! maps the mirror's name back (`<service>-<NAME>` → `<service>`), from the
//! request's authority or from the header. A connection that is neither
//! HTTP nor has a header cannot name its target and is closed and counted
//! (`mesh_proxy_connections_refused_total{reason="transport-header-required"}`,
//! Linkerd's `TransportHeaderRequired`).

pub mod header;
mod opaque;
mod target;

use crate::ctx::Direction;
use crate::detect::{self, Protocol as Detected, Rewind};
use crate::http_util::{Body, api_request, is_grpc, local};
use crate::metrics::{Labels, LastRequest, meta_label};
use crate::outbound::Outbound;
use crate::outbound::http::{Target, handle as forward};
use crate::state::current;
use crate::{Ctx, inbound, listen};
use http::header::{FORWARDED, HOST};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use mesh_proxy_api::{Client, HttpVerdict, PortPolicy, TcpVerdict, decide_http, decide_tcp};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

pub use target::{forwarded_by, local_service};

/// What every gateway connection shares.
struct Gateway {
    ctx: Arc<Ctx>,
    outbound: Arc<Outbound>,
    /// This cluster's name: the suffix mirrors of its Services carry.
    cluster: String,
    /// The port whose policy applies (LISTEN's).
    port: u16,
    /// The identity's server config and ours made from it (the transport
    /// header's ALPN first), remade when the identity's changes.
    tls: std::sync::Mutex<Option<(Arc<rustls::ServerConfig>, Arc<rustls::ServerConfig>)>>,
}

impl Gateway {
    /// The workload identity's TLS server config, offering the transport
    /// header's ALPN before `h2` and `http/1.1`: only clients that offer it
    /// (opaque connections) get it, HTTP clients still get `h2` or `http/1.1`.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let base = self.ctx.identity.server_config();
        let mut cached = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((b, ours)) = cached.as_ref()
            && Arc::ptr_eq(b, &base)
        {
            return ours.clone();
        }
        let mut config = (*base).clone();
        config.alpn_protocols.insert(0, header::ALPN.to_vec());
        let ours = Arc::new(config);
        *cached = Some((base, ours.clone()));
        ours
    }
}

/// One accepted, identified peer.
struct Peer {
    client: Client,
    identity: String,
    addr: SocketAddr,
}

/// Serves `--gateway` until shutdown; without it, waits for shutdown.
pub async fn serve(ctx: Arc<Ctx>) -> io::Result<()> {
    let Some(addr) = ctx.settings.gateway else {
        ctx.shutdown.cancelled().await;
        return Ok(());
    };
    let cluster = ctx.settings.gateway_cluster.clone().unwrap_or_default();
    let listener = listen::bind(addr, "gateway").await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, %cluster, "gateway listening");
    let outbound = Outbound::from_ctx(&ctx);
    let gw = Arc::new(Gateway { ctx: ctx.clone(), outbound, cluster, port: local.port(), tls: Default::default() });
    listen::accept_until_shutdown(&ctx, &listener, Direction::Inbound, |stream, peer, permit| {
        ctx.tasks.spawn(connection(gw.clone(), stream, peer, permit));
    })
    .await
}

async fn connection(gw: Arc<Gateway>, stream: TcpStream, peer: SocketAddr, _permit: OwnedSemaphorePermit) {
    let ctx = &gw.ctx;
    let _open = ctx.metrics.connection_open("inbound");
    if !inbound::starts_tls(&stream, ctx.settings.detect_timeout).await {
        ctx.metrics.connection_refused("inbound", "no-identity");
        return;
    }
    // Boxed, each way of serving apart: see `inbound::connection`.
    let Some(mut tls) = Box::pin(inbound::accept_tls_with(ctx, stream, peer, gw.server_config())).await else {
        return;
    };
    let Some(identity) = mesh_common::identity::peer_identity(tls.get_ref().1) else {
        tracing::debug!(%peer, "gateway: a client without an identity; closing");
        ctx.metrics.connection_refused("inbound", "no-identity");
        return;
    };
    let client = Client::identified(peer.ip(), identity.clone());
    let peer = Peer { client, identity, addr: peer };
    if tls.get_ref().1.alpn_protocol() == Some(header::ALPN) {
        return Box::pin(opaque::serve(&gw, tls, peer)).await;
    }
    match detect::detect(&mut tls, ctx.settings.detect_timeout).await {
        Ok((Detected::Http, read)) => {
            let peer = Arc::new(peer);
            let io = Rewind::new(read, tls);
            // The outbound side's metrics of this connection's last request,
            // reused while its requests go to the same Service alike.
            let last = Arc::new(LastRequest::default());
            let service = {
                let gw = gw.clone();
                hyper::service::service_fn(move |req| handle(gw.clone(), peer.clone(), last.clone(), req))
            };
            let limits = mesh_common::http_server::ConnLimits::headers(ctx.settings.max_header_bytes);
            Box::pin(mesh_common::http_server::serve_connection(io, service, limits, &ctx.shutdown)).await;
        }
        Ok((Detected::Tcp, _)) => {
            tracing::debug!(peer = %peer.addr, "gateway: neither HTTP nor a transport header; closing");
            ctx.metrics.connection_refused("inbound", "transport-header-required");
        }
        Err(e) => tracing::debug!(peer = %peer.addr, "gateway: detection failed: {e}"),
    }
}

async fn handle(
    gw: Arc<Gateway>,
    peer: Arc<Peer>,
    last: Arc<LastRequest>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let grpc = is_grpc(&req);
    let (answer, mut labels) = authorize(&gw, &peer, &req, grpc);
    labels.direction = "inbound";
    let rsp = match answer {
        Some(rsp) => rsp,
        None => match to_local_service(&gw, &peer, req) {
            Ok((key, req)) => {
                tracing::debug!(client = %peer.identity, service = ?key, "gateway forwards");
                forward(gw.outbound.clone(), Target::Fixed(key), peer.addr, last, req).await?
            }
            Err(rsp) => *rsp,
        },
    };
    labels.status = rsp.status().as_u16().to_string();
    gw.ctx.metrics.request(&labels, start.elapsed());
    Ok(rsp)
}

/// The gateway's own inbound policy for its port, then the loop checks:
/// `Some` answer when the request stops here.
fn authorize(gw: &Gateway, peer: &Peer, req: &Request<Incoming>, grpc: bool) -> (Option<Response<Body>>, Labels) {
    let mut labels = Labels { verdict: "error", ..Labels::default() };
    let Some(loaded) = current(&gw.ctx.config) else {
        return (
            Some(local(StatusCode::SERVICE_UNAVAILABLE, grpc, Some("gateway has no verified config yet"))),
            labels,
        );
    };
    let PortPolicy::Server(server) = loaded.config.inbound.lookup(gw.port) else {
        let why = "the gateway's port is skipped by its policy";
        return (Some(local(StatusCode::FORBIDDEN, grpc, Some(why))), labels);
    };
    labels.target = meta_label(&server.meta);
    let denied = |labels: &mut Labels, status: StatusCode, why: &str| {
        labels.verdict = if status == StatusCode::NOT_FOUND { "no-route" } else { "deny" };
        Some(local(status, grpc, Some(why)))
    };
    if !server.protocol.is_http() {
        match decide_tcp(server, &peer.client) {
            TcpVerdict::Allowed { authz } => labels.authz = meta_label(&authz.authorization.meta),
            TcpVerdict::Closed => {
                let answer = denied(&mut labels, StatusCode::FORBIDDEN, "unauthorized connection");
                return (answer, labels);
            }
        }
    } else {
        match decide_http(server, &peer.client, &api_request(req)) {
            HttpVerdict::NoRoute => {
                let answer = denied(&mut labels, StatusCode::NOT_FOUND, "no route found for request");
                return (answer, labels);
            }
            HttpVerdict::Unauthorized { .. } => {
                let answer = denied(&mut labels, StatusCode::FORBIDDEN, "unauthorized request on route");
                return (answer, labels);
            }
            HttpVerdict::Allowed { authz, .. } => labels.authz = meta_label(&authz.authorization.meta),
        }
    }
    labels.verdict = "allow";
    let own = gw.ctx.identity.name();
    let looped =
        peer.identity == own || req.headers().get_all(FORWARDED).iter().any(|v| forwarded_by(v) == Some(own.as_str()));
    if looped {
        labels.verdict = "error";
        let why = "gateway loop: the request already passed this gateway";
        return (Some(local(StatusCode::LOOP_DETECTED, grpc, Some(why))), labels);
    }
    (None, labels)
}

/// The request as the gateway sends it on: to the local Service the
/// mirror's name stands for, with `forwarded` and the Service's name.
fn to_local_service(
    gw: &Gateway,
    peer: &Peer,
    mut req: Request<Incoming>,
) -> Result<(crate::discovery::ServiceKey, Request<Incoming>), crate::http_util::Answer> {
    let grpc = is_grpc(&req);
    let authority = crate::outbound::http::authority_of(req.uri(), req.headers()).unwrap_or_default();
    let domain = &gw.ctx.settings.cluster_domain;
    let (key, host) = local_service(&authority, &gw.cluster, domain)
        .map_err(|why| Box::new(local(StatusCode::NOT_FOUND, grpc, Some(&why))))?;
    let own = gw.ctx.identity.name();
    let fwd = format!("by={own};for={};host={host};proto=https", peer.identity);
    let bad = |_| Box::new(local(StatusCode::BAD_REQUEST, grpc, Some("cannot name the Service in the request")));
    req.headers_mut().append(FORWARDED, HeaderValue::from_str(&fwd).map_err(bad)?);
    if matches!(req.version(), Version::HTTP_11 | Version::HTTP_10) {
        req.headers_mut().insert(HOST, HeaderValue::from_str(&host).map_err(bad)?);
    }
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder().scheme("http").authority(host.as_str()).path_and_query(pq).build();
    *req.uri_mut() = uri.map_err(|_| Box::new(local(StatusCode::BAD_REQUEST, grpc, Some("bad request target"))))?;
    Ok((key, req))
}
