//! Opaque TCP to a Service port: one endpoint per connection, picked by
//! the balancer (pending connections count as load), mTLS as for HTTP,
//! with the transport header when the endpoint is a gateway.

use super::accrual::AccrualPolicy;
use super::{Outbound, target};
use crate::discovery::ServiceKey;
use crate::metrics::Labels;
use bytes::Bytes;
use mesh_proxy_api::outbound::{BackendTarget, ConnectionRoute, route_connection};
use mesh_proxy_api::pick_backend;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

fn labels(target: String, verdict: &'static str) -> Labels {
    Labels { direction: "outbound", target, verdict, ..Labels::default() }
}

fn accrual(ob: &Outbound, key: &ServiceKey) -> Option<AccrualPolicy> {
    let loaded = crate::state::current(&ob.config)?;
    let svc = loaded.config.outbound.service(&key.namespace, &key.name)?;
    svc.failure_accrual.as_ref().filter(|_| svc.profile.is_none()).map(AccrualPolicy::from_config)
}

/// Forwards `client` (whose first bytes, already read, are `prefix`) to an
/// endpoint of `key` until either side closes.
pub async fn forward<C>(ob: &Outbound, key: &ServiceKey, mut client: C, prefix: Bytes)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let label = target::label(key);
    let Some(metric) = crate::state::current(&ob.config).map(|c| target::metric_label(&c.config.outbound, key)) else {
        tracing::debug!(target = %label, "no verified config yet; closing");
        ob.metrics.connection(&labels(crate::metrics::UNLISTED.into(), "error"));
        return;
    };
    let policy = accrual(ob, key);
    let balancer = ob.balancer(key);
    balancer.ready(super::forward::DISCOVERY_WAIT).await;
    let picked = match balancer.pick() {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(target = %label, error = %e, "outbound TCP refused");
            ob.metrics.connection(&labels(metric, "error"));
            return;
        }
    };
    // The Service's own name: a gateway behind this endpoint reads it from
    // the transport header (`crate::gateway::header`); other peers never see it.
    let authority =
        format!("{}.{}.svc.{}:{}", key.name, key.namespace, ob.cluster_domain.trim_end_matches('.'), key.port);
    let mut upstream = match ob.dialer.connect_opaque(&picked.ep.endpoint, &authority).await {
        Ok(c) => c,
        Err(e) => {
            picked.observe(false, policy.as_ref());
            tracing::info!(target = %label, endpoint = %picked.ep.endpoint.addr, error = %e, "outbound TCP connect failed");
            ob.metrics.connection(&labels(metric, "error"));
            return;
        }
    };
    picked.observe(true, policy.as_ref());
    ob.metrics.connection(&labels(metric, "allow"));
    if let Err(e) = copy(&mut client, &mut upstream, &prefix).await {
        tracing::debug!(endpoint = %picked.ep.endpoint.addr, error = %e, "outbound TCP ended");
    }
}

/// How a connection to a Service port is routed: by the port's TLSRoutes
/// (after reading the ClientHello's SNI), its TCPRoute, or neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    Tls,
    Tcp,
    None,
}

/// The connection routing the current config gives `key`'s port. Without
/// an SNI, `route_connection` closes a TLSRoute port's connection and routes
/// a TCPRoute port's, which tells the two apart.
pub fn routing(ob: &Outbound, key: &ServiceKey) -> Routing {
    let Some(loaded) = crate::state::current(&ob.config) else { return Routing::None };
    let Some(svc) = loaded.config.outbound.service(&key.namespace, &key.name) else { return Routing::None };
    match route_connection(svc, key.port, None) {
        Some(ConnectionRoute::NoRoute) => Routing::Tls,
        Some(ConnectionRoute::Route { .. }) => Routing::Tcp,
        _ => Routing::None,
    }
}

/// Routes a connection to `key` by the port's TCPRoute or TLSRoutes
/// (`sni`: the ClientHello's, read into `prefix`), to one backend picked by
/// weight; closes it when no route matches or the backend is invalid.
/// Without such routes it goes to `key` itself.
pub async fn route<C>(ob: &Outbound, key: &ServiceKey, client: C, prefix: Bytes, sni: Option<&str>)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let label = target::label(key);
    let picked = {
        let Some(loaded) = crate::state::current(&ob.config) else {
            return forward(ob, key, client, prefix).await;
        };
        let Some(svc) = loaded.config.outbound.service(&key.namespace, &key.name) else {
            return forward(ob, key, client, prefix).await;
        };
        match route_connection(svc, key.port, sni) {
            Some(ConnectionRoute::Route { route, backends, .. }) => {
                let backend = pick_backend(backends, fastrand::u64(..)).map(|b| b.target.clone());
                Ok((route.name.clone(), backend))
            }
            Some(ConnectionRoute::NoRoute) => Err("no TLSRoute matches the SNI"),
            _ => return forward(ob, key, client, prefix).await,
        }
    };
    let metric = || crate::state::current(&ob.config).map(|c| target::metric_label(&c.config.outbound, key));
    let refuse = |why: &str| {
        tracing::info!(target = %label, sni = sni.unwrap_or(""), why, "outbound connection closed");
        ob.metrics.connection(&labels(metric().unwrap_or_else(|| crate::metrics::UNLISTED.into()), "error"));
    };
    match picked {
        Err(why) => refuse(why),
        Ok((route, Some(BackendTarget::Service { namespace, name, port }))) => {
            tracing::debug!(target = %label, %route, backend = %format!("{namespace}/{name}:{port}"), "connection routed");
            forward(ob, &ServiceKey { namespace, name, port }, client, prefix).await;
        }
        Ok((_, Some(BackendTarget::Invalid { reason }))) => refuse(&reason),
        Ok((_, None)) => refuse("every backend has weight 0"),
    }
}

/// Transparent passthrough to a destination that is no known Service.
pub async fn passthrough<C>(ob: &Outbound, dst: SocketAddr, mut client: C, prefix: Bytes)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut upstream = match crate::net::connect_from(ob.dialer.source_for(dst), dst).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(%dst, error = %e, "passthrough connect failed");
            ob.metrics.connection(&labels(crate::metrics::PASSTHROUGH.into(), "error"));
            return;
        }
    };
    ob.metrics.connection(&labels(crate::metrics::PASSTHROUGH.into(), "allow"));
    if let Err(e) = copy(&mut client, &mut upstream, &prefix).await {
        tracing::debug!(%dst, error = %e, "passthrough ended");
    }
}

async fn copy<C, U>(client: &mut C, upstream: &mut U, prefix: &[u8]) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    upstream.write_all(prefix).await?;
    tokio::io::copy_bidirectional(client, upstream).await.map(|_| ())
}
