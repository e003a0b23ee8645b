//! Event filters (the spec's Filtering module): stored per user, applied by `/sync`,
//! `/messages` and `/context`.

use ruma::UserId;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::{Services, random_string};

/// A filter as parsed from its JSON; every field is optional in the spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub event_fields: Option<Vec<String>>,
    pub event_format: EventFormat,
    pub presence: EventFilter,
    pub account_data: EventFilter,
    pub room: RoomFilter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    #[default]
    Client,
    Federation,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    pub limit: Option<u64>,
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RoomFilter {
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub include_leave: bool,
    pub timeline: RoomEventFilter,
    pub state: RoomEventFilter,
    pub ephemeral: RoomEventFilter,
    pub account_data: RoomEventFilter,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RoomEventFilter {
    #[serde(flatten)]
    pub base: EventFilter,
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub contains_url: Option<bool>,
    pub lazy_load_members: bool,
    pub include_redundant_members: bool,
    pub unread_thread_notifications: bool,
}

/// `*` matches any run of characters, as the spec allows in `types` and `not_types`.
/// Greedy with one backtrack point (the last `*`), so at most pattern × value steps: trying
/// every split at every `*` made a pattern like `*a*a*a…b` against a long event type run
/// for hours. Comparing bytes is exact for UTF-8: a literal never matches from inside a
/// character.
fn glob_matches(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut pi, mut vi) = (0, 0);
    // After the last `*` seen: where the pattern resumes, and where in the value its run ends.
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if p.get(pi) == Some(&b'*') {
            pi += 1;
            star = Some((pi, vi));
        } else if p.get(pi) == Some(&v[vi]) {
            pi += 1;
            vi += 1;
        } else if let Some((resume, run_end)) = star {
            // Let the `*` take one more byte and try the rest of the pattern again.
            pi = resume;
            vi = run_end + 1;
            star = Some((resume, vi));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|p| glob_matches(p, value))
}

impl EventFilter {
    pub fn matches(&self, event_type: &str, sender: Option<&str>) -> bool {
        if listed(&self.not_types, event_type) {
            return false;
        }
        if let Some(types) = &self.types
            && !listed(types, event_type)
        {
            return false;
        }
        if let Some(sender) = sender {
            if self.not_senders.iter().any(|s| s == sender) {
                return false;
            }
            if let Some(senders) = &self.senders
                && !senders.iter().any(|s| s == sender)
            {
                return false;
            }
        }
        true
    }

    /// The event's type and sender checked against the filter.
    pub fn matches_event(&self, event: &Value) -> bool {
        let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
        self.matches(event_type, event.get("sender").and_then(Value::as_str))
    }

    fn validate(&self, what: &str) -> Result<()> {
        if self.limit == Some(0) {
            return Err(Error::bad_json(format!(
                "{what}.limit must be a positive integer"
            )));
        }
        for user in self.senders.iter().flatten().chain(&self.not_senders) {
            if UserId::parse(user.as_str()).is_err() {
                return Err(Error::bad_json(format!(
                    "{what} names {user:?}, which is not a user ID"
                )));
            }
        }
        Ok(())
    }
}

impl RoomEventFilter {
    pub fn allows_room(&self, room_id: &str) -> bool {
        !self.not_rooms.iter().any(|r| r == room_id)
            && self
                .rooms
                .as_ref()
                .is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
    }

    /// Whether a client-format event passes: type, sender, room and `contains_url`.
    pub fn matches_event(&self, event: &Value) -> bool {
        if !self.base.matches_event(event) {
            return false;
        }
        if let Some(room) = event.get("room_id").and_then(Value::as_str)
            && !self.allows_room(room)
        {
            return false;
        }
        if let Some(wanted) = self.contains_url {
            let has_url = event
                .get("content")
                .and_then(|c| c.get("url"))
                .is_some_and(Value::is_string);
            if has_url != wanted {
                return false;
            }
        }
        true
    }

    pub fn limit_or(&self, default: usize, max: usize) -> usize {
        self.base
            .limit
            .map_or(default, |l| usize::try_from(l).unwrap_or(max).min(max))
    }
}

