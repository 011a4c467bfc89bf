//! CustomResourceDefinitions for ProxyConfig, ServicePolicy and MeshBundle. Written into
//! every build (so a fresh cluster can apply the output as is) and committed
//! under `schemas/crds/` (a test fails when they drift).

use super::objects::{BUNDLE_KIND, GROUP, PROXY_CONFIG_KIND, SERVICE_POLICY_KIND, VERSION, document};
use serde_json::{Value, json};

/// (file name under `schemas/crds/`, YAML text), ProxyConfig first.
pub fn files() -> Vec<(&'static str, String)> {
    vec![
        ("proxyconfig.crd.yaml", document(&proxy_config())),
        ("servicepolicy.crd.yaml", document(&service_policy())),
        ("meshbundle.crd.yaml", document(&mesh_bundle())),
    ]
}

/// Both CRDs as one YAML stream, in the order of [`files`].
pub fn stream() -> String {
    files().into_iter().map(|(_, text)| text).collect()
}

fn string() -> Value {
    json!({"type": "string"})
}

fn digest() -> Value {
    json!({"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"})
}

fn workload_ref() -> Value {
    json!({
        "type": "object",
        "required": ["kind", "namespace", "name"],
        "properties": {"kind": string(), "namespace": string(), "name": string()}
    })
}

fn envelope() -> Value {
    json!({
        "type": "object",
        "description": "DSSE envelope; the signed payload format is in proxy/api/README.md.",
        "required": ["payloadType", "payload", "signatures"],
        "properties": {
            "payloadType": string(),
            "payload": {"type": "string", "description": "Standard base64 of RFC 8785 canonical JSON."},
            "signatures": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["keyid", "sig"],
                    "properties": {"keyid": string(), "sig": string()}
                }
            }
        }
    })
}

/// Written by the runtime, not by meshc: whether the config was accepted
/// (signature, workload) and applied. Open beyond `conditions` so the
/// runtime can grow fields without a CRD change.
fn status() -> Value {
    json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": {
                    "type": "object",
                    "required": ["type", "status"],
                    "properties": {
                        "type": string(),
                        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                        "reason": string(),
                        "message": string(),
                        "observedGeneration": {"type": "integer", "format": "int64"},
                        "lastTransitionTime": {"type": "string", "format": "date-time"}
                    }
                }
            }
        }
    })
}

fn crd(kind: &str, plural: &str, scope: &str, spec: Value, columns: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{GROUP}"),
            "labels": {"app.kubernetes.io/managed-by": "meshc"}
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural, "singular": kind.to_ascii_lowercase()},
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": string(),
                        "kind": string(),
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status()
                    }
                }}
            }]
        }
    })
}

fn proxy_config() -> Value {
    let spec = json!({
        "type": "object",
        "description": "A workload's signed proxy config. workload, identity and digest repeat the signed payload.",
        "required": ["workload", "identity", "digest", "envelope"],
        "properties": {"workload": workload_ref(), "identity": string(), "digest": digest(), "envelope": envelope()}
    });
    let columns = json!([
        {"name": "Kind", "type": "string", "jsonPath": ".spec.workload.kind"},
        {"name": "Workload", "type": "string", "jsonPath": ".spec.workload.name"},
        {"name": "Digest", "type": "string", "jsonPath": ".spec.digest", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    crd(PROXY_CONFIG_KIND, "proxyconfigs", "Namespaced", spec, columns)
}

fn audience() -> Value {
    json!({
        "type": "object",
        "description": "Which client namespaces see the Service so: allNamespaces (those without a view of their own), or one namespace.",
        "required": ["kind"],
        "properties": {"kind": {"type": "string", "enum": ["allNamespaces", "namespace"]}, "namespace": string()}
    })
}

fn service_policy() -> Value {
    let spec = json!({
        "type": "object",
        "description": "One Service's signed outbound policy as some client namespaces see it, shared by their proxies. service, audience and digest repeat the signed payload.",
        "required": ["service", "audience", "digest", "envelope"],
        "properties": {"service": string(), "audience": audience(), "digest": digest(), "envelope": envelope()}
    });
    let columns = json!([
        {"name": "Service", "type": "string", "jsonPath": ".spec.service"},
        {"name": "Audience", "type": "string", "jsonPath": ".spec.audience.kind"},
        {"name": "Digest", "type": "string", "jsonPath": ".spec.digest", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    crd(SERVICE_POLICY_KIND, "servicepolicies", "Namespaced", spec, columns)
}

fn mesh_bundle() -> Value {
    let entry = json!({
        "type": "object",
        "required": ["namespace", "name", "workload", "digest"],
        "properties": {"namespace": string(), "name": string(), "workload": workload_ref(), "digest": digest()}
    });
    let policy_entry = json!({
        "type": "object",
        "required": ["namespace", "name", "service", "audience", "digest"],
        "properties": {
            "namespace": string(), "name": string(), "service": string(), "audience": audience(), "digest": digest()
        }
    });
    let spec = json!({
        "type": "object",
        "description": "The signed list of every ProxyConfig and ServicePolicy of one build.",
        "required": ["sourceRevision", "meshcVersion", "keyId", "allowErrors", "errorFindings", "configs", "envelope"],
        "properties": {
            "sourceRevision": string(),
            "sequence": {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "description": "Monotonic per build (default: the source commit's committer time); the runtime and proxies refuse a lower one."
            },
            "meshcVersion": string(),
            "keyId": string(),
            "allowErrors": {"type": "boolean"},
            "errorFindings": {"type": "integer", "minimum": 0},
            "configs": {"type": "array", "items": entry},
            "servicePolicies": {"type": "array", "items": policy_entry},
            "envelope": envelope()
        }
    });
    let columns = json!([
        {"name": "Revision", "type": "string", "jsonPath": ".spec.sourceRevision"},
        {"name": "Sequence", "type": "integer", "jsonPath": ".spec.sequence"},
        {"name": "Key", "type": "string", "jsonPath": ".spec.keyId"},
        {"name": "AllowErrors", "type": "boolean", "jsonPath": ".spec.allowErrors"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    crd(BUNDLE_KIND, "meshbundles", "Cluster", spec, columns)
}
