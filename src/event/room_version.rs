//! Supported room versions and the rule differences between them.

use std::fmt;
use std::str::FromStr;

use ruma::room_version_rules::RoomVersionRules;

use super::EventError;
use super::redaction::RedactionAlgorithm;

/// A room version Hearth can participate in.
///
/// Only versions 10, 11 and 12 are supported; version 12 is the default for new rooms.
/// Every behavioural difference between them is exposed as a method so that callers never
/// compare version numbers themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomVersion {
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
    pub const ALL: [RoomVersion; 3] = [RoomVersion::V10, RoomVersion::V11, RoomVersion::V12];

    /// The identifier as it appears in `m.room.create` content (`"10"`, `"11"`, `"12"`).
    pub fn as_str(self) -> &'static str {
        match self {
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

    /// The redaction algorithm: v10 uses the v9 rules, v11 and v12 the v11 rules.
    pub fn redaction_algorithm(self) -> RedactionAlgorithm {
        match self {
            Self::V10 => RedactionAlgorithm::V9,
            Self::V11 | Self::V12 => RedactionAlgorithm::V11,
        }
    }

    /// v10 only: `m.room.create` content must carry `creator`, which names the room creator.
    /// From v11 on, the creator is the `sender` of the create event.
    pub fn create_requires_creator_field(self) -> bool {
        matches!(self, Self::V10)
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
        for bad in ["1", "9", "13", "", "org.example.v12", " 12"] {
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
