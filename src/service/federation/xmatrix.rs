//! `X-Matrix` request signatures (spec "Request Authentication"): the origin signs the
//! JSON object of the method, the target (path and query), both server names and the
//! JSON-parsed body, and sends the signature in the `Authorization` header. Pure: keys
//! come in as arguments.

use ruma::ServerName;
use ruma::api::federation::authentication::XMatrix;
use serde_json::{Value, json};

use crate::event::{EventError, PublicKeyMap, SigningKey, sign_json, verify_json};

/// The object a request signature covers; `content` is the parsed body, if there is one.
pub fn request_object(
    method: &str,
    uri: &str,
    origin: &str,
    destination: &str,
    content: Option<&Value>,
) -> Value {
    let mut object = json!({
        "method": method,
        "uri": uri,
        "origin": origin,
        "destination": destination,
    });
    if let Some(content) = content {
        object["content"] = content.clone();
    }
    object
}

/// The `Authorization` header value for a request from `key`'s server to `destination`,
/// written as the spec advises for older servers: lower-case names, quoted values, no
/// spaces after the commas.
pub fn authorization(
    key: &SigningKey,
    destination: &ServerName,
    method: &str,
    uri: &str,
    content: Option<&Value>,
) -> Result<String, EventError> {
    let origin = key.server_name().as_str();
    let mut object = request_object(method, uri, origin, destination.as_str(), content);
    sign_json(&mut object, key)?;
    let sig = object["signatures"][origin][key.key_id()]
        .as_str()
        .ok_or_else(|| EventError::Signature("signing gave no signature".into()))?;
    Ok(format!(
        "X-Matrix origin=\"{origin}\",destination=\"{destination}\",key=\"{}\",sig=\"{sig}\"",
        key.key_id()
    ))
}

/// Why an incoming request's signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the request is addressed to {0}, not to this server")]
    WrongDestination(String),
    #[error("the X-Matrix signature does not match the request: {0}")]
    Invalid(String),
}

/// Parses an `Authorization` header value (typed, by ruma). Values are accepted
/// unquoted even with a colon in them (`origin=example.org:8448`), as the spec asks for
/// older servers' sake.
pub fn parse_header(value: &str) -> Result<XMatrix, String> {
    XMatrix::parse(quote_values(value)?).map_err(|e| e.to_string())
}

