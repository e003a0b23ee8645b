//! The body of a notify request (push gateway API, `POST /_matrix/push/v1/notify`),
//! serialised straight to bytes without a `Value` tree.
//!
//! What is the same for every pusher of an event (its IDs, type, sender and content, the
//! sender's display name, the room's name and alias) is written once per event and kept a
//! few seconds for the event's other pushers ([`EventPart`]): an event that notifies ten
//! members reads the room's state once, not ten times. Each pusher then adds its own
//! members: the badge, the priority, its device and, for a member event, whether the user
//! is its target.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ruma::UserId;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

use super::webpush::is_webpush;
use super::{Pushers, lock};
use crate::store::{CachedEvent, NotificationRecord, PusherRecord};

/// Events whose shared part is kept: enough for pushers that fall seconds behind.
const KEPT_EVENTS: usize = 1024;
/// How long a shared part is used: a later notify reads the room's names again.
const KEPT_FOR: Duration = Duration::from_secs(5);

/// The members of the notification that every pusher of one event sends alike.
pub(super) struct EventPart {
    /// The event it was made from; an event written again (redacted) is another `Arc`.
    event: Arc<CachedEvent>,
    made: Instant,
    /// `"event_id":…,"room_id":…,` (all the `event_id_only` format has of the event).
    ids: String,
    /// The full format's other members of the event and room, each followed by a comma;
    /// made when a pusher of that format first asks.
    full: OnceLock<String>,
    /// An encrypted event is always urgent: its content cannot be judged.
    encrypted: bool,
    /// The state key of a member event.
    target: Option<String>,
}

/// The newest events' shared parts, by event ID, and the IDs oldest first.
#[derive(Default)]
pub(super) struct EventParts {
    parts: HashMap<String, Arc<EventPart>>,
    order: VecDeque<String>,
}

#[derive(Serialize)]
struct Ids<'a> {
    event_id: &'a str,
    room_id: &'a str,
}

#[derive(Serialize)]
struct Full<'a> {
    /// The event ID under its old name, which Synapse still sends and older gateways (and
    /// SyTest's) read.
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    sender: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_alias: Option<String>,
    /// Not in the spec's notification, but Synapse sends it and gateways read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    membership: Option<&'a Value>,
}

/// What one pusher sends alike in every request, made once by its worker: whether it
/// asked for the `event_id_only` format, and its `devices` entry up to the tweaks (the
/// app ID, the pushkey and its time, the data less its URL), serialised.
pub(super) struct PusherPart {
    event_id_only: bool,
    /// `"devices":[{"app_id":…,"pushkey":…,"pushkey_ts":…,"data":{…},"tweaks":`
    device: Vec<u8>,
}

impl PusherPart {
    pub(super) fn new(pusher: &PusherRecord) -> Self {
        let mut device = br#""devices":["#.to_vec();
        // Serialising plain structs and maps of `Value`s cannot fail.
        let _ = serde_json::to_writer(&mut device, &Device::new(pusher));
        // The object stays open for the tweaks.
        device.pop();
        device.extend_from_slice(br#","tweaks":"#);
        Self {
            event_id_only: pusher.data.get("format").and_then(Value::as_str)
                == Some("event_id_only"),
            device,
        }
    }
}

/// The members each request adds to the shared ones: `user_is_target` (a member event's
/// target, full format), the badge, the priority (none for a badge-only update) and the
/// tweaks of the pusher's device.
struct Own<'a> {
    user_is_target: Option<bool>,
    unread: u64,
    prio: Option<&'static str>,
    tweaks: BTreeMap<&'a str, &'a Value>,
}

/// The `devices` entry of the notify request for this pusher, less its `tweaks`.
#[derive(Serialize)]
struct Device<'a> {
    app_id: &'a str,
    pushkey: &'a str,
    pushkey_ts: u64,
    data: DataWithoutUrl<'a>,
}

/// The pusher's `data` less its `url`.
struct DataWithoutUrl<'a>(&'a Value);

