//! Keeps what each linked cluster says about its exported Services up to
//! date, and publishes the mirrored Services' endpoints in the hub.
//!
//! A remote runtime is asked as a proxy asks it: one long poll per
//! exported (or federated member) Service port (`GET /v1/endpoints/<ns>/<svc>/<port>?after=…`),
//! over mTLS with this runtime's own certificate, the remote's certificate
//! checked against `runtimeIdentity` and the shared trust anchors. A
//! failed poll keeps the last answer (Linkerd's mirrors stay while the
//! target's API is unreachable) and retries with capped backoff.

use super::{Links, Remote, RemoteEndpoints, mirrored};
use crate::files::FilePoll;
use crate::hub::EndpointsHub;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use mesh_common::identity::Identity;
use mesh_proxy_api::endpoints::{Endpoint, ServiceKey};
use rustls_pki_types::ServerName;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long the remote runtime may hold a long poll (its `wait`).
const WAIT_SECONDS: u64 = 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// An endpoints answer is small; this bounds what a broken remote can make us buffer.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// One links file's links, what their remotes said, and where the result goes.
pub(super) struct State {
    pub(super) links: Links,
    remotes: Mutex<Vec<Option<RemoteEndpoints>>>,
    hub: Arc<EndpointsHub>,
}

impl State {
    /// The state of `links`, keeping what `previous` heard from each
    /// remote source that is still there (the same cluster, the same
    /// source): a changed links file does not empty the mirrors it keeps
    /// until their remotes answer again.
    pub(super) fn new(links: Links, hub: Arc<EndpointsHub>, previous: Option<&State>) -> State {
        let old = previous.map(|p| (&p.links, p.remotes.lock().unwrap_or_else(|e| e.into_inner()).clone()));
        let remotes = links
            .links
            .iter()
            .map(|l| {
                let remote = l.remote.as_ref()?;
                let kept = old.as_ref().and_then(|(links, remotes)| {
                    let i = links
                        .links
                        .iter()
                        .position(|o| o.target_cluster == l.target_cluster && o.remote.as_ref() == Some(remote))?;
                    remotes.get(i).cloned().flatten()
                });
                Some(kept.unwrap_or_default())
            })
            .collect();
        State { links, remotes: Mutex::new(remotes), hub }
    }