impl RoomFilter {
    pub fn allows_room(&self, room_id: &str) -> bool {
        !self.not_rooms.iter().any(|r| r == room_id)
            && self
                .rooms
                .as_ref()
                .is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
    }
}

impl Filter {
    /// Parses and checks a filter definition; errors say which field is wrong.
    pub fn from_json(value: &Value) -> Result<Self> {
        if !value.is_object() {
            return Err(Error::bad_json("A filter must be a JSON object"));
        }
        // Serde reads a struct from an array too (its fields in order), so `"room": []`
        // would pass as an empty filter: the nested filters must be objects.
        for path in [
            &["presence"][..],
            &["account_data"],
            &["room"],
            &["room", "timeline"],
            &["room", "state"],
            &["room", "ephemeral"],
            &["room", "account_data"],
        ] {
            let nested = path.iter().try_fold(value, |v, key| v.get(key));
            if nested.is_some_and(|v| !v.is_object()) {
                return Err(Error::bad_json(format!(
                    "Invalid filter: {} must be an object",
                    path.join(".")
                )));
            }
        }
        let filter: Filter = serde_json::from_value(value.clone())
            .map_err(|e| Error::bad_json(format!("Invalid filter: {e}")))?;
        filter.presence.validate("presence")?;
        filter.account_data.validate("account_data")?;
        validate_rooms("room", &filter.room.rooms, &filter.room.not_rooms)?;
        filter.room.timeline.validate("room.timeline")?;
        filter.room.state.validate("room.state")?;
        filter.room.ephemeral.validate("room.ephemeral")?;
        filter.room.account_data.validate("room.account_data")?;
        Ok(filter)
    }
}

impl RoomEventFilter {
    /// Parses and checks a RoomEventFilter on its own, as `/messages` and `/context`
    /// take one.
    pub fn from_json(value: &Value) -> Result<Self> {
        if !value.is_object() {
            return Err(Error::bad_json("A filter must be a JSON object"));
        }
        let filter: RoomEventFilter = serde_json::from_value(value.clone())
            .map_err(|e| Error::bad_json(format!("Invalid filter: {e}")))?;
        filter.validate("filter")?;
        Ok(filter)
    }

    fn validate(&self, what: &str) -> Result<()> {
        self.base.validate(what)?;
        validate_rooms(what, &self.rooms, &self.not_rooms)
    }
}

/// `rooms` and `not_rooms` must hold room IDs (as Synapse checks, and SyTest's "Check
/// creating invalid filters returns 4xx").
fn validate_rooms(what: &str, rooms: &Option<Vec<String>>, not_rooms: &[String]) -> Result<()> {
    for room in rooms.iter().flatten().chain(not_rooms) {
        if ruma::RoomId::parse(room.as_str()).is_err() {
            return Err(Error::bad_json(format!(
                "{what} names {room:?}, which is not a room ID"
            )));
        }
    }
    Ok(())
}

/// Filter IDs are short and must not start with `{`, which marks an inline filter.
const FILTER_ID_LEN: usize = 12;

/// Parsed `/sync` filters by owner (for a stored filter's ID) and parameter, shared with
/// the syncs that use them (a sync takes a reference, not a copy of the filter).
pub type ParsedFilters =
    crate::cache::Cache<(Option<ruma::OwnedUserId>, String), std::sync::Arc<Filter>>;

/// Parsed filters kept in memory (per generation): about one per syncing device.
pub const PARSED_FILTERS: usize = 1024;

impl Services {
    pub fn create_filter(&self, user_id: &UserId, definition: &Value) -> Result<String> {
        self.check_filter_size(definition.to_string().len())?;
        Filter::from_json(definition)?;
        let filter_id = random_string(FILTER_ID_LEN);
        self.store
            .put_filter(user_id.as_str(), &filter_id, definition)?;
        Ok(filter_id)
    }