impl Serialize for DataWithoutUrl<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = self.0.as_object();
        let len = fields.map_or(0, |f| f.len() - usize::from(f.contains_key("url")));
        let mut map = serializer.serialize_map(Some(len))?;
        for (name, value) in fields.into_iter().flatten() {
            if name != "url" {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

static TRUE: Value = Value::Bool(true);

impl<'a> Device<'a> {
    fn new(pusher: &'a PusherRecord) -> Self {
        Self {
            app_id: &pusher.app_id,
            pushkey: &pusher.pushkey,
            pushkey_ts: pusher.ts / 1000,
            data: DataWithoutUrl(&pusher.data),
        }
    }
}

/// A struct's JSON members without the braces, followed by a comma when there are any.
fn members(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string(value).unwrap_or_default();
    if text.len() > 2 {
        text.pop();
        text.remove(0);
        text.push(',');
    } else {
        text.clear();
    }
    text
}

/// `{"notification":{` + `shared` + the members of `own` + the pusher's device with the
/// tweaks + `}]}}`, written straight into one buffer.
fn body(shared: &[&str], own: &Own<'_>, pusher: &PusherPart) -> Vec<u8> {
    let shared_len: usize = shared.iter().map(|part| part.len()).sum();
    let mut out = Vec::with_capacity(96 + shared_len + pusher.device.len());
    out.extend_from_slice(br#"{"notification":{"#);
    for part in shared {
        out.extend_from_slice(part.as_bytes());
    }
    match own.user_is_target {
        Some(true) => out.extend_from_slice(br#""user_is_target":true,"#),
        Some(false) => out.extend_from_slice(br#""user_is_target":false,"#),
        None => {}
    }
    out.extend_from_slice(br#""counts":{"unread":"#);
    // Serialising numbers and maps of `Value`s cannot fail.
    let _ = serde_json::to_writer(&mut out, &own.unread);
    out.extend_from_slice(b"},");
    if let Some(prio) = own.prio {
        out.extend_from_slice(br#""prio":""#);
        out.extend_from_slice(prio.as_bytes());
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(&pusher.device);
    if own.tweaks.is_empty() {
        out.extend_from_slice(b"{}");
    } else {
        let _ = serde_json::to_writer(&mut out, &own.tweaks);
    }
    out.extend_from_slice(b"}]}}");
    out
}

impl Pushers {
    fn unread_count(&self, user_id: &UserId) -> Option<u64> {
        self.counts
            .total(user_id)
            .inspect_err(|e| tracing::error!(user = %user_id, error = %e, "cannot count unread"))
            .ok()
    }

    /// Counts only: the user read something elsewhere.
    /// None for Web Push: a browser must show a notification for every push it gets.
    pub(super) fn badge_body(
        &self,
        user_id: &UserId,
        pusher: &PusherRecord,
        part: &PusherPart,
    ) -> Option<Vec<u8>> {
        if is_webpush(&pusher.kind) {
            return None;
        }
        let unread = self.unread_count(user_id)?;
        let own = Own {
            user_is_target: None,
            unread,
            prio: None,
            tweaks: BTreeMap::new(),
        };
        Some(body(&[], &own, part))
    }

    /// The notify request for one notification; `None` when the user has read the event
    /// already or it is gone.
    pub(super) fn notify_body(
        &self,
        user_id: &UserId,
        pusher: &PusherPart,
        stream: u64,
        record: &NotificationRecord,
    ) -> Option<Vec<u8>> {
        // From the receipts the unread counts keep, thread by thread.
        let read = self
            .counts
            .read_up_to(user_id, &record.room_id, record.thread.as_deref())
            .inspect_err(|e| tracing::error!(user = %user_id, error = %e, "cannot read receipts"))
            .ok()?;
        if read.is_some_and(|r| r >= stream) {
            return None;
        }
        let part = self.event_part(record)?;
        let unread = self.unread_count(user_id)?;
        let mut tweaks = BTreeMap::new();
        for action in &record.actions {
            if let Some(name) = action.get("set_tweak").and_then(Value::as_str) {
                tweaks.insert(name, action.get("value").unwrap_or(&TRUE));
            }
        }
        let loud = record.highlight || tweaks.contains_key("sound") || part.encrypted;
        let event_id_only = pusher.event_id_only;
        let full = if event_id_only {
            ""
        } else {
            part.full
                .get_or_init(|| self.full_members(record, &part.event))
                .as_str()
        };
        let own = Own {
            user_is_target: (!event_id_only)
                .then(|| part.target.as_ref().map(|t| t == user_id.as_str()))
                .flatten(),
            unread,
            prio: Some(if loud { "high" } else { "low" }),
            tweaks,
        };
        Some(body(&[&part.ids, full], &own, pusher))
    }

    /// The shared part of the notification's event, made once for its pushers; `None`
    /// when the event is gone or redacted.
    fn event_part(&self, record: &NotificationRecord) -> Option<Arc<EventPart>> {
        // Shared with the syncs that delivered it a moment ago: no decoding again.
        let event = self.store.event_shared(record.event_id.as_str()).ok()??;
        if event.record.redacted_because.is_some() {
            return None;
        }
        let event_id = record.event_id.as_str();
        {
            let parts = lock(&self.parts);
            if let Some(part) = parts.parts.get(event_id)
                && Arc::ptr_eq(&part.event, &event)
                && part.made.elapsed() < KEPT_FOR
            {
                return Some(part.clone());
            }
        }
        let pdu = &event.record.pdu;
        let event_type = pdu.get("type").and_then(Value::as_str).unwrap_or("");
        let part = Arc::new(EventPart {
            ids: members(&Ids {
                event_id,
                room_id: record.room_id.as_str(),
            }),
            full: OnceLock::new(),
            encrypted: event_type == "m.room.encrypted",
            target: (event_type == "m.room.member")
                .then(|| pdu.get("state_key").and_then(Value::as_str))
                .flatten()
                .map(str::to_owned),
            made: Instant::now(),
            event,
        });
        let mut parts = lock(&self.parts);
        if parts
            .parts
            .insert(event_id.to_owned(), part.clone())
            .is_none()
        {
            parts.order.push_back(event_id.to_owned());
            if parts.order.len() > KEPT_EVENTS
                && let Some(oldest) = parts.order.pop_front()
            {
                parts.parts.remove(&oldest);
            }
        }
        Some(part)
    }

    /// The full format's members of the event and its room.
    fn full_members(&self, record: &NotificationRecord, event: &CachedEvent) -> String {
        let pdu = &event.record.pdu;
        let event_type = pdu.get("type").and_then(Value::as_str).unwrap_or("");
        let sender = pdu.get("sender").and_then(Value::as_str).unwrap_or("");
        let alias = self.state_string(record, "m.room.canonical_alias", "", "alias");
        members(&Full {
            id: record.event_id.as_str(),
            event_type,
            sender,
            content: pdu.get("content"),
            sender_display_name: self.state_string(record, "m.room.member", sender, "displayname"),
            // A room without a name is named by its canonical alias, as Synapse names it.
            room_name: self
                .state_string(record, "m.room.name", "", "name")
                .or_else(|| alias.clone()),
            room_alias: alias,
            membership: (event_type == "m.room.member")
                .then(|| pdu.pointer("/content/membership"))
                .flatten(),
        })
    }

    /// A non-empty string field of a current state event of the notification's room.
    fn state_string(
        &self,
        record: &NotificationRecord,
        event_type: &str,
        state_key: &str,
        field: &str,
    ) -> Option<String> {
        let id = self
            .store
            .current_state_id(record.room_id.as_str(), event_type, state_key)
            .ok()??;
        let event = self.store.event_shared(id.as_str()).ok()??;
        event.content_str(field).map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pusher(data: Value) -> PusherRecord {
        PusherRecord {
            kind: "http".into(),
            app_id: "org.example.app".into(),
            pushkey: "key".into(),
            app_display_name: "App".into(),
            device_display_name: "Phone".into(),
            profile_tag: None,
            lang: "en".into(),
            data,
            ts: 1_700_000_000_123,
            device_id: None,
            activation: None,
        }
    }

    #[test]
    fn the_body_is_the_shared_members_then_the_pushers_own() {
        let record = pusher(json!({"url": "https://push.example.org/x", "format": "full", "a": 1}));
        let ids = members(&Ids {
            event_id: "$e",
            room_id: "!r:x",
        });
        assert_eq!(ids, r#""event_id":"$e","room_id":"!r:x","#);
        let sound = json!("default");
        let own = Own {
            user_is_target: Some(false),
            unread: 3,
            prio: Some("high"),
            tweaks: BTreeMap::from([("sound", &sound)]),
        };
        let part = PusherPart::new(&record);
        assert!(!part.event_id_only);
        let sent: Value = serde_json::from_slice(&body(&[&ids, ""], &own, &part)).unwrap();
        assert_eq!(
            sent,
            json!({"notification": {
                "event_id": "$e",
                "room_id": "!r:x",
                "user_is_target": false,
                "counts": {"unread": 3},
                "prio": "high",
                "devices": [{
                    "app_id": "org.example.app",
                    "pushkey": "key",
                    "pushkey_ts": 1_700_000_000,
                    "data": {"format": "full", "a": 1},
                    "tweaks": {"sound": "default"},
                }],
            }})
        );
        // A badge: no shared members at all, and `data` without a `url` is kept whole.
        let record = pusher(json!({}));
        let own = Own {
            user_is_target: None,
            unread: 0,
            prio: None,
            tweaks: BTreeMap::new(),
        };
        let sent: Value =
            serde_json::from_slice(&body(&[], &own, &PusherPart::new(&record))).unwrap();
        assert_eq!(sent["notification"]["counts"], json!({"unread": 0}));
        assert_eq!(sent["notification"]["devices"][0]["data"], json!({}));
        assert_eq!(sent["notification"]["devices"][0]["tweaks"], json!({}));
        assert_eq!(sent["notification"].as_object().unwrap().len(), 2);
        assert!(PusherPart::new(&pusher(json!({"format": "event_id_only"}))).event_id_only);
    }
}
