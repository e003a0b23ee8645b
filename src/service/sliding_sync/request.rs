//! The request body of simplified sliding sync (MSC4186), parsed into types and checked
//! against the server's bounds before any work.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use ruma::OwnedRoomId;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// The most lists, subscriptions, ranges and `required_state` entries one request may name.
const MAX_LISTS: usize = 100;
const MAX_SUBSCRIPTIONS: usize = 1000;
const MAX_RANGES: usize = 100;
const MAX_REQUIRED_STATE: usize = 100;
const MAX_BUMP_TYPES: usize = 100;
/// The most timeline events one room carries, whatever the client asks.
pub const MAX_TIMELINE_LIMIT: u64 = 1000;

#[derive(Debug, Default, Deserialize)]
pub struct Body {
    /// Tells apart a device's several connections (Element X keeps one per purpose).
    #[serde(default)]
    pub conn_id: Option<String>,
    #[serde(default)]
    pub lists: BTreeMap<String, AskedList>,
    #[serde(default)]
    pub room_subscriptions: BTreeMap<OwnedRoomId, RoomConfig>,
    #[serde(default)]
    pub unsubscribe_rooms: Vec<OwnedRoomId>,
    #[serde(default)]
    pub extensions: Extensions,
}

/// A list as the request sends it: its JSON, parsed into a [`ListConfig`] only when it
/// is not the JSON the connection's last request sent for it. Clients send their lists
/// with every request, byte for byte the same while they ask the same
/// (`sliding_connection` then keeps the lists it has).
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct AskedList(Box<RawValue>);

impl AskedList {
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The list, parsed and checked against the server's bounds.
    pub fn parse(&self, name: &str) -> Result<ListConfig> {
        let list: ListConfig = serde_json::from_str(self.json())
            .map_err(|e| Error::bad_json(format!("List {name:?}: {e}")))?;
        list.check(name)?;
        Ok(list)
    }
}

/// What to send of a room: `required_state` as `[type, state_key]` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomConfig {
    #[serde(
        default,
        deserialize_with = "sorted_pairs",
        skip_serializing_if = "Option::is_none"
    )]
    pub required_state: Option<Vec<(String, String)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline_limit: Option<u64>,
    /// These wishes alone as a room's wants, made when first needed: a room is mostly
    /// asked for by one list, whose wants are then shared by every answer that sends it
    /// while the list is the same.
    #[serde(skip)]
    pub own_wants: OwnWants,
}

/// [`RoomConfig::own_wants`]: made from the config, so not part of its equality, and
/// not copied with it (a copy may be changed; a config is not changed once its wants
/// are made).
#[derive(Debug, Default)]
pub struct OwnWants(OnceLock<Arc<RoomWants>>);

impl Clone for OwnWants {
    fn clone(&self) -> Self {
        OwnWants::default()
    }
}

