//! `meshc build`: signed per-workload configs as Kubernetes objects, for
//! GitOps. See the README section "meshc build" for the output layout and
//! `proxy/api/README.md` for the signed format.

pub mod crd;
pub mod keys;
pub mod names;
pub mod objects;
pub mod revision;
pub mod sequence;
pub mod verify;
pub mod write;

use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::envelope::SigningKey;
use mesh_proxy_api::envelope::{self, Envelope};
use objects::*;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// What a build records besides the configs.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub source_revision: String,
    /// Signed into the bundle and every config: holders refuse a lower one.
    pub sequence: u64,
    /// Error findings in the policy (non-zero only with `--allow-errors`).
    pub error_findings: usize,
}

/// The files of one build, as (path relative to the output directory,
/// text), in stream order: `crds.yaml`, `bundle.yaml`, then the configs by
/// namespace and name. `kustomization.yaml` comes last and is not part of
/// the `--stdout` stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    pub files: Vec<(String, String)>,
    pub kustomization: String,
    /// The digest of the bundle's signed payload: with the sequence, what
    /// a later build in the same `--out` is compared with.
    pub bundle_digest: String,
}

pub const CRDS_FILE: &str = "crds.yaml";
pub const BUNDLE_FILE: &str = "bundle.yaml";
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";
pub const CONFIGS_DIR: &str = "configs";

impl Built {
    /// The `--stdout` stream: every file's documents, in order.
    pub fn stream(&self) -> String {
        self.files.iter().map(|(_, text)| text.as_str()).collect()
    }
}

/// A config meshc cannot turn into a valid object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmitError(pub String);

impl std::fmt::Display for EmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Signed {
    config: ProxyConfig,
    name: String,
    envelope: Envelope,
    digest: String,
}

/// Signs every config and lays out the objects. Same configs, key and info
/// give the same bytes: ed25519 signatures are deterministic, and every
/// list is sorted.
pub fn build(configs: &[Option<ProxyConfig>], key: &SigningKey, info: &BuildInfo) -> Result<Built, EmitError> {
    let configs: Vec<&ProxyConfig> = configs.iter().flatten().collect();
    for c in &configs {
        if !names::is_dns_label(&c.workload.namespace) {
            return Err(EmitError(format!(
                "{} {}/{}: namespace `{}` is not a valid Kubernetes namespace name",
                c.workload.kind, c.workload.namespace, c.workload.name, c.workload.namespace
            )));
        }
    }
    let refs: Vec<_> = configs.iter().map(|c| &c.workload).collect();
    let names = names::object_names(&refs);
    let mut signed: Vec<Signed> = configs
        .par_iter()
        .zip(names)
        .map(|(config, name)| {
            let config = ProxyConfig { sequence: info.sequence, ..(*config).clone() };
            let envelope = envelope::sign(&config, key);
            let digest = envelope::payload_digest(&envelope).expect("meshc's own envelope decodes");
            Signed { config, name, envelope, digest }
        })
        .collect();
    signed.sort_by(|a, b| (&a.config.workload.namespace, &a.name).cmp(&(&b.config.workload.namespace, &b.name)));
    let (bundle, bundle_digest) = bundle(&signed, key, info)?;
    let mut files = vec![(CRDS_FILE.to_owned(), crd::stream()), (BUNDLE_FILE.to_owned(), bundle)];
    files.par_extend(signed.par_iter().map(|s| {
        let path = format!("{CONFIGS_DIR}/{}/{}.yaml", s.config.workload.namespace, s.name);
        (path, document(&config_object(s, info)))
    }));
    let kustomization = kustomization(&files);
    Ok(Built { files, kustomization, bundle_digest })
}

/// The `meshc.io/allow-errors` annotation's value, when there is one.
pub fn allow_errors_note(error_findings: usize) -> Option<String> {
    (error_findings > 0)
        .then(|| format!("built with --allow-errors from a policy with {error_findings} error finding(s)"))
}

fn annotations(info: &BuildInfo) -> BTreeMap<String, String> {
    let note = allow_errors_note(info.error_findings);
    note.map(|n| (ANNOTATION_ALLOW_ERRORS.to_owned(), n)).into_iter().collect()
}

fn config_object(s: &Signed, info: &BuildInfo) -> Object<ProxyConfigSpec> {
    let w = &s.config.workload;
    let labels = BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), "meshc".to_owned()),
        (LABEL_WORKLOAD_KIND.to_owned(), names::label_value(&w.kind)),
        (LABEL_WORKLOAD_NAME.to_owned(), names::label_value(&w.name)),
    ]);
    Object {
        api_version: API_VERSION.to_owned(),
        kind: PROXY_CONFIG_KIND.to_owned(),
        metadata: ObjectMeta {
            name: s.name.clone(),
            namespace: Some(w.namespace.clone()),
            labels,
            annotations: annotations(info),
        },
        spec: ProxyConfigSpec {
            workload: w.clone(),
            identity: s.config.identity.clone(),
            digest: s.digest.clone(),
            envelope: s.envelope.clone(),
        },
    }
}

/// The MeshBundle's document and the digest of its signed payload.
fn bundle(signed: &[Signed], key: &SigningKey, info: &BuildInfo) -> Result<(String, String), EmitError> {
    let mut spec = BundleSpec {
        source_revision: info.source_revision.clone(),
        sequence: info.sequence,
        meshc_version: env!("CARGO_PKG_VERSION").to_owned(),
        key_id: envelope::key_id(&key.verifying_key()),
        allow_errors: info.error_findings > 0,
        error_findings: info.error_findings,
        configs: signed
            .iter()
            .map(|s| BundleEntry {
                namespace: s.config.workload.namespace.clone(),
                name: s.name.clone(),
                workload: s.config.workload.clone(),
                digest: s.digest.clone(),
            })
            .collect(),
        envelope: None,
    };
    let signed_spec = envelope::sign_value(&spec, BUNDLE_PAYLOAD_TYPE, key).map_err(EmitError)?;
    let digest = envelope::payload_digest(&signed_spec).expect("meshc's own envelope decodes");
    spec.envelope = Some(signed_spec);
    let object = Object {
        api_version: API_VERSION.to_owned(),
        kind: BUNDLE_KIND.to_owned(),
        metadata: ObjectMeta {
            name: BUNDLE_NAME.to_owned(),
            labels: BTreeMap::from([(LABEL_MANAGED_BY.to_owned(), "meshc".to_owned())]),
            annotations: annotations(info),
            ..ObjectMeta::default()
        },
        spec,
    };
    Ok((document(&object), digest))
}

fn kustomization(files: &[(String, String)]) -> String {
    let resources: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    // A single JSON document without `---`: kustomize reads one object here.
    let k = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    format!("{}\n", serde_json::to_string_pretty(&k).expect("kustomization serializes"))
}
