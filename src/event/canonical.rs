//! Canonical JSON (spec appendix "Canonical JSON").
//!
//! Keys are sorted by codepoint, no insignificant whitespace, non-ASCII characters are emitted
//! as UTF-8, and numbers must be integers in `[-(2^53)+1, 2^53-1]`. Floats are rejected.

use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue};
use serde_json::Value;

use super::{EventError, Result};

/// The largest integer allowed in canonical JSON (`2^53 - 1`).
pub const MAX_SAFE_INT: i64 = (1 << 53) - 1;
/// The smallest integer allowed in canonical JSON (`-(2^53) + 1`).
pub const MIN_SAFE_INT: i64 = -MAX_SAFE_INT;

/// Check that `value` can be encoded as canonical JSON, reporting the path of the first
/// offending number.
pub fn validate(value: &Value) -> Result<()> {
    if numbers_in_range(value) {
        return Ok(());
    }
    // Only a value that fails pays for the walk that names the offending number.
    validate_at(value, &mut String::from("$"))
}

/// Whether every number in `value` is an integer in the canonical range (the check of
/// [`validate`], without building paths for its error message).
fn numbers_in_range(value: &Value) -> bool {
    match value {
        Value::Number(n) => n
            .as_i64()
            .is_some_and(|i| (MIN_SAFE_INT..=MAX_SAFE_INT).contains(&i)),
        Value::Array(items) => items.iter().all(numbers_in_range),
        Value::Object(map) => map.values().all(numbers_in_range),
        Value::Null | Value::Bool(_) | Value::String(_) => true,
    }
}

