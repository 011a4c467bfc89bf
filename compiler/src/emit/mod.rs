//! `meshc build`: signed per-workload configs as Kubernetes objects, for
//! GitOps. See the README section "meshc build" for the output layout and
//! `proxy/api/README.md` for the signed format.

pub mod crd;
pub mod keys;
pub mod names;
pub mod objects;
pub mod revision;
pub mod sequence;
pub mod shared;
pub mod verify;
mod verify_shared;
pub mod write;

use mesh_proxy_api::envelope::SigningKey;
use mesh_proxy_api::envelope::{self, Envelope};
use mesh_proxy_api::service_policy::ServicePolicy;
use mesh_proxy_api::{ProxyConfig, WorkloadRef};
pub use objects::SERVICE_POLICIES_DIR;
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
/// text), in stream order: `crds.yaml`, `bundle.yaml`, the configs by
/// namespace and name, then the ServicePolicies likewise. `kustomization.yaml` comes last and is not part of
/// the `--stdout` stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    pub files: Vec<(String, String)>,
    /// Config and ServicePolicy files [`ConfigOut::Write`] wrote as they
    /// were signed (then not in `files`), in stream order.
    pub written: Vec<String>,
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

    /// How many files of the build are under `dir` (`configs`, `servicepolicies`).
    pub fn count_under(&self, dir: &str) -> usize {
        let paths = self.files.iter().map(|(p, _)| p.as_str()).chain(self.written.iter().map(String::as_str));
        paths.filter(|p| p.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))).count()
    }

    /// `N ProxyConfig(s)[, M ServicePolicy(s)]`, for the build's message.
    pub fn summary(&self) -> String {
        let configs = self.count_under(CONFIGS_DIR);
        match self.count_under(SERVICE_POLICIES_DIR) {
            0 => format!("{configs} ProxyConfig(s)"),
            n => format!("{configs} ProxyConfig(s), {n} ServicePolicy(s)"),
        }
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

/// One config signed and laid out: what the bundle lists for it, its file,
/// and the file's text unless it was handed to a writer already.
struct Laid {
    entry: BundleEntry,
    path: String,
    text: Option<String>,
}

/// Where each config's file goes as soon as it is signed: kept in memory
/// (the `--stdout` stream, whose bundle comes first, and tests) or written
/// at once, so that a build never holds more than the configs being signed.
pub enum ConfigOut<'a> {
    Keep,
    Write(&'a (dyn Fn(&str, &str) -> Result<(), String> + Sync)),
}

/// Signs every config as it is (no shared Service policies: those are
/// [`build_outcome`]'s) and lays out the objects. Same inputs give the same
/// bytes: ed25519 signatures are deterministic, and every list is sorted.
pub fn build(configs: &[Option<ProxyConfig>], key: &SigningKey, info: &BuildInfo) -> Result<Built, EmitError> {
    let configs: Vec<&ProxyConfig> = configs.iter().flatten().collect();
    let refs: Vec<&WorkloadRef> = configs.iter().map(|c| &c.workload).collect();
    build_each(&refs, |i| configs[i].clone(), &[], key, info, &ConfigOut::Keep)
}

/// What `meshc build` signs for a checked repository: each config with only
/// its own outbound part, and every Service's shared views
/// (`lower::outbound::scope`), each file handed to `out` once signed.
pub fn build_outcome(
    outcome: &crate::pipeline::Outcome,
    key: &SigningKey,
    info: &BuildInfo,
    out: &ConfigOut,
) -> Result<Built, EmitError> {
    use crate::lower::outbound::scope::{Scope, with_outbound};
    let scope = Scope::new(outcome);
    let present: Vec<&ProxyConfig> = outcome.configs.iter().flatten().collect();
    let refs: Vec<&WorkloadRef> = present.iter().map(|c| &c.workload).collect();
    // Never a copy of a composed outbound part (`pipeline::compile`'s).
    let config_of = |i: usize| with_outbound(present[i], scope.own(outcome, &present[i].workload.namespace));
    build_each(&refs, config_of, &scope.shared, key, info, out)
}

/// [`build`] for configs made one at a time: `config_of(i)` is the config of
/// `workloads[i]`, and with [`ConfigOut::Write`] each one's file is written
/// once signed and listed in [`Built::written`], so memory holds the configs
/// being signed, not all of them (a repository's configs together repeat
/// its Services once per client: see `lower::outbound::scope`).
/// Each config of a namespace names the digest of the shared policies its
/// clients see (`Outbound::service_policies`) when `shared` is not empty.
pub fn build_each<F>(
    workloads: &[&WorkloadRef],
    config_of: F,
    shared: &[ServicePolicy],
    key: &SigningKey,
    info: &BuildInfo,
    out: &ConfigOut,
) -> Result<Built, EmitError>
where
    F: Fn(usize) -> ProxyConfig + Sync,
{
    let policies = shared::sign_policies(shared, key, info, out)?;
    let sets = shared::set_digests(&policies, workloads.iter().map(|w| w.namespace.as_str()));
    let config_of = |i: usize| {
        let mut config = config_of(i);
        if let Some(set) = sets.get(&config.workload.namespace) {
            config.outbound.service_policies = Some(set.clone());
        }
        config
    };
    let laid = sign_all(workloads, config_of, key, info, out)?;
    let (bundle, bundle_digest) = bundle(&laid, &policies, key, info)?;
    let mut files = vec![(CRDS_FILE.to_owned(), crd::stream()), (BUNDLE_FILE.to_owned(), bundle)];
    let mut written = Vec::new();
    let laid = laid.into_iter().map(|l| (l.path, l.text));
    for (path, text) in laid.chain(policies.into_iter().map(|p| (p.path, p.text))) {
        match text {
            Some(text) => files.push((path, text)),
            None => written.push(path),
        }
    }
    let kustomization = kustomization(files.iter().map(|(p, _)| p.as_str()).chain(written.iter().map(String::as_str)));
    Ok(Built { files, written, kustomization, bundle_digest })
}

/// Signs `config_of(i)` for every workload, in parallel, sorted by namespace
/// and object name.
fn sign_all<F>(
    workloads: &[&WorkloadRef],
    config_of: F,
    key: &SigningKey,
    info: &BuildInfo,
    out: &ConfigOut,
) -> Result<Vec<Laid>, EmitError>
where
    F: Fn(usize) -> ProxyConfig + Sync,
{
    for w in workloads {
        if !names::is_dns_label(&w.namespace) {
            return Err(EmitError(format!(
                "{} {}/{}: namespace `{}` is not a valid Kubernetes namespace name",
                w.kind, w.namespace, w.name, w.namespace
            )));
        }
    }
    let names = names::object_names(workloads);
    let mut laid = names
        .into_par_iter()
        .enumerate()
        .map(|(i, name)| {
            let mut config = config_of(i);
            config.sequence = info.sequence;
            let mut laid = lay_out(config, name, key, info);
            if let ConfigOut::Write(write) = out
                && let Some(text) = laid.text.take()
            {
                write(&laid.path, &text).map_err(EmitError)?;
            }
            Ok(laid)
        })
        .collect::<Result<Vec<Laid>, EmitError>>()?;
    laid.sort_by(|a, b| (&a.entry.namespace, &a.entry.name).cmp(&(&b.entry.namespace, &b.entry.name)));
    Ok(laid)
}

/// Signs one config (its sequence already set) and writes its object.
fn lay_out(config: ProxyConfig, name: String, key: &SigningKey, info: &BuildInfo) -> Laid {
    let envelope = envelope::sign(&config, key);
    let digest = envelope::payload_digest(&envelope).expect("meshc's own envelope decodes");
    let ProxyConfig { workload, identity, .. } = config;
    let path = format!("{CONFIGS_DIR}/{}/{name}.yaml", workload.namespace);
    let object = config_object(&name, &workload, identity, digest.clone(), envelope, info);
    let text = document(&object);
    let entry = BundleEntry { namespace: workload.namespace.clone(), name, workload, digest };
    Laid { entry, path, text: Some(text) }
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

fn config_object(
    name: &str,
    w: &WorkloadRef,
    identity: String,
    digest: String,
    envelope: Envelope,
    info: &BuildInfo,
) -> Object<ProxyConfigSpec> {
    let labels = BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), "meshc".to_owned()),
        (LABEL_WORKLOAD_KIND.to_owned(), names::label_value(&w.kind)),
        (LABEL_WORKLOAD_NAME.to_owned(), names::label_value(&w.name)),
    ]);
    Object {
        api_version: API_VERSION.to_owned(),
        kind: PROXY_CONFIG_KIND.to_owned(),
        metadata: ObjectMeta {
            name: name.to_owned(),
            namespace: Some(w.namespace.clone()),
            labels,
            annotations: annotations(info),
        },
        spec: ProxyConfigSpec { workload: w.clone(), identity, digest, envelope },
    }
}

/// The MeshBundle's document and the digest of its signed payload.
fn bundle(
    laid: &[Laid],
    policies: &[shared::LaidPolicy],
    key: &SigningKey,
    info: &BuildInfo,
) -> Result<(String, String), EmitError> {
    let mut spec = BundleSpec {
        source_revision: info.source_revision.clone(),
        sequence: info.sequence,
        meshc_version: env!("CARGO_PKG_VERSION").to_owned(),
        key_id: envelope::key_id(&key.verifying_key()),
        allow_errors: info.error_findings > 0,
        error_findings: info.error_findings,
        configs: laid.iter().map(|l| l.entry.clone()).collect(),
        service_policies: policies.iter().map(|p| p.entry.clone()).collect(),
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
        spec: BundleObjectSpec::of(&spec),
    };
    Ok((document(&object), digest))
}

fn kustomization<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let resources: Vec<&str> = paths.collect();
    // A single JSON document without `---`: kustomize reads one object here.
    let k = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    format!("{}\n", serde_json::to_string_pretty(&k).expect("kustomization serializes"))
}
