//! Kubernetes label selector semantics, as Linkerd evaluates them
//! (`k8s/api/src/labels.rs`): an illegal requirement matches nothing.

use crate::model::meta::LabelSelector;
use std::collections::{BTreeMap, HashMap};

pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|req| {
            let value = labels.get(&req.key);
            match (req.operator.as_str(), &req.values) {
                ("In", Some(values)) => value.is_some_and(|v| values.contains(v)),
                ("NotIn", Some(values)) => value.is_none_or(|v| !values.contains(v)),
                ("Exists", None) => value.is_some(),
                ("DoesNotExist", None) => value.is_none(),
                _ => false,
            }
        })
}

/// Candidate lookup for many selectors against many label sets: a selector
/// with `matchLabels` is filed under one of its pairs, so a label set only
/// meets selectors that share a pair with it (or have no matchLabels).
/// Candidates still go through [`matches`]; the index only skips misses.
pub struct SelectorIndex<T> {
    by_pair: HashMap<(String, String), Vec<(usize, T)>>,
    unindexed: Vec<(usize, T)>,
}

impl<T: Copy> SelectorIndex<T> {
    /// `items` in priority order; candidates come back in that order.
    pub fn new<'a>(items: impl IntoIterator<Item = (T, Option<&'a LabelSelector>)>) -> Self {
        let mut index = SelectorIndex { by_pair: HashMap::new(), unindexed: Vec::new() };
        for (rank, (item, selector)) in items.into_iter().enumerate() {
            match selector.and_then(|s| s.match_labels.iter().next()) {
                Some((k, v)) => index.by_pair.entry((k.clone(), v.clone())).or_default().push((rank, item)),
                None => index.unindexed.push((rank, item)),
            }
        }
        index
    }

    pub fn candidates(&self, labels: &BTreeMap<String, String>) -> Vec<T> {
        let mut found: Vec<(usize, T)> = self.unindexed.clone();
        for (k, v) in labels {
            if let Some(items) = self.by_pair.get(&(k.clone(), v.clone())) {
                found.extend_from_slice(items);
            }
        }
        found.sort_unstable_by_key(|(rank, _)| *rank);
        found.into_iter().map(|(_, item)| item).collect()
    }
}

/// Why a requirement can never match, for a finding; `None` when it is legal.
pub fn illegal_requirement(selector: &LabelSelector) -> Option<String> {
    selector.match_expressions.iter().find_map(|req| match (req.operator.as_str(), &req.values) {
        ("In" | "NotIn", Some(_)) | ("Exists" | "DoesNotExist", None) => None,
        ("In" | "NotIn", None) => Some(format!("`{}` on `{}` needs `values`", req.operator, req.key)),
        ("Exists" | "DoesNotExist", Some(_)) => {
            Some(format!("`{}` on `{}` must not have `values`", req.operator, req.key))
        }
        (op, _) => Some(format!("unknown operator `{op}` on `{}`", req.key)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::meta::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    fn req(key: &str, op: &str, values: Option<&[&str]>) -> LabelSelector {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: values.map(|v| v.iter().map(|s| (*s).into()).collect()),
            }],
        }
    }

    #[test]
    fn semantics_table() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(matches(&LabelSelector::default(), &l), "empty selects all");
        assert!(matches(&req("app", "In", Some(&["web", "x"])), &l));
        assert!(!matches(&req("app", "NotIn", Some(&["web"])), &l));
        assert!(matches(&req("missing", "NotIn", Some(&["web"])), &l), "NotIn on a missing key matches");
        assert!(matches(&req("app", "Exists", None), &l));
        assert!(!matches(&req("app", "Exists", Some(&[])), &l), "Exists with values is illegal → false");
        assert!(!matches(&req("app", "In", None), &l), "In without values is illegal → false");
        assert!(matches(&req("x", "DoesNotExist", None), &l));
        assert!(!matches(&req("app", "Equals", Some(&["web"])), &l));
    }
}