/// Rewrites `X-Matrix a=b, c="d"` as `X-Matrix a="b",c="d"`, the form ruma's strict
/// RFC 9110 parser takes.
fn quote_values(value: &str) -> Result<String, String> {
    let value = value.trim();
    let scheme_end = value
        .find([' ', '\t'])
        .ok_or("expected `X-Matrix` followed by parameters")?;
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("X-Matrix") {
        return Err(format!("the scheme is {scheme:?}, not X-Matrix"));
    }
    let mut params = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for c in rest.chars() {
        if in_quotes {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == ',' {
            params.push(std::mem::take(&mut current));
        } else {
            if c == '"' {
                in_quotes = true;
            }
            current.push(c);
        }
    }
    if in_quotes {
        return Err("unterminated quoted value".into());
    }
    params.push(current);
    let mut out = Vec::new();
    for param in params {
        let param = param.trim_matches([' ', '\t']);
        if param.is_empty() {
            continue;
        }
        let (name, val) = param
            .split_once('=')
            .ok_or_else(|| format!("parameter {param:?} has no value"))?;
        let (name, val) = (
            name.trim_matches([' ', '\t']),
            val.trim_matches([' ', '\t']),
        );
        if val.starts_with('"') {
            out.push(format!("{name}={val}"));
        } else if val.contains(['"', '\\']) {
            return Err(format!("malformed value of {name}"));
        } else {
            out.push(format!("{name}=\"{val}\""));
        }
    }
    Ok(format!("X-Matrix {}", out.join(",")))
}

/// Checks `header` against the request it came with. `keys` must hold the origin's key
/// named in the header; `our_name` is this server's name, which a `destination` in the
/// header must equal (and which is signed over when the header has none).
pub fn verify(
    header: &XMatrix,
    our_name: &ServerName,
    method: &str,
    uri: &str,
    content: Option<&Value>,
    keys: &PublicKeyMap,
) -> Result<(), SignatureError> {
    if let Some(destination) = &header.destination
        && destination.as_str() != our_name.as_str()
    {
        return Err(SignatureError::WrongDestination(destination.to_string()));
    }
    let origin = header.origin.as_str();
    let mut object = request_object(method, uri, origin, our_name.as_str(), content);
    object["signatures"] = json!({ origin: { header.key.as_str(): header.sig.encode() } });
    verify_json(&object, origin, keys).map_err(|e| SignatureError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";

    fn key() -> SigningKey {
        SigningKey::from_seed_base64("origin.example", "ed25519:k1", SEED).unwrap()
    }

    fn dest() -> &'static ServerName {
        <&ServerName>::try_from("dest.example:8448").unwrap()
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let key = key();
        let keys = key.public_key_map();
        let body = json!({"pdus": [], "edus": [{"edu_type": "m.typing"}]});
        let uri = "/_matrix/federation/v1/send/123?x=1";
        let value = authorization(&key, dest(), "PUT", uri, Some(&body)).unwrap();
        assert!(value.starts_with("X-Matrix origin=\"origin.example\",destination=\"dest.example:8448\",key=\"ed25519:k1\",sig=\""));
        let header = parse_header(&value).unwrap();
        assert_eq!(header.origin.as_str(), "origin.example");
        verify(&header, dest(), "PUT", uri, Some(&body), &keys).unwrap();

        let invalid = |method: &str, uri: &str, body: Option<&Value>| {
            matches!(
                verify(&header, dest(), method, uri, body, &keys),
                Err(SignatureError::Invalid(_))
            )
        };
        assert!(invalid("POST", uri, Some(&body)));
        assert!(invalid(
            "PUT",
            "/_matrix/federation/v1/send/123?x=2",
            Some(&body)
        ));
        assert!(invalid("PUT", uri, Some(&json!({"pdus": []}))));
        assert!(invalid("PUT", uri, None));
        let other = <&ServerName>::try_from("other.example").unwrap();
        assert_eq!(
            verify(&header, other, "PUT", uri, Some(&body), &keys),
            Err(SignatureError::WrongDestination("dest.example:8448".into()))
        );
        let (stranger, _) = SigningKey::generate("origin.example", "ed25519:k1").unwrap();
        assert!(matches!(
            verify(
                &header,
                dest(),
                "PUT",
                uri,
                Some(&body),
                &stranger.public_key_map()
            ),
            Err(SignatureError::Invalid(_))
        ));
    }

    #[test]
    fn a_header_without_destination_is_checked_against_our_name() {
        let key = key();
        let value = authorization(&key, dest(), "GET", "/x", None).unwrap();
        let sig = parse_header(&value).unwrap().sig.encode();
        // Older servers send no destination; they signed for us all the same.
        let old_style = format!("X-Matrix origin=origin.example,key=\"ed25519:k1\",sig=\"{sig}\"");
        let header = parse_header(&old_style).unwrap();
        assert!(header.destination.is_none());
        verify(&header, dest(), "GET", "/x", None, &key.public_key_map()).unwrap();
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "Bearer abc",
            "X-Matrix origin=origin.example,key=\"ed25519:k1\"",
            "X-Matrix key=\"ed25519:k1\",sig=\"abc\"",
            "X-Matrix origin=\"not a name\",key=\"ed25519:k1\",sig=\"abc\"",
            "X-Matrix origin=o.example,key=\"nokeyid\",sig=\"abc\"",
            "X-Matrix origin=o.example,key=\"ed25519:k1\",sig=\"!!!\"",
            "X-Matrix origin=o.example,origin=p.example,key=\"ed25519:k1\",sig=\"abc\"",
            "X-Matrix origin=\"o.example,key=\"ed25519:k1\",sig=\"abc\"",
            "X-Matrix origin=o\"x.example,key=\"ed25519:k1\",sig=\"abc\"",
            "X-Matrix origin,key=\"ed25519:k1\",sig=\"abc\"",
            "X-Matrix",
            "",
        ] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }

    /// The spec's example header, with the older forms it tells recipients to accept.
    #[test]
    fn spec_header_forms_parse() {
        let header = parse_header(
            "X-Matrix origin=\"origin.hs.example.com\",destination=\"destination.hs.example.com\",key=\"ed25519:key1\",sig=\"ABCDEF\"",
        )
        .unwrap();
        assert_eq!(header.key.as_str(), "ed25519:key1");
        let header = parse_header(
            "X-Matrix  origin=origin.hs.example.com:8448 , KEY=ed25519:key1,sig=ABCDEF",
        )
        .unwrap();
        assert_eq!(header.origin.as_str(), "origin.hs.example.com:8448");
    }
}
