//! The fuzz targets: each takes arbitrary bytes and runs the code the server runs on such
//! bytes when they arrive from a client or another server. A target returns whether the
//! input got past the first parse (the driver keeps such mutants to mutate further); any
//! panic is a finding.

mod client;
mod events;
mod federation;
mod media;

use std::sync::OnceLock;

use hearth::event::{PublicKeyMap, SigningKey};
use ruma::OwnedEventId;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]) -> bool,
    /// Mutants are cut to this many bytes.
    pub max_len: usize,
    /// The input is JSON (after [`Target::head_line`]): mutate its tree too.
    pub json: bool,
    /// The input's first line is a separate field (not JSON).
    pub head_line: bool,
}

const fn target(name: &'static str, run: fn(&[u8]) -> bool, max_len: usize, json: bool) -> Target {
    Target {
        name,
        run,
        max_len,
        json,
        head_line: false,
    }
}

/// Every target, in the order the short run goes through them.
pub const TARGETS: &[Target] = &[
    target("canonical_json", events::canonical_json, 64 << 10, true),
    target("pdu", events::pdu, 96 << 10, true),
    target("auth_rules", events::auth_rules, 128 << 10, true),
    target("state_res", events::state_res, 128 << 10, true),
    target("sync_filter", client::sync_filter, 64 << 10, true),
    Target {
        head_line: true,
        ..target("search_query", client::search_query, 64 << 10, true)
    },
    target("media_thumbnail", media::media_thumbnail, 128 << 10, false),
    target("sync_ws_frame", client::sync_ws_frame, 64 << 10, true),
    target(
        "federation_txn",
        federation::federation_txn,
        256 << 10,
        true,
    ),
    target("federation_edu", federation::federation_edu, 64 << 10, true),
];

pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The servers whose deterministic keys sign the seed events.
pub const SERVERS: [&str; 2] = ["hs1.test", "hs2.test"];

/// The signing key of a seed server (its seed is the SHA-256 of its name).
pub fn signing_key(server: &str) -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(server.as_bytes()).into();
    SigningKey::from_seed(server, "ed25519:fuzz", &seed).expect("a 32-byte seed is a key")
}

/// The verify keys of the seed servers, as the federation receive path gets them.
pub fn public_keys() -> &'static PublicKeyMap {
    static KEYS: OnceLock<PublicKeyMap> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = PublicKeyMap::new();
        for server in SERVERS {
            signing_key(server).add_to(&mut keys);
        }
        keys
    })
}

/// Structured inputs name earlier events by index in `auth_events` and `prev_events`
/// (their real IDs are hashes a mutation cannot produce): a number `i` becomes the ID of
/// event `i` of `ids` (modulo its length).
pub fn resolve_refs(event: &mut Value, ids: &[OwnedEventId]) {
    for key in ["auth_events", "prev_events"] {
        if let Some(Value::Array(refs)) = event.get_mut(key) {
            for r in refs.iter_mut() {
                if let (Some(i), false) = (r.as_u64(), ids.is_empty()) {
                    *r = Value::String(ids[i as usize % ids.len()].to_string());
                }
            }
        }
    }
}
