//! The types of the fields the server itself reads in a client's state event, checked
//! before the event is built (as Synapse's event validator does): a room name that is a
//! number, join rules given as an object or an ACL that is not a list are refused with
//! `400 M_BAD_JSON` rather than stored for every reader to trip over. Only fields that are
//! present are checked (a client may leave them out); integers of power levels are the
//! auth rules' business, which know the room version.

use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Clone, Copy)]
enum Kind {
    String,
    Bool,
    Object,
    /// A list of strings.
    Strings,
    /// A list of objects.
    Objects,
}

impl Kind {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::String => value.is_string(),
            Kind::Bool => value.is_boolean(),
            Kind::Object => value.is_object(),
            Kind::Strings => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            Kind::Objects => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_object)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Bool => "a boolean",
            Kind::Object => "an object",
            Kind::Strings => "a list of strings",
            Kind::Objects => "a list of objects",
        }
    }
}

fn fields(event_type: &str) -> &'static [(&'static str, Kind)] {
    match event_type {
        "m.room.name" => &[("name", Kind::String)],
        "m.room.topic" => &[("topic", Kind::String)],
        "m.room.avatar" => &[("url", Kind::String)],
        "m.room.join_rules" => &[("join_rule", Kind::String), ("allow", Kind::Objects)],
        "m.room.history_visibility" => &[("history_visibility", Kind::String)],
        "m.room.guest_access" => &[("guest_access", Kind::String)],
        "m.room.encryption" => &[("algorithm", Kind::String)],
        "m.room.server_acl" => &[
            ("allow", Kind::Strings),
            ("deny", Kind::Strings),
            ("allow_ip_literals", Kind::Bool),
        ],
        "m.room.tombstone" => &[("replacement_room", Kind::String), ("body", Kind::String)],
        "m.room.power_levels" => &[
            ("users", Kind::Object),
            ("events", Kind::Object),
            ("notifications", Kind::Object),
        ],
        // Profile fields may be null (clients clear them so).
        "m.room.member" => &[("membership", Kind::String), ("is_direct", Kind::Bool)],
        _ => &[],
    }
}

/// Refuses a state event whose content has a field the server reads of the wrong type.
pub fn check_state_content(event_type: &str, content: &Value) -> Result<()> {
    for (field, kind) in fields(event_type) {
        if let Some(value) = content.get(*field)
            && !kind.accepts(value)
        {
            return Err(Error::bad_json(format!(
                "{event_type}: {field} must be {}",
                kind.name()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_of_the_wrong_type_are_refused_and_absent_ones_allowed() {
        for (event_type, content) in [
            ("m.room.name", json!({ "name": 7 })),
            ("m.room.name", json!({ "name": null })),
            ("m.room.join_rules", json!({ "join_rule": {} })),
            (
                "m.room.join_rules",
                json!({ "join_rule": "restricted", "allow": ["x"] }),
            ),
            ("m.room.server_acl", json!({ "allow": "*" })),
            ("m.room.power_levels", json!({ "users": [] })),
            ("m.room.member", json!({ "membership": 5 })),
        ] {
            assert!(
                check_state_content(event_type, &content).is_err(),
                "{content}"
            );
        }
        for (event_type, content) in [
            ("m.room.name", json!({})),
            ("m.room.name", json!({ "name": "Lounge" })),
            (
                "m.room.server_acl",
                json!({ "allow": ["*"], "deny": [], "allow_ip_literals": false }),
            ),
            ("m.room.power_levels", json!({ "users": {}, "ban": "50" })),
            ("org.example.anything", json!({ "name": 7 })),
        ] {
            assert!(
                check_state_content(event_type, &content).is_ok(),
                "{content}"
            );
        }
    }
}
