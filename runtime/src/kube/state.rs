//! Kubernetes mode's durable rollback floor: the newest bundle sequence
//! accepted, in a ConfigMap the runtime owns in its namespace
//! (`--state-configmap`, key `rollback-floor.json`).
//!
//! Not the MeshBundle's status: deleting and re-creating the MeshBundle
//! (which whoever applies it can do) would wipe it. Every replica reads the
//! floor before it watches bundles and writes it when it rises; writes are
//! compare-and-swap on resourceVersion and keep the higher floor, so
//! replicas and leader changes cannot lower it.

use crate::store::Floor;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const KEY: &str = "rollback-floor.json";
const RETRY: Duration = Duration::from_secs(1);
/// Conflicting writers re-read at most this many times per write.
const ATTEMPTS: usize = 5;

/// The floor a ConfigMap holds; one without the key holds none.
fn floor_of(cm: &ConfigMap) -> Result<Option<Floor>, String> {
    let text = cm.data.as_ref().and_then(|d| d.get(KEY));
    text.map(|t| Floor::from_json(t)).transpose()
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Reads the floor, retrying until it can be read: serving before would
/// let an older build through. A ConfigMap that holds something else is an
/// error too (fail closed), named in the log until it is repaired.
pub async fn load(api: &Api<ConfigMap>, name: &str, shutdown: &CancellationToken) -> Result<Option<Floor>, String> {
    let mut warned = false;
    loop {
        let read = api.get_opt(name).await.map_err(|e| e.to_string());
        match read.and_then(|cm| cm.map(|c| floor_of(&c)).transpose().map(Option::flatten)) {
            Ok(floor) => return Ok(floor),
            Err(e) if !warned => {
                tracing::warn!(configmap = name, "cannot read the rollback floor; retrying before serving: {e}");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return Err("stopped before the rollback floor was read".into()),
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Writes every risen floor `rx` sees until `shutdown`.
pub async fn keep(
    api: Api<ConfigMap>,
    name: String,
    mut rx: watch::Receiver<Option<Floor>>,
    shutdown: CancellationToken,
) {
    let mut written: Option<Floor> = None;
    loop {
        let wanted = rx.borrow_and_update().clone().filter(|f| f.is_above(written.as_ref()));
        let wait_for_change = match wanted {
            None => true,
            Some(floor) => match save(&api, &name, &floor).await {
                Ok(stored) => {
                    written = Some(stored);
                    true
                }
                Err(e) => {
                    tracing::warn!(configmap = %name, "cannot record the rollback floor; retrying: {e}");
                    false
                }
            },
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = rx.changed(), if wait_for_change => if changed.is_err() { return },
            () = tokio::time::sleep(RETRY), if !wait_for_change => {}
        }
    }
}

/// Raises the stored floor to `floor` unless it is already as high;
/// returns what the ConfigMap now holds.
async fn save(api: &Api<ConfigMap>, name: &str, floor: &Floor) -> Result<Floor, String> {
    let data = BTreeMap::from([(KEY.to_owned(), floor.to_json())]);
    for _ in 0..ATTEMPTS {
        let written = match api.get_opt(name).await.map_err(|e| e.to_string())? {
            None => {
                let meta = ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() };
                let cm = ConfigMap { metadata: meta, data: Some(data.clone()), ..ConfigMap::default() };
                api.create(&PostParams::default(), &cm).await
            }
            Some(mut cm) => {
                // A malformed floor is overwritten: this one verified.
                if let Some(stored) = floor_of(&cm).ok().flatten().filter(|s| !floor.is_above(Some(s))) {
                    return Ok(stored);
                }
                cm.data = Some(data.clone());
                api.replace(name, &PostParams::default(), &cm).await
            }
        };
        match written {
            Ok(_) => return Ok(floor.clone()),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("{ATTEMPTS} conflicting writes in a row"))
}
