//! `meshc verify-bundle`: checks a build (a directory or one YAML stream)
//! the way the runtime will, and names every object that fails.

use super::objects::*;
use crate::load::yaml;
use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::envelope::VerifyingKey;
use mesh_proxy_api::envelope::{self, payload_digest};
use mesh_proxy_api::service_policy::ServicePolicy;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A build that verified: its signed manifest and the configs it carries.
#[derive(Debug)]
pub struct Verified {
    /// The signed bundle spec (without its envelope).
    pub manifest: BundleSpec,
    /// In the manifest's order.
    pub configs: Vec<ProxyConfig>,
    /// The shared Service policies, in the manifest's order.
    pub service_policies: Vec<ServicePolicy>,
}

/// One ProxyConfig object as found, before and after its checks.
struct Found {
    place: String,
    key: (String, String),
    spec: ProxyConfigSpec,
    config: Option<ProxyConfig>,
    allow_note: Option<String>,
}

#[derive(Default)]
struct State {
    problems: Vec<String>,
    configs: Vec<Found>,
    policies: Vec<super::verify_shared::FoundPolicy>,
    bundles: Vec<(String, Object<BundleSpec>)>,
}

/// `Err` is an input error (exit 2); `Ok(Err(problems))` a build that does
/// not verify (exit 1).
pub fn verify_path(path: &Path, keys: &[VerifyingKey]) -> Result<Result<Verified, Vec<String>>, String> {
    if keys.is_empty() {
        return Err("no public keys given (--pubkey)".to_owned());
    }
    let files = if path.is_dir() { yaml_files(path)? } else { vec![path.to_path_buf()] };
    let mut state = State::default();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let name = file.strip_prefix(path).ok().filter(|p| !p.as_os_str().is_empty()).unwrap_or(file);
        if path.is_dir() && name == Path::new(crate::multicluster::links_file::FILE_NAME) {
            check_links(&name.display().to_string(), &bytes, keys, &mut state.problems);
            continue;
        }
        read_file(&name.display().to_string(), &bytes, keys, &mut state);
    }
    Ok(finish(state, keys))
}

/// A multicluster build's links file: a DSSE envelope of the links
/// document, signed by a trusted key, as mesh-runtime opens it.
fn check_links(file: &str, bytes: &[u8], keys: &[VerifyingKey], problems: &mut Vec<String>) {
    let env: envelope::Envelope = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => return problems.push(format!("{file}: not a signed links file (a DSSE envelope): {e}")),
    };
    match envelope::verified_payload(&env, envelope::LINKS_PAYLOAD_TYPE, keys) {
        Ok(payload) if serde_json::from_slice::<Value>(&payload).is_ok_and(|v| v["links"].is_array()) => {}
        Ok(_) => problems.push(format!("{file}: the signed payload is not a links document")),
        Err(e) => problems.push(format!("{file}: {e}")),
    }
}

/// `.yaml`, `.yml` and `.json` files under `dir`, sorted; symbolic links
/// are not followed (a build never writes one, and a loop must not hang).
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let p = e.path();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_file(file: &str, bytes: &[u8], keys: &[VerifyingKey], state: &mut State) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return state.problems.push(format!("{file}: not UTF-8 text"));
    };
    let docs = match yaml::parse_documents(text) {
        Ok(d) => d,
        Err(e) => return state.problems.push(format!("{file}:{}: not valid YAML: {}", e.line, e.message)),
    };
    for doc in docs.iter().filter(|d| d.value != yaml::Value::Null) {
        read_object(file, doc.to_json(), keys, state);
    }
}

fn read_object(file: &str, v: Value, keys: &[VerifyingKey], state: &mut State) {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("").to_owned();
    let meta = &v["metadata"];
    let (ns, name) = (meta["namespace"].as_str().unwrap_or(""), meta["name"].as_str().unwrap_or(""));
    let place = format!("{kind} {}{name} ({file})", if ns.is_empty() { String::new() } else { format!("{ns}/") });
    if v.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) && kind != "CustomResourceDefinition" {
        if kind == "Kustomization" {
            return;
        }
        return state.problems.push(format!("{place}: unexpected object (apiVersion is not {API_VERSION})"));
    }
    match kind.as_str() {
        "CustomResourceDefinition" => {}
        PROXY_CONFIG_KIND => match serde_json::from_value::<Object<ProxyConfigSpec>>(v) {
            Ok(o) => check_config(place, o, keys, state),
            Err(e) => state.problems.push(format!("{place}: malformed: {e}")),
        },
        SERVICE_POLICY_KIND => match serde_json::from_value::<Object<ServicePolicySpec>>(v) {
            Ok(o) => match super::verify_shared::check_policy(place.clone(), o, keys) {
                Ok(found) => state.policies.push(found),
                Err(p) => state.problems.push(format!("{place}: {p}")),
            },
            Err(e) => state.problems.push(format!("{place}: malformed: {e}")),
        },
        BUNDLE_KIND => match serde_json::from_value::<Object<BundleSpec>>(v) {
            Ok(o) => state.bundles.push((place, o)),
            Err(e) => state.problems.push(format!("{place}: malformed: {e}")),
        },
        _ => state.problems.push(format!("{place}: unexpected kind")),
    }
}

/// The envelope verifies, and everything the object says in the clear
/// agrees with what it signs.
fn check_config(place: String, o: Object<ProxyConfigSpec>, keys: &[VerifyingKey], state: &mut State) {
    let key = (o.metadata.namespace.clone().unwrap_or_default(), o.metadata.name.clone());
    let config = match config_problem(&o, keys) {
        Ok(c) => Some(c),
        Err(p) => {
            state.problems.push(format!("{place}: {p}"));
            None
        }
    };
    let allow_note = o.metadata.annotations.get(ANNOTATION_ALLOW_ERRORS).cloned();
    state.configs.push(Found { place, key, spec: o.spec, config, allow_note });
}

