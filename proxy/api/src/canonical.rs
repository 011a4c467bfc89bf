//! RFC 8785 (JCS) canonical JSON, fast for the values meshc signs.
//!
//! `serde_jcs` is correct but spends most of a 10,000-workload build
//! formatting: about 0.5 s per 1,000 configs. For values without floats
//! (ProxyConfig and the bundle hold only strings, integers, booleans and
//! containers), JCS reduces to: object members sorted by their keys' UTF-16
//! code units, no whitespace, integers in decimal, and strings escaped as
//! JSON.stringify does (`\b \t \n \f \r`, other controls as lower-case
//! `\u00xx`, `"` and `\`), which is what serde_json writes. Values with a
//! float take the `serde_jcs` path, which implements ECMAScript number
//! formatting (so do integers beyond 2^53, which JCS rounds to doubles). A
//! property test holds both paths byte-equal.

use serde::Serialize;
use serde_json::Value;

/// RFC 8785 canonical JSON of `value`.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let tree = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(4096);
    if write(&tree, &mut out) { Ok(out) } else { serde_jcs::to_vec(value).map_err(|e| e.to_string()) }
}

/// Writes `v` canonically; `false` when it holds a float or an integer
/// beyond 2^53 (not handled here).
fn write(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        // JCS writes every number as an IEEE double: beyond 2^53 an integer
        // is rounded, which the serde_jcs path does.
        Value::Number(n) if n.is_f64() || n.as_i64().is_none_or(|i| i.unsigned_abs() > 1 << 53) => return false,
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if !write(item, out) {
                    return false;
                }
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted here, whatever order serde_json's Map keeps (it is an
            // insertion-ordered map when any crate enables `preserve_order`).
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                if !write(v, out) {
                    return false;
                }
            }
            out.push(b'}');
        }
    }
    true
}

fn string(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaping is JSON.stringify's; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x1f\"\\\\/\\x7f\u{2028}\u{e000}\u{10000}a-z]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z\u{e000}\u{10000}\u{ff}_]{0,5}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn equals_serde_jcs_on_values_without_floats(v in json()) {
            prop_assert_eq!(canonical_json(&v).unwrap(), serde_jcs::to_vec(&v).unwrap());
        }
    }

    #[test]
    fn floats_take_the_jcs_path() {
        let v = serde_json::json!({"b": 1e21, "a": [0.1, -0.0, 5.0]});
        assert_eq!(canonical_json(&v).unwrap(), serde_jcs::to_vec(&v).unwrap());
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+10000 is D800 DC00 in UTF-16, which sorts before U+E000; in UTF-8 it sorts after.
        let v = serde_json::json!({"\u{e000}": 1, "\u{10000}": 2, "a": 3});
        assert_eq!(canonical_json(&v).unwrap(), "{\"a\":3,\"\u{10000}\":2,\"\u{e000}\":1}".as_bytes());
    }
}
