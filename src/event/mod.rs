//! Pure (I/O-free) Matrix event handling for Hearth.
//!
//! Required dependencies (copy into the homeserver crate's `Cargo.toml`):
//!
//! ```toml
//! ruma = { version = "0.17", features = ["signatures"] }
//! serde = { version = "1", features = ["derive"] }
//! serde_json = "1"
//! sha2 = "0.10"
//! base64 = "0.22"
//! thiserror = "2"
//! ```
//!
//! Only the `signatures` feature of `ruma` is used (it brings `ruma::signatures` and the
//! canonical JSON types of `ruma::canonical_json`). Authorisation rules and state resolution are
//! implemented here rather than through `ruma-state-res`, so that rejection reasons are
//! human-readable and every rule is under our own test.
//!
//! Module map:
//!
//! * [`room_version`]: the supported room versions (1 to 12) and the rule switches they imply.
//! * [`canonical`]: canonical JSON encoding.
//! * [`hashes`]: content hash, reference hash, event IDs and v12 room IDs.
//! * [`redaction`]: the redaction algorithms (v1, v6, v8, v9 and v11 rules).
//! * [`signing`]: ed25519 keys, JSON/event signing and verification, and the PDU builder.
//! * [`pdu`]: [`Pdu`], a validated, typed view of an event used by the auth rules and state res.
//! * [`power_levels`]: parsed power levels and the "who may do what" helpers.
//! * [`push_rules`]: the predefined push rules, rule sets and their evaluation.
//! * [`auth`]: the authorisation rules and the auth events selection.
//! * [`server_acl`]: `m.room.server_acl` evaluation (which servers may take part in a room).
//! * [`state_res`]: state resolution v2 (with the room v12 changes).
//! * [`state_res_v1`]: state resolution v1 (room version 1).

pub mod auth;
mod auth_power_levels;
pub mod canonical;
mod error;
pub mod hashes;
pub mod pdu;
pub mod power_levels;
pub mod push_rules;
pub mod redaction;
pub mod room_version;
pub mod server_acl;
pub mod signing;
pub mod state_res;
pub mod state_res_v1;
pub mod third_party;

pub use self::auth::{auth_check, auth_types_for_event, check_auth_events, check_event_auth};
pub use self::canonical::{canonical_json, canonicalize_json_str, to_canonical_object};
pub use self::error::EventError;
pub use self::hashes::{
    add_content_hash, check_content_hash, content_hash, event_id, reference_hash,
    room_id_for_create_event,
};
pub use self::pdu::{Pdu, StateKey};
pub use self::power_levels::{Power, PowerLevels, RoomPowers};
pub use self::redaction::{RedactionAlgorithm, redact};
pub use self::room_version::RoomVersion;
pub use self::server_acl::ServerAcl;
pub use self::signing::{
    NewPdu, PublicKeyMap, SigningKey, Verified, build_signed_pdu, hash_and_sign_event, sign_json,
    verify_event, verify_json,
};
pub use self::state_res::{StateMap, resolve};
pub(crate) use self::state_res::{full_conflicted_set, resolve_from_full};

/// Shorthand for results in this module.
pub type Result<T, E = EventError> = std::result::Result<T, E>;

/// Well-known event types used by the rules in this module.
pub mod types {
    /// `m.room.create`
    pub const CREATE: &str = "m.room.create";
    /// `m.room.member`
    pub const MEMBER: &str = "m.room.member";
    /// `m.room.join_rules`
    pub const JOIN_RULES: &str = "m.room.join_rules";
    /// `m.room.power_levels`
    pub const POWER_LEVELS: &str = "m.room.power_levels";
    /// `m.room.third_party_invite`
    pub const THIRD_PARTY_INVITE: &str = "m.room.third_party_invite";
    /// `m.room.redaction`
    pub const REDACTION: &str = "m.room.redaction";
    /// `m.room.history_visibility`
    pub const HISTORY_VISIBILITY: &str = "m.room.history_visibility";
}

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod room_versions_tests;
#[cfg(test)]
mod state_res_tests;
#[cfg(test)]
pub(crate) mod test_support;