fn config_problem(o: &Object<ProxyConfigSpec>, keys: &[VerifyingKey]) -> Result<ProxyConfig, String> {
    let s = &o.spec;
    let config = envelope::verify(&s.envelope, keys).map_err(|e| format!("envelope: {e}"))?;
    let signed = payload_digest(&s.envelope).map_err(|e| e.to_string())?;
    if s.digest != signed {
        return Err(format!("spec.digest {} is not the signed payload's ({signed})", s.digest));
    }
    let w = &config.workload;
    if s.workload != *w {
        let sw = &s.workload;
        return Err(format!(
            "spec.workload {} {}/{} is not the signed workload {} {}/{}",
            sw.kind, sw.namespace, sw.name, w.kind, w.namespace, w.name
        ));
    }
    if s.identity != config.identity {
        return Err(format!("spec.identity `{}` is not the signed identity `{}`", s.identity, config.identity));
    }
    if o.metadata.namespace.as_deref() != Some(w.namespace.as_str()) {
        return Err(format!("metadata.namespace is not the workload's namespace `{}`", w.namespace));
    }
    labels_problem(&o.metadata, w).map_or(Ok(()), Err).map(|()| config)
}

/// meshc's own labels must be the ones it derives: they select configs, so
/// an edited one could point a selector at the wrong workload. Other labels
/// and annotations (kustomize's, for one) are not meshc's and not checked.
fn labels_problem(meta: &ObjectMeta, w: &mesh_proxy_api::WorkloadRef) -> Option<String> {
    let want = [
        (LABEL_MANAGED_BY, "meshc".to_owned()),
        (LABEL_WORKLOAD_KIND, super::names::label_value(&w.kind)),
        (LABEL_WORKLOAD_NAME, super::names::label_value(&w.name)),
    ];
    want.iter().find(|(k, v)| meta.labels.get(*k) != Some(v)).map(|(k, v)| format!("label {k} is not `{v}`"))
}

fn finish(mut state: State, keys: &[VerifyingKey]) -> Result<Verified, Vec<String>> {
    let manifest = match state.bundles.as_slice() {
        [] => {
            state.problems.push("no MeshBundle found".to_owned());
            None
        }
        [(place, b)] => check_bundle(place, b, keys, &mut state.problems),
        many => {
            let places: Vec<&str> = many.iter().map(|(p, _)| p.as_str()).collect();
            state.problems.push(format!("more than one MeshBundle: {}", places.join(", ")));
            None
        }
    };
    let configs = manifest.as_ref().map(|m| match_configs(m, &state.configs, &mut state.problems));
    let policies =
        manifest.as_ref().map(|m| super::verify_shared::match_policies(m, &state.policies, &mut state.problems));
    if let (Some(m), Some(configs)) = (&manifest, &configs) {
        super::verify_shared::check_config_sets(m, configs, &mut state.problems);
    }
    match (manifest, configs, policies) {
        (Some(manifest), Some(configs), Some(service_policies)) if state.problems.is_empty() => {
            Ok(Verified { manifest, configs, service_policies })
        }
        _ => Err(state.problems),
    }
}

fn check_bundle(
    place: &str,
    b: &Object<BundleSpec>,
    keys: &[VerifyingKey],
    problems: &mut Vec<String>,
) -> Option<BundleSpec> {
    let signed = match b.spec.open(keys) {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("{place}: {e}"));
            return None;
        }
    };
    if b.metadata.annotations.get(ANNOTATION_ALLOW_ERRORS) != super::allow_errors_note(signed.error_findings).as_ref() {
        problems.push(format!("{place}: annotation {ANNOTATION_ALLOW_ERRORS} does not match the signed errorFindings"));
        return None;
    }
    if b.metadata.name != BUNDLE_NAME || b.metadata.namespace.is_some() {
        problems.push(format!("{place}: must be the cluster-scoped MeshBundle `{BUNDLE_NAME}`"));
        return None;
    }
    Some(signed)
}

/// The configs present must be exactly the ones the bundle signs.
fn match_configs(m: &BundleSpec, found: &[Found], problems: &mut Vec<String>) -> Vec<ProxyConfig> {
    let mut by_key: BTreeMap<&(String, String), &Found> = BTreeMap::new();
    for f in found {
        if let Some(first) = by_key.insert(&f.key, f) {
            problems.push(format!("{}: duplicate of {}", f.place, first.place));
        }
    }
    let note = super::allow_errors_note(m.error_findings);
    let mut out = Vec::new();
    for e in &m.configs {
        let Some(f) = by_key.remove(&(e.namespace.clone(), e.name.clone())) else {
            problems
                .push(format!("ProxyConfig {}/{}: listed in the signed MeshBundle but missing", e.namespace, e.name));
            continue;
        };
        if f.spec.digest != e.digest || f.spec.workload != e.workload {
            problems.push(format!("{}: digest or workload differs from the signed MeshBundle's entry", f.place));
        } else if f.allow_note != note {
            let p = &f.place;
            problems.push(format!("{p}: annotation {ANNOTATION_ALLOW_ERRORS} does not match the signed bundle's"));
        } else if let Some(c) = f.config.as_ref().filter(|c| c.sequence != m.sequence) {
            // Digests bind them already; this names the fault plainly.
            let (p, s) = (&f.place, c.sequence);
            problems.push(format!("{p}: signed sequence {s} is not the bundle's {}", m.sequence));
        } else if let Some(c) = &f.config {
            out.push(c.clone());
        }
    }
    for f in by_key.values() {
        problems.push(format!("{}: not listed in the signed MeshBundle", f.place));
    }
    out
}
