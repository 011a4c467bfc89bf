//! The outbound listeners and their accept loops: one connection permit
//! each, connection tasks in `ctx.tasks`, graceful HTTP shutdown on drain.

use super::detect::{self, Protocol, Rewind};
use super::http::{Target, handle};
use super::{Outbound, target, tcp};
use crate::Ctx;
use crate::discovery::ServiceKey;
use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use mesh_proxy_api::outbound::OutboundProtocol;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

#[derive(Clone, Debug)]
enum Mode {
    Http,
    Tcp(ServiceKey),
    Transparent,
}

/// Binds every configured outbound listener (a bind failure is returned at
/// once) and serves until `ctx.shutdown`; returns early only on error.
pub async fn serve(ctx: Arc<Ctx>) -> io::Result<()> {
    let ob = Outbound::from_ctx(&ctx);
    let mut listeners = Vec::new();
    if let Some(addr) = ctx.settings.outbound {
        listeners.push((bind(addr).await?, Mode::Http));
    }
    for (addr, svc) in &ctx.settings.outbound_tcp {
        let key = target::parse_service(svc, &ctx.settings.cluster_domain, 80)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("--outbound-tcp: {e}")))?;
        listeners.push((bind(*addr).await?, Mode::Tcp(key)));
    }
    if let Some(addr) = ctx.settings.outbound_transparent {
        listeners.push((bind(addr).await?, Mode::Transparent));
    }
    let mut loops = JoinSet::new();
    for (listener, mode) in listeners {
        loops.spawn(accept_loop(ctx.clone(), ob.clone(), listener, mode));
    }
    while let Some(r) = loops.join_next().await {
        r.map_err(io::Error::other)??;
    }
    ctx.shutdown.cancelled().await;
    Ok(())
}

async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| io::Error::new(e.kind(), format!("outbound listener {addr}: {e}")))
}

async fn accept_loop(ctx: Arc<Ctx>, ob: Arc<Outbound>, listener: TcpListener, mode: Mode) -> io::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, ?mode, "outbound listener ready");
    loop {
        let permit = tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            p = ctx.connections.clone().acquire_owned() => p.map_err(io::Error::other)?,
        };
        let stream = tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok((s, _peer)) => s,
                Err(e) => {
                    // Out of descriptors and the like: back off, keep listening.
                    tracing::warn!(addr = %local, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        ctx.tasks.spawn(connection(ctx.clone(), ob.clone(), mode.clone(), stream, local, permit));
    }
}

async fn connection(
    ctx: Arc<Ctx>,
    ob: Arc<Outbound>,
    mode: Mode,
    stream: TcpStream,
    local: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    match mode {
        Mode::Http => serve_http(&ctx, ob, Target::Authority, stream).await,
        Mode::Tcp(key) => tcp::forward(&ob, &key, stream, Bytes::new()).await,
        Mode::Transparent => transparent(&ctx, ob, stream, local).await,
    }
}

async fn transparent(ctx: &Ctx, ob: Arc<Outbound>, mut stream: TcpStream, local: SocketAddr) {
    let dst = match crate::net::original_dst(&stream) {
        Ok(d) => d,
        Err(e) => {
            tracing::info!(error = %e, "transparent connection without an original destination; closing");
            return;
        }
    };
    if dst == local {
        tracing::info!(%dst, "connection was not redirected (it targets this listener); closing");
        return;
    }
    let Some(key) = ob.discovery.service_at(dst) else {
        return tcp::passthrough(&ob, dst, stream, Bytes::new()).await;
    };
    match port_protocol(&ob, &key) {
        OutboundProtocol::Opaque => tcp::forward(&ob, &key, stream, Bytes::new()).await,
        OutboundProtocol::Http1 | OutboundProtocol::Http2 => serve_http(ctx, ob, Target::Fixed(key), stream).await,
        OutboundProtocol::Detect => match detect::detect(&mut stream, ob.detect_timeout).await {
            Ok((Protocol::Http, prefix)) => serve_http(ctx, ob, Target::Fixed(key), Rewind::new(prefix, stream)).await,
            Ok((Protocol::Tcp, prefix)) => tcp::forward(&ob, &key, stream, prefix).await,
            Err(e) => tracing::debug!(error = %e, "detection failed; closing"),
        },
    }
}

/// The protocol the config gives a Service port (default: by the opaque
/// port list); with no config yet, detection.
fn port_protocol(ob: &Outbound, key: &ServiceKey) -> OutboundProtocol {
    let Some(loaded) = crate::state::current(&ob.config) else { return OutboundProtocol::Detect };
    let outbound = &loaded.config.outbound;
    let listed = outbound.service(&key.namespace, &key.name).and_then(|s| s.ports.iter().find(|p| p.port == key.port));
    match listed {
        // An opaque port stays TCP even under a ServiceProfile: it carries no HTTP to route.
        Some(p) => p.protocol,
        None => outbound.default_protocol(key.port),
    }
}

/// Serves HTTP/1 and h2 on one connection until it closes; on shutdown,
/// finishes in-flight requests and closes.
async fn serve_http<I>(ctx: &Ctx, ob: Arc<Outbound>, target: Target, io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper refuses buffers under 8 KiB.
    builder.http1().timer(TokioTimer::new()).max_buf_size(ob.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(ob.max_header_bytes).unwrap_or(u32::MAX));
    let svc = service_fn(move |req| handle(ob.clone(), target.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = ctx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "outbound HTTP connection ended with an error");
    }
}