    /// `[limits] filter_bytes`: a filter is read on every sync that names it.
    fn check_filter_size(&self, bytes: usize) -> Result<()> {
        let limit = self.config.limits.filter_bytes;
        if bytes > limit {
            return Err(Error::new(
                crate::error::ErrorKind::TooLarge,
                format!("Filters may be at most {limit} bytes"),
            ));
        }
        Ok(())
    }

    /// A stored filter as its owner uploaded it.
    pub fn filter_definition(&self, user_id: &UserId, filter_id: &str) -> Result<Value> {
        self.store
            .filter(user_id.as_str(), filter_id)?
            .ok_or_else(|| Error::not_found(format!("No filter with ID {filter_id}")))
    }

    /// The `filter` query parameter of `/sync` and `/messages`: a filter ID or, when it
    /// starts with `{`, the filter's JSON itself.
    /// Parsed filters are remembered: clients send the same one with every sync, and a
    /// stored filter never changes.
    pub fn resolve_filter(
        &self,
        user_id: &UserId,
        param: Option<&str>,
    ) -> Result<std::sync::Arc<Filter>> {
        let param = param.map(str::trim).unwrap_or_default();
        if param.is_empty() {
            return Ok(std::sync::Arc::default());
        }
        self.check_filter_size(param.len())?;
        // A stored filter's ID names it for its owner only.
        let owner = if param.starts_with('{') {
            None
        } else {
            Some(user_id.to_owned())
        };
        self.parsed_filters
            .get_or_load((owner, param.to_owned()), || {
                if param.starts_with('{') {
                    let value: Value = serde_json::from_str(param).map_err(|e| {
                        Error::bad_json(format!("The filter is not valid JSON: {e}"))
                    })?;
                    Filter::from_json(&value)
                } else {
                    Filter::from_json(&self.filter_definition(user_id, param)?)
                }
                .map(std::sync::Arc::new)
            })
    }

