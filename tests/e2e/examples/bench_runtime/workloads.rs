//! Synthetic workloads: one example config cloned N times under distinct
//! names and identities, signed as `meshc build` signs them.

use mesh_proxy_api::envelope::SigningKey;
use mesh_proxy_api::{AccessLogFormat, ProxyConfig};
use meshc::emit::{self, BuildInfo, Built};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

pub const NAMESPACE: &str = "bench";
pub const TRUST_DOMAIN: &str = "cluster.local";

/// The example every synthetic workload is a copy of.
const EXAMPLE: &str = "policies-examples/podinfo-canary";
const EXAMPLE_WORKLOAD: &str = "podinfo-primary";

pub fn identity(i: usize) -> String {
    format!("w{i}.{NAMESPACE}.serviceaccount.identity.linkerd.{TRUST_DOMAIN}")
}

/// The example's config, compiled from the repository.
pub fn example() -> Result<ProxyConfig, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(EXAMPLE);
    let outcome = meshc::pipeline::compile(&meshc::load::Input::Path(dir), &Default::default())
        .map_err(|e| format!("compiling {EXAMPLE}: {e:?}"))?;
    outcome
        .configs
        .into_iter()
        .flatten()
        .find(|c| c.workload.name == EXAMPLE_WORKLOAD)
        .ok_or_else(|| format!("{EXAMPLE} has no workload {EXAMPLE_WORKLOAD}"))
}

/// `n` copies of `base`; `variant` flips the access log format so that
/// every config (and so every digest) differs from the previous variant's.
pub fn configs(base: &ProxyConfig, n: usize, variant: usize) -> Vec<ProxyConfig> {
    let log = if variant.is_multiple_of(2) { AccessLogFormat::Json } else { AccessLogFormat::Apache };
    (0..n)
        .map(|i| {
            let mut c = base.clone();
            c.workload.name = format!("w{i}");
            c.workload.namespace = NAMESPACE.to_owned();
            c.identity = identity(i);
            c.access_log = Some(log);
            c
        })
        .collect()
}

pub fn workload_key(c: &ProxyConfig) -> String {
    format!("{}/{}/{}", c.workload.kind, c.workload.namespace, c.workload.name)
}

/// One signed build: its files (for file mode), its objects (for the API
/// server; the bundle first, as `kubectl apply -R -f` orders them) and the
/// digest of each workload `i`'s config.
pub struct Signed {
    pub built: Built,
    pub objects: Vec<Value>,
    pub digests: Vec<String>,
}

/// Each build signs a higher sequence than the one before, as successive
/// commits would.
fn next_sequence() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub fn sign(configs: &[ProxyConfig], key: &SigningKey, revision: &str) -> Result<Signed, String> {
    let info = BuildInfo { source_revision: revision.into(), sequence: next_sequence(), error_findings: 0 };
    let all: Vec<Option<ProxyConfig>> = configs.iter().cloned().map(Some).collect();
    let built = emit::build(&all, key, &info).map_err(|e| e.to_string())?;
    let mut objects = Vec::with_capacity(built.files.len());
    for (path, text) in &built.files {
        if path == emit::CRDS_FILE {
            continue;
        }
        let json = text.trim_start().trim_start_matches("---").trim();
        objects.push(serde_json::from_str::<Value>(json).map_err(|e| format!("{path}: {e}"))?);
    }
    let by_name: HashMap<&str, &str> = objects
        .iter()
        .filter_map(|o| Some((o.pointer("/spec/workload/name")?.as_str()?, o.pointer("/spec/digest")?.as_str()?)))
        .collect();
    let digests = configs
        .iter()
        .map(|c| by_name.get(c.workload.name.as_str()).map(|d| d.to_string()))
        .collect::<Option<Vec<String>>>()
        .ok_or("a config is missing from the build")?;
    Ok(Signed { built, objects, digests })
}
