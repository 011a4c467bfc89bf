//! What every listener does: bind with an error that names it, then accept
//! until shutdown, each connection holding one of `--max-connections`.

use crate::Ctx;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

pub async fn bind(addr: SocketAddr, role: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| io::Error::new(e.kind(), format!("{role} listener {addr}: {e}")))
}

/// Hands each accepted connection (Nagle off) to `on_conn` until
/// `ctx.shutdown`. At the connection limit it stops accepting, so the
/// kernel's backlog holds new clients instead of the proxy's memory.
pub async fn accept_until_shutdown<F>(ctx: &Ctx, listener: &TcpListener, mut on_conn: F) -> io::Result<()>
where
    F: FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
{
    let local = listener.local_addr()?;
    loop {
        let permit = tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            p = ctx.connections.clone().acquire_owned() => p.map_err(io::Error::other)?,
        };
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
        let _ = stream.set_nodelay(true);
        on_conn(stream, peer, permit);
    }
}
