//! The values a Helm release renders its chart with, computed as the
//! controllers do before they call Helm. Flux's helm-controller merges each
//! `valuesFrom` entry in order (a ConfigMap's or Secret's key `values.yaml`
//! unless `valuesKey` says otherwise; with `targetPath`, the key's text set
//! at that dotted path), then `spec.values` over them. Argo CD passes the
//! chart's `valueFiles`, then `valuesObject` (else `values`), then each of
//! `parameters` as `--set`.

use crate::load::flux::vars::DataSources;
use crate::load::yaml::{self, Node, Value};
use serde_json::{Map, Value as J};

/// What the release gives `helm template` besides the chart.
#[derive(Debug, Default)]
pub struct Values {
    /// `--values` files named by the release, as paths relative to the chart.
    pub files: Vec<String>,
    /// Values written in the release (passed as one more `--values` file, after `files`).
    pub inline: Option<J>,
    /// `--set` (false) and `--set-string` (true) arguments, `name=value`.
    pub set: Vec<(bool, String)>,
}

/// The values of a Flux HelmRelease in `namespace`, or why they are unknown:
/// a `valuesFrom` entry that is not optional and that the repository does
/// not hold fails the release in Flux (fluxcd/pkg `chartutil.ChartValuesFromReferences`),
/// so meshc does not render it.
pub fn flux(spec: &Node, namespace: Option<&str>, data: &DataSources) -> Result<Values, String> {
    let known = flux_known(spec, namespace, data);
    if let Some(missing) = known.unknown.iter().find(|u| u.fails_release) {
        return Err(missing.why.clone());
    }
    Ok(Values { inline: Some(known.values), ..Values::default() })
}

/// A `valuesFrom` entry whose values meshc cannot read.
#[derive(Debug)]
pub struct UnknownEntry<'n> {
    /// The entry in `spec.valuesFrom`.
    pub entry: &'n Node,
    /// `optional: true`: Flux skips it when it is missing.
    pub optional: bool,
    /// Flux fails the release on it: missing and not optional, or not YAML
    /// (`optional` skips only a missing object or key).
    pub fails_release: bool,
    /// What is missing or unreadable, in words.
    pub why: String,
}

/// The values of a Flux HelmRelease as far as the repository holds them:
/// every `valuesFrom` entry it holds, merged in order, then `spec.values`,
/// and the entries it does not hold (or cannot read), in order.
pub struct KnownValues<'n> {
    pub values: J,
    pub unknown: Vec<UnknownEntry<'n>>,
}

/// See [`KnownValues`]; [`flux`] is this, failing on an entry that is not optional.
pub fn flux_known<'n>(spec: &'n Node, namespace: Option<&str>, data: &DataSources) -> KnownValues<'n> {
    let mut merged = J::Object(Map::new());
    let mut unknown = Vec::new();
    for entry in seq(spec.get("valuesFrom")) {
        let text = |k: &str| entry.get(k).and_then(Node::as_str);
        let kind = text("kind").unwrap_or("ConfigMap");
        let Some(name) = text("name") else { continue };
        let key = text("valuesKey").unwrap_or("values.yaml");
        let optional = entry.get("optional").is_some_and(|o| o.value == Value::Bool(true));
        let found = data.get(kind, namespace, name).and_then(|d| d.iter().find(|(k, _)| k == key));
        let Some((_, value)) = found else {
            let ns = namespace.unwrap_or("default");
            let why =
                format!("its valuesFrom names key {key} of {kind} {ns}/{name}, which the repository does not hold");
            unknown.push(UnknownEntry { entry, optional, fails_release: !optional, why });
            continue;
        };
        match text("targetPath") {
            Some(path) => set_path(&mut merged, path, J::String(value.clone())),
            None => match yaml::parse_documents(value) {
                Ok(doc) => {
                    if let Some(doc) = doc.first() {
                        merge(&mut merged, doc.to_json());
                    }
                }
                Err(e) => {
                    let why = format!("key {key} of {kind} {name} is not YAML: {} (line {})", e.message, e.line);
                    unknown.push(UnknownEntry { entry, optional, fails_release: true, why });
                }
            },
        }
    }
    if let Some(values) = spec.get("values") {
        merge(&mut merged, values.to_json());
    }
    KnownValues { values: merged, unknown }
}

