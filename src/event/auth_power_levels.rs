//! Authorisation rule 10 (v12 numbering; rule 9 or 10 in older versions): changes to
//! `m.room.power_levels`, with the version differences (integer-only values from v10,
//! `notifications` from v6, creators outside `users` in v12).

use ruma::UserId;
use serde_json::{Map, Value};

use super::power_levels::{LEVEL_FIELDS, Power, RoomPowers, level_value};
use super::{EventError, Pdu, Result, RoomVersion};

fn deny<T>(reason: impl Into<String>) -> Result<T> {
    Err(EventError::Unauthorized(reason.into()))
}

/// A top-level level of a power levels event, as the room version reads it; a value it cannot
/// read as an integer is a rejection (v10+ rejected it already under rule 10.1).
fn parsed_level(level: impl Fn(&Value) -> Option<i64>, field: &str, v: &Value) -> Result<i64> {
    level(v).ok_or_else(|| {
        EventError::Unauthorized(format!("power levels {field} is not an integer: {v}"))
    })
}

fn int_map(content: &Map<String, Value>, key: &str) -> Map<String, Value> {
    content
        .get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Rule 10: `m.room.power_levels`.
pub(super) fn check_power_levels(
    version: RoomVersion,
    event: &Pdu,
    current: Option<&Pdu>,
    powers: &RoomPowers,
) -> Result<()> {
    let new = event.content();
    let level = |v: &Value| level_value(version, v);
    // 10.1 (v10+; earlier versions check only `users`, below, and accept strings)
    for field in LEVEL_FIELDS {
        if let Some(v) = new.get(field)
            && !v.is_i64()
            && version.integer_only_power_levels()
        {
            return deny(format!("power levels {field} must be an integer, got {v}"));
        }
    }
    // 10.2 (v10+)
    for field in ["events", "notifications"] {
        if !version.integer_only_power_levels() {
            break;
        }
        if let Some(v) = new.get(field) {
            match v.as_object() {
                Some(m) if m.values().all(Value::is_i64) => {}
                _ => {
                    return deny(format!(
                        "power levels {field} must be an object with integer values"
                    ));
                }
            }
        }
    }
    // 10.3
    if let Some(v) = new.get("users") {
        let Some(users) = v.as_object() else {
            return deny("power levels users must be an object");
        };
        for (user, level) in users {
            if UserId::parse(user).is_err() {
                return deny(format!(
                    "power levels users key {user:?} is not a valid user ID"
                ));
            }
            if level_value(version, level).is_none() {
                return deny(format!(
                    "power level of {user} must be an integer, got {level}"
                ));
            }
        }
    }
    // 10.4 (v12)
    if version.creators_have_infinite_power() {
        let users = int_map(new, "users");
        if let Some(creator) = powers
            .creators()
            .iter()
            .find(|c| users.contains_key(c.as_str()))
        {
            return deny(format!(
                "room creator {creator} must not be listed in power levels users"
            ));
        }
    }
    // 10.5
    let Some(current) = current else {
        return Ok(());
    };
    let old = current.content();
    let sender = event.sender();
    let sender_power = powers.user_power(sender);
    // 10.6
    for field in LEVEL_FIELDS {
        let (o, n) = (
            old.get(field)
                .map(|v| parsed_level(level, field, v))
                .transpose()?,
            new.get(field)
                .map(|v| parsed_level(level, field, v))
                .transpose()?,
        );
        if o == n {
            continue;
        }
        if let Some(o) = o
            && Power::Level(o) > sender_power
        {
            return deny(format!(
                "sender cannot change {field}: current value {o} is above sender's power {sender_power}"
            ));
        }
        if let Some(n) = n
            && Power::Level(n) > sender_power
        {
            return deny(format!(
                "sender cannot set {field} to {n}: above sender's power {sender_power}"
            ));
        }
    }
    // 10.7 / 10.8 (`notifications` from v6 on)
    let maps: &[&str] = if version.power_levels_check_notifications() {
        &["events", "notifications"]
    } else {
        &["events"]
    };
    for &field in maps {
        let (om, nm) = (int_map(old, field), int_map(new, field));
        for (k, ov) in &om {
            if nm.get(k).map(level) != Some(level(ov))
                && let Some(o) = level(ov)
                && Power::Level(o) > sender_power
            {
                return deny(format!(
                    "sender cannot change {field}.{k}: current value {o} is above sender's power {sender_power}"
                ));
            }
        }
        for (k, nv) in &nm {
            if om.get(k).map(level) != Some(level(nv))
                && let Some(n) = level(nv)
                && Power::Level(n) > sender_power
            {
                return deny(format!(
                    "sender cannot set {field}.{k} to {n}: above sender's power {sender_power}"
                ));
            }
        }
    }
    // 10.9 / 10.10
    let (ou, nu) = (int_map(old, "users"), int_map(new, "users"));
    for (user, ov) in &ou {
        if nu.get(user).map(level) != Some(level(ov))
            && user != sender.as_str()
            && let Some(o) = level(ov)
            && Power::Level(o) >= sender_power
        {
            return deny(format!(
                "sender cannot change the power level of {user}: current level {o} is not below sender's power {sender_power}"
            ));
        }
    }
    for (user, nv) in &nu {
        if ou.get(user).map(level) != Some(level(nv))
            && let Some(n) = level(nv)
            && Power::Level(n) > sender_power
        {
            return deny(format!(
                "sender cannot give {user} power level {n}: above sender's power {sender_power}"
            ));
        }
    }
    // 10.11
    Ok(())
}
