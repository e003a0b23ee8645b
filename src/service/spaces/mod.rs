//! Spaces and room summaries: what a room looks like from outside (`/room_summary`, the
//! entries of `/hierarchy` and of the public room directory), who may see that, and the
//! children a space names with `m.space.child`.

mod hierarchy;
mod remote;
mod serve;

use ruma::{OwnedRoomId, OwnedServerName, RoomId, ServerName, UserId};
use serde_json::{Map, Value, json};

pub use hierarchy::{HierarchyQuery, HierarchySessions};
pub use remote::RemoteSpaces;

use crate::error::Result;
use crate::service::Services;

const SPACE_CHILD: &str = "m.space.child";

/// A room as others see it before joining: the fields of the spec's `RoomSummary`
/// (a public rooms chunk with `room_type`, `allowed_room_ids`, `encryption` and
/// `room_version`), and for spaces their `m.space.child` events.
#[derive(Debug, Clone)]
pub struct Summary {
    pub room_id: OwnedRoomId,
    /// The summary's JSON fields; `join_rule` is always present.
    pub entry: Map<String, Value>,
    /// The space's `m.space.child` events with a `via`, stripped, with their
    /// `origin_server_ts`; empty for a room that is not a space.
    pub children_state: Vec<Value>,
}

impl Summary {
    /// A summary another server sent, checked field by field by ruma's types.
    pub(crate) fn from_remote(
        summary: &ruma::room::RoomSummary,
        children_state: Vec<Value>,
    ) -> Option<Self> {
        let Ok(Value::Object(mut entry)) = serde_json::to_value(summary) else {
            return None;
        };
        // ruma leaves out the default join rule, `public`.
        entry.entry("join_rule").or_insert_with(|| json!("public"));
        Some(Self {
            room_id: summary.room_id.clone(),
            entry,
            children_state,
        })
    }

    pub fn join_rule(&self) -> &str {
        self.entry
            .get("join_rule")
            .and_then(Value::as_str)
            .unwrap_or("invite")
    }

    pub fn world_readable(&self) -> bool {
        self.entry.get("world_readable") == Some(&Value::Bool(true))
    }

    pub fn num_joined_members(&self) -> u64 {
        self.entry
            .get("num_joined_members")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    pub fn room_type(&self) -> Option<&str> {
        self.entry.get("room_type").and_then(Value::as_str)
    }

    pub fn is_space(&self) -> bool {
        self.room_type() == Some("m.space")
    }

    /// The rooms whose members may join a `restricted` or `knock_restricted` room.
    pub fn allowed_room_ids(&self) -> Vec<OwnedRoomId> {
        match self.join_rule() {
            "restricted" | "knock_restricted" => room_ids(self.entry.get("allowed_room_ids")),
            _ => Vec::new(),
        }
    }

    /// Anyone may look at it: the join rule lets anyone join or knock, or its history
    /// is world-readable.
    fn open_to_all(&self) -> bool {
        matches!(self.join_rule(), "public" | "knock" | "knock_restricted") || self.world_readable()
    }

    /// The `/hierarchy` entry: the summary with its `children_state`.
    pub fn hierarchy_entry(&self) -> Value {
        let mut entry = self.entry.clone();
        entry.insert("children_state".into(), json!(self.children_state));
        Value::Object(entry)
    }

    /// The space's children in the spec's order, each with the servers to ask about it,
    /// only the suggested ones if `suggested_only`.
    pub fn children(&self, suggested_only: bool) -> Vec<Child> {
        let mut children: Vec<(ChildOrder, Child)> = self
            .children_state
            .iter()
            .filter(|event| !suggested_only || event["content"]["suggested"] == true)
            .filter_map(|event| {
                let room_id = RoomId::parse(event["state_key"].as_str()?).ok()?;
                let via = server_names(event["content"].get("via"));
                if via.is_empty() {
                    return None;
                }
                let order = ChildOrder::of(event, &room_id);
                Some((order, Child { room_id, via }))
            })
            .collect();
        children.sort_by(|a, b| a.0.cmp(&b.0));
        children.into_iter().map(|(_, child)| child).collect()
    }
}

/// A room a space names, with the servers its `via` lists.
#[derive(Debug, Clone)]
pub struct Child {
    pub room_id: OwnedRoomId,
    pub via: Vec<OwnedServerName>,
}

/// The spec's ordering of a space's children: a valid `order` first, by code points;
/// then by the `m.space.child` event's timestamp; then by room ID.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ChildOrder {
    /// `false` for a valid `order`, which sorts first.
    no_order: bool,
    order: String,
    ts: u64,
    room_id: OwnedRoomId,
}

impl ChildOrder {
    fn of(event: &Value, room_id: &RoomId) -> Self {
        let order = event["content"]["order"].as_str().filter(|order| {
            order.chars().count() <= 50 && order.chars().all(|c| ('\x20'..='\x7e').contains(&c))
        });
        Self {
            no_order: order.is_none(),
            order: order.unwrap_or_default().to_owned(),
            ts: event["origin_server_ts"].as_u64().unwrap_or(0),
            room_id: room_id.to_owned(),
        }
    }
}

fn room_ids(list: Option<&Value>) -> Vec<OwnedRoomId> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|id| RoomId::parse(id.as_str()?).ok())
        .collect()
}

fn server_names(list: Option<&Value>) -> Vec<OwnedServerName> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|name| ServerName::parse(name.as_str()?).ok())
        .collect()
}

impl Services {
    /// Whether this server holds the room's current state: it knows the room, and one of
    /// its users is joined or no other server's is.
    pub fn participates_in(&self, room_id: &RoomId) -> Result<bool> {
        Ok(self.store.room(room_id.as_str())?.is_some() && !self.joins_remotely(room_id)?)
    }

