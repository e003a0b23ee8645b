//! The redaction algorithm (spec: room versions, "Redactions").
//!
//! Room v3–v5 use the v1 rules, v6 and v7 the v6 rules, v8 its own, v9 and v10 the v9 rules,
//! v11 and v12 the v11 rules.

use serde_json::{Map, Value};

use super::{EventError, Result, RoomVersion};

/// Which set of redaction rules applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RedactionAlgorithm {
    /// The original rules (room versions 1–5): `m.room.aliases` keeps `aliases`.
    V1,
    /// Room versions 6 and 7: `m.room.aliases` loses its special case.
    V6,
    /// Room version 8: `m.room.join_rules` also keeps `allow`.
    V8,
    /// The rules introduced in room version 9 (used by room versions 9 and 10): `m.room.member`
    /// also keeps `join_authorised_via_users_server`.
    V9,
    /// The rules introduced in room version 11 (used by room versions 11 and 12).
    V11,
}

/// Top-level keys kept by both algorithms.
const COMMON_TOP_LEVEL: &[&str] = &[
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
];

/// Extra top-level keys kept by the algorithms before v11.
const PRE_V11_TOP_LEVEL: &[&str] = &["prev_state", "origin", "membership"];

impl RedactionAlgorithm {
    /// Whether a top-level event key survives redaction.
    pub fn keeps_top_level_key(self, key: &str) -> bool {
        COMMON_TOP_LEVEL.contains(&key) || (self != Self::V11 && PRE_V11_TOP_LEVEL.contains(&key))
    }

