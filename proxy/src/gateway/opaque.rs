//! Opaque connections through the gateway (Linkerd's `gateway/src/opaq.rs`):
//! the transport header names the mirror, the gateway's own policy for its
//! port authorizes the connection as TCP, and the stream goes on to the
//! local Service through the outbound side with the gateway's identity.

use super::header;
use super::{Gateway, Peer, local_service};
use crate::metrics::Labels;
use crate::net::ReadAhead;
use crate::state::current;
use mesh_proxy_api::PortPolicy;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Serves one connection that negotiated the transport header.
pub(super) async fn serve(gw: &Gateway, mut tls: TlsStream<ReadAhead<TcpStream>>, peer: Peer) {
    let ctx = &gw.ctx;
    let (authority, rest) = match header::read(&mut tls, ctx.settings.detect_timeout).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(peer = %peer.addr, "gateway: {e}; closing");
            ctx.metrics.connection_refused("inbound", "transport-header-invalid");
            return;
        }
    };
    let (allowed, labels) = authorize(gw, &peer);
    ctx.metrics.connection(&labels);
    if !allowed {
        tracing::info!(peer = %peer.addr, client = %peer.identity, %authority, "gateway: unauthorized connection; closing");
        return;
    }
    // Linkerd's `GatewayDomainInvalid`: a name that is no mirror of this
    // cluster's Services is not forwarded (here, closed: no HTTP to answer in).
    let key = match local_service(&authority, &gw.cluster, &ctx.settings.cluster_domain) {
        Ok((key, _)) => key,
        Err(why) => {
            tracing::info!(peer = %peer.addr, "gateway: {why}; closing");
            return;
        }
    };
    tracing::debug!(client = %peer.identity, service = ?key, "gateway forwards a connection");
    let forward = crate::outbound::tcp::route(&gw.outbound, &key, tls, rest, None);
    tokio::pin!(forward);
    let mut config = ctx.config.clone();
    loop {
        tokio::select! {
            () = &mut forward => return,
            changed = config.changed() => {
                if changed.is_err() || !authorize(gw, &peer).0 {
                    tracing::info!(peer = %peer.addr, "gateway: authorization revoked by a new config; closing");
                    return;
                }
            }
        }
    }
}

/// The gateway's own policy for its port, for a connection: the Server's
/// authorizations (`decide_tcp`), whatever its protocol.
fn authorize(gw: &Gateway, peer: &Peer) -> (bool, Labels) {
    let mut labels = Labels { direction: "inbound", verdict: "deny", ..Labels::default() };
    let Some(loaded) = current(&gw.ctx.config) else {
        labels.verdict = "error";
        return (false, labels);
    };
    let PortPolicy::Server(server) = loaded.config.inbound.lookup(gw.port) else {
        return (false, labels);
    };
    let allowed = crate::inbound::tcp::decide_server_tcp(server, &peer.client, &mut labels);
    (allowed, labels)
}