    /// Applies `change` to link `i`'s remote endpoints and publishes every
    /// mirror again.
    fn update(&self, i: usize, change: impl FnOnce(&mut RemoteEndpoints)) {
        let mut remotes = self.remotes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Some(r)) = remotes.get_mut(i) {
            change(r);
        }
        self.publish_locked(&remotes);
    }

    /// Publishes every mirror from what is known now.
    pub(super) fn publish(&self) {
        self.publish_locked(&self.remotes.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn publish_locked(&self, remotes: &[Option<RemoteEndpoints>]) {
        let m = mirrored(&self.links, remotes);
        self.hub.replace_mirrored_cluster_ips(m.cluster_ips);
        self.hub.replace_mirrored(m.endpoints, m.local_members);
    }
}

/// Starts one poller per remote source of `state`'s links into `pollers`,
/// each running until `stop`.
pub(super) fn start(
    state: &Arc<State>,
    identity: &Arc<Identity>,
    poll: Duration,
    stop: &CancellationToken,
    pollers: &mut JoinSet<()>,
) {
    for (i, link) in state.links.links.iter().enumerate() {
        match &link.remote {
            None => {}
            Some(Remote::EndpointsFile(path)) => {
                pollers.spawn(poll_file(state.clone(), i, FilePoll::new(path.clone()), poll, stop.clone()));
            }
            Some(Remote::Runtime { url, identity: name }) => {
                let client = match RemoteClient::new(url, name, identity.clone()) {
                    Ok(c) => Arc::new(c),
                    Err(e) => {
                        tracing::error!(link = %link.target_cluster, "{e}");
                        continue;
                    }
                };
                for key in state.links.remote_keys(i) {
                    pollers.spawn(poll_port(state.clone(), i, client.clone(), key, stop.clone()));
                }
            }
        }
    }
}

/// Re-reads a remote endpoints file; the last good content stays on error.
async fn poll_file(state: Arc<State>, i: usize, mut file: FilePoll, every: Duration, shutdown: CancellationToken) {
    loop {
        if let Some(bytes) = file.changed().await {
            match mesh_proxy_api::endpoints::parse(&bytes) {
                Ok(snap) => state.update(i, |r| *r = snap.endpoints),
                Err(e) => {
                    tracing::warn!(path = %file.path().display(), "invalid; keeping the last good endpoints: {e}")
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[derive(Deserialize)]
struct EndpointsDoc {
    version: String,
    endpoints: Vec<EndpointDoc>,
}

#[derive(Deserialize)]
struct EndpointDoc {
    addr: SocketAddr,
    #[serde(default)]
    identity: Option<String>,
}

/// Long polls one remote Service port until shutdown.
async fn poll_port(state: Arc<State>, i: usize, client: Arc<RemoteClient>, key: ServiceKey, stop: CancellationToken) {
    let base = format!("/v1/endpoints/{}/{}/{}?wait={WAIT_SECONDS}", key.namespace, key.name, key.port);
    let mut version: Option<String> = None;
    let mut retry = RETRY_MIN;
    let mut failing: Option<String> = None;
    loop {
        let path = match &version {
            Some(v) => format!("{base}&after={v}"),
            None => base.clone(),
        };
        let reply = tokio::select! {
            () = stop.cancelled() => return,
            r = client.get(&path) => r,
        };
        match reply.and_then(|(status, body)| answer(status, &body)) {
            Ok(update) => {
                retry = RETRY_MIN;
                if failing.take().is_some() {
                    tracing::info!(service = ?key, remote = %client.url, "remote endpoints reachable again");
                }
                if let Some((v, eps)) = update {
                    version = Some(v);
                    state.update(i, |r| {
                        r.insert(key.clone(), Arc::new(eps));
                    });
                }
            }
            Err(e) => {
                if failing.as_ref() != Some(&e) {
                    tracing::warn!(service = ?key, remote = %client.url, "remote endpoints poll failed; keeping the last answer: {e}");
                    failing = Some(e);
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// 200: the new version and endpoints; 304: nothing new.
fn answer(status: StatusCode, body: &[u8]) -> Result<Option<(String, Vec<Endpoint>)>, String> {
    match status {
        StatusCode::OK => {
            let doc: EndpointsDoc = serde_json::from_slice(body).map_err(|e| format!("bad endpoints document: {e}"))?;
            let eps = doc.endpoints.into_iter().map(|e| Endpoint { addr: e.addr, identity: e.identity }).collect();
            Ok(Some((doc.version, eps)))
        }
        StatusCode::NOT_MODIFIED => Ok(None),
        other => Err(format!("answered {other}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]))),
    }
}

/// `https://host:port` with no path: the remote runtime's API.
pub fn check_url(url: &str) -> Result<(String, u16), String> {
    let uri: Uri = url.parse().map_err(|e| format!("runtime `{url}`: {e}"))?;
    let authority = uri.authority().filter(|_| uri.scheme_str() == Some("https"));
    let Some(authority) = authority.filter(|_| matches!(uri.path(), "" | "/") && uri.query().is_none()) else {
        return Err(format!("runtime `{url}`: expected https://host:port"));
    };
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
    Ok((host, authority.port_u16().unwrap_or(443)))
}

/// One HTTP/1.1 exchange per connection: a handful of long polls per
/// link do not need a pool.
struct RemoteClient {
    url: String,
    addr: (String, u16),
    /// `host:port` as the URL writes it, for the `Host` header.
    authority: String,
    server_name: ServerName<'static>,
    identity: Arc<Identity>,
}

impl RemoteClient {
    fn new(url: &str, server_name: &str, identity: Arc<Identity>) -> Result<RemoteClient, String> {
        let addr = check_url(url)?;
        let authority = url.parse::<Uri>().ok().and_then(|u| u.authority().map(|a| a.to_string())).unwrap_or_default();
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| format!("runtimeIdentity `{server_name}`: {e}"))?;
        Ok(RemoteClient { url: url.trim_end_matches('/').to_string(), addr, authority, server_name, identity })
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), String> {
        let deadline = Duration::from_secs(WAIT_SECONDS + 10);
        match tokio::time::timeout(deadline, self.exchange(path)).await {
            Ok(r) => r.map_err(|e| format!("GET {}{path}: {e}", self.url)),
            Err(_) => Err(format!("GET {}{path}: no answer within {deadline:?}", self.url)),
        }
    }

    async fn exchange(&self, path: &str) -> Result<(StatusCode, Bytes), String> {
        let (host, port) = (&self.addr.0, self.addr.1);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        // Our certificate proves who asks; HTTP/1.1 only, since this
        // client speaks nothing else.
        let mut config = (*self.identity.client_config()).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(self.server_name.clone(), tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::get(path)
            .header(http::header::HOST, self.authority.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|e| e.to_string())?;
        Ok((status, body.to_bytes()))
    }
}