    /// The `filter` parameter of `/messages` and `/context`: a RoomEventFilter given
    /// inline, or the ID of a stored filter, whose room timeline filter applies. A stored
    /// filter usually asks for lazy-loading in its `state` part, as `/sync` reads it, so
    /// that request is honoured too.
    pub fn resolve_room_event_filter(
        &self,
        user_id: &UserId,
        param: Option<&str>,
    ) -> Result<RoomEventFilter> {
        match param.map(str::trim) {
            None | Some("") => Ok(RoomEventFilter::default()),
            Some(inline) if inline.starts_with('{') => {
                let value: Value = serde_json::from_str(inline)
                    .map_err(|e| Error::bad_json(format!("The filter is not valid JSON: {e}")))?;
                RoomEventFilter::from_json(&value)
            }
            Some(id) => {
                let filter = Filter::from_json(&self.filter_definition(user_id, id)?)?;
                let mut timeline = filter.room.timeline;
                timeline.lazy_load_members |= filter.room.state.lazy_load_members;
                Ok(timeline)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_match_any_run() {
        assert!(glob_matches("m.room.*", "m.room.message"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("m.*.member", "m.room.member"));
        assert!(!glob_matches("m.room.*", "m.reaction"));
        assert!(!glob_matches("m.room.message", "m.room.messages"));
        for (pattern, value, expected) in [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("a*", "a", true),
            ("*a*b", "xaxb", true),
            ("*a*b", "xaxbx", false),
            ("a*b*c", "abc", true),
            ("a*bc", "abcbc", true),
            ("**x", "yx", true),
            ("ü*", "ün", true),
            ("*ü", "xü", true),
            ("*ü", "xu", false),
        ] {
            assert_eq!(
                glob_matches(pattern, value),
                expected,
                "{pattern} ~ {value}"
            );
        }
    }

    /// Found while writing the sync filter fuzz target and caught by its hang check
    /// (`fuzz/regressions/sync_filter/`): backtracking at every `*` took exponential time.
    #[test]
    fn many_wildcards_against_a_long_type_answer_at_once() {
        let pattern = "*a".repeat(12) + "b";
        let value = "a".repeat(255);
        // The old matcher did not return from this one.
        assert!(!glob_matches(&pattern, &value));
        assert!(glob_matches(&pattern, &(value + "b")));
    }

    #[test]
    fn not_types_win_over_types() {
        let filter = Filter::from_json(&json!({
            "room": {"timeline": {"types": ["m.room.*"], "not_types": ["m.room.member"]}}
        }))
        .unwrap();
        let timeline = &filter.room.timeline;
        assert!(timeline.matches_event(&json!({"type": "m.room.message", "sender": "@a:x"})));
        assert!(!timeline.matches_event(&json!({"type": "m.room.member", "sender": "@a:x"})));
        assert!(!timeline.matches_event(&json!({"type": "m.reaction", "sender": "@a:x"})));
    }

    #[test]
    fn room_lists_must_hold_room_ids() {
        let bad = serde_json::json!({ "room": { "timeline": { "rooms": ["not_a_room_id"] } } });
        assert_eq!(Filter::from_json(&bad).unwrap_err().errcode(), "M_BAD_JSON");
        let bad = serde_json::json!({ "room": { "not_rooms": ["#alias:x"] } });
        assert_eq!(Filter::from_json(&bad).unwrap_err().errcode(), "M_BAD_JSON");
        let good = serde_json::json!({ "room": { "rooms": ["!a:x"], "state": { "not_rooms": ["!b:x"] } } });
        assert!(Filter::from_json(&good).is_ok());
    }

    #[test]
    fn senders_rooms_and_urls_filter() {
        let filter = Filter::from_json(&json!({
            "room": {"timeline": {
                "not_senders": ["@spam:x"], "rooms": ["!a:x"], "contains_url": true
            }}
        }))
        .unwrap();
        let timeline = &filter.room.timeline;
        let ok = json!({"type": "m.room.message", "sender": "@a:x", "room_id": "!a:x",
                        "content": {"url": "mxc://x/y"}});
        assert!(timeline.matches_event(&ok));
        let mut spam = ok.clone();
        spam["sender"] = json!("@spam:x");
        assert!(!timeline.matches_event(&spam));
        let mut other_room = ok.clone();
        other_room["room_id"] = json!("!b:x");
        assert!(!timeline.matches_event(&other_room));
        let mut no_url = ok;
        no_url["content"] = json!({"body": "hi"});
        assert!(!timeline.matches_event(&no_url));
    }

    #[test]
    fn room_event_filters_parse_on_their_own() {
        let filter = RoomEventFilter::from_json(&json!({
            "types": ["m.room.message"], "not_senders": ["@spam:x"], "lazy_load_members": true
        }))
        .unwrap();
        assert!(filter.lazy_load_members);
        assert!(filter.matches_event(&json!({"type": "m.room.message", "sender": "@a:x"})));
        assert!(!filter.matches_event(&json!({"type": "m.room.message", "sender": "@spam:x"})));
        assert!(RoomEventFilter::from_json(&json!({"limit": 0})).is_err());
        assert!(RoomEventFilter::from_json(&json!({"senders": ["nobody"]})).is_err());
        assert!(RoomEventFilter::from_json(&json!({"types": "m.room.message"})).is_err());
        assert!(RoomEventFilter::from_json(&json!("x")).is_err());
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(Filter::from_json(&json!({"room": {"timeline": {"limit": 0}}})).is_err());
        assert!(Filter::from_json(&json!({"room": {"timeline": {"limit": "ten"}}})).is_err());
        assert!(Filter::from_json(&json!({"presence": {"senders": ["nobody"]}})).is_err());
        assert!(Filter::from_json(&json!({"event_format": "xml"})).is_err());
        assert!(Filter::from_json(&json!([])).is_err());
        // Found by the route walk's wrong-typed fields: serde reads structs from arrays.
        for nested in [
            json!({"presence": []}),
            json!({"account_data": []}),
            json!({"room": []}),
            json!({"room": {"state": []}}),
            json!({"room": {"timeline": [10]}}),
        ] {
            assert!(Filter::from_json(&nested).is_err(), "{nested}");
        }
    }
}