fn validate_at(value: &Value, path: &mut String) -> Result<()> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if !(MIN_SAFE_INT..=MAX_SAFE_INT).contains(&i) {
                    return Err(EventError::CanonicalJson(format!(
                        "integer {i} at {path} is outside [-(2^53)+1, 2^53-1]"
                    )));
                }
                Ok(())
            } else if n.is_u64() {
                Err(EventError::CanonicalJson(format!(
                    "integer {n} at {path} is outside [-(2^53)+1, 2^53-1]"
                )))
            } else {
                Err(EventError::CanonicalJson(format!(
                    "float {n} at {path} is not allowed"
                )))
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                validate_at(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, v) in map {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                validate_at(v, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Convert to `ruma`'s canonical JSON value (validating numbers first).
pub fn to_canonical_value(value: &Value) -> Result<CanonicalJsonValue> {
    validate(value)?;
    CanonicalJsonValue::try_from(value.clone())
        .map_err(|e| EventError::CanonicalJson(e.to_string()))
}

/// Convert a JSON object to `ruma`'s canonical JSON object; errors if `value` is not an object.
pub fn to_canonical_object(value: &Value) -> Result<CanonicalJsonObject> {
    match to_canonical_value(value)? {
        CanonicalJsonValue::Object(obj) => Ok(obj),
        _ => Err(EventError::CanonicalJson(
            "expected a JSON object".to_owned(),
        )),
    }
}

/// Convert a canonical JSON object back into a `serde_json::Value`.
pub fn from_canonical_object(obj: CanonicalJsonObject) -> Value {
    Value::from(CanonicalJsonValue::Object(obj))
}

/// Encode `value` as canonical JSON. Floats and out-of-range integers are errors.
///
/// `serde_json`'s objects are `BTreeMap`s (its `preserve_order` feature is off), so they
/// serialise with their keys sorted by code point (UTF-8 byte order is code point
/// order), compact, and with the escapes the grammar asks for: exactly the canonical form
/// once the numbers are checked, without first copying the value into `ruma`'s canonical
/// type (whose serialisation is the same `serde_json` writer; tested below).
pub fn canonical_json(value: &Value) -> Result<String> {
    validate(value)?;
    serde_json::to_string(value).map_err(|e| EventError::CanonicalJson(e.to_string()))
}

/// Parse JSON text and encode it canonically.
///
/// Unlike [`canonical_json`], numbers written with an exponent, a fraction or as `-0` are
/// accepted as long as they denote an integer in range (the appendix example
/// `{"a": -0, "b": 1e10}` gives `{"a":0,"b":10000000000}`); a number with a non-zero fraction
/// is still an error.
pub fn canonicalize_json_str(text: &str) -> Result<String> {
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| EventError::CanonicalJson(e.to_string()))?;
    integralise(&mut value)?;
    canonical_json(&value)
}

/// Replace floats that denote integers in range by those integers.
fn integralise(value: &mut Value) -> Result<()> {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 || !f.is_finite() || f.abs() > MAX_SAFE_INT as f64 {
                return Err(EventError::CanonicalJson(format!(
                    "number {n} is not an integer in range"
                )));
            }
            *value = Value::from(f as i64);
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(integralise),
        Value::Object(map) => map.values_mut().try_for_each(integralise),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every example of the appendix's "Canonical JSON / Examples" section, verbatim.
    #[test]
    fn appendix_examples() {
        let cases: &[(&str, &str)] = &[
            ("{}", "{}"),
            (r#"{ "one": 1, "two": "Two" }"#, r#"{"one":1,"two":"Two"}"#),
            (r#"{ "b": "2", "a": "1" }"#, r#"{"a":"1","b":"2"}"#),
            (r#"{"b":"2","a":"1"}"#, r#"{"a":"1","b":"2"}"#),
            (
                r#"{
                    "auth": {
                        "success": true,
                        "mxid": "@john.doe:example.com",
                        "profile": {
                            "display_name": "John Doe",
                            "three_pids": [
                                { "medium": "email", "address": "john.doe@example.org" },
                                { "medium": "msisdn", "address": "123456789" }
                            ]
                        }
                    }
                }"#,
                r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
            ),
            (r#"{ "a": "日本語" }"#, r#"{"a":"日本語"}"#),
            (r#"{ "本": 2, "日": 1 }"#, r#"{"日":1,"本":2}"#),
            (r#"{ "a": "\u65E5" }"#, r#"{"a":"日"}"#),
            (r#"{ "a": null }"#, r#"{"a":null}"#),
            (r#"{ "a": -0, "b": 1e10 }"#, r#"{"a":0,"b":10000000000}"#),
        ];
        for (input, expected) in cases {
            assert_eq!(
                canonicalize_json_str(input).unwrap(),
                *expected,
                "input: {input}"
            );
        }
    }

    #[test]
    fn value_encoding_matches_for_integer_examples() {
        let v = json!({"b": "2", "a": "1", "n": [3, {"z": true, "y": null}]});
        assert_eq!(
            canonical_json(&v).unwrap(),
            r#"{"a":"1","b":"2","n":[3,{"y":null,"z":true}]}"#
        );
    }

    #[test]
    fn direct_encoding_matches_ruma_canonical_value() {
        let v = json!({
            "zz": [1, -2, MAX_SAFE_INT, MIN_SAFE_INT, {"\u{e9}": "\u{1F600}", "Z": null, "a": false}],
            "a\u{0}b": "\u{7f}\u{2028}\"\\/",
            "": {"nested": {"deep": [[], {}]}},
            "\u{10000}": 0, "\u{ffff}": 1, "B": "x", "a": "y",
        });
        assert_eq!(
            canonical_json(&v).unwrap(),
            to_canonical_value(&v).unwrap().to_string()
        );
    }

    #[test]
    fn control_characters_are_escaped_per_grammar() {
        let v = json!({"a": "\u{0008}\t\n\u{000C}\r\"\\\u{0001}\u{001f}/"});
        assert_eq!(
            canonical_json(&v).unwrap(),
            r#"{"a":"\b\t\n\f\r\"\\\u0001\u001f/"}"#
        );
    }

    #[test]
    fn integer_range_limits() {
        assert_eq!(
            canonical_json(&json!({"a": MAX_SAFE_INT})).unwrap(),
            r#"{"a":9007199254740991}"#
        );
        assert_eq!(
            canonical_json(&json!({"a": MIN_SAFE_INT})).unwrap(),
            r#"{"a":-9007199254740991}"#
        );
        assert!(canonical_json(&json!({"a": MAX_SAFE_INT + 1})).is_err());
        assert!(canonical_json(&json!({"a": MIN_SAFE_INT - 1})).is_err());
        assert!(canonical_json(&json!({"a": u64::MAX})).is_err());
    }

    #[test]
    fn floats_are_rejected() {
        let err = canonical_json(&json!({"content": {"x": [1.5]}})).unwrap_err();
        assert_eq!(
            err,
            EventError::CanonicalJson("float 1.5 at $.content.x[0] is not allowed".to_owned())
        );
        assert!(canonical_json(&json!({"a": 1.0})).is_err());
        assert!(canonicalize_json_str(r#"{"a": 1.5}"#).is_err());
        assert!(canonicalize_json_str(r#"{"a": 1e300}"#).is_err());
    }
}
