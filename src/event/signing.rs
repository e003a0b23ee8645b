//! ed25519 signing keys, JSON and event signatures (via `ruma::signatures`), and a builder for
//! complete signed PDUs.

use std::collections::BTreeMap;

use ruma::canonical_json::CanonicalJsonObject;
use ruma::serde::Base64;
use ruma::signatures::{self as rs, Ed25519KeyPair};
use ruma::{OwnedEventId, OwnedRoomId, OwnedServerName, OwnedUserId, ServerName};
use serde_json::{Value, json};

use super::canonical::{from_canonical_object, to_canonical_object};
use super::hashes::{decode_b64, encode_b64};
use super::{EventError, Result, RoomVersion, types};

/// Public keys to verify with: server name → (key ID such as `ed25519:abc` → unpadded base64
/// public key).
pub type PublicKeyMap = BTreeMap<String, BTreeMap<String, String>>;

/// The DER prefix of a PKCS#8 v1 document wrapping a raw 32-byte ed25519 seed (RFC 8410).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A server's ed25519 signing key, with the server name and key ID it signs as.
pub struct SigningKey {
    server_name: OwnedServerName,
    key_id: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("server_name", &self.server_name)
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

/// Validate `ed25519:VERSION` and return `VERSION`.
fn key_version(key_id: &str) -> Result<&str> {
    let version = key_id.strip_prefix("ed25519:").ok_or_else(|| {
        EventError::InvalidKey(format!("key ID {key_id:?} must start with `ed25519:`"))
    })?;
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(EventError::InvalidKey(format!(
            "key ID {key_id:?} must be `ed25519:` followed by [a-zA-Z0-9_]+"
        )));
    }
    Ok(version)
}

fn parse_server(server_name: &str) -> Result<OwnedServerName> {
    ServerName::parse(server_name)
        .map_err(|e| EventError::InvalidKey(format!("bad server name {server_name:?}: {e}")))
}

impl SigningKey {
    /// Build a key from a raw 32-byte ed25519 seed.
    pub fn from_seed(server_name: &str, key_id: &str, seed: &[u8; 32]) -> Result<Self> {
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(seed);
        Self::from_pkcs8_der(server_name, key_id, &der)
    }

    /// Build a key from an (unpadded) base64 seed, as in the spec's test vectors.
    pub fn from_seed_base64(server_name: &str, key_id: &str, seed: &str) -> Result<Self> {
        let bytes: [u8; 32] = decode_b64(seed)?
            .try_into()
            .map_err(|_| EventError::InvalidKey("seed must be 32 bytes".to_owned()))?;
        Self::from_seed(server_name, key_id, &bytes)
    }

    /// Build a key from a PKCS#8 DER document (as produced by [`SigningKey::generate`]).
    pub fn from_pkcs8_der(server_name: &str, key_id: &str, der: &[u8]) -> Result<Self> {
        let version = key_version(key_id)?;
        let pair = Ed25519KeyPair::from_der(der, version.to_owned())
            .map_err(|e| EventError::InvalidKey(e.to_string()))?;
        Ok(Self {
            server_name: parse_server(server_name)?,
            key_id: key_id.to_owned(),
            pair,
        })
    }

    /// Generate a new random key; returns it with its PKCS#8 DER document for storage.
    pub fn generate(server_name: &str, key_id: &str) -> Result<(Self, Vec<u8>)> {
        let der = Ed25519KeyPair::generate().to_vec();
        Ok((Self::from_pkcs8_der(server_name, key_id, &der)?, der))
    }

    /// The server this key signs for.
    pub fn server_name(&self) -> &ServerName {
        &self.server_name
    }
    /// The key ID, `ed25519:VERSION`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// The raw public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.pair.public_key()
    }
    /// The public key as unpadded base64.
    pub fn public_key_base64(&self) -> String {
        encode_b64(&self.public_key())
    }
    /// A [`PublicKeyMap`] containing only this key.
    pub fn public_key_map(&self) -> PublicKeyMap {
        let mut map = PublicKeyMap::new();
        self.add_to(&mut map);
        map
    }
    /// Add this key's public key to `map`.
    pub fn add_to(&self, map: &mut PublicKeyMap) {
        map.entry(self.server_name.to_string())
            .or_default()
            .insert(self.key_id.clone(), self.public_key_base64());
    }
}