    /// Redact an event's `content` given its type.
    pub fn redact_content(
        self,
        event_type: &str,
        content: &Map<String, Value>,
    ) -> Map<String, Value> {
        let keep = |keys: &[&str]| -> Map<String, Value> {
            content
                .iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let pre_v11 = self != Self::V11;
        match event_type {
            "m.room.member" => {
                let mut out = if self >= Self::V9 {
                    keep(&["membership", "join_authorised_via_users_server"])
                } else {
                    keep(&["membership"])
                };
                if self == Self::V11
                    && let Some(Value::Object(tpi)) = content.get("third_party_invite")
                {
                    let signed: Map<String, Value> = tpi
                        .iter()
                        .filter(|(k, _)| k.as_str() == "signed")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    out.insert("third_party_invite".to_owned(), Value::Object(signed));
                }
                out
            }
            "m.room.create" if pre_v11 => keep(&["creator"]),
            "m.room.create" => content.clone(),
            "m.room.join_rules" if self >= Self::V8 => keep(&["join_rule", "allow"]),
            "m.room.join_rules" => keep(&["join_rule"]),
            "m.room.power_levels" if pre_v11 => keep(&[
                "ban",
                "events",
                "events_default",
                "kick",
                "redact",
                "state_default",
                "users",
                "users_default",
            ]),
            "m.room.power_levels" => keep(&[
                "ban",
                "events",
                "events_default",
                "invite",
                "kick",
                "redact",
                "state_default",
                "users",
                "users_default",
            ]),
            "m.room.history_visibility" => keep(&["history_visibility"]),
            "m.room.redaction" if self == Self::V11 => keep(&["redacts"]),
            "m.room.aliases" if self == Self::V1 => keep(&["aliases"]),
            _ => Map::new(),
        }
    }

    /// Apply this algorithm to an event object.
    pub fn redact(self, event: &Value) -> Result<Value> {
        let obj = event
            .as_object()
            .ok_or_else(|| EventError::invalid("event is not a JSON object"))?;
        let event_type = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError::invalid("event has no string `type`"))?;
        let mut out = Map::new();
        for (k, v) in obj {
            if !self.keeps_top_level_key(k) {
                continue;
            }
            if k == "content" {
                let content = v
                    .as_object()
                    .ok_or_else(|| EventError::invalid("event `content` is not an object"))?;
                out.insert(
                    k.clone(),
                    Value::Object(self.redact_content(event_type, content)),
                );
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
        Ok(Value::Object(out))
    }
}

/// Redact `event` following the rules of `version`; returns the redacted copy.
///
/// `unsigned` is removed like every other key not on the list; a server that stores the
/// redacted event adds `unsigned.redacted_because` itself.
pub fn redact(event: &Value, version: RoomVersion) -> Result<Value> {
    version.redaction_algorithm().redact(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base(event_type: &str, content: Value) -> Value {
        json!({
            "event_id": "$ev",
            "type": event_type,
            "room_id": "!r:x",
            "sender": "@a:x",
            "state_key": "",
            "content": content,
            "hashes": {"sha256": "abc"},
            "signatures": {"x": {"ed25519:1": "sig"}},
            "depth": 4,
            "prev_events": ["$p"],
            "auth_events": ["$a"],
            "origin_server_ts": 7,
            "origin": "x",
            "membership": "join",
            "prev_state": [],
            "unsigned": {"age": 1},
            "custom": "dropped",
        })
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn v10_keeps_origin_membership_prev_state() {
        let r = redact(
            &base("m.room.message", json!({"body": "hi"})),
            RoomVersion::V10,
        )
        .unwrap();
        let mut k = keys(&r);
        k.sort();
        assert_eq!(
            k,
            [
                "auth_events",
                "content",
                "depth",
                "event_id",
                "hashes",
                "membership",
                "origin",
                "origin_server_ts",
                "prev_events",
                "prev_state",
                "room_id",
                "sender",
                "signatures",
                "state_key",
                "type"
            ]
        );
        assert_eq!(r["content"], json!({}));
    }

    #[test]
    fn v11_and_v12_drop_origin_membership_prev_state() {
        for v in [RoomVersion::V11, RoomVersion::V12] {
            let r = redact(&base("m.room.message", json!({"body": "hi"})), v).unwrap();
            let mut k = keys(&r);
            k.sort();
            assert_eq!(
                k,
                [
                    "auth_events",
                    "content",
                    "depth",
                    "event_id",
                    "hashes",
                    "origin_server_ts",
                    "prev_events",
                    "room_id",
                    "sender",
                    "signatures",
                    "state_key",
                    "type"
                ]
            );
        }
    }

    #[test]
    fn member_content() {
        let content = json!({
            "membership": "invite",
            "displayname": "A",
            "join_authorised_via_users_server": "@b:y",
            "third_party_invite": {"display_name": "x", "signed": {"mxid": "@a:x", "token": "t"}},
        });
        let r10 = redact(&base("m.room.member", content.clone()), RoomVersion::V10).unwrap();
        assert_eq!(
            r10["content"],
            json!({"membership": "invite", "join_authorised_via_users_server": "@b:y"})
        );
        for v in [RoomVersion::V11, RoomVersion::V12] {
            let r = redact(&base("m.room.member", content.clone()), v).unwrap();
            assert_eq!(
                r["content"],
                json!({
                    "membership": "invite",
                    "join_authorised_via_users_server": "@b:y",
                    "third_party_invite": {"signed": {"mxid": "@a:x", "token": "t"}},
                })
            );
        }
    }

    #[test]
    fn create_content() {
        let content = json!({"creator": "@a:x", "room_version": "10", "m.federate": false});
        let r10 = redact(&base("m.room.create", content.clone()), RoomVersion::V10).unwrap();
        assert_eq!(r10["content"], json!({"creator": "@a:x"}));
        for v in [RoomVersion::V11, RoomVersion::V12] {
            assert_eq!(
                redact(&base("m.room.create", content.clone()), v).unwrap()["content"],
                content
            );
        }
    }

    #[test]
    fn join_rules_history_visibility_content() {
        let jr =
            json!({"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1});
        let hv = json!({"history_visibility": "shared", "x": 1});
        for v in RoomVersion::ALL {
            // `allow` is kept from room v8 on.
            let expected = if v >= RoomVersion::V8 {
                json!({"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]})
            } else {
                json!({"join_rule": "restricted"})
            };
            assert_eq!(
                redact(&base("m.room.join_rules", jr.clone()), v).unwrap()["content"],
                expected
            );
            assert_eq!(
                redact(&base("m.room.history_visibility", hv.clone()), v).unwrap()["content"],
                json!({"history_visibility": "shared"})
            );
        }
    }

    #[test]
    fn power_levels_content() {
        let pl = json!({
            "ban": 50, "events": {"m.room.name": 50}, "events_default": 0, "invite": 0,
            "kick": 50, "redact": 50, "state_default": 50, "users": {"@a:x": 100},
            "users_default": 0, "notifications": {"room": 50}, "historical": 100,
        });
        let mut without_invite = pl.clone();
        let o = without_invite.as_object_mut().unwrap();
        o.remove("invite");
        o.remove("notifications");
        o.remove("historical");
        assert_eq!(
            redact(&base("m.room.power_levels", pl.clone()), RoomVersion::V10).unwrap()["content"],
            without_invite
        );
        let mut with_invite = without_invite.clone();
        with_invite["invite"] = json!(0);
        for v in [RoomVersion::V11, RoomVersion::V12] {
            assert_eq!(
                redact(&base("m.room.power_levels", pl.clone()), v).unwrap()["content"],
                with_invite
            );
        }
    }

    #[test]
    fn redaction_content_redacts_key() {
        let c = json!({"redacts": "$x", "reason": "spam"});
        assert_eq!(
            redact(&base("m.room.redaction", c.clone()), RoomVersion::V10).unwrap()["content"],
            json!({})
        );
        for v in [RoomVersion::V11, RoomVersion::V12] {
            assert_eq!(
                redact(&base("m.room.redaction", c.clone()), v).unwrap()["content"],
                json!({"redacts": "$x"})
            );
        }
    }

    #[test]
    fn aliases_content_is_dropped() {
        // m.room.aliases lost its special case in room v6.
        for v in RoomVersion::ALL {
            let r = redact(&base("m.room.aliases", json!({"aliases": ["#a:x"]})), v).unwrap();
            if v >= RoomVersion::V6 {
                assert_eq!(r["content"], json!({}));
            } else {
                assert_eq!(r["content"], json!({"aliases": ["#a:x"]}));
            }
        }
    }

    #[test]
    fn malformed_events_are_errors() {
        assert!(redact(&json!([]), RoomVersion::V12).is_err());
        assert!(redact(&json!({"content": {}}), RoomVersion::V12).is_err());
        assert!(redact(&json!({"type": "x", "content": 1}), RoomVersion::V12).is_err());
    }
}