    /// The summary of a room this server participates in, or `None` for a room it does
    /// not know.
    pub fn local_summary(&self, room_id: &RoomId) -> Result<Option<Summary>> {
        let Some(room) = self.store.room(room_id.as_str())? else {
            return Ok(None);
        };
        let mut entry = Map::new();
        let mut children_state = Vec::new();
        for ((event_type, state_key), event_id) in
            self.store.current_state(room_id.as_str(), None)?
        {
            if event_type == "m.room.member" {
                continue;
            }
            let Some(record) = self.store.event(event_id.as_str())? else {
                continue;
            };
            let content = &record.pdu["content"];
            let text = move |field: &str| content.get(field).and_then(Value::as_str);
            match (event_type.as_str(), state_key.as_str()) {
                ("m.room.create", "") => insert_text(&mut entry, "room_type", text("type")),
                ("m.room.name", "") => insert_text(&mut entry, "name", text("name")),
                ("m.room.topic", "") => {
                    insert_text(&mut entry, "topic", plain_topic(content).as_deref())
                }
                ("m.room.canonical_alias", "") => {
                    insert_text(&mut entry, "canonical_alias", text("alias"))
                }
                ("m.room.avatar", "") => insert_text(&mut entry, "avatar_url", text("url")),
                ("m.room.join_rules", "") => {
                    insert_text(&mut entry, "join_rule", text("join_rule"));
                    let allowed: Vec<&str> = content["allow"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|rule| rule["type"] == "m.room_membership")
                        .filter_map(|rule| rule["room_id"].as_str())
                        .filter(|id| RoomId::parse(*id).is_ok())
                        .collect();
                    entry.insert("allowed_room_ids".into(), json!(allowed));
                }
                ("m.room.history_visibility", "") => {
                    let readable = content["history_visibility"] == "world_readable";
                    entry.insert("world_readable".into(), json!(readable));
                }
                ("m.room.guest_access", "") => {
                    let guests = content["guest_access"] == "can_join";
                    entry.insert("guest_can_join".into(), json!(guests));
                }
                ("m.room.encryption", "") => {
                    insert_text(&mut entry, "encryption", text("algorithm"))
                }
                (SPACE_CHILD, child) if RoomId::parse(child).is_ok() => {
                    if server_names(content.get("via")).is_empty() {
                        continue;
                    }
                    children_state.push(json!({
                        "type": SPACE_CHILD,
                        "state_key": child,
                        "content": content,
                        "sender": record.pdu["sender"],
                        "origin_server_ts": record.pdu["origin_server_ts"],
                    }));
                }
                _ => {}
            }
        }
        let joined = self.room_members(room_id)?.joined.len();
        entry.insert("room_id".into(), json!(room_id));
        entry.insert("num_joined_members".into(), json!(joined));
        entry.insert("room_version".into(), json!(room.version.as_str()));
        entry.entry("join_rule").or_insert_with(|| json!("invite"));
        entry.entry("world_readable").or_insert(json!(false));
        entry.entry("guest_can_join").or_insert(json!(false));
        let mut summary = Summary {
            room_id: room_id.to_owned(),
            entry,
            children_state,
        };
        if !matches!(summary.join_rule(), "restricted" | "knock_restricted") {
            summary.entry.remove("allowed_room_ids");
        }
        if !summary.is_space() {
            summary.children_state.clear();
        }
        Ok(Some(summary))
    }

    /// Whether `user` may see the summary of a room: they are joined or invited, the
    /// room lets anyone join, knock or read, or it is restricted to members of a room
    /// they are joined to. Banned users may not.
    pub fn user_may_preview(&self, user: &UserId, summary: &Summary) -> Result<bool> {
        match self.membership(&summary.room_id, user)?.as_deref() {
            Some("join" | "invite") => return Ok(true),
            Some("ban") => return Ok(false),
            _ => {}
        }
        if summary.open_to_all() {
            return Ok(true);
        }
        for allowed in summary.allowed_room_ids() {
            if self.is_joined(&allowed, user)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether another server may see the summary of a room here: its ACL lets the
    /// server in, and a user of it is joined, or the room lets anyone join, knock or
    /// read, or it is restricted to a room a user of the server is joined to.
    pub fn server_may_preview(&self, server: &ServerName, summary: &Summary) -> Result<bool> {
        if self.check_server_acl(&summary.room_id, server).is_err() {
            return Ok(false);
        }
        if summary.open_to_all() || self.server_in_room(&summary.room_id, server)? {
            return Ok(true);
        }
        for allowed in summary.allowed_room_ids() {
            if self.store.room(allowed.as_str())?.is_some()
                && self.server_in_room(&allowed, server)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Empty strings count as unset, as the spec says of names, topics and canonical aliases.
pub(crate) fn insert_text(entry: &mut Map<String, Value>, key: &str, text: Option<&str>) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        entry.insert(key.into(), Value::String(text.to_owned()));
    }
}

/// The `text/plain` representation in `m.topic` (a missing mimetype means plain text),
/// or else the `topic` field, which is plain text by definition.
pub(crate) fn plain_topic(content: &Value) -> Option<String> {
    if let Some(Value::Array(parts)) = content.get("m.topic") {
        let plain = parts.iter().find(|p| {
            p.get("mimetype")
                .is_none_or(|m| m.as_str() == Some("text/plain"))
        });
        if let Some(body) = plain.and_then(|p| p.get("body")).and_then(Value::as_str) {
            return Some(body.to_owned());
        }
    }
    content
        .get("topic")
        .and_then(Value::as_str)
        .map(str::to_owned)
}
