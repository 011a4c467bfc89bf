//! Opaque TCP to a Service port: one endpoint per connection, picked by
//! the balancer (pending connections count as load), mTLS as for HTTP.

use super::accrual::AccrualPolicy;
use super::{Outbound, target};
use crate::discovery::ServiceKey;
use crate::metrics::Labels;
use bytes::Bytes;
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
    let mut upstream = match ob.dialer.connect(&picked.ep.endpoint).await {
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

/// Transparent passthrough to a destination that is no known Service.
pub async fn passthrough<C>(ob: &Outbound, dst: SocketAddr, mut client: C, prefix: Bytes)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut upstream = match crate::net::connect_from(ob.dialer.pod_ip, dst).await {
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
