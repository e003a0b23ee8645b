//! A sliding sync answer as it is written: typed down to each room's timeline, so that
//! events unchanged from their PDU are written from the shared cached event (see
//! [`OutEvent`]) rather than built as a tree per receiver, as `/sync` does
//! (`crate::service::sync::SyncResponse`). The rest of each room, the lists and the
//! extensions stay JSON trees.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::service::rooms::OutEvent;

/// One room of `rooms`. Its fields are written in the order a sorted tree had them
/// (`timeline` sorts after every other field of a room).
#[derive(Serialize)]
pub struct SlidingRoom {
    /// `initial`, `name`, `required_state`, counts, `bump_stamp`, `limited`,
    /// `prev_batch`, `invite_state`, …
    #[serde(flatten)]
    pub(super) rest: Map<String, Value>,
    /// Absent for an invite or knock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) timeline: Option<Vec<OutEvent>>,
}

impl SlidingRoom {
    /// A room without a timeline (an invite or knock): all of it a tree.
    pub(super) fn without_timeline(rest: Map<String, Value>) -> Self {
        SlidingRoom {
            rest,
            timeline: None,
        }
    }

    /// The room's timeline events (none for an invite or knock).
    pub(super) fn timeline(&self) -> &[OutEvent] {
        self.timeline.as_deref().unwrap_or_default()
    }
}

/// A whole answer. Its fields are written in the order a sorted tree had them.
#[derive(Default, Serialize)]
pub struct SlidingAnswer {
    pub(super) extensions: Map<String, Value>,
    pub(super) lists: Map<String, Value>,
    pub(super) pos: String,
    pub(super) rooms: BTreeMap<String, SlidingRoom>,
}

impl SlidingAnswer {
    /// The answer's `pos`.
    pub fn pos(&self) -> &str {
        &self.pos
    }

    /// How many to-device messages it carries.
    pub fn to_device_count(&self) -> usize {
        self.to_device()
            .and_then(|t| t.get("events"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }

    /// The to-device extension's `next_batch`, when it has one.
    pub(super) fn to_device_next_batch(&self) -> Option<u64> {
        self.to_device()?.get("next_batch")?.as_str()?.parse().ok()
    }

    fn to_device(&self) -> Option<&Value> {
        self.extensions.get("to_device")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// Written, the typed answer is the tree it replaces, in the same order: the
    /// room's other fields beside its timeline, an invite without one.
    #[test]
    fn an_answer_writes_the_tree_it_replaces() {
        let event = json!({"type": "m.room.message", "content": {"body": "hi"}, "event_id": "$e"});
        let mut rooms = BTreeMap::new();
        rooms.insert(
            "!a:x".to_owned(),
            SlidingRoom {
                rest: object(json!({"limited": false, "bump_stamp": 3, "name": "A"})),
                timeline: Some(vec![OutEvent::Tree(event.clone())]),
            },
        );
        rooms.insert(
            "!b:x".to_owned(),
            SlidingRoom::without_timeline(object(json!({"invite_state": [], "initial": true}))),
        );
        let answer = SlidingAnswer {
            extensions: object(json!({"to_device": {"next_batch": "7", "events": [{}, {}]}})),
            lists: object(json!({"all": {"count": 2}})),
            pos: "12".into(),
            rooms,
        };
        let expected = json!({
            "extensions": {"to_device": {"next_batch": "7", "events": [{}, {}]}},
            "lists": {"all": {"count": 2}},
            "pos": "12",
            "rooms": {
                "!a:x": {"bump_stamp": 3, "limited": false, "name": "A", "timeline": [event]},
                "!b:x": {"initial": true, "invite_state": []},
            },
        });
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        assert_eq!(answer.to_device_count(), 2);
        assert_eq!(answer.to_device_next_batch(), Some(7));
        assert_eq!(answer.rooms["!a:x"].timeline().len(), 1);
        assert!(answer.rooms["!b:x"].timeline().is_empty());
        let empty = SlidingAnswer::default();
        assert_eq!(empty.to_device_count(), 0);
        assert_eq!(empty.to_device_next_batch(), None);
    }
}
