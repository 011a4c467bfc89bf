//! Discovery documents (the legacy, unaggregated form, which kubectl and
//! kube fall back to when the server does not answer the aggregated one).

use crate::resource::{ResourceType, Resources};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// The Kubernetes version the fake claims to be.
pub const MAJOR: &str = "1";
pub const MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": format!("v{MAJOR}.{MINOR}.0-fake"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`: the core group's versions.
pub fn core_versions(addr: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
    })
}

/// `/apis`: every named group with its versions, in registration order.
pub fn group_list(resources: &Resources) -> Value {
    let mut groups: Vec<String> = Vec::new();
    for t in resources.iter().filter(|t| !t.gvr.group.is_empty()) {
        if !groups.contains(&t.gvr.group) {
            groups.push(t.gvr.group.clone());
        }
    }
    let groups: Vec<Value> = groups.iter().filter_map(|g| group(resources, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, or None if no type of that group is registered.
pub fn group(resources: &Resources, name: &str) -> Option<Value> {
    let mut versions: Vec<&str> = Vec::new();
    for t in resources.iter().filter(|t| t.gvr.group == name) {
        if !versions.contains(&t.gvr.version.as_str()) {
            versions.push(&t.gvr.version);
        }
    }
    let entry = |v: &str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    let preferred = entry(versions.first()?);
    Some(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": versions.iter().map(|v| entry(v)).collect::<Vec<_>>(),
        "preferredVersion": preferred,
    }))
}

/// `/api/v1` or `/apis/<group>/<version>`, or None if nothing is
/// registered there.
pub fn resource_list(resources: &Resources, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> =
        resources.iter().filter(|t| t.gvr.group == group && t.gvr.version == version).collect();
    if types.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for t in types {
        let mut entry = json!({
            "name": t.gvr.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs(),
        });
        if !t.short_names.is_empty() {
            entry["shortNames"] = json!(t.short_names);
        }
        entries.push(entry);
        if t.status {
            entries.push(json!({
                "name": format!("{}/status", t.gvr.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}))
}

/// `/openapi/v3`: one document per group/version.
pub fn openapi_root(resources: &Resources) -> Value {
    let mut paths = serde_json::Map::new();
    for t in resources.iter() {
        let key = openapi_key(&t.gvr.group, &t.gvr.version);
        let url = format!("/openapi/v3/{key}?hash={}", fingerprint(&key));
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`: no
/// schemas, only each kind's PATCH operation declaring the
/// `fieldValidation` parameter, which is what kubectl reads to leave
/// validation to the server instead of validating against schemas itself.
pub fn openapi_group_version(resources: &Resources, key: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for t in resources.iter().filter(|t| openapi_key(&t.gvr.group, &t.gvr.version) == key) {
        let ns = if t.namespaced { "/namespaces/{namespace}" } else { "" };
        let path = format!("/{key}{ns}/{}/{{name}}", t.gvr.plural);
        let gvk = json!({"group": t.gvr.group, "version": t.gvr.version, "kind": t.kind});
        let patch = json!({
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(path, json!({"patch": patch}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{MAJOR}.{MINOR}.0-fake")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn openapi_key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// A stable hash for the document URL (clients cache by it).
fn fingerprint(s: &str) -> String {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{h:016X}")
}
