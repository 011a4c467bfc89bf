//! What every listener does: bind with an error that names it, then accept
//! until shutdown, each connection holding one of its direction's slots
//! (`--max-inbound-connections`, `--max-outbound-connections`).

use crate::Ctx;
use crate::ctx::Direction;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

pub async fn bind(addr: SocketAddr, role: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| io::Error::new(e.kind(), format!("{role} listener {addr}: {e}")))
}

/// Hands each accepted connection (Nagle off) to `on_conn` until
/// `ctx.shutdown`. At `direction`'s connection limit a new connection is
/// closed at once and counted (`mesh_proxy_connections_refused_total`,
/// reason `limit`): its client learns at once instead of waiting in the
/// kernel's backlog behind connections that may never finish.
pub async fn accept_until_shutdown<F>(
    ctx: &Ctx,
    listener: &TcpListener,
    direction: Direction,
    mut on_conn: F,
) -> io::Result<()>
where
    F: FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
{
    let local = listener.local_addr()?;
    loop {
        let (stream, peer) = tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%local, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = ctx.slots(direction).clone().try_acquire_owned() else {
            tracing::debug!(%local, %peer, "connection limit reached; closing");
            ctx.metrics.connection_refused(direction.as_str(), "limit");
            continue;
        };
        let _ = stream.set_nodelay(true);
        on_conn(stream, peer, permit);
    }
}
