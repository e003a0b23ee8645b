//! Supported room versions and the rule differences between them.

use std::fmt;
use std::str::FromStr;

use ruma::room_version_rules::RoomVersionRules;

use super::EventError;
use super::redaction::RedactionAlgorithm;

/// A room version Hearth can participate in.
///
/// Versions 1 to 12 are supported; version 12 is the default for new rooms. Every behavioural
/// difference between them is exposed as a method so that callers never compare version
/// numbers themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomVersion {
    /// Room version 1: event IDs chosen by the sending server, state resolution v1.
    V1,
    /// Room version 2: as v1 with state resolution v2.
    V2,
    /// Room version 3: event IDs are reference hashes (standard base64).
    V3,
    /// Room version 4: event IDs use URL-safe base64.
    V4,
    /// Room version 5: signing keys must be valid when the event was sent.
    V5,
    /// Room version 6: strict canonical JSON, no `m.room.aliases` auth rule, `notifications`.
    V6,
    /// Room version 7: knocking.
    V7,
    /// Room version 8: restricted join rules.
    V8,
    /// Room version 9: redaction keeps `join_authorised_via_users_server`.
    V9,
    /// Room version 10.
    V10,
    /// Room version 11.
    V11,
    /// Room version 12 (the default).
    #[default]
    V12,
}

/// The room version identifiers defined by the specification. Used for auth rule 1.3 ("If
/// `content.room_version` is present and is not a recognised version, reject").
const SPEC_VERSIONS: [&str; 12] = [
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
];

impl RoomVersion {
    /// All supported versions, oldest first.
    pub const ALL: [RoomVersion; 12] = [
        RoomVersion::V1,
        RoomVersion::V2,
        RoomVersion::V3,
        RoomVersion::V4,
        RoomVersion::V5,
        RoomVersion::V6,
        RoomVersion::V7,
        RoomVersion::V8,
        RoomVersion::V9,
        RoomVersion::V10,
        RoomVersion::V11,
        RoomVersion::V12,
    ];

    /// The identifier as it appears in `m.room.create` content (`"3"` … `"12"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "1",
            Self::V2 => "2",
            Self::V3 => "3",
            Self::V4 => "4",
            Self::V5 => "5",
            Self::V6 => "6",
            Self::V7 => "7",
            Self::V8 => "8",
            Self::V9 => "9",
            Self::V10 => "10",
            Self::V11 => "11",
            Self::V12 => "12",
        }
    }

    /// Whether `version` names a room version defined by the specification (1–12). Such
    /// versions are "recognised" for auth rule 1.3 even if Hearth cannot join rooms of them.
    pub fn is_recognised(version: &str) -> bool {
        SPEC_VERSIONS.contains(&version)
    }

    /// The redaction algorithm: v3–v5 use the v1 rules, v6 and v7 the v6 rules, v8 its own,
    /// v9 and v10 the v9 rules, v11 and v12 the v11 rules.
    pub fn redaction_algorithm(self) -> RedactionAlgorithm {
        match self {
            Self::V1 | Self::V2 | Self::V3 | Self::V4 | Self::V5 => RedactionAlgorithm::V1,
            Self::V6 | Self::V7 => RedactionAlgorithm::V6,
            Self::V8 => RedactionAlgorithm::V8,
            Self::V9 | Self::V10 => RedactionAlgorithm::V9,
            Self::V11 | Self::V12 => RedactionAlgorithm::V11,
        }
    }

    /// Up to v10: `m.room.create` content must carry `creator`, which names the room creator.
    /// From v11 on, the creator is the `sender` of the create event.
    pub fn create_requires_creator_field(self) -> bool {
        self <= Self::V10
    }

    /// v1 and v2: the event ID is chosen by the sending server (`$opaque:server`) and carried
    /// in the event's `event_id`, which is hashed and signed; `prev_events` and `auth_events`
    /// are `[event_id, {"sha256": hash}]` pairs. From v3 on the ID is the reference hash.
    pub fn event_id_in_event(self) -> bool {
        self <= Self::V2
    }

    /// v1 and v2: auth rule 11, a redaction is allowed with the redact level or when the
    /// redacted event's ID has the redaction's ID's server (from v3 on, checked on receipt of
    /// the redaction instead).
    pub fn redaction_auth_rule(self) -> bool {
        self <= Self::V2
    }

    /// v1: state resolution v1 (`event/state_res_v1.rs`); v2–v11 use v2, v12 v2.1.
    pub fn state_res_v1(self) -> bool {
        self == Self::V1
    }

    /// v3 only: event IDs are the reference hash in standard base64 (`+` and `/`); from v4 on
    /// they use URL-safe base64.
    pub fn event_id_standard_base64(self) -> bool {
        matches!(self, Self::V3)
    }

    /// From v5 on: a signing key must be valid (`valid_until_ts`) at the event's
    /// `origin_server_ts`; before, any key the server published verifies its events.
    pub fn enforces_key_validity(self) -> bool {
        self >= Self::V5
    }

    /// From v6 on: events must be valid canonical JSON (integers in range, no floats).
    pub fn strict_canonical_json(self) -> bool {
        self >= Self::V6
    }

    /// Up to v5: `m.room.aliases` has its own auth rule (state key must be the sender's server).
    pub fn has_aliases_auth_rule(self) -> bool {
        self <= Self::V5
    }

    /// From v6 on: the power levels auth rule also checks changes to `notifications`.
    pub fn power_levels_check_notifications(self) -> bool {
        self >= Self::V6
    }

    /// From v10 on: power levels must be integers; before, strings holding an integer (and, up
    /// to v5, floats, which are truncated) are accepted.
    pub fn integer_only_power_levels(self) -> bool {
        self >= Self::V10
    }

    /// Up to v5: power level values may be floats (v6+ enforce canonical JSON, so no floats).
    pub fn float_power_levels(self) -> bool {
        !self.strict_canonical_json()
    }

    /// From v7 on: the `knock` membership and join rule.
    pub fn supports_knocking(self) -> bool {
        self >= Self::V7
    }

    /// From v8 on: the `restricted` join rule and `join_authorised_via_users_server`.
    pub fn supports_restricted_join(self) -> bool {
        self >= Self::V8
    }

    /// From v10 on: the `knock_restricted` join rule.
    pub fn supports_knock_restricted(self) -> bool {
        self >= Self::V10
    }

    /// From v11 on: `m.room.redaction` names its target in `content.redacts`; before, in a
    /// top-level `redacts`.
    pub fn redacts_in_content(self) -> bool {
        self >= Self::V11
    }

    /// v12: the room ID is `!` + the reference hash of the create event, and the create event
    /// itself has no `room_id`.
    pub fn room_id_is_create_event_hash(self) -> bool {
        matches!(self, Self::V12)
    }

    /// v12: room creators (create `sender` plus `additional_creators`) have infinite power and
    /// may not appear in `m.room.power_levels` `users`.
    pub fn creators_have_infinite_power(self) -> bool {
        matches!(self, Self::V12)
    }

    /// v12: `additional_creators` in create content is meaningful and validated.
    pub fn supports_additional_creators(self) -> bool {
        matches!(self, Self::V12)
    }

    /// Whether `m.room.create` must be listed in `auth_events` (v10, v11), or must not be (v12).
    pub fn create_event_in_auth_events(self) -> bool {
        !matches!(self, Self::V12)
    }

    /// v12 state resolution: iterative auth checks of the power events start from an empty
    /// state map, and the full conflicted set includes the conflicted state subgraph.
    pub fn state_res_v2_1(self) -> bool {
        matches!(self, Self::V12)
    }

    /// The `ruma` rules for this version, used with `ruma::signatures`.
    pub fn ruma_rules(self) -> RoomVersionRules {
        match self {
            Self::V1 => RoomVersionRules::V1,
            Self::V2 => RoomVersionRules::V2,
            Self::V3 => RoomVersionRules::V3,
            Self::V4 => RoomVersionRules::V4,
            Self::V5 => RoomVersionRules::V5,
            Self::V6 => RoomVersionRules::V6,
            Self::V7 => RoomVersionRules::V7,
            Self::V8 => RoomVersionRules::V8,
            Self::V9 => RoomVersionRules::V9,
            Self::V10 => RoomVersionRules::V10,
            Self::V11 => RoomVersionRules::V11,
            Self::V12 => RoomVersionRules::V12,
        }
    }
}

