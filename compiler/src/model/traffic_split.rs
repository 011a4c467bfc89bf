//! TrafficSplit (`split.smi-spec.io`), served by the linkerd-smi extension
//! (docs/semantics/smi.md). Its CRD (`charts/linkerd-smi/templates/
//! trafficsplit-crd.yaml`, conversion `None`) serves v1alpha1 (storage;
//! `weight` int-or-string) and v1alpha2 (`weight` a number); the adaptor
//! reads every object through the v1alpha1 Go type, where the weight is a
//! `resource.Quantity`. v1alpha3 and v1alpha4 exist in the SMI SDK but not
//! in that CRD, so the API server refuses them.

use super::{Resource, quantity};
use crate::findings::{Code, Finding};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

pub const SMI_SPLIT_GROUP: &str = "split.smi-spec.io";

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct TrafficSplitSpec {
    /// The apex Service: clients call it, and linkerd-smi writes the split
    /// into the dstOverrides of its ServiceProfile.
    pub service: String,
    pub backends: Vec<TrafficSplitBackend>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct TrafficSplitBackend {
    /// A Service in the TrafficSplit's namespace.
    pub service: String,
    /// v1alpha1: an integer or a quantity string (`500m`); v1alpha2: a number.
    pub weight: Value,
}

/// What the API server refuses (the version's weight type), and what it
/// stores but linkerd-smi's adaptor cannot decode (a string that is no
/// Kubernetes quantity: the v1alpha1 informer's list fails). Either way
/// nothing of the object reaches a ServiceProfile, so it is left out.
pub fn admit(r: &Resource, t: &TrafficSplitSpec, findings: &mut Vec<Finding>) -> bool {
    let mut ok = true;
    for (i, b) in t.backends.iter().enumerate() {
        let Err(why) = weight_in_version(&r.version, &b.weight) else { continue };
        ok = false;
        let msg = format!("TrafficSplit {} backend {} weight: {why}; no split from it applies", r.name(), b.service);
        let at = r.span_at(&["spec", "backends", &i.to_string(), "weight"]);
        findings.push(Finding::new(Code::SchemaViolation, at, msg).resource(r.id.clone()));
    }
    ok
}

fn weight_in_version(version: &str, w: &Value) -> Result<(), String> {
    match (version, w) {
        ("v1alpha2", Value::Number(_)) => Ok(()),
        ("v1alpha2", _) => Err("v1alpha2 types it as a number; the API server rejects the object".to_owned()),
        (_, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        (_, Value::Number(n)) => Err(format!(
            "{n} is neither an integer nor a string (v1alpha1's int-or-string); the API server rejects the object \
             (write it as a quantity string, e.g. \"500m\")"
        )),
        (_, Value::String(s)) => milli_value(s).map(|_| ()).map_err(|e| {
            format!(
                "{e}; the API server stores it, but linkerd-smi's adaptor cannot decode it and its TrafficSplit \
                 informer fails to list"
            )
        }),
        _ => Err("an int-or-string is required; the API server rejects the object".to_owned()),
    }
}

/// The weight as Linkerd's destination controller sends it to the proxy:
/// `uint32(weight.MilliValue() * 10)` (`profile_translator.go`,
/// `toDstOverrides`), decimilli. Go's conversion keeps the low 32 bits, so a
/// negative weight becomes a huge one; this does the same.
pub fn decimilli(w: &Value) -> Option<u32> {
    let milli = match w {
        Value::Number(n) => milli_value(&n.to_string()).ok()?,
        Value::String(s) => milli_value(s).ok()?,
        _ => return None,
    };
    Some(milli.wrapping_mul(10) as u32)
}

/// A weight as `MilliValue` reads it: thousandths, rounded up (the
/// quantity grammar is [`quantity`]'s, shared with ServiceProfile weights).
pub fn milli_value(text: &str) -> Result<i64, String> {
    quantity::parse(text.trim())?.milli_value().ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_milli_values() {
        // The corpus's weights: "Identical to resources, 1 = 1000m".
        assert_eq!(milli_value("1"), Ok(1000));
        assert_eq!(milli_value("1000m"), Ok(1000));
        assert_eq!(milli_value("250m"), Ok(250));
        assert_eq!(milli_value("0"), Ok(0));
        assert_eq!(milli_value("0.5"), Ok(500));
        assert_eq!(milli_value("+.5"), Ok(500));
        assert_eq!(milli_value("1k"), Ok(1_000_000));
        assert_eq!(milli_value("1Ki"), Ok(1_024_000));
        assert_eq!(milli_value("1e3"), Ok(1_000_000));
        assert_eq!(milli_value("-1"), Ok(-1000));
        // MilliValue rounds up below a thousandth.
        assert_eq!(milli_value("1u"), Ok(1));
        assert_eq!(milli_value("1500u"), Ok(2));
        for bad in ["", "m", "1.2.3", "1x", "abc", "1e", "1e99", "99999999999999999999999999999999"] {
            assert!(milli_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_become_decimilli_as_the_destination_controller_sends_them() {
        assert_eq!(decimilli(&Value::String("500m".into())), Some(5000));
        assert_eq!(decimilli(&serde_json::json!(1)), Some(10_000));
        assert_eq!(decimilli(&serde_json::json!(90)), Some(900_000));
        assert_eq!(decimilli(&serde_json::json!(0.25)), Some(2500));
        // uint32(int64) keeps the low bits: -1 is -10000 decimilli.
        assert_eq!(decimilli(&Value::String("-1".into())), Some(10_000u32.wrapping_neg()));
        assert_eq!(decimilli(&Value::Bool(true)), None);
    }

    #[test]
    fn weight_types_follow_the_served_version() {
        assert!(weight_in_version("v1alpha1", &serde_json::json!(5)).is_ok());
        assert!(weight_in_version("v1alpha1", &serde_json::json!("750m")).is_ok());
        assert!(weight_in_version("v1alpha1", &serde_json::json!(0.5)).is_err());
        assert!(weight_in_version("v1alpha1", &serde_json::json!("half")).is_err());
        assert!(weight_in_version("v1alpha2", &serde_json::json!(0.5)).is_ok());
        assert!(weight_in_version("v1alpha2", &serde_json::json!("500m")).is_err());
    }
}
