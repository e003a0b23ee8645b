//! Third-party invites (pure): which public key of an `m.room.third_party_invite` event
//! signed the `signed` block an identity server gave for it. The auth rules (rule 5.4.1)
//! only ask that one does; the resident server that makes the invite also asks the
//! identity server whether that key is still valid (its `key_validity_url`).

use ruma::SigningKeyAlgorithm;
use serde_json::{Map, Value};

use super::canonical::canonical_json;
use super::hashes::decode_b64;

/// A public key of a third-party invite, with where to check that it is still valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteKey {
    /// Base64, as in the event.
    pub public_key: String,
    pub key_validity_url: Option<String>,
}

/// The keys of an `m.room.third_party_invite` event's content: every `public_keys[]`
/// entry, then the older top-level `public_key` (with the top-level `key_validity_url`).
pub fn invite_keys(content: &Map<String, Value>) -> Vec<InviteKey> {
    let mut keys = Vec::new();
    if let Some(Value::Array(list)) = content.get("public_keys") {
        for entry in list {
            if let Some(public_key) = entry.get("public_key").and_then(Value::as_str) {
                keys.push(InviteKey {
                    public_key: public_key.to_owned(),
                    key_validity_url: entry
                        .get("key_validity_url")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                });
            }
        }
    }
    if let Some(public_key) = content.get("public_key").and_then(Value::as_str)
        && !keys.iter().any(|k| k.public_key == public_key)
    {
        keys.push(InviteKey {
            public_key: public_key.to_owned(),
            key_validity_url: content
                .get("key_validity_url")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
    keys
}

/// The first key of the invite (`invite_content`) that verifies an ed25519 signature of
/// `signed` (the `third_party_invite.signed` object), if any.
pub fn signing_key(
    signed: &Map<String, Value>,
    invite_content: &Map<String, Value>,
) -> Option<InviteKey> {
    let Some(Value::Object(signatures)) = signed.get("signatures") else {
        return None;
    };
    let mut unsigned = signed.clone();
    unsigned.remove("signatures");
    unsigned.remove("unsigned");
    let bytes = canonical_json(&Value::Object(unsigned)).ok()?;
    let sigs: Vec<Vec<u8>> = signatures
        .values()
        .filter_map(Value::as_object)
        .flat_map(|by_key| by_key.iter())
        .filter(|(key_id, _)| key_id.starts_with("ed25519:"))
        .filter_map(|(_, sig)| sig.as_str().and_then(|s| decode_b64(s).ok()))
        .collect();
    invite_keys(invite_content).into_iter().find(|key| {
        let Ok(public) = decode_b64(&key.public_key) else {
            return false;
        };
        sigs.iter().any(|sig| {
            ruma::signatures::verify_canonical_json_bytes(
                &SigningKeyAlgorithm::Ed25519,
                &public,
                sig,
                bytes.as_bytes(),
            )
            .is_ok()
        })
    })
}

#[cfg(test)]
mod tests {
    use ruma::CanonicalJsonObject;
    use ruma::signatures::Ed25519KeyPair;
    use serde_json::json;

    use super::*;
    use crate::event::hashes::encode_b64;

    fn key() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate();
        Ed25519KeyPair::from_der(&doc, "0".into()).unwrap()
    }

    fn signed_by(key: &Ed25519KeyPair) -> Map<String, Value> {
        let mut object: CanonicalJsonObject =
            serde_json::from_value(json!({"mxid": "@a:x", "token": "t"})).unwrap();
        ruma::signatures::sign_json("id.example", key, &mut object).unwrap();
        match serde_json::to_value(object).unwrap() {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_key_that_signed_is_found_with_its_validity_url() {
        let (old, new) = (key(), key());
        let content = json!({
            "public_key": encode_b64(&old.public_key()),
            "key_validity_url": "https://id.example/old",
            "public_keys": [{
                "public_key": encode_b64(&new.public_key()),
                "key_validity_url": "https://id.example/new",
            }],
        });
        let content = content.as_object().unwrap();
        let found = signing_key(&signed_by(&old), content).unwrap();
        assert_eq!(
            found.key_validity_url.as_deref(),
            Some("https://id.example/old")
        );
        let found = signing_key(&signed_by(&new), content).unwrap();
        assert_eq!(
            found.key_validity_url.as_deref(),
            Some("https://id.example/new")
        );
        assert_eq!(signing_key(&signed_by(&key()), content), None);
        // A changed block no longer verifies.
        let mut tampered = signed_by(&old);
        tampered.insert("mxid".into(), json!("@b:x"));
        assert_eq!(signing_key(&tampered, content), None);
    }
}