impl PartialEq for OwnWants {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for OwnWants {}

impl RoomConfig {
    /// What a room asked for by this alone wants.
    pub fn wants(&self) -> &Arc<RoomWants> {
        self.own_wants
            .0
            .get_or_init(|| Arc::new(RoomWants::of(&[self])))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ListConfigFields")]
pub struct ListConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<(u64, u64)>>,
    #[serde(flatten)]
    pub room: RoomConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
    /// Which events move a room up the list (Synapse's defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bump_event_types: Option<Vec<String>>,
}

/// A list as sent: [`ListConfig`]'s fields side by side. Read through this rather than
/// with `#[serde(flatten)]`, which buffers every list of every request before reading it.
#[derive(Deserialize)]
struct ListConfigFields {
    #[serde(default)]
    ranges: Option<Vec<(u64, u64)>>,
    #[serde(default, deserialize_with = "sorted_pairs")]
    required_state: Option<Vec<(String, String)>>,
    #[serde(default)]
    timeline_limit: Option<u64>,
    #[serde(default)]
    filters: Option<Filters>,
    #[serde(default)]
    bump_event_types: Option<Vec<String>>,
}

impl From<ListConfigFields> for ListConfig {
    fn from(fields: ListConfigFields) -> Self {
        ListConfig {
            ranges: fields.ranges,
            room: RoomConfig {
                required_state: fields.required_state,
                timeline_limit: fields.timeline_limit,
                own_wants: OwnWants::default(),
            },
            filters: fields.filters,
            bump_event_types: fields.bump_event_types,
        }
    }
}

/// `required_state` pairs sorted, without repeats: their order means nothing, so a list
/// that asks the same in another order is equal to the connection's (and kept, see
/// `Connection::asked_lists`).
fn sorted_pairs<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<(String, String)>>, D::Error> {
    let pairs = Option::<Vec<(String, String)>>::deserialize(deserializer)?;
    Ok(pairs.map(|mut pairs| {
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_dm: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_invite: Option<bool>,
    /// `null` in these stands for rooms without a type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_types: Option<Vec<Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_room_types: Option<Vec<Option<String>>>,
    /// Only rooms that are children (`m.space.child`) of one of these spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spaces: Option<Vec<OwnedRoomId>>,
}

/// Extensions are sticky: one the request leaves out keeps its last configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extensions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_device: Option<ToDeviceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2ee: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_data: Option<RoomScoped>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipts: Option<RoomScoped>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<RoomScoped>,
    /// The threads extension (MSC4360) under its stable name and under the unstable
    /// one Synapse and Element use; each answers under the name it was asked by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<ThreadsConfig>,
    #[serde(
        default,
        rename = "io.element.msc4360.threads",
        skip_serializing_if = "Option::is_none"
    )]
    pub threads_unstable: Option<ThreadsConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toggle {
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToDeviceConfig {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The `next_batch` of the extension's last response: messages up to there are done.
    /// Not kept between requests.
    #[serde(default, skip_serializing)]
    pub since: Option<String>,
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadsConfig {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Whether each updated thread comes with its root event (and its thread summary).
    #[serde(default)]
    pub include_roots: Option<bool>,
    /// The most threads one answer names (at most 100, the default).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// An extension about rooms: which lists (by name) and subscribed rooms it covers,
/// `*` for all of them (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomScoped {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub lists: Option<Vec<String>>,
    #[serde(default)]
    pub rooms: Option<Vec<String>>,
}

impl RoomScoped {
    pub fn on(config: &Option<Self>) -> Option<&Self> {
        config.as_ref().filter(|c| c.enabled == Some(true))
    }

    pub fn covers_list(&self, name: &str) -> bool {
        self.lists
            .as_ref()
            .is_none_or(|lists| lists.iter().any(|l| l == "*" || l == name))
    }

    pub fn covers_subscription(&self, room_id: &str) -> bool {
        self.rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == "*" || r == room_id))
    }
}

impl ListConfig {
    fn check(&self, name: &str) -> Result<()> {
        let ranges = self.ranges.as_deref().unwrap_or_default();
        if ranges.len() > MAX_RANGES {
            return Err(Error::invalid_param(format!(
                "List {name:?}: at most {MAX_RANGES} ranges"
            )));
        }
        if let Some((start, end)) = ranges.iter().find(|(start, end)| start > end) {
            return Err(Error::invalid_param(format!(
                "List {name:?}: range [{start}, {end}] ends before it starts"
            )));
        }
        if self
            .bump_event_types
            .as_ref()
            .is_some_and(|t| t.len() > MAX_BUMP_TYPES)
        {
            return Err(Error::invalid_param(format!(
                "List {name:?}: at most {MAX_BUMP_TYPES} bump_event_types"
            )));
        }
        check_room_config(&self.room, &format!("List {name:?}"))
    }

    /// This list as asked, its missing fields taken from how it was asked before.
    pub fn merged_over(self, before: Option<&ListConfig>) -> ListConfig {
        let Some(before) = before else { return self };
        ListConfig {
            ranges: self.ranges.or_else(|| before.ranges.clone()),
            room: RoomConfig {
                required_state: self
                    .room
                    .required_state
                    .or_else(|| before.room.required_state.clone()),
                timeline_limit: self.room.timeline_limit.or(before.room.timeline_limit),
                own_wants: OwnWants::default(),
            },
            filters: self.filters.or_else(|| before.filters.clone()),
            bump_event_types: self
                .bump_event_types
                .or_else(|| before.bump_event_types.clone()),
        }
    }
}

impl Extensions {
    /// These extensions, each one left out taken from `before`.
    pub fn merged_over(self, before: &Extensions) -> Extensions {
        Extensions {
            to_device: self.to_device.or_else(|| before.to_device.clone()),
            e2ee: self.e2ee.or_else(|| before.e2ee.clone()),
            account_data: self.account_data.or_else(|| before.account_data.clone()),
            receipts: self.receipts.or_else(|| before.receipts.clone()),
            typing: self.typing.or_else(|| before.typing.clone()),
            threads: self.threads.or_else(|| before.threads.clone()),
            threads_unstable: self
                .threads_unstable
                .or_else(|| before.threads_unstable.clone()),
        }
    }
}

fn check_room_config(room: &RoomConfig, what: &str) -> Result<()> {
    if let Some(limit) = room.timeline_limit
        && limit > MAX_TIMELINE_LIMIT
    {
        return Err(Error::invalid_param(format!(
            "{what}: timeline_limit may be at most {MAX_TIMELINE_LIMIT}"
        )));
    }
    if room
        .required_state
        .as_ref()
        .is_some_and(|r| r.len() > MAX_REQUIRED_STATE)
    {
        return Err(Error::invalid_param(format!(
            "{what}: required_state may have at most {MAX_REQUIRED_STATE} entries"
        )));
    }
    Ok(())
}

impl Body {
    pub fn check(&self) -> Result<()> {
        if self.conn_id.as_ref().is_some_and(|c| c.len() > 255) {
            return Err(Error::invalid_param("conn_id may be at most 255 bytes"));
        }
        if self.lists.len() > MAX_LISTS {
            return Err(Error::invalid_param(format!(
                "At most {MAX_LISTS} lists per request"
            )));
        }
        if self.room_subscriptions.len() + self.unsubscribe_rooms.len() > MAX_SUBSCRIPTIONS {
            return Err(Error::invalid_param(format!(
                "At most {MAX_SUBSCRIPTIONS} room subscriptions per request"
            )));
        }
        if self.lists.keys().any(|name| name.len() > 255) {
            return Err(Error::invalid_param("List names may be at most 255 bytes"));
        }
        for (room_id, room) in &self.room_subscriptions {
            check_room_config(room, &format!("Subscription to {room_id}"))?;
        }
        Ok(())
    }
}

/// The combined wishes of every list and subscription that take in one room: the most
/// timeline events any asks for, and every state any asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomWants {
    pub timeline_limit: u64,
    pub required_state: BTreeSet<(String, String)>,
}

impl RoomWants {
    /// What the lists and subscriptions `asked` want together.
    pub fn of(asked: &[&RoomConfig]) -> RoomWants {
        let mut wants = RoomWants::default();
        for room in asked {
            wants.add(room);
        }
        wants
    }

