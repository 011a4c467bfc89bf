//! Label and field selectors of list and watch requests.

use crate::error::ApiError;
use serde_json::Value;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A field selector requirement: only `metadata.name` and
/// `metadata.namespace`, the fields every resource supports.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldReq {
    path: &'static str,
    value: String,
    equal: bool,
}

/// The selectors of a list or watch request; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Selector {
    pub fn parse(label_selector: Option<&str>, field_selector: Option<&str>) -> Result<Self, ApiError> {
        let labels = match label_selector {
            Some(s) => split_top_level(s).map(parse_label_req).collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let fields = match field_selector {
            Some(s) => split_top_level(s).map(parse_field_req).collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        Ok(Selector { labels, fields })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let meta = &object["metadata"];
        let label = |k: &str| meta["labels"][k].as_str();
        let labels_ok = self.labels.iter().all(|r| match r {
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
            LabelReq::In(k, vs) => label(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|v| vs.iter().all(|x| x != v)),
        });
        labels_ok
            && self.fields.iter().all(|f| {
                let actual = meta[f.path.trim_start_matches("metadata.")].as_str().unwrap_or("");
                (actual == f.value) == f.equal
            })
    }
}

/// Splits on commas outside parentheses, dropping empty parts.
fn split_top_level(s: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

fn parse_label_req(req: &str) -> Result<LabelReq, ApiError> {
    let bad = || ApiError::bad_request(format!("unable to parse requirement: {req:?}"));
    if let Some(key) = req.strip_prefix('!') {
        return Ok(LabelReq::NotExists(key.trim().into()));
    }
    if let Some((k, v)) = req.split_once("!=") {
        return Ok(LabelReq::NotIn(k.trim().into(), vec![v.trim().into()]));
    }
    if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        return Ok(LabelReq::In(k.trim().into(), vec![v.trim().into()]));
    }
    let mut words = req.splitn(2, char::is_whitespace);
    let key = words.next().ok_or_else(bad)?.to_string();
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(LabelReq::Exists(key));
    };
    let (op, set) = rest.split_once(char::is_whitespace).map(|(o, s)| (o, s.trim())).unwrap_or((rest, ""));
    let set = set.strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(bad)?;
    let values = set.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    match op {
        "in" => Ok(LabelReq::In(key, values)),
        "notin" => Ok(LabelReq::NotIn(key, values)),
        _ => Err(bad()),
    }
}

fn parse_field_req(req: &str) -> Result<FieldReq, ApiError> {
    let (key, value, equal) = if let Some((k, v)) = req.split_once("!=") {
        (k, v, false)
    } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        (k, v, true)
    } else {
        return Err(ApiError::bad_request(format!("invalid field selector: {req:?}")));
    };
    let path = match key.trim() {
        "metadata.name" => "metadata.name",
        "metadata.namespace" => "metadata.namespace",
        other => {
            return Err(ApiError::bad_request(format!("field label not supported by the fake API server: {other}")));
        }
    };
    Ok(FieldReq { path, value: value.trim().into(), equal })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web", "tier": "front"}}})
    }

    #[test]
    fn label_operators() {
        let m = |s: &str| Selector::parse(Some(s), None).unwrap().matches(&obj());
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("app in (api, web),!missing"));
        assert!(!m("app notin (web)"));
        assert!(m("missing notin (x)"));
        assert!(!m("tier in (back)"));
        assert!(m(""));
    }

    #[test]
    fn field_selectors() {
        let m = |s: &str| Selector::parse(None, Some(s)).unwrap().matches(&obj());
        assert!(m("metadata.name=a"));
        assert!(!m("metadata.name=b"));
        assert!(m("metadata.namespace==ns,metadata.name!=b"));
        assert!(Selector::parse(None, Some("spec.nodeName=x")).is_err());
        assert!(Selector::parse(Some("app in web"), None).is_err());
    }
}
