//! PATCH bodies, by content type.

use crate::error::ApiError;
use http::StatusCode;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`, approximated as a merge
    /// patch with its `$` directives removed (lists are replaced whole).
    Strategic,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/apply-patch+yaml` (server-side apply), approximated: the
    /// applied object is merged over the live one, nothing is removed and no
    /// field ownership is tracked. The body must be JSON (kubectl and kube
    /// send JSON).
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            other => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                ),
            )),
        }
    }
}

/// The object after applying `body` to `live`.
pub fn apply(kind: PatchKind, live: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let mut doc = live.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e.to_string()))?;
        }
        PatchKind::Merge | PatchKind::Apply => json_patch::merge(&mut doc, &parse_object(body)?),
        PatchKind::Strategic => {
            let mut patch = parse_object(body)?;
            strip_directives(&mut patch);
            json_patch::merge(&mut doc, &patch);
        }
    }
    Ok(doc)
}

/// A merge-style patch body, which must be a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("patch body is not JSON: {e}")))?;
    if v.is_object() { Ok(v) } else { Err(ApiError::bad_request("patch body must be a JSON object")) }
}

/// Removes strategic-merge directives (`$patch`, `$retainKeys`,
/// `$setElementOrder/…`, `$deleteFromPrimitiveList/…`), which a plain merge
/// patch would otherwise store as fields.
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_removes_nulls_and_replaces_lists() {
        let live = json!({"spec": {"a": 1, "b": [1, 2], "c": 3}});
        let out = apply(PatchKind::Merge, &live, br#"{"spec": {"a": null, "b": [3]}}"#).unwrap();
        assert_eq!(out, json!({"spec": {"b": [3], "c": 3}}));
    }

    #[test]
    fn strategic_drops_directives() {
        let live = json!({"data": {"k": "v"}});
        let body = br#"{"$setElementOrder/x": [], "data": {"k": "w", "$retainKeys": ["k"]}}"#;
        let out = apply(PatchKind::Strategic, &live, body).unwrap();
        assert_eq!(out, json!({"data": {"k": "w"}}));
    }

    #[test]
    fn json_patch_and_errors() {
        let live = json!({"spec": {"n": 1}});
        let out = apply(PatchKind::Json, &live, br#"[{"op": "replace", "path": "/spec/n", "value": 2}]"#).unwrap();
        assert_eq!(out["spec"]["n"], 2);
        let err = apply(PatchKind::Json, &live, br#"[{"op": "remove", "path": "/nope"}]"#).unwrap_err();
        assert_eq!(err.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(apply(PatchKind::Merge, &live, b"[1]").is_err());
        assert!(PatchKind::from_content_type("text/plain").is_err());
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml; charset=utf-8").unwrap(),
            PatchKind::Apply
        );
    }
}
