//! `schemas/` holds the generated JSON Schemas; this test regenerates them
//! and fails on drift (`MESHC_BLESS=1` rewrites them). It also reads the
//! CRDs Linkerd ships (shared/reference/crds, beside the checkout) and
//! checks that every field they define is one meshc reads, so a valid
//! manifest never gets a schema-violation for an unknown field.

use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Rewrites `files` under `dir` with `MESHC_BLESS`, else the names of
/// those that differ from what is committed.
fn bless_or_stale(dir: &Path, files: Vec<(&'static str, String)>) -> Vec<&'static str> {
    let bless = mesh_test_support::blessing();
    let mut stale = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        if bless {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    stale
}

#[test]
fn schemas_are_up_to_date() {
    let stale = bless_or_stale(&repo().join("schemas"), meshc::schemas::all());
    assert!(
        stale.is_empty(),
        "schemas out of date (run `MESHC_BLESS=1 cargo test -p meshc --test schemas`): {stale:?}"
    );
}

/// The CRDs `meshc build` writes, committed under `schemas/crds/` for
/// reviewers and for clusters that install CRDs separately.
#[test]
fn crds_are_up_to_date() {
    let stale = bless_or_stale(&repo().join("schemas/crds"), meshc::emit::crd::files());
    assert!(stale.is_empty(), "CRDs out of date (run `MESHC_BLESS=1 cargo test -p meshc --test schemas`): {stale:?}");
}

static OPEN: Value = Value::Bool(true);

/// A schema with no constraint (what schemars emits for `serde_json::Value`).
fn is_open(v: &Value) -> bool {
    const CONSTRAINTS: &[&str] = &["type", "properties", "items", "$ref", "anyOf", "oneOf", "allOf", "enum", "const"];
    *v == OPEN || v.as_object().is_some_and(|o| !CONSTRAINTS.iter().any(|k| o.contains_key(*k)))
}

/// Resolves `$ref`s into `$defs` and walks `properties` / `items` / `anyOf`.
struct Walker<'a> {
    root: &'a Value,
}

impl Walker<'_> {
    fn deref<'b>(&'b self, v: &'b Value) -> &'b Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or(r);
                self.deref(&self.root["$defs"][name])
            }
            None => v,
        }
    }

    /// The schemas (several for anyOf/oneOf) a value at `field` of `v` must match.
    fn child<'b>(&'b self, v: &'b Value, field: &str) -> Vec<&'b Value> {
        let v = self.deref(v);
        let mut out = Vec::new();
        for alt in ["anyOf", "oneOf", "allOf"].iter().filter_map(|k| v.get(*k)).filter_map(Value::as_array).flatten() {
            out.extend(self.child(alt, field));
        }
        if field == "[]" {
            if let Some(items) = v.get("items") {
                out.push(self.deref(items));
            }
        } else if let Some(p) = v.get("properties").and_then(|p| p.get(field)) {
            out.push(self.deref(p));
        } else if v.get("additionalProperties").is_some_and(|a| a.is_object() || a == true) || is_open(v) {
            out.push(&OPEN);
        }
        out
    }

    fn accepts(&self, path: &[String]) -> bool {
        let mut current: Vec<&Value> = vec![self.root];
        for seg in path {
            current = current.iter().flat_map(|v| self.child(v, seg)).collect();
            if current.iter().any(|v| **v == OPEN || is_open(v)) {
                return true; // an open value (serde_json::Value) accepts anything below
            }
            if current.is_empty() {
                return false;
            }
        }
        true
    }
}

fn collect(node: &meshc::load::yaml::Node, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    use meshc::load::yaml::Value as Y;
    if let Some(Y::Map(props)) = node.get("properties").map(|p| &p.value) {
        for (k, v) in props {
            prefix.push(k.name.to_string());
            out.push(prefix.clone());
            collect(v, prefix, out);
            prefix.pop();
        }
    }
    if let Some(items) = node.get("items") {
        prefix.push("[]".to_owned());
        collect(items, prefix, out);
        prefix.pop();
    }
}

#[test]
fn every_crd_field_is_known() {
    let crds = repo().join("../shared/reference/crds");
    if !mesh_test_support::require_path("every_crd_field_is_known", &crds, "the Linkerd and Gateway API CRDs") {
        return;
    }
    let schemas: std::collections::BTreeMap<&str, Value> =
        meshc::schemas::all().into_iter().map(|(n, t)| (n, serde_json::from_str(&t).unwrap())).collect();
    let spec_schema = |kind: &str| -> Option<&Value> {
        let file = match kind {
            "Server" => "server.spec.schema.json",
            "ServerAuthorization" => "server-authorization.spec.schema.json",
            "AuthorizationPolicy" => "authorization-policy.spec.schema.json",
            "MeshTLSAuthentication" => "meshtls-authentication.spec.schema.json",
            "NetworkAuthentication" => "network-authentication.spec.schema.json",
            "HTTPRoute" => "httproute.spec.schema.json",
            "GRPCRoute" => "grpcroute.spec.schema.json",
            "TLSRoute" => "tlsroute.spec.schema.json",
            "TCPRoute" => "tcproute.spec.schema.json",
            "ServiceProfile" => "serviceprofile.spec.schema.json",
            "EgressNetwork" => "egressnetwork.spec.schema.json",
            _ => return None,
        };
        schemas.get(file)
    };
    let mut missing = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&crds).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        // The CRDs are Helm templates; the `{{ }}` lines are chart metadata.
        let text: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("{{"))
            .map(|l| format!("{l}\n"))
            .collect();
        for doc in meshc::load::yaml::parse_documents(&text).unwrap() {
            let Some(spec) = doc.get("spec") else {
                continue;
            };
            let Some(kind) = spec.get("names").and_then(|n| n.get("kind")).and_then(|k| k.as_str()) else {
                continue;
            };
            let Some(ours) = spec_schema(kind) else {
                continue;
            };
            let walker = Walker { root: ours };
            let Some(meshc::load::yaml::Value::Seq(versions)) = spec.get("versions").map(|v| &v.value) else {
                continue;
            };
            for v in versions {
                let Some(spec_schema) = v
                    .get("schema")
                    .and_then(|s| s.get("openAPIV3Schema"))
                    .and_then(|s| s.get("properties"))
                    .and_then(|p| p.get("spec"))
                else {
                    continue;
                };
                let mut paths = Vec::new();
                collect(spec_schema, &mut Vec::new(), &mut paths);
                for p in paths {
                    checked += 1;
                    if !walker.accepts(&p) {
                        missing.push(format!(
                            "{kind} {}: spec.{}",
                            v.get("name").and_then(|n| n.as_str()).unwrap_or("?"),
                            p.join(".")
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 100, "read too few CRD fields ({checked})");
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "CRD fields meshc would call unknown:\n{}", missing.join("\n"));
}
