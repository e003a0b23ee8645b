//! A `/sync` response as it is written: typed down to the timeline events, so that events
//! unchanged from their PDU are written from the shared cached event (see
//! [`OutEvent`]) rather than built as a tree per receiver; the rest of each room's
//! section, and the response's other parts, stay JSON trees.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::OutEvent;

/// A room's `timeline`.
#[derive(Serialize)]
pub(crate) struct TimelineSection {
    pub(crate) events: Vec<OutEvent>,
    pub(crate) limited: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prev_batch: Option<String>,
}

/// One room of `rooms.join`, `invite`, `knock` or `leave`.
#[derive(Default, Serialize)]
pub(crate) struct RoomSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timeline: Option<TimelineSection>,
    /// `state`, `ephemeral`, `account_data`, counts, summary, `invite_state`, …
    #[serde(flatten)]
    pub(crate) rest: Map<String, Value>,
}

impl RoomSection {
    pub(crate) fn new(rest: Value) -> Self {
        RoomSection {
            timeline: None,
            rest: match rest {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        }
    }
}

/// `rooms`, each part written only when it has a room.
#[derive(Default, Serialize)]
pub(crate) struct Rooms {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) join: BTreeMap<String, RoomSection>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) invite: BTreeMap<String, RoomSection>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) knock: BTreeMap<String, RoomSection>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) leave: BTreeMap<String, RoomSection>,
}

impl Rooms {
    pub(crate) fn is_empty(&self) -> bool {
        self.join.is_empty()
            && self.invite.is_empty()
            && self.knock.is_empty()
            && self.leave.is_empty()
    }

    /// The part a room's section goes in (`join`, `invite`, `knock`, `leave`).
    pub(crate) fn part(&mut self, kind: &str) -> Option<&mut BTreeMap<String, RoomSection>> {
        match kind {
            "join" => Some(&mut self.join),
            "invite" => Some(&mut self.invite),
            "knock" => Some(&mut self.knock),
            "leave" => Some(&mut self.leave),
            _ => None,
        }
    }
}

/// `{"events": [...]}`, the shape of several sections of a response, with the events
/// moved in (`json!` would copy each through the serializer).
pub(crate) fn events_section(events: Vec<Value>) -> Value {
    let mut section = Map::new();
    section.insert("events".into(), Value::Array(events));
    Value::Object(section)
}

/// A whole response.
#[derive(Serialize)]
pub struct SyncResponse {
    pub(crate) next_batch: String,
    pub(crate) rooms: Rooms,
    /// `presence`, `account_data`, `to_device`, `device_lists`, key counts.
    #[serde(flatten)]
    pub(crate) rest: Map<String, Value>,
}

impl SyncResponse {
    pub fn next_batch(&self) -> &str {
        &self.next_batch
    }

    /// How many to-device messages it carries.
    pub fn to_device_count(&self) -> usize {
        self.rest
            .get("to_device")
            .and_then(|t| t.get("events"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }
}

impl Services {
    /// A filter's `event_format: federation`: the timeline and state events of the
    /// joined and left rooms as the PDUs this server stores (see
    /// [`Services::federation_format`]).
    pub(super) fn federation_format_rooms(&self, rooms: &mut Rooms) -> Result<()> {
        for room in rooms.join.values_mut().chain(rooms.leave.values_mut()) {
            if let Some(timeline) = &mut room.timeline {
                for event in timeline.events.iter_mut() {
                    let mut value =
                        std::mem::replace(event, OutEvent::Tree(Value::Null)).into_value();
                    self.federation_format(&mut value)?;
                    *event = OutEvent::Tree(value);
                }
            }
            if let Some(Value::Array(events)) = room
                .rest
                .get_mut("state")
                .and_then(|state| state.get_mut("events"))
            {
                for event in events.iter_mut() {
                    self.federation_format(event)?;
                }
            }
        }
        Ok(())
    }
}
