//! Power levels: parsing (room v10+ integer-only rules) and the effective-power helpers the room
//! service needs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ruma::{OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use super::{EventError, Pdu, Result, RoomVersion, types};

/// A user's effective power: a finite level, or infinite (room v12 creators).
///
/// `Level(_) < Infinite`, and levels compare numerically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Power {
    /// An ordinary power level.
    Level(i64),
    /// Room v12 creators: higher than any level.
    Infinite,
}

impl Power {
    /// Whether this power is at least `level`.
    pub fn at_least(self, level: i64) -> bool {
        self >= Power::Level(level)
    }
}

impl fmt::Display for Power {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Power::Level(l) => write!(f, "{l}"),
            Power::Infinite => f.write_str("infinite (room creator)"),
        }
    }
}

/// The content of an `m.room.power_levels` event with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerLevels {
    /// Explicit user levels.
    pub users: BTreeMap<OwnedUserId, i64>,
    /// Level of users not in `users` (default 0).
    pub users_default: i64,
    /// Per-event-type levels.
    pub events: BTreeMap<String, i64>,
    /// Level for non-state events not in `events` (default 0).
    pub events_default: i64,
    /// Level for state events not in `events` (default 50, or 0 without a power levels event).
    pub state_default: i64,
    /// Ban level (default 50).
    pub ban: i64,
    /// Kick level (default 50).
    pub kick: i64,
    /// Redact level (default 50).
    pub redact: i64,
    /// Invite level (default 0).
    pub invite: i64,
    /// Notification levels (`room` defaults to 50).
    pub notifications: BTreeMap<String, i64>,
}

/// The integer-valued top-level properties checked by auth rule 10.1 (v12 numbering).
pub const LEVEL_FIELDS: [&str; 7] = [
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
];

/// A power level value as the room version reads it: an integer; up to v9 also a string holding
/// an integer (surrounding whitespace, one optional sign and leading zeroes allowed), and up to
/// v5 a float, truncated towards zero (spec: "`m.room.power_levels` events accept values as
/// strings / floats").
pub fn level_value(version: RoomVersion, value: &Value) -> Option<i64> {
    if let Some(i) = value.as_i64() {
        return Some(i);
    }
    if version.integer_only_power_levels() {
        return None;
    }
    match value {
        Value::String(s) => parse_stringy_int(s),
        Value::Number(n) if version.float_power_levels() => {
            let f = n.as_f64()?.trunc();
            (f.is_finite() && f >= i64::MIN as f64 && f <= i64::MAX as f64).then_some(f as i64)
        }
        _ => None,
    }
}

fn parse_stringy_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude: i64 = digits.parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn int_field(version: RoomVersion, content: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    match content.get(key) {
        None => Ok(None),
        Some(v) => level_value(version, v).map(Some).ok_or_else(|| {
            EventError::invalid(format!("power levels `{key}` must be an integer, got {v}"))
        }),
    }
}

fn int_map(
    version: RoomVersion,
    content: &Map<String, Value>,
    key: &str,
) -> Result<BTreeMap<String, i64>> {
    match content.get(key) {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                level_value(version, v)
                    .map(|i| (k.clone(), i))
                    .ok_or_else(|| {
                        EventError::invalid(format!(
                            "power levels `{key}.{k}` must be an integer, got {v}"
                        ))
                    })
            })
            .collect(),
        Some(other) => Err(EventError::invalid(format!(
            "power levels `{key}` must be an object, got {other}"
        ))),
    }
}

/// Power levels content with every level rewritten as an integer, as room v10+ require: the
/// levels of an older room (strings, floats) carried into an upgraded room. Other keys are kept.
pub fn integer_levels_content(
    version: RoomVersion,
    content: &Map<String, Value>,
) -> Result<Map<String, Value>> {
    PowerLevels::from_content_in(version, content)?;
    let mut out = content.clone();
    for field in LEVEL_FIELDS {
        if let Some(v) = out.get_mut(field) {
            *v = json!(level_value(version, v));
        }
    }
    for field in ["events", "notifications", "users"] {
        if let Some(Value::Object(map)) = out.get_mut(field) {
            for v in map.values_mut() {
                *v = json!(level_value(version, v));
            }
        }
    }
    Ok(out)
}

