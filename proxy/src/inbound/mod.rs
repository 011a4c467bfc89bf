//! Inbound: accepts connections for the workload, identifies the client
//! (mesh TLS or plaintext), picks the protocol the port's policy names,
//! authorizes with `mesh-proxy-api`, and forwards what is allowed to the app.
//!
//! Explicit mode listens on `LISTEN` and serves LISTEN's port's policy;
//! transparent mode serves connections iptables redirected, using their
//! original destination port.

mod http;
mod ratelimit;
pub(crate) mod tcp;

use crate::ctx::Direction;
use crate::detect::{self, Protocol as Detected, Rewind};
use crate::net::ReadAhead;
use crate::state::current;
use crate::{Ctx, listen, net};
use mesh_proxy_api::config::Protocol;
use mesh_proxy_api::{Client, PortPolicy};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::server::TlsStream;

/// What the proxy knows about one accepted connection.
#[derive(Clone, Debug)]
pub struct Conn {
    pub client: Client,
    pub peer: SocketAddr,
    /// The port whose policy applies.
    pub port: u16,
    /// Where allowed traffic goes.
    pub app: SocketAddr,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Explicit { app: SocketAddr },
    Transparent,
}

/// Runs until `ctx.shutdown` is cancelled; returns early only on error.
pub async fn serve(ctx: Arc<Ctx>) -> io::Result<()> {
    let mut loops = tokio::task::JoinSet::new();
    let app = http::AppClients::new(ctx.settings.max_header_bytes);
    for (listen, app_addr) in &ctx.settings.inbound {
        let listener = listen::bind(*listen, "inbound").await?;
        loops.spawn(accept_loop(ctx.clone(), app.clone(), listener, Mode::Explicit { app: *app_addr }));
    }
    if let Some(listen) = ctx.settings.inbound_transparent {
        let listener = listen::bind(listen, "inbound").await?;
        loops.spawn(accept_loop(ctx.clone(), app.clone(), listener, Mode::Transparent));
    }
    while let Some(r) = loops.join_next().await {
        r.map_err(io::Error::other)??;
    }
    ctx.shutdown.cancelled().await;
    Ok(())
}

async fn accept_loop(ctx: Arc<Ctx>, app: http::AppClients, listener: TcpListener, mode: Mode) -> io::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!(%local, ?mode, "inbound listening");
    listen::accept_until_shutdown(&ctx.clone(), &listener, Direction::Inbound, |stream, peer, permit| {
        let Some((port, app_addr)) = target(&ctx, &stream, local, mode) else { return };
        let conn = Conn { client: Client::plaintext(peer.ip()), peer, port, app: app_addr };
        ctx.tasks.spawn(connection(ctx.clone(), app.clone(), stream, conn, permit));
    })
    .await
}

/// The policy port and app address of a connection.
fn target(ctx: &Ctx, stream: &TcpStream, local: SocketAddr, mode: Mode) -> Option<(u16, SocketAddr)> {
    match mode {
        Mode::Explicit { app } => Some((local.port(), app)),
        Mode::Transparent => match net::original_dst(stream) {
            // Sent to the listener itself, not redirected: nothing to forward to.
            Ok(orig) if orig == local => None,
            Ok(orig) => Some((orig.port(), SocketAddr::new(ctx.settings.app_host, orig.port()))),
            Err(e) => {
                tracing::warn!("no original destination on a transparent connection: {e}");
                None
            }
        },
    }
}

/// Every connection's task holds this future for as long as the
/// connection lives. Each way of serving it (passed through, TLS or not,
/// HTTP or TCP) is a future of its own size, and an `async fn` that awaits
/// them inline is as large as the largest of them together with the values
/// moved between them: 13.3 KB. Boxed, each is allocated only when it
/// runs, and this future is 1.7 KB: 3 MB less at 256 connections
/// (proxy/README.md, "Peak RSS").
async fn connection(
    ctx: Arc<Ctx>,
    app: http::AppClients,
    stream: TcpStream,
    mut conn: Conn,
    _permit: OwnedSemaphorePermit,
) {
    let _open = ctx.metrics.connection_open("inbound");
    let Some(loaded) = current(&ctx.config) else {
        // Never let traffic through unchecked: without a verified config
        // there is no policy to enforce.
        tracing::debug!(peer = %conn.peer, "no verified config yet; closing");
        return;
    };
    let inbound = &loaded.config.inbound;
    let protocol = match inbound.lookup(conn.port) {
        PortPolicy::Skipped => return Box::pin(tcp::passthrough(stream, conn.app)).await,
        _ if inbound.skips_source(conn.peer.ip()) => return Box::pin(tcp::passthrough(stream, conn.app)).await,
        PortPolicy::Server(s) => s.protocol.clone(),
    };
    drop(loaded);
    if protocol != Protocol::Tls && starts_tls(&stream, ctx.settings.detect_timeout).await {
        let Some(tls) = Box::pin(accept_tls(&ctx, stream, conn.peer)).await else { return };
        conn.client = match mesh_common::identity::peer_identity(tls.get_ref().1) {
            Some(id) => Client::identified(conn.peer.ip(), id),
            None => Client::unidentified(conn.peer.ip()),
        };
        Box::pin(dispatch(ctx, app, tls, conn, protocol)).await
    } else {
        Box::pin(dispatch(ctx, app, stream, conn, protocol)).await
    }
}

/// The mesh TLS handshake, within `--tls-handshake-timeout`: a peer that
/// starts one and stalls would otherwise hold its connection slot forever.
/// Failures and timeouts are counted as refused connections.
pub(crate) async fn accept_tls(
    ctx: &Ctx,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<ReadAhead<TcpStream>>> {
    accept_tls_with(ctx, stream, peer, ctx.identity.server_config()).await
}

/// [`accept_tls`] with another server config (the gateway's offers one more ALPN id).
pub(crate) async fn accept_tls_with(
    ctx: &Ctx,
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> Option<TlsStream<ReadAhead<TcpStream>>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = ReadAhead::new(stream);
    match tokio::time::timeout(ctx.settings.tls_handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            ctx.metrics.connection_refused("inbound", "tls-handshake-failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, timeout = ?ctx.settings.tls_handshake_timeout, "TLS handshake timed out");
            ctx.metrics.connection_refused("inbound", "tls-handshake-timeout");
            None
        }
    }
}

/// Peeks at the first byte without consuming it. A client that says
/// nothing in time is not a peer proxy (they open with TLS at once).
pub(crate) async fn starts_tls(stream: &TcpStream, timeout: Duration) -> bool {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(timeout, stream.peek(&mut first)).await;
    // 0x16: a TLS handshake record.
    matches!(peeked, Ok(Ok(1)) if first[0] == 0x16)
}

async fn dispatch<S>(ctx: Arc<Ctx>, app: http::AppClients, mut io: S, conn: Conn, protocol: Protocol)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match protocol {
        Protocol::Opaque | Protocol::Tls => Box::pin(tcp::serve(ctx, io, conn)).await,
        Protocol::Http1 | Protocol::Http2 | Protocol::Grpc => Box::pin(http::serve(ctx, app, io, conn)).await,
        Protocol::Detect { timeout_ms } => match detect::detect(&mut io, Duration::from_millis(timeout_ms)).await {
            Ok((Detected::Http, read)) => Box::pin(http::serve(ctx, app, Rewind::new(read, io), conn)).await,
            Ok((Detected::Tcp, read)) => Box::pin(tcp::serve(ctx, Rewind::new(read, io), conn)).await,
            Err(e) => tracing::debug!(peer = %conn.peer, "detection failed: {e}"),
        },
    }
}