fn to_ruma_keys(keys: &PublicKeyMap) -> Result<rs::PublicKeyMap> {
    keys.iter()
        .map(|(server, set)| {
            let set = set
                .iter()
                .map(|(id, key)| {
                    Base64::parse(key)
                        .map(|k| (id.clone(), k))
                        .map_err(|e| EventError::InvalidKey(format!("bad public key {key:?}: {e}")))
                })
                .collect::<Result<_>>()?;
            Ok((server.clone(), set))
        })
        .collect()
}

fn object_mut(value: &mut Value) -> Result<&mut serde_json::Map<String, Value>> {
    value
        .as_object_mut()
        .ok_or_else(|| EventError::invalid("expected a JSON object"))
}

/// Sign a JSON object (spec "Signing JSON"): the signature covers the canonical JSON without
/// `signatures` and `unsigned`, and is added under `signatures.<server>.<key id>`.
pub fn sign_json(value: &mut Value, key: &SigningKey) -> Result<()> {
    let mut obj = to_canonical_object(value)?;
    rs::sign_json(key.server_name.as_str(), &key.pair, &mut obj)
        .map_err(|e| EventError::Signature(e.to_string()))?;
    *value = from_canonical_object(obj);
    Ok(())
}

/// Check that `entity` signed `value` (spec "Checking for a Signature"): every signature of
/// `entity` made with a key present in `keys` must verify, and there must be at least one.
/// Signatures of other entities are ignored.
pub fn verify_json(value: &Value, entity: &str, keys: &PublicKeyMap) -> Result<()> {
    let mut obj = to_canonical_object(value)?;
    let sigs = obj
        .get("signatures")
        .and_then(|s| s.as_object())
        .and_then(|s| s.get(entity))
        .cloned()
        .ok_or_else(|| EventError::Signature(format!("no signatures from {entity}")))?;
    let only_entity: CanonicalJsonObject = [(entity.to_owned(), sigs)].into_iter().collect();
    obj.insert("signatures".to_owned(), only_entity.into());
    rs::verify_json(&to_ruma_keys(keys)?, &obj).map_err(|e| EventError::Signature(e.to_string()))
}

/// The outcome of a successful [`verify_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Signatures and content hash are valid.
    All,
    /// Signatures are valid but the content hash does not match: the event must be replaced by
    /// its redacted form before further processing.
    SignaturesOnly,
}

/// Add the content hash and sign an event (spec "Adding hashes and signatures to outgoing
/// events"): the signature covers the redacted event, so it survives redaction.
///
/// In room v1/v2 an event without an `event_id` gets one chosen by the signing server
/// ([`super::hashes::server_chosen_event_id`]) first, since the ID is part of what is signed.
pub fn hash_and_sign_event(
    event: &mut Value,
    key: &SigningKey,
    version: RoomVersion,
) -> Result<()> {
    if version.event_id_in_event() && event.get("event_id").is_none() {
        let id = super::hashes::server_chosen_event_id(event, key.server_name.as_str())?;
        object_mut(event)?.insert("event_id".to_owned(), json!(id));
    }
    let mut obj = to_canonical_object(event)?;
    rs::hash_and_sign_event(
        key.server_name.as_str(),
        &key.pair,
        &mut obj,
        &version.ruma_rules().redaction,
    )
    .map_err(|e| match e {
        // Hashing refuses oversized events before our own check sees the signed size.
        rs::JsonError::PduTooLarge => EventError::TooLarge(e.to_string()),
        other => EventError::Signature(other.to_string()),
    })?;
    *event = from_canonical_object(obj);
    Ok(())
}

/// Verify a received event's signatures and content hash.
///
/// The servers whose signatures are required are the sender's (except for invites resulting
/// from a third-party invite) and, for joins with `join_authorised_via_users_server`, the
/// authorising user's. Their keys must be in `keys`; unknown key IDs are skipped.
pub fn verify_event(event: &Value, keys: &PublicKeyMap, version: RoomVersion) -> Result<Verified> {
    let obj = to_canonical_object(event)?;
    match rs::verify_event(&to_ruma_keys(keys)?, &obj, &version.ruma_rules()) {
        Ok(rs::Verified::All) => Ok(Verified::All),
        Ok(rs::Verified::Signatures) => Ok(Verified::SignaturesOnly),
        Err(e) => Err(EventError::Signature(e.to_string())),
    }
}