impl PowerLevels {
    /// The levels in force when the room has no `m.room.power_levels` event: the same
    /// defaults as an empty event's, `state_default` 50 included (the spec's
    /// `m.room.power_levels` schema, and Synapse; older spec text said 0, which let any
    /// member set the first power levels of a room that has none).
    pub fn without_event() -> Self {
        Self::from_content(&Map::new()).expect("empty content is valid")
    }

    /// Parse power levels content, enforcing the room v10+ rule that every level is an integer
    /// (strings such as `"50"` are rejected) and that `users` keys are valid user IDs.
    pub fn from_content(content: &Map<String, Value>) -> Result<Self> {
        Self::from_content_in(RoomVersion::V12, content)
    }

    /// Parse power levels content as room `version` reads it: v10+ integers only, earlier
    /// versions also strings holding integers (and v1–v5 floats), see [`level_value`].
    pub fn from_content_in(version: RoomVersion, content: &Map<String, Value>) -> Result<Self> {
        let v = version;
        let users = int_map(v, content, "users")?
            .into_iter()
            .map(|(k, v)| {
                UserId::parse(&k).map(|u| (u, v)).map_err(|e| {
                    EventError::invalid(format!(
                        "power levels `users` key {k:?} is not a user ID: {e}"
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let mut notifications = int_map(v, content, "notifications")?;
        notifications.entry("room".to_owned()).or_insert(50);
        Ok(Self {
            users,
            users_default: int_field(v, content, "users_default")?.unwrap_or(0),
            events: int_map(v, content, "events")?,
            events_default: int_field(v, content, "events_default")?.unwrap_or(0),
            state_default: int_field(v, content, "state_default")?.unwrap_or(50),
            ban: int_field(v, content, "ban")?.unwrap_or(50),
            kick: int_field(v, content, "kick")?.unwrap_or(50),
            redact: int_field(v, content, "redact")?.unwrap_or(50),
            invite: int_field(v, content, "invite")?.unwrap_or(0),
            notifications,
        })
    }

    /// Serialise back to event content (all fields explicit).
    pub fn to_content(&self) -> Value {
        json!({
            "users": self.users.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
            "users_default": self.users_default,
            "events": self.events,
            "events_default": self.events_default,
            "state_default": self.state_default,
            "ban": self.ban,
            "kick": self.kick,
            "redact": self.redact,
            "invite": self.invite,
            "notifications": self.notifications,
        })
    }

    /// The *required power level* to send an event of `event_type`.
    pub fn required_level(&self, event_type: &str, is_state: bool) -> i64 {
        self.events.get(event_type).copied().unwrap_or(if is_state {
            self.state_default
        } else {
            self.events_default
        })
    }
}

/// The creators of a room according to its create event.
///
/// * v10: `content.creator`.
/// * v11: the `sender`.
/// * v12: the `sender` plus `content.additional_creators` (invalid entries are ignored here; the
///   auth rules reject create events that have any).
pub fn room_creators(version: RoomVersion, create: &Pdu) -> BTreeSet<OwnedUserId> {
    let mut creators = BTreeSet::new();
    if version.create_requires_creator_field() {
        if let Some(c) = create
            .content_str("creator")
            .and_then(|c| UserId::parse(c).ok())
        {
            creators.insert(c);
        }
        return creators;
    }
    creators.insert(create.sender().to_owned());
    if version.supports_additional_creators()
        && let Some(Value::Array(extra)) = create.content().get("additional_creators")
    {
        creators.extend(
            extra
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|s| UserId::parse(s).ok()),
        );
    }
    creators
}

/// Everything needed to answer "how powerful is this user / what level is needed" for a room:
/// the room version, its creators and its current power levels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomPowers {
    version: RoomVersion,
    creators: BTreeSet<OwnedUserId>,
    levels: PowerLevels,
    has_power_levels_event: bool,
}

impl RoomPowers {
    /// Build from the room's create event and current `m.room.power_levels` event (if any).
    pub fn new(version: RoomVersion, create: &Pdu, power_levels: Option<&Pdu>) -> Result<Self> {
        if create.event_type() != types::CREATE {
            return Err(EventError::invalid("expected an m.room.create event"));
        }
        let levels = match power_levels {
            Some(pl) => PowerLevels::from_content_in(version, pl.content())?,
            None => PowerLevels::without_event(),
        };
        Ok(Self {
            version,
            creators: room_creators(version, create),
            levels,
            has_power_levels_event: power_levels.is_some(),
        })
    }

    /// The room creators (see [`room_creators`]).
    pub fn creators(&self) -> &BTreeSet<OwnedUserId> {
        &self.creators
    }

    /// The effective power levels (defaults applied).
    pub fn levels(&self) -> &PowerLevels {
        &self.levels
    }

    /// The effective power of `user`.
    ///
    /// v12 creators are infinite. Otherwise the `users` entry or `users_default`; when the room
    /// has no power levels event, the creator has 100 and everyone else 0.
    pub fn user_power(&self, user: &UserId) -> Power {
        if self.version.creators_have_infinite_power() && self.creators.contains(user) {
            return Power::Infinite;
        }
        if !self.has_power_levels_event {
            return Power::Level(if self.creators.contains(user) { 100 } else { 0 });
        }
        Power::Level(
            self.levels
                .users
                .get(user)
                .copied()
                .unwrap_or(self.levels.users_default),
        )
    }

    /// The level required to send an event of this type (state or not).
    pub fn required_level(&self, event_type: &str, is_state: bool) -> i64 {
        self.levels.required_level(event_type, is_state)
    }
    /// The invite level.
    pub fn invite_level(&self) -> i64 {
        self.levels.invite
    }
    /// The kick level.
    pub fn kick_level(&self) -> i64 {
        self.levels.kick
    }
    /// The ban level.
    pub fn ban_level(&self) -> i64 {
        self.levels.ban
    }
    /// The redact level.
    pub fn redact_level(&self) -> i64 {
        self.levels.redact
    }

    /// Whether `user` has enough power to send an event of this type.
    pub fn can_send(&self, user: &UserId, event_type: &str, is_state: bool) -> bool {
        self.user_power(user)
            .at_least(self.required_level(event_type, is_state))
    }
    /// Whether `user` has enough power to invite.
    pub fn can_invite(&self, user: &UserId) -> bool {
        self.user_power(user).at_least(self.invite_level())
    }
    /// Whether `sender` may kick `target` (power-wise; membership is checked by the auth rules).
    pub fn can_kick(&self, sender: &UserId, target: &UserId) -> bool {
        let p = self.user_power(sender);
        p.at_least(self.kick_level()) && self.user_power(target) < p
    }
    /// Whether `sender` may ban `target` (power-wise).
    pub fn can_ban(&self, sender: &UserId, target: &UserId) -> bool {
        let p = self.user_power(sender);
        p.at_least(self.ban_level()) && self.user_power(target) < p
    }
    /// Whether `sender` may unban `target`: needs both kick and ban level and more power
    /// than the target.
    pub fn can_unban(&self, sender: &UserId, target: &UserId) -> bool {
        self.can_kick(sender, target) && self.can_ban(sender, target)
    }
    /// "Handling redactions": whether a redaction by `redactor` of an event sent by
    /// `original_sender` should be applied (redact level, or same server).
    pub fn can_redact(&self, redactor: &UserId, original_sender: &UserId) -> bool {
        self.user_power(redactor).at_least(self.redact_level())
            || redactor.server_name() == original_sender.server_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::test_support::Fixture;

    fn content(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn defaults_with_and_without_event() {
        let d = PowerLevels::from_content(&Map::new()).unwrap();
        assert_eq!((d.ban, d.kick, d.redact, d.invite), (50, 50, 50, 0));
        assert_eq!(
            (d.users_default, d.events_default, d.state_default),
            (0, 0, 50)
        );
        assert_eq!(d.notifications["room"], 50);
        assert_eq!(PowerLevels::without_event().state_default, 50);
        assert_eq!(d.required_level("m.room.name", true), 50);
        assert_eq!(d.required_level("m.room.message", false), 0);
    }

    #[test]
    fn integer_only_validation() {
        for bad in [
            json!({"ban": "50"}),
            json!({"users_default": 1.5}),
            json!({"events": {"m.room.name": "50"}}),
            json!({"events": []}),
            json!({"notifications": {"room": true}}),
            json!({"users": {"not-a-user": 50}}),
            json!({"users": {"@a:x": "100"}}),
        ] {
            assert!(
                PowerLevels::from_content(&content(bad.clone())).is_err(),
                "{bad}"
            );
        }
        let ok = PowerLevels::from_content(&content(json!({
            "users": {"@a:x": 100}, "events": {"m.room.name": 75}, "kick": 10
        })))
        .unwrap();
        assert_eq!(ok.required_level("m.room.name", true), 75);
        assert_eq!(ok.kick, 10);
        assert_eq!(
            PowerLevels::from_content(ok.to_content().as_object().unwrap()).unwrap(),
            ok
        );
    }

    #[test]
    fn effective_power_per_version() {
        for version in RoomVersion::ALL {
            let mut fx = Fixture::new(version, "@alice:a");
            let create = fx.create().clone();
            let alice = UserId::parse("@alice:a").unwrap();
            let bob = UserId::parse("@bob:b").unwrap();
            // Without power levels: creator 100 (v10/v11), infinite (v12); others 0.
            let p = RoomPowers::new(version, &create, None).unwrap();
            let expected = if version == RoomVersion::V12 {
                Power::Infinite
            } else {
                Power::Level(100)
            };
            assert_eq!(p.user_power(&alice), expected);
            assert_eq!(p.user_power(&bob), Power::Level(0));
            // With power levels listing bob.
            fx.join("@alice:a");
            let pl = fx.power_levels("@alice:a", json!({"@bob:b": 60}), json!({}));
            let p = RoomPowers::new(version, &create, Some(&pl)).unwrap();
            assert_eq!(p.user_power(&bob), Power::Level(60));
            assert!(p.can_kick(&bob, &UserId::parse("@carol:c").unwrap()));
            assert!(!p.can_kick(&bob, &alice));
            if version == RoomVersion::V12 {
                assert_eq!(p.user_power(&alice), Power::Infinite);
                assert!(p.can_ban(&alice, &bob));
            } else {
                assert_eq!(
                    p.user_power(&alice),
                    Power::Level(100),
                    "alice listed in users"
                );
            }
            assert!(
                p.can_redact(&UserId::parse("@eve:b").unwrap(), &bob),
                "same server"
            );
            assert!(!p.can_redact(&UserId::parse("@eve:e").unwrap(), &bob));
            assert!(p.can_redact(&bob, &alice), "bob has the redact level");
        }
    }

    #[test]
    fn v12_additional_creators_are_infinite() {
        let fx = Fixture::with_create_content(
            RoomVersion::V12,
            "@alice:a",
            json!({
                "room_version": "12", "additional_creators": ["@bob:b"]
            }),
        );
        let p = RoomPowers::new(RoomVersion::V12, fx.create(), None).unwrap();
        assert_eq!(
            p.user_power(&UserId::parse("@bob:b").unwrap()),
            Power::Infinite
        );
        assert_eq!(p.creators().len(), 2);
        assert!(Power::Infinite > Power::Level(i64::MAX));
        assert_eq!(Power::Infinite.to_string(), "infinite (room creator)");
    }
}