impl serde::Serialize for RoomVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RoomVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for RoomVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RoomVersion {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1" => Ok(Self::V1),
            "2" => Ok(Self::V2),
            "3" => Ok(Self::V3),
            "4" => Ok(Self::V4),
            "5" => Ok(Self::V5),
            "6" => Ok(Self::V6),
            "7" => Ok(Self::V7),
            "8" => Ok(Self::V8),
            "9" => Ok(Self::V9),
            "10" => Ok(Self::V10),
            "11" => Ok(Self::V11),
            "12" => Ok(Self::V12),
            other => Err(EventError::UnsupportedRoomVersion(other.to_owned())),
        }
    }
}

impl TryFrom<&str> for RoomVersion {
    type Error = EventError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for v in RoomVersion::ALL {
            assert_eq!(v.as_str().parse::<RoomVersion>().unwrap(), v);
            assert_eq!(v.to_string(), v.as_str());
        }
        assert_eq!(RoomVersion::default(), RoomVersion::V12);
    }

    #[test]
    fn unknown_versions_are_errors() {
        for bad in ["0", "13", "03", "", "org.example.v12", " 12"] {
            assert_eq!(
                bad.parse::<RoomVersion>(),
                Err(EventError::UnsupportedRoomVersion(bad.to_owned()))
            );
        }
        assert!(RoomVersion::is_recognised("9"));
        assert!(!RoomVersion::is_recognised("13"));
    }

    #[test]
    fn rule_switches() {
        use RoomVersion::*;
        assert_eq!(V10.redaction_algorithm(), RedactionAlgorithm::V9);
        assert_eq!(V11.redaction_algorithm(), RedactionAlgorithm::V11);
        assert_eq!(V12.redaction_algorithm(), RedactionAlgorithm::V11);
        assert!(V10.create_requires_creator_field() && !V11.create_requires_creator_field());
        assert!(V12.room_id_is_create_event_hash() && !V11.room_id_is_create_event_hash());
        assert!(V12.creators_have_infinite_power() && !V11.creators_have_infinite_power());
        assert!(V11.create_event_in_auth_events() && !V12.create_event_in_auth_events());
        assert!(V12.state_res_v2_1() && !V10.state_res_v2_1());
    }
}