/// The parts of a new PDU, before hashing and signing.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPdu {
    /// The room; must be `None` exactly for a room v12 `m.room.create` event.
    pub room_id: Option<OwnedRoomId>,
    /// The sender; must belong to the signing key's server.
    pub sender: OwnedUserId,
    /// The event type.
    pub event_type: String,
    /// The state key, for state events.
    pub state_key: Option<String>,
    /// The content; must be a JSON object.
    pub content: Value,
    /// The forward extremities this event follows.
    pub prev_events: Vec<OwnedEventId>,
    /// The auth events (see [`super::auth_types_for_event`]).
    pub auth_events: Vec<OwnedEventId>,
    /// The depth.
    pub depth: u64,
    /// The origin timestamp in milliseconds.
    pub origin_server_ts: u64,
    /// For `m.room.redaction`: the event redacted. Room v10 carries it at the top level,
    /// later versions in `content`; the builder puts it where the version wants it.
    pub redacts: Option<OwnedEventId>,
}

/// Build, hash and sign a complete PDU for `version`; returns its event ID and final JSON
/// (federation format: no `event_id` key from room v3 on; v1/v2 carry it).
pub fn build_signed_pdu(
    pdu: &NewPdu,
    version: RoomVersion,
    key: &SigningKey,
) -> Result<(OwnedEventId, Value)> {
    let is_create = pdu.event_type == types::CREATE;
    match (
        &pdu.room_id,
        is_create && version.room_id_is_create_event_hash(),
    ) {
        (Some(_), true) => {
            return Err(EventError::invalid(
                "a room v12 m.room.create event has no room_id",
            ));
        }
        (None, false) => return Err(EventError::invalid("room_id is required")),
        _ => {}
    }
    if pdu.sender.server_name() != key.server_name() {
        return Err(EventError::invalid(format!(
            "sender {} does not belong to signing server {}",
            pdu.sender,
            key.server_name()
        )));
    }
    if !pdu.content.is_object() {
        return Err(EventError::invalid("content must be an object"));
    }
    let mut event = json!({
        "type": pdu.event_type,
        "sender": pdu.sender,
        "content": pdu.content,
        "prev_events": super::pdu::reference_list(version, &pdu.prev_events),
        "auth_events": super::pdu::reference_list(version, &pdu.auth_events),
        "depth": pdu.depth,
        "origin_server_ts": pdu.origin_server_ts,
    });
    let obj = object_mut(&mut event)?;
    if let Some(room_id) = &pdu.room_id {
        obj.insert("room_id".to_owned(), json!(room_id));
    }
    if let Some(sk) = &pdu.state_key {
        obj.insert("state_key".to_owned(), json!(sk));
    }
    if let Some(redacts) = &pdu.redacts {
        if !version.redacts_in_content() {
            obj.insert("redacts".to_owned(), json!(redacts));
        } else if let Some(content) = obj.get_mut("content").and_then(Value::as_object_mut) {
            content.insert("redacts".to_owned(), json!(redacts));
        }
    }
    if version.event_id_in_event() {
        hash_and_sign_event(&mut event, key, version)?;
        let event_id = super::hashes::event_id(&event, version)?;
        return Ok((event_id, event));
    }
    let event_id = hash_sign_and_id(&mut event, key, version)?;
    Ok((event_id, event))
}

