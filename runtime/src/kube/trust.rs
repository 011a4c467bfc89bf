//! Trust material from the runtime's namespace, watched by name:
//! - the trusted public keys: every `*.pub` entry of a ConfigMap or Secret
//!   (several during a key rotation);
//! - the issuer: a kubernetes.io/tls Secret (`tls.crt`, `tls.key`), as
//!   cert-manager writes it;
//! - the trust anchors: a ConfigMap with `ca-bundle.crt` (old and new
//!   anchors side by side during a rotation, as Linkerd's
//!   `linkerd-identity-trust-roots`).
//!
//! Bad content is refused and the last good material stays in force, with
//! a warning; so does a deleted object (deleting by mistake must not drop
//! the mesh; removing a key from the object is how a key is revoked).

use crate::ca::{Ca, Sources};
use crate::hub::ConfigHub;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Config, Event};
use mesh_proxy_api::envelope::{self, VerifyingKey};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const ANCHORS_KEY: &str = "ca-bundle.crt";
pub const ISSUER_CERT_KEY: &str = "tls.crt";
pub const ISSUER_KEY_KEY: &str = "tls.key";

/// Where the trusted keys are: `configmap/NAME` or `secret/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeysSource {
    ConfigMap(String),
    Secret(String),
}

impl KeysSource {
    pub fn parse(s: &str) -> Result<KeysSource, String> {
        match s.split_once('/') {
            Some(("configmap", n)) if !n.is_empty() => Ok(KeysSource::ConfigMap(n.into())),
            Some(("secret", n)) if !n.is_empty() => Ok(KeysSource::Secret(n.into())),
            _ => Err(format!("--trusted-keys `{s}`: expected configmap/NAME or secret/NAME")),
        }
    }
}

/// The entries of a ConfigMap (data and binaryData) or a Secret.
pub trait Entries {
    fn entries(&self) -> BTreeMap<String, Vec<u8>>;
}

impl Entries for ConfigMap {
    fn entries(&self) -> BTreeMap<String, Vec<u8>> {
        let text = self.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
        let binary = self.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
        text.chain(binary).collect()
    }
}

impl Entries for Secret {
    fn entries(&self) -> BTreeMap<String, Vec<u8>> {
        let text = self.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
        let binary = self.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
        text.chain(binary).collect()
    }
}

/// The trusted keys in `entries`: every `*.pub` entry that parses. The
/// keys are sorted by entry name so that equal content compares equal.
pub fn keys_of(what: &str, entries: &BTreeMap<String, Vec<u8>>) -> (Vec<VerifyingKey>, Vec<String>) {
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in entries.iter().filter(|(k, _)| k.ends_with(".pub")) {
        let parsed = std::str::from_utf8(value)
            .map_err(|e| e.to_string())
            .and_then(|t| envelope::verifying_key_from_pem(t).map_err(|e| e.to_string()));
        match parsed {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(format!("{what} entry `{name}`: {e}")),
        }
    }
    (keys, errors)
}

/// Watches one object by name in `namespace` and calls `apply` with its
/// entries each time it changes (`None` when it is deleted or absent),
/// awaiting each call before the next event. Ends only at `shutdown`.
pub async fn watch_named<K, F, Fut>(
    client: kube::Client,
    namespace: String,
    name: String,
    shutdown: CancellationToken,
    mut apply: F,
) where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Entries
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + 'static,
    F: FnMut(Option<BTreeMap<String, Vec<u8>>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let api: Api<K> = Api::namespaced(client, &namespace);
    let config = Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut listed = None;
    let mut failing = false;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            next = stream.next() => match next { Some(e) => e, None => return },
        };
        match event {
            Ok(Event::Init) => listed = Some(None),
            Ok(Event::InitApply(o)) => listed = Some(Some(o.entries())),
            Ok(Event::InitDone) => apply(listed.take().flatten()).await,
            Ok(Event::Apply(o)) => apply(Some(o.entries())).await,
            Ok(Event::Delete(_)) => apply(None).await,
            Err(e) if !failing => {
                tracing::warn!(%namespace, %name, "watch failed; retrying with backoff: {e}");
                failing = true;
                continue;
            }
            Err(_) => continue,
        }
        failing = false;
    }
}

/// What a new version of the keys' object changes.
enum KeysChange {
    /// Nothing usable: the last good keys stay.
    None,
    /// The keys in force already.
    Same,
    New(Vec<VerifyingKey>),
}

/// Applies trusted keys from the watched object to the store.
pub struct KeysApplier {
    pub what: String,
    pub hub: Arc<ConfigHub>,
    pub loaded: Arc<AtomicBool>,
    current: Option<Vec<String>>,
}

impl KeysApplier {
    pub fn new(what: String, hub: Arc<ConfigHub>, loaded: Arc<AtomicBool>) -> KeysApplier {
        KeysApplier { what, hub, loaded, current: None }
    }

    /// Decides now what the entries change; the returned future applies it
    /// (re-verifying everything under the new keys, on the blocking pool).
    pub fn apply(&mut self, entries: Option<BTreeMap<String, Vec<u8>>>) -> impl Future<Output = ()> + Send + use<> {
        let change = self.decide(entries);
        let (hub, loaded) = (self.hub.clone(), self.loaded.clone());
        async move {
            match change {
                KeysChange::None => return,
                KeysChange::Same => {}
                KeysChange::New(keys) => hub.update(move |s| s.set_trusted(keys)).await,
            }
            loaded.store(true, Ordering::Relaxed);
        }
    }

