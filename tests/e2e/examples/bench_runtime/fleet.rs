//! Proxies played by mesh-proxy's own runtime config source: one long poll
//! per workload, each over its own mTLS connection with its own workload
//! certificate. Every config a proxy receives is reported with the time it
//! arrived.

use crate::source::{Env, RUNTIME_ID};
use mesh_common::identity::Identity;
use mesh_common::identity::pki::{Validity, write_identity_dir};
use mesh_proxy::source::ConfigSource;
use mesh_proxy::source::http::{PollTiming, RuntimeClient, RuntimeSource, TlsSource};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// (proxy index, digest of the config it now holds, when it arrived)
type Arrival = (usize, String, Instant);

pub struct Fleet {
    rx: mpsc::UnboundedReceiver<Arrival>,
    tasks: Vec<JoinHandle<()>>,
    held: Vec<Option<String>>,
}

/// Workload certificates for `identities`, as `mesh-proxy` would hold them.
pub fn identities(env: &Env, identities: &[String]) -> Result<Vec<Arc<Identity>>, String> {
    let base = env.tmp.path().join("ids");
    identities
        .iter()
        .map(|name| {
            let dir = base.join(name);
            let cert = env.pki.issue_name(name, Validity::valid_for(Duration::from_secs(4 * 3600)))?;
            write_identity_dir(&dir, &cert, env.pki.anchors_pem())?;
            Identity::load(&dir)
        })
        .collect()
}

impl Fleet {
    /// One long-polling proxy per (workload key, identity).
    pub fn start(api: SocketAddr, proxies: Vec<(String, Arc<Identity>)>) -> Result<Fleet, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let timing = PollTiming { not_found: Duration::from_millis(100), ..PollTiming::default() };
        let mut tasks = Vec::with_capacity(proxies.len());
        let n = proxies.len();
        for (i, (workload, id)) in proxies.into_iter().enumerate() {
            let tls: TlsSource = Arc::new(move || Ok(id.client_config()));
            let client = Arc::new(RuntimeClient::new(&format!("https://{api}"), RUNTIME_ID, tls)?);
            let mut source = RuntimeSource::new(client, workload, timing);
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    // Errors (runtime not up yet) are retried by the source itself.
                    let Ok(bytes) = source.next().await else { continue };
                    let at = Instant::now();
                    if let Some(d) = spec_digest(&bytes)
                        && tx.send((i, d, at)).is_err()
                    {
                        return;
                    }
                }
            }));
        }
        Ok(Fleet { rx, tasks, held: vec![None; n] })
    }

    /// Waits until proxy `i` holds `expected[i]` for every `i`; returns
    /// each proxy's arrival time relative to `since`.
    pub async fn wait_for(
        &mut self,
        expected: &[String],
        since: Instant,
        timeout: Duration,
    ) -> Result<Vec<Duration>, String> {
        let mut arrived: Vec<Option<Duration>> =
            self.held.iter().zip(expected).map(|(h, e)| (h.as_ref() == Some(e)).then_some(Duration::ZERO)).collect();
        let mut missing = arrived.iter().filter(|a| a.is_none()).count();
        let deadline = tokio::time::Instant::from_std(since + timeout);
        while missing > 0 {
            let (i, digest, at) = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(a)) => a,
                Ok(None) => return Err("every proxy task ended".into()),
                Err(_) => return Err(format!("{missing} of {} proxies still without the new config", expected.len())),
            };
            if digest == expected[i] && arrived[i].is_none() {
                arrived[i] = Some(at.saturating_duration_since(since));
                missing -= 1;
            }
            self.held[i] = Some(digest);
        }
        Ok(arrived.into_iter().flatten().collect())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The proxy source yields the object's bytes; its digest is `spec.digest`.
fn spec_digest(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.pointer("/spec/digest")?.as_str().map(str::to_owned)
}