/// [`hash_and_sign_event`] and [`super::hashes::event_id`] for a new event of room v3 and
/// later (no `event_id`, `signatures`, `unsigned` or `hashes` yet), from one canonical
/// form of the redacted event: what is signed (the redacted event without `signatures`
/// and `unsigned`) is exactly what the reference hash covers, so both come from the same
/// bytes instead of the event being converted, redacted and serialised again for each.
/// Ed25519 signatures are deterministic: the result is byte for byte the other path's
/// (tested below).
fn hash_sign_and_id(
    event: &mut Value,
    key: &SigningKey,
    version: RoomVersion,
) -> Result<OwnedEventId> {
    use ruma::signatures::KeyPair as _;
    use sha2::{Digest, Sha256};
    // The content hash covers the event without `unsigned`, `signatures` and `hashes`,
    // none of which a new event has yet.
    let unhashed = super::canonical::canonical_json(event)?;
    if unhashed.len() > super::pdu::MAX_PDU_SIZE {
        return Err(EventError::TooLarge(format!(
            "the event is {} bytes of canonical JSON, more than {}",
            unhashed.len(),
            super::pdu::MAX_PDU_SIZE
        )));
    }
    let content_hash: [u8; 32] = Sha256::digest(unhashed.as_bytes()).into();
    object_mut(event)?.insert(
        "hashes".to_owned(),
        json!({ "sha256": encode_b64(&content_hash) }),
    );
    let signed = super::canonical::canonical_json(&super::redaction::redact(event, version)?)?;
    let signature = key.pair.sign(signed.as_bytes());
    object_mut(event)?.insert(
        "signatures".to_owned(),
        json!({ key.server_name.as_str(): { signature.id(): signature.base64() } }),
    );
    super::hashes::event_id_from_hash(Sha256::digest(signed.as_bytes()).into(), version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{check_content_hash, hashes, redact};

    const SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";

    fn spec_key() -> SigningKey {
        SigningKey::from_seed_base64("domain", "ed25519:1", SEED).unwrap()
    }

    #[test]
    fn appendix_json_signing_empty_object() {
        let mut v = json!({});
        sign_json(&mut v, &spec_key()).unwrap();
        assert_eq!(
            v,
            json!({"signatures": {"domain": {"ed25519:1":
                "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}})
        );
        verify_json(&v, "domain", &spec_key().public_key_map()).unwrap();
    }

    #[test]
    fn appendix_json_signing_data_object() {
        let mut v = json!({"one": 1, "two": "Two"});
        sign_json(&mut v, &spec_key()).unwrap();
        assert_eq!(
            v,
            json!({
                "one": 1,
                "signatures": {"domain": {"ed25519:1":
                    "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}},
                "two": "Two"
            })
        );
        let keys = spec_key().public_key_map();
        verify_json(&v, "domain", &keys).unwrap();
        v["two"] = json!("Three");
        assert!(matches!(
            verify_json(&v, "domain", &keys),
            Err(EventError::Signature(_))
        ));
        assert!(verify_json(&v, "other", &keys).is_err());
    }

    /// The appendix event vectors predate the v11 redaction rules (they keep `origin`), so they
    /// are reproduced with room v10, which uses the v9 redaction algorithm.
    #[test]
    fn appendix_event_signing_minimal_event() {
        let mut ev = json!({
            "room_id": "!x:domain",
            "sender": "@a:domain",
            "origin": "domain",
            "origin_server_ts": 1000000,
            "signatures": {},
            "hashes": {},
            "type": "X",
            "content": {},
            "prev_events": [],
            "auth_events": [],
            "depth": 3,
            "unsigned": {"age_ts": 1000000}
        });
        hash_and_sign_event(&mut ev, &spec_key(), RoomVersion::V10).unwrap();
        assert_eq!(
            ev,
            json!({
                "auth_events": [],
                "content": {},
                "depth": 3,
                "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
                "origin": "domain",
                "origin_server_ts": 1000000,
                "prev_events": [],
                "room_id": "!x:domain",
                "sender": "@a:domain",
                "signatures": {"domain": {"ed25519:1":
                    "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"}},
                "type": "X",
                "unsigned": {"age_ts": 1000000}
            })
        );
        assert_eq!(
            verify_event(&ev, &spec_key().public_key_map(), RoomVersion::V10),
            Ok(Verified::All)
        );
    }

    #[test]
    fn appendix_event_signing_redactable_event() {
        let mut ev = json!({
            "content": {"body": "Here is the message content"},
            "event_id": "$0:domain",
            "origin": "domain",
            "origin_server_ts": 1000000,
            "type": "m.room.message",
            "room_id": "!r:domain",
            "sender": "@u:domain",
            "signatures": {},
            "unsigned": {"age_ts": 1000000}
        });
        hash_and_sign_event(&mut ev, &spec_key(), RoomVersion::V10).unwrap();
        assert_eq!(
            ev,
            json!({
                "content": {"body": "Here is the message content"},
                "event_id": "$0:domain",
                "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
                "origin": "domain",
                "origin_server_ts": 1000000,
                "type": "m.room.message",
                "room_id": "!r:domain",
                "sender": "@u:domain",
                "signatures": {"domain": {"ed25519:1":
                    "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"}},
                "unsigned": {"age_ts": 1000000}
            })
        );
        // The signature covers exactly our own redaction of the event.
        let mut redacted = redact(&ev, RoomVersion::V10).unwrap();
        redacted.as_object_mut().unwrap().remove("signatures");
        sign_json(&mut redacted, &spec_key()).unwrap();
        assert_eq!(redacted["signatures"], ev["signatures"]);
        // A redacted copy still verifies (signatures only).
        let keys = spec_key().public_key_map();
        assert_eq!(
            verify_event(&redacted, &keys, RoomVersion::V10),
            Ok(Verified::SignaturesOnly)
        );
    }

    #[test]
    fn key_ids_and_seeds_are_validated() {
        assert!(SigningKey::from_seed_base64("domain", "1", SEED).is_err());
        assert!(SigningKey::from_seed_base64("domain", "ed25519:", SEED).is_err());
        assert!(SigningKey::from_seed_base64("domain", "ed25519:a-b", SEED).is_err());
        assert!(SigningKey::from_seed_base64("bad server!", "ed25519:1", SEED).is_err());
        assert!(SigningKey::from_seed_base64("domain", "ed25519:1", "AAAA").is_err());
        let k = spec_key();
        assert_eq!(k.key_id(), "ed25519:1");
        assert_eq!(k.server_name().as_str(), "domain");
        let (g, der) = SigningKey::generate("example.org", "ed25519:a_1").unwrap();
        let again = SigningKey::from_pkcs8_der("example.org", "ed25519:a_1", &der).unwrap();
        assert_eq!(g.public_key(), again.public_key());
        assert_ne!(g.public_key(), k.public_key());
    }

    fn new_pdu(room_id: Option<&str>, event_type: &str, sender: &str) -> NewPdu {
        NewPdu {
            room_id: room_id.map(|r| r.try_into().unwrap()),
            sender: sender.try_into().unwrap(),
            event_type: event_type.to_owned(),
            state_key: Some(String::new()),
            content: json!({"room_version": "12"}),
            prev_events: vec![],
            auth_events: vec![],
            depth: 1,
            origin_server_ts: 1_700_000_000_000,
            redacts: None,
        }
    }

    #[test]
    fn build_sign_verify_and_tamper_for_every_version() {
        let key = SigningKey::from_seed_base64("example.org", "ed25519:k1", SEED).unwrap();
        let keys = key.public_key_map();
        for version in RoomVersion::ALL {
            let room = if version == RoomVersion::V12 {
                None
            } else {
                Some("!r:example.org")
            };
            let (create_id, create) = build_signed_pdu(
                &new_pdu(room, "m.room.create", "@alice:example.org"),
                version,
                &key,
            )
            .unwrap();
            assert_eq!(create_id, hashes::event_id(&create, version).unwrap());
            assert_eq!(
                create.get("event_id").is_some(),
                version.event_id_in_event()
            );
            assert_eq!(verify_event(&create, &keys, version), Ok(Verified::All));
            check_content_hash(&create).unwrap();

            let room_id = match version {
                RoomVersion::V12 => {
                    let rid = hashes::room_id_for_create_event(&create).unwrap();
                    assert_eq!(rid.as_str(), format!("!{}", &create_id.as_str()[1..]));
                    rid
                }
                _ => "!r:example.org".try_into().unwrap(),
            };
            let mut msg = new_pdu(
                Some(room_id.as_str()),
                "m.room.message",
                "@alice:example.org",
            );
            msg.state_key = None;
            msg.content = json!({"body": "hello", "msgtype": "m.text"});
            msg.prev_events = vec![create_id.clone()];
            msg.auth_events = vec![create_id.clone()];
            msg.depth = 2;
            let (msg_id, msg_json) = build_signed_pdu(&msg, version, &key).unwrap();
            assert_eq!(msg_id, hashes::event_id(&msg_json, version).unwrap());
            assert_eq!(verify_event(&msg_json, &keys, version), Ok(Verified::All));

            // Tampering with redactable content breaks only the hash.
            let mut t = msg_json.clone();
            t["content"]["body"] = json!("evil");
            assert_eq!(
                verify_event(&t, &keys, version),
                Ok(Verified::SignaturesOnly)
            );
            assert!(check_content_hash(&t).is_err());
            // Tampering with an essential field breaks the signature.
            let mut t = msg_json.clone();
            t["depth"] = json!(99);
            assert!(matches!(
                verify_event(&t, &keys, version),
                Err(EventError::Signature(_))
            ));
            // A wrong key fails.
            let other = SigningKey::generate("example.org", "ed25519:k1").unwrap().0;
            assert!(verify_event(&msg_json, &other.public_key_map(), version).is_err());
            // Unknown key IDs only: fails (no usable signature).
            let (k2, _) = SigningKey::generate("example.org", "ed25519:k2").unwrap();
            assert!(verify_event(&msg_json, &k2.public_key_map(), version).is_err());
        }
    }

    /// The one-pass signing of new events gives exactly what ruma's `hash_and_sign_event`
    /// and the reference hash give (ed25519 is deterministic), for every version from v3,
    /// for state, message and redaction events.
    #[test]
    fn one_pass_signing_matches_ruma_byte_for_byte() {
        let key = SigningKey::from_seed_base64("example.org", "ed25519:k1", SEED).unwrap();
        for version in RoomVersion::ALL {
            if version.event_id_in_event() {
                continue;
            }
            let mut msg = new_pdu(Some("!r:example.org"), "m.room.message", "@a:example.org");
            msg.state_key = None;
            msg.content = json!({"body": "h\u{e9}llo \"q\" \u{1F600}", "msgtype": "m.text", "n": [1, {"b": 2, "a": null}]});
            msg.prev_events = vec!["$p1".try_into().unwrap(), "$p2".try_into().unwrap()];
            msg.auth_events = vec!["$a1".try_into().unwrap()];
            let state = new_pdu(
                Some("!r:example.org"),
                "m.room.power_levels",
                "@a:example.org",
            );
            let mut redaction = msg.clone();
            redaction.event_type = "m.room.redaction".to_owned();
            redaction.content = json!({"reason": "spam"});
            redaction.redacts = Some("$gone".try_into().unwrap());
            for pdu in [msg, state, redaction] {
                let (id, json) = build_signed_pdu(&pdu, version, &key).unwrap();
                // The same event through ruma: the unsigned JSON the builder starts from.
                let mut unsigned = json.clone();
                let obj = unsigned.as_object_mut().unwrap();
                obj.remove("hashes");
                obj.remove("signatures");
                hash_and_sign_event(&mut unsigned, &key, version).unwrap();
                assert_eq!(json, unsigned, "{version:?} {}", pdu.event_type);
                assert_eq!(id, hashes::event_id(&unsigned, version).unwrap());
            }
        }
    }

    #[test]
    fn an_oversized_new_event_is_too_large() {
        let key = spec_key();
        let mut p = new_pdu(Some("!r:domain"), "m.room.message", "@a:domain");
        p.content = json!({"body": "x".repeat(70_000)});
        assert!(matches!(
            build_signed_pdu(&p, RoomVersion::V11, &key),
            Err(EventError::TooLarge(_))
        ));
    }

    #[test]
    fn build_rejects_inconsistent_parts() {
        let key = spec_key();
        assert!(
            build_signed_pdu(
                &new_pdu(Some("!r:domain"), "m.room.create", "@a:domain"),
                RoomVersion::V12,
                &key
            )
            .is_err()
        );
        assert!(
            build_signed_pdu(
                &new_pdu(None, "m.room.create", "@a:domain"),
                RoomVersion::V11,
                &key
            )
            .is_err()
        );
        assert!(
            build_signed_pdu(
                &new_pdu(None, "m.room.message", "@a:domain"),
                RoomVersion::V12,
                &key
            )
            .is_err()
        );
        assert!(
            build_signed_pdu(
                &new_pdu(None, "m.room.create", "@a:other"),
                RoomVersion::V12,
                &key
            )
            .is_err()
        );
        let mut p = new_pdu(None, "m.room.create", "@a:domain");
        p.content = json!([]);
        assert!(build_signed_pdu(&p, RoomVersion::V12, &key).is_err());
    }
}