/// The values of an Argo CD source's `helm` section (absent: none).
pub fn argo(helm: Option<&Node>) -> Values {
    let Some(helm) = helm else { return Values::default() };
    let files = seq(helm.get("valueFiles")).iter().filter_map(Node::as_str).map(str::to_owned).collect();
    let inline = match (helm.get("valuesObject"), helm.get("values")) {
        (Some(object), _) => Some(object.to_json()),
        // `values` is a block of YAML text.
        (None, Some(text)) => text.as_str().and_then(|t| yaml::parse_documents(t).ok()?.first().map(Node::to_json)),
        (None, None) => None,
    };
    let set = seq(helm.get("parameters"))
        .iter()
        .filter_map(|p| {
            let name = p.get("name").and_then(Node::as_str)?;
            let value = p.get("value").map(|v| v.to_json()).unwrap_or(J::Null);
            let value = match value {
                J::String(s) => s,
                J::Null => String::new(),
                other => other.to_string(),
            };
            let string = p.get("forceString").is_some_and(|f| f.value == Value::Bool(true));
            Some((string, format!("{name}={value}")))
        })
        .collect();
    Values { files, inline, set }
}

fn seq(node: Option<&Node>) -> &[Node] {
    match node.map(|n| &n.value) {
        Some(Value::Seq(items)) => items,
        _ => &[],
    }
}

/// Maps merge key by key; any other value replaces what was there (Helm's
/// and Flux's merge of values).
fn merge(into: &mut J, from: J) {
    match (into, from) {
        (J::Object(a), J::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, from) => *slot = from,
    }
}

/// Sets `a.b.c` to `value`, making maps on the way.
fn set_path(into: &mut J, path: &str, value: J) {
    let mut at = into;
    for part in path.split('.') {
        if !at.is_object() {
            *at = J::Object(Map::new());
        }
        let J::Object(map) = at else { return };
        at = map.entry(part.to_owned()).or_insert(J::Null);
    }
    *at = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::objects::objects_of;

    #[test]
    fn flux_merges_values_from_in_order_then_inline_values() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: base, namespace: apps}\ndata:\n  values.yaml: |\n    port: 80\n    image: {tag: a, pull: Always}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: tag, namespace: apps}\nstringData: {v: b}\n";
        let (objects, _) = objects_of(0, "d.yaml", text);
        let data = DataSources::collect(&objects);
        let spec = yaml::parse_documents(
            "valuesFrom:\n- {kind: ConfigMap, name: base}\n- {kind: Secret, name: tag, valuesKey: v, targetPath: image.tag}\n- {kind: ConfigMap, name: absent, optional: true}\nvalues: {port: 8080}\n",
        )
        .unwrap()
        .remove(0);
        let values = flux(&spec, Some("apps"), &data).unwrap();
        let expected = serde_json::json!({"port": 8080, "image": {"tag": "b", "pull": "Always"}});
        assert_eq!(values.inline, Some(expected));
        let missing = yaml::parse_documents("valuesFrom: [{name: gone}]\n").unwrap().remove(0);
        let err = flux(&missing, Some("apps"), &data).unwrap_err();
        assert!(err.contains("ConfigMap apps/gone"), "{err}");
    }

    #[test]
    fn argo_passes_files_then_object_then_parameters() {
        let helm = yaml::parse_documents(
            "valueFiles: [values-prod.yaml]\nvalues: |\n  a: 1\nvaluesObject: {a: 2}\nparameters:\n- {name: b.c, value: \"3\"}\n- {name: d, value: x, forceString: true}\n",
        )
        .unwrap()
        .remove(0);
        let v = argo(Some(&helm));
        assert_eq!(v.files, ["values-prod.yaml"]);
        assert_eq!(v.inline, Some(serde_json::json!({"a": 2})), "valuesObject wins over values");
        assert_eq!(v.set, [(false, "b.c=3".to_owned()), (true, "d=x".to_owned())]);
    }
}
