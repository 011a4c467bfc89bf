//! Connections handled as TCP: opaque and TLS servers, and non-HTTP
//! traffic on detect servers. Authorized once per connection against the
//! server-level authorizations, and closed if a new config revokes them.

use super::Conn;
use crate::Ctx;
use crate::metrics::{Labels, meta_label};
use crate::state::current;
use mesh_proxy_api::{Client, InboundServer, PortPolicy, TcpVerdict, decide_tcp};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, copy_bidirectional};
use tokio::net::TcpStream;

pub async fn serve<S>(ctx: Arc<Ctx>, mut io: S, conn: Conn)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (allowed, labels) = authorize(&ctx, &conn);
    ctx.metrics.connection(&labels);
    if !allowed {
        // The handshake is done; closing now is how Linkerd refuses.
        tracing::info!(peer = %conn.peer, port = conn.port, target = %labels.target, "unauthorized connection; closing");
        return;
    }
    let mut app = match crate::net::connect_from(None, conn.app).await {
        Ok(app) => app,
        Err(e) => return tracing::warn!(app = %conn.app, "cannot reach the app: {e}"),
    };
    let mut config = ctx.config.clone();
    let copy = copy_bidirectional(&mut io, &mut app);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            r = &mut copy => {
                if let Err(e) = r {
                    tracing::debug!(peer = %conn.peer, "connection ended: {e}");
                }
                return;
            }
            changed = config.changed() => {
                if changed.is_err() || !authorize(&ctx, &conn).0 {
                    tracing::info!(peer = %conn.peer, port = conn.port, "authorization revoked by a new config; closing");
                    return;
                }
            }
        }
    }
}

fn authorize(ctx: &Ctx, conn: &Conn) -> (bool, Labels) {
    let mut labels = Labels { direction: "inbound", verdict: "deny", ..Labels::default() };
    let Some(loaded) = current(&ctx.config) else { return (false, labels) };
    let PortPolicy::Server(server) = loaded.config.inbound.lookup(conn.port) else {
        labels.verdict = "allow";
        return (true, labels);
    };
    let allowed = decide_server_tcp(server, &conn.client, &mut labels);
    (allowed, labels)
}

/// A connection's verdict on a Server (`decide_tcp`: its authorizations,
/// not its routes), with the Server and the authorization that admits it
/// written into `labels`: the inbound port and the gateway's port decide alike.
pub(crate) fn decide_server_tcp(server: &InboundServer, client: &Client, labels: &mut Labels) -> bool {
    labels.target = meta_label(&server.meta);
    match decide_tcp(server, client) {
        TcpVerdict::Allowed { authz } => {
            labels.authz = meta_label(&authz.authorization.meta);
            labels.verdict = "allow";
            true
        }
        TcpVerdict::Closed => false,
    }
}

/// Traffic that bypasses the proxy on a cluster (skipped ports and source
/// subnets): bytes go to the app untouched, TLS included.
pub async fn passthrough(mut stream: TcpStream, app: std::net::SocketAddr) {
    match crate::net::connect_from(None, app).await {
        Ok(mut upstream) => {
            let _ = copy_bidirectional(&mut stream, &mut upstream).await;
        }
        Err(e) => tracing::warn!(%app, "cannot reach the app: {e}"),
    }
}