    pub fn add(&mut self, room: &RoomConfig) {
        self.timeline_limit = self.timeline_limit.max(room.timeline_limit.unwrap_or(0));
        self.required_state
            .extend(room.required_state.iter().flatten().cloned());
    }

    /// Whether these are what `asked` want together ([`Self::of`] them), found without
    /// building it. (A room asked for by one list takes that list's own wants,
    /// [`RoomConfig::wants`], and is not compared.)
    pub fn is_of(&self, asked: &[&RoomConfig]) -> bool {
        let limit = asked
            .iter()
            .map(|room| room.timeline_limit.unwrap_or(0))
            .max()
            .unwrap_or(0);
        let pairs = || {
            asked
                .iter()
                .flat_map(|room| room.required_state.iter().flatten())
        };
        limit == self.timeline_limit
            && pairs().all(|pair| self.required_state.contains(pair))
            && self
                .required_state
                .iter()
                .all(|pair| pairs().any(|asked| asked == pair))
    }

    /// Lazy loading of members: the senders of the timeline's events.
    pub fn lazy_members(&self) -> bool {
        self.required_state
            .iter()
            .any(|(t, k)| (t == "m.room.member" || t == "*") && k == "$LAZY")
    }

    /// Whether the state event `(event_type, state_key)` is wanted, `$LAZY` aside.
    pub fn wants(&self, user_id: &str, event_type: &str, state_key: &str) -> bool {
        self.required_state.iter().any(|(t, k)| {
            (t == "*" || t == event_type)
                && (k == "*" || k == state_key || (k == "$ME" && state_key == user_id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn required_state_matches_wildcards_and_me() {
        let mut wants = RoomWants::default();
        wants.add(&RoomConfig {
            required_state: Some(vec![
                ("m.room.name".into(), String::new()),
                ("m.room.member".into(), "$ME".into()),
                ("m.room.member".into(), "$LAZY".into()),
                ("org.example".into(), "*".into()),
            ]),
            timeline_limit: Some(3),
            own_wants: OwnWants::default(),
        });
        assert!(wants.wants("@a:x", "m.room.name", ""));
        assert!(!wants.wants("@a:x", "m.room.topic", ""));
        assert!(wants.wants("@a:x", "m.room.member", "@a:x"));
        assert!(!wants.wants("@a:x", "m.room.member", "@b:x"));
        assert!(wants.wants("@a:x", "org.example", "anything"));
        assert!(wants.lazy_members());
        wants.add(&RoomConfig {
            required_state: Some(vec![("*".into(), "*".into())]),
            timeline_limit: Some(1),
            own_wants: OwnWants::default(),
        });
        assert!(wants.wants("@a:x", "m.room.member", "@b:x"));
        assert_eq!(wants.timeline_limit, 3);
    }

    #[test]
    fn wants_are_recognised_without_being_built() {
        let pairs = |p: &[(&str, &str)]| {
            Some(
                p.iter()
                    .map(|(t, k)| ((*t).to_owned(), (*k).to_owned()))
                    .collect(),
            )
        };
        let list = RoomConfig {
            required_state: pairs(&[("m.room.name", ""), ("m.room.member", "$LAZY")]),
            timeline_limit: Some(1),
            own_wants: OwnWants::default(),
        };
        let subscription = RoomConfig {
            required_state: pairs(&[("m.room.topic", ""), ("m.room.name", "")]),
            timeline_limit: Some(5),
            own_wants: OwnWants::default(),
        };
        let wants = RoomWants::of(&[&list, &subscription]);
        assert_eq!(wants.timeline_limit, 5);
        assert_eq!(wants.required_state.len(), 3);
        assert!(wants.is_of(&[&list, &subscription]));
        assert!(wants.is_of(&[&subscription, &list]));
        assert!(RoomWants::of(&[&list]).is_of(&[&list]));
        assert!(RoomWants::default().is_of(&[]));
        assert!(!wants.is_of(&[&list]), "a state less");
        assert!(
            !RoomWants::of(&[&list]).is_of(&[&list, &subscription]),
            "more"
        );
        let longer = RoomConfig {
            timeline_limit: Some(6),
            ..subscription.clone()
        };
        assert!(!wants.is_of(&[&list, &longer]), "another limit");
        let other = RoomConfig {
            required_state: pairs(&[("m.room.name", ""), ("m.room.member", "$ME")]),
            timeline_limit: Some(1),
            own_wants: OwnWants::default(),
        };
        assert!(
            !RoomWants::of(&[&list]).is_of(&[&other]),
            "as many, not the same"
        );
    }

    /// A list's pairs as parsed are sorted without repeats, and its room's wants are
    /// recognised; a timeline limit or a pair changed is not taken for them.
    #[test]
    fn parsed_pairs_are_sorted_and_recognised_in_one_pass() {
        let body = sent(serde_json::json!({
            "lists": {"a": {"required_state": [
                ["m.room.topic", ""], ["m.room.member", "$LAZY"], ["m.room.topic", ""],
                ["m.room.encryption", ""]
            ], "timeline_limit": 1}},
            "room_subscriptions": {"!r:x": {"required_state": [["b", ""], ["a", ""]]}}
        }));
        let list = &body.lists["a"].parse("a").unwrap().room;
        let pair = |t: &str, k: &str| (t.to_owned(), k.to_owned());
        assert_eq!(
            list.required_state,
            Some(vec![
                pair("m.room.encryption", ""),
                pair("m.room.member", "$LAZY"),
                pair("m.room.topic", ""),
            ])
        );
        let subscription = &body.room_subscriptions[&ruma::owned_room_id!("!r:x")];
        assert_eq!(
            subscription.required_state,
            Some(vec![pair("a", ""), pair("b", "")])
        );
        let wants = RoomWants::of(&[list]);
        assert!(wants.is_of(&[list]));
        let longer = RoomConfig {
            timeline_limit: Some(2),
            ..list.clone()
        };
        assert!(!wants.is_of(&[&longer]));
        let mut other = list.clone();
        if let Some(pairs) = other.required_state.as_mut() {
            pairs[2] = pair("m.room.name", "");
        }
        assert!(!wants.is_of(&[&other]));
    }

    /// A body as a request sends it: parsed from its text (a list's JSON is kept as it
    /// was sent).
    fn sent(json: serde_json::Value) -> Body {
        serde_json::from_str(&json.to_string()).unwrap()
    }

    #[test]
    fn bad_requests_are_refused() {
        let list_error = |json: serde_json::Value| {
            let body = sent(json);
            assert!(body.check().is_ok(), "lists are checked as they are parsed");
            body.lists["a"].parse("a").unwrap_err()
        };
        let error = list_error(serde_json::json!({"lists": {"a": {"ranges": [[5, 1]]}}}));
        assert!(
            error.to_string().contains("ends before it starts"),
            "{error}"
        );
        let error = list_error(serde_json::json!({"lists": {"a": {"ranges": 5}}}));
        assert!(matches!(error.kind, ErrorKind::BadJson), "{error}");
        let error = list_error(serde_json::json!({"lists": {"a": [1]}}));
        assert!(matches!(error.kind, ErrorKind::BadJson), "{error}");
        let body = sent(serde_json::json!({
            "room_subscriptions": {"!r:x": {"timeline_limit": 100000}}
        }));
        assert!(body.check().is_err());
        let body = sent(serde_json::json!({
            "lists": {"a": {"ranges": [[0, 9]], "timeline_limit": 1,
                "required_state": [["m.room.name", ""]], "filters": {"is_dm": true}}}
        }));
        assert!(body.check().is_ok());
        assert!(body.lists["a"].parse("a").is_ok());
    }
}