    fn decide(&mut self, entries: Option<BTreeMap<String, Vec<u8>>>) -> KeysChange {
        let Some(entries) = entries else {
            tracing::warn!(source = %self.what, "the trusted keys are gone; the last good keys stay trusted");
            return KeysChange::None;
        };
        let (keys, errors) = keys_of(&self.what, &entries);
        for e in &errors {
            tracing::warn!("ignoring an invalid trusted key: {e}");
        }
        if keys.is_empty() {
            tracing::warn!(source = %self.what, "no valid `*.pub` entry; the last good keys stay trusted");
            return KeysChange::None;
        }
        let ids: Vec<String> = keys.iter().map(envelope::key_id).collect();
        if self.current.as_ref() == Some(&ids) {
            return KeysChange::Same;
        }
        tracing::info!(source = %self.what, keys = ?ids, "trusted keys loaded");
        self.current = Some(ids);
        KeysChange::New(keys)
    }
}

/// Rebuilds the issuer from the latest issuer Secret and trust roots.
pub struct IssuerApplier {
    pub namespace: String,
    pub secret: String,
    pub roots: String,
    pub issuer: Option<BTreeMap<String, Vec<u8>>>,
    pub anchors: Option<BTreeMap<String, Vec<u8>>>,
    /// The names the issuer must carry and sign.
    pub domain: mesh_proxy_api::IdentityDomain,
    pub tx: watch::Sender<Option<Arc<Ca>>>,
}

impl IssuerApplier {
    pub fn set_issuer(&mut self, entries: Option<BTreeMap<String, Vec<u8>>>) {
        if entries.is_some() {
            self.issuer = entries;
            self.rebuild();
        } else {
            tracing::warn!(secret = %self.secret, "the issuer Secret is gone; the last good issuer stays");
        }
    }

    pub fn set_anchors(&mut self, entries: Option<BTreeMap<String, Vec<u8>>>) {
        if entries.is_some() {
            self.anchors = entries;
            self.rebuild();
        } else {
            tracing::warn!(configmap = %self.roots, "the trust roots are gone; the last good anchors stay");
        }
    }

    fn rebuild(&mut self) {
        let (Some(issuer), Some(anchors)) = (&self.issuer, &self.anchors) else { return };
        match self.build(issuer, anchors) {
            Ok(ca) => {
                tracing::info!(trust_domain = %ca.trust_domain(), expires_at = %crate::api::rfc3339(ca.issuer_expires_at()), "issuer loaded");
                self.tx.send_replace(Some(Arc::new(ca)));
            }
            Err(e) => tracing::error!("refusing the new issuer or trust roots; the last good ones stay: {e}"),
        }
    }

    fn build(&self, issuer: &BTreeMap<String, Vec<u8>>, anchors: &BTreeMap<String, Vec<u8>>) -> Result<Ca, String> {
        let text = |m: &BTreeMap<String, Vec<u8>>, key: &str, what: String| {
            let bytes = m.get(key).ok_or_else(|| format!("{what}: no `{key}` entry"))?;
            String::from_utf8(bytes.clone()).map_err(|e| format!("{what}: {e}"))
        };
        let secret = format!("Secret {}/{}", self.namespace, self.secret);
        let roots = format!("ConfigMap {}/{}", self.namespace, self.roots);
        let cert = text(issuer, ISSUER_CERT_KEY, secret.clone())?;
        let key = text(issuer, ISSUER_KEY_KEY, secret.clone())?;
        let anchors = text(anchors, ANCHORS_KEY, roots)?;
        let names = Sources { cert: format!("{secret} {ISSUER_CERT_KEY}"), key: format!("{secret} {ISSUER_KEY_KEY}") };
        Ca::from_pem(&cert, &key, anchors, &names, &self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proxy_api::envelope::{SigningKey, verifying_key_to_pem};

    #[test]
    fn keys_source_names_a_configmap_or_a_secret() {
        assert_eq!(KeysSource::parse("configmap/k"), Ok(KeysSource::ConfigMap("k".into())));
        assert_eq!(KeysSource::parse("secret/k"), Ok(KeysSource::Secret("k".into())));
        for bad in ["k", "configmap/", "deployment/k", ""] {
            assert!(KeysSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_pub_entry_that_parses_is_a_key_and_the_others_are_reported() {
        let pem = |seed: u8| verifying_key_to_pem(&SigningKey::from_bytes(&[seed; 32]).verifying_key()).unwrap();
        let entries: BTreeMap<String, Vec<u8>> = [
            ("old.pub", pem(1).into_bytes()),
            ("new.pub", pem(2).into_bytes()),
            ("broken.pub", b"not a key".to_vec()),
            ("README", b"ignored".to_vec()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let (keys, errors) = keys_of("cm", &entries);
        assert_eq!(keys.len(), 2);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("broken.pub"), "{errors:?}");
    }

    #[test]
    fn secrets_and_configmaps_give_their_entries() {
        let cm = ConfigMap {
            data: Some([("a.pub".to_owned(), "x".to_owned())].into()),
            binary_data: Some([("b.pub".to_owned(), k8s_openapi::ByteString(b"y".to_vec()))].into()),
            ..ConfigMap::default()
        };
        assert_eq!(cm.entries().len(), 2);
        let secret = Secret {
            data: Some([("tls.crt".to_owned(), k8s_openapi::ByteString(b"pem".to_vec()))].into()),
            ..Secret::default()
        };
        assert_eq!(secret.entries()["tls.crt"], b"pem");
    }
}
