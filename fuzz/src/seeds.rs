//! The seed corpora, made from real inputs: events of a small room really hashed and
//! signed (by the seed servers' keys, so they pass the signature checks), the filters,
//! search requests and socket frames clients send, and small images of each format.
//! `hearth-fuzz seeds` writes them to `fuzz/corpus/<target>/`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use hearth::event::hashes::room_id_from_create_event_id;
use hearth::event::{NewPdu, RoomVersion, StateKey, auth_types_for_event, build_signed_pdu};
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};

use crate::targets::signing_key;

/// A room being built: its events in order and its current state.
struct Room {
    version: RoomVersion,
    room_id: Option<OwnedRoomId>,
    events: Vec<(OwnedEventId, Value)>,
    state: BTreeMap<StateKey, OwnedEventId>,
    last: Option<OwnedEventId>,
}

impl Room {
    fn new(version: RoomVersion) -> Self {
        let room_id = match version {
            RoomVersion::V12 => None,
            _ => Some("!fuzz:hs1.test".try_into().expect("a room ID")),
        };
        Self {
            version,
            room_id,
            events: Vec::new(),
            state: BTreeMap::new(),
            last: None,
        }
    }

    fn send(&mut self, sender: &str, event_type: &str, state_key: Option<&str>, content: Value) {
        let sender: OwnedUserId = sender.try_into().expect("a user ID");
        let auth_events = if event_type == "m.room.create" {
            Vec::new()
        } else {
            auth_types_for_event(
                self.version,
                event_type,
                &sender,
                state_key,
                content.as_object().expect("content is an object"),
            )
            .into_iter()
            .filter_map(|k| self.state.get(&k).cloned())
            .collect()
        };
        let pdu = NewPdu {
            room_id: self.room_id.clone(),
            sender: sender.clone(),
            event_type: event_type.to_owned(),
            state_key: state_key.map(str::to_owned),
            content,
            prev_events: self.last.iter().cloned().collect(),
            auth_events,
            depth: self.events.len() as u64 + 1,
            origin_server_ts: 1_700_000_000_000 + self.events.len() as u64,
            redacts: None,
        };
        let key = signing_key(sender.server_name().as_str());
        let (id, json) = build_signed_pdu(&pdu, self.version, &key).expect("a valid seed event");
        if event_type == "m.room.create" && self.room_id.is_none() {
            self.room_id = Some(room_id_from_create_event_id(&id));
        }
        if let Some(k) = state_key {
            self.state
                .insert((event_type.to_owned(), k.to_owned()), id.clone());
        }
        self.last = Some(id.clone());
        self.events.push((id, json));
    }

    fn json(&self) -> Vec<Value> {
        self.events.iter().map(|(_, j)| j.clone()).collect()
    }
}

/// A room with two servers' users, power levels, join rules and messages.
fn room(version: RoomVersion) -> Room {
    let mut room = Room::new(version);
    let create = match version {
        RoomVersion::V10 => json!({"creator": "@alice:hs1.test", "room_version": "10"}),
        v => json!({"room_version": v.as_str()}),
    };
    room.send("@alice:hs1.test", "m.room.create", Some(""), create);
    room.send(
        "@alice:hs1.test",
        "m.room.member",
        Some("@alice:hs1.test"),
        json!({"membership": "join", "displayname": "Alice"}),
    );
    room.send(
        "@alice:hs1.test",
        "m.room.power_levels",
        Some(""),
        json!({"users": {"@alice:hs1.test": 100}, "users_default": 0, "events_default": 0,
               "state_default": 50, "ban": 50, "kick": 50, "redact": 50, "invite": 0,
               "events": {"m.room.name": 50}}),
    );
    room.send(
        "@alice:hs1.test",
        "m.room.join_rules",
        Some(""),
        json!({"join_rule": "public"}),
    );
    room.send(
        "@bob:hs2.test",
        "m.room.member",
        Some("@bob:hs2.test"),
        json!({"membership": "join"}),
    );
    room.send(
        "@alice:hs1.test",
        "m.room.message",
        None,
        json!({"msgtype": "m.text", "body": "hello ✓", "format": "org.matrix.custom.html",
               "formatted_body": "<b>hello</b>"}),
    );
    room.send(
        "@alice:hs1.test",
        "m.room.name",
        Some(""),
        json!({"name": "Fuzz"}),
    );
    room.send(
        "@alice:hs1.test",
        "m.room.member",
        Some("@carol:hs2.test"),
        json!({"membership": "invite"}),
    );
    room.send(
        "@bob:hs2.test",
        "m.room.power_levels",
        Some(""),
        json!({"users": {"@bob:hs2.test": 100}}),
    );
    room.send(
        "@alice:hs1.test",
        "m.room.join_rules",
        Some(""),
        json!({"join_rule": "invite"}),
    );
    room
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn write_json(dir: &Path, name: &str, value: &Value) -> std::io::Result<()> {
    write(dir, name, &serde_json::to_vec(value).expect("JSON"))
}

fn image_bytes(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(width, height, |x, y| {
        Rgba([(x * 20) as u8, (y * 20) as u8, ((x + y) * 7) as u8, 255])
    });
    let img = match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img).to_rgb8()),
        _ => DynamicImage::ImageRgba8(img),
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .expect("encoding a small image");
    out.into_inner()
}

/// Writes every target's seed corpus under `corpus`.
pub fn write_all(corpus: &Path) -> std::io::Result<()> {
    let rooms: Vec<Room> = RoomVersion::ALL.into_iter().map(room).collect();

    let dir = corpus.join("canonical_json");
    let docs = [
        r#"{}"#,
        r#"{"one": 1, "two": "Two"}"#,
        r#"{"b": "2", "a": "1"}"#,
        r#"{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe", "three_pids": [{"medium": "email", "address": "john.doe@example.org"}]}}}"#,
        r#"{"a": "日本語"}"#,
        r#"{"本": 2, "日": 1}"#,
        r#"{"a": "\u65E5"}"#,
        r#"{"a": null}"#,
        r#"{"a": -0, "b": 1e10}"#,
        r#"[1, [2, {"x": [true, false, null]}], "\u0000\ud83d\ude00"]"#,
    ];
    for (i, doc) in docs.iter().enumerate() {
        write(&dir, &format!("doc{i}.json"), doc.as_bytes())?;
    }
    write_json(&dir, "event.json", &rooms[0].events[2].1)?;

    for room in &rooms {
        let v = room.version.as_str();
        let events = room.json();
        let dir = corpus.join("pdu");
        for i in [0, 1, 2, 4, 5] {
            write_json(&dir, &format!("v{v}-event{i}.json"), &events[i])?;
        }

        // Auth rules: an event against the state before it.
        let dir = corpus.join("auth_rules");
        for (name, event, state) in [
            ("bob-join", 4, 0..4),
            ("message", 5, 0..5),
            ("invite", 7, 0..7),
            ("bob-power", 8, 0..8),
            ("alice-rules", 9, 0..9),
        ] {
            let input =
                json!({"version": v, "state": events[state].to_vec(), "event": events[event]});
            write_json(&dir, &format!("v{v}-{name}.json"), &input)?;
        }

        // State resolution: two forks with conflicting power levels and join rules.
        let dir = corpus.join("state_res");
        let input = json!({
            "version": v,
            "events": events,
            "sets": [[0, 1, 2, 3, 4, 6], [0, 1, 8, 9, 4, 7]],
        });
        write_json(&dir, &format!("v{v}-forks.json"), &input)?;
        let input =
            json!({"version": v, "events": events, "sets": [[0, 1, 2], [0, 1, 2, 3], [0, 1, 8]]});
        write_json(&dir, &format!("v{v}-three.json"), &input)?;

        let dir = corpus.join("federation_txn");
        let txn = json!({
            "origin": "hs1.test",
            "origin_server_ts": 1_700_000_000_000u64,
            "pdus": [events[5], events[6]],
            "edus": [
                {"edu_type": "m.typing", "content": {"room_id": "!fuzz:hs1.test", "user_id": "@alice:hs1.test", "typing": true}},
                {"edu_type": "m.receipt", "content": {"!fuzz:hs1.test": {"m.read": {"@alice:hs1.test": {"event_ids": ["$e"], "data": {"ts": 1}}}}}},
            ],
        });
        write_json(&dir, &format!("v{v}-txn.json"), &txn)?;
    }

    let dir = corpus.join("federation_edu");
    for (i, edu) in edu_seeds().iter().enumerate() {
        write_json(&dir, &format!("edu{i}.json"), edu)?;
    }

    let dir = corpus.join("sync_filter");
    let filters = [
        json!({}),
        json!({"room": {"timeline": {"limit": 10, "types": ["m.room.*"], "not_senders": ["@spam:hs2.test"]}, "state": {"lazy_load_members": true}}}),
        json!({"room": {"rooms": ["!fuzz:hs1.test"], "include_leave": true, "ephemeral": {"not_types": ["*"]}}, "presence": {"types": ["m.presence"], "limit": 5}}),
        json!({"event_fields": ["content.body", "type"], "event_format": "client", "account_data": {"not_types": ["m.*.x*"]}}),
        json!({"types": ["m.room.message"], "contains_url": true, "not_rooms": ["!a:b.c"], "limit": 20}),
    ];
    for (i, f) in filters.iter().enumerate() {
        write_json(&dir, &format!("filter{i}.json"), f)?;
    }

    let dir = corpus.join("search_query");
    let bodies = [
        json!({"search_categories": {"room_events": {"search_term": "hello world"}}}),
        json!({"search_categories": {"room_events": {"search_term": "Ärger naïve 你好", "keys": ["content.body", "content.name"], "order_by": "recent",
            "filter": {"rooms": ["!fuzz:hs1.test"], "limit": 5}, "event_context": {"before_limit": 2, "after_limit": 2, "include_profile": true},
            "include_state": true, "groupings": {"group_by": [{"key": "room_id"}, {"key": "sender"}]}}}}),
    ];
    for (i, b) in bodies.iter().enumerate() {
        let mut bytes = Vec::new();
        if i == 1 {
            // A next_batch of the shape /search hands out (base64 of its cursor).
            bytes.extend_from_slice(b"eyJvcmRlciI6InJlY2VudCIsInNuYXBzaG90Ijo1LCJzY29yZSI6MCwic3RyZWFtIjozLCJncm91cCI6bnVsbH0");
        }
        bytes.push(b'\n');
        bytes.extend(serde_json::to_vec(b).expect("JSON"));
        write(&dir, &format!("search{i}.txt"), &bytes)?;
    }

    let dir = corpus.join("sync_ws_frame");
    let frames = [
        json!({"type": "ping", "request_id": "1"}),
        json!({"type": "send", "request_id": "2", "room_id": "!fuzz:hs1.test", "event_type": "m.room.message", "txn_id": "t1", "content": {"msgtype": "m.text", "body": "hi"}}),
        json!({"type": "state", "request_id": "3", "room_id": "!fuzz:hs1.test", "event_type": "m.room.topic", "state_key": "", "content": {"topic": "t"}}),
        json!({"type": "typing", "request_id": "4", "room_id": "!fuzz:hs1.test", "typing": true, "timeout": 30000}),
        json!({"type": "receipt", "request_id": "5", "room_id": "!fuzz:hs1.test", "receipt_type": "m.read", "event_id": "$e", "thread_id": "main"}),
        json!({"type": "presence", "request_id": "6", "presence": "online", "status_msg": "here"}),
    ];
    for (i, f) in frames.iter().enumerate() {
        write_json(&dir, &format!("frame{i}.json"), f)?;
    }

    let dir = corpus.join("media_thumbnail");
    for (name, format, w, h) in [
        ("small.png", ImageFormat::Png, 12, 9),
        ("small.jpg", ImageFormat::Jpeg, 16, 12),
        ("small.gif", ImageFormat::Gif, 10, 10),
        ("small.webp", ImageFormat::WebP, 9, 14),
        ("wide.png", ImageFormat::Png, 60, 4),
    ] {
        write(&dir, name, &image_bytes(format, w, h))?;
    }
    Ok(())
}

/// One EDU of each type the server reads, from `hs1.test` to `hs2.test`.
fn edu_seeds() -> Vec<Value> {
    vec![
        json!({"edu_type": "m.typing", "content": {"room_id": "!fuzz:hs1.test", "user_id": "@alice:hs1.test", "typing": true}}),
        json!({"edu_type": "m.receipt", "content": {"!fuzz:hs1.test": {"m.read": {"@alice:hs1.test": {"event_ids": ["$e"], "data": {"ts": 1, "thread_id": "main"}}, "@bob:hs2.test": {"event_ids": ["$f"], "data": {}}}}}}),
        json!({"edu_type": "m.presence", "content": {"push": [{"user_id": "@alice:hs1.test", "presence": "online", "status_msg": "here", "last_active_ago": 5000, "currently_active": true}, {"user_id": "@alice:hs1.test", "presence": "unavailable"}]}}),
        json!({"edu_type": "m.direct_to_device", "content": {"sender": "@alice:hs1.test", "type": "m.room_key_request", "message_id": "hiezohf6Hoo7kaev", "messages": {"@bob:hs2.test": {"BOBDEVICE": {"action": "request", "requesting_device_id": "ALICEDEVICE"}, "*": {"x": 1}}, "@carol:hs3.test": {"D": {}}}}}),
        json!({"edu_type": "m.device_list_update", "content": {"user_id": "@alice:hs1.test", "device_id": "QBUAZIFURK", "device_display_name": "Mobile", "stream_id": 6, "prev_id": [5], "deleted": false, "keys": {"algorithms": ["m.olm.v1.curve25519-aes-sha2"], "device_id": "QBUAZIFURK", "keys": {}, "signatures": {}, "user_id": "@alice:hs1.test"}}}),
        json!({"edu_type": "m.signing_key_update", "content": {"user_id": "@alice:hs1.test", "master_key": {"user_id": "@alice:hs1.test", "usage": ["master"], "keys": {"ed25519:base64+master+public+key": "base64+master+public+key"}}}}),
    ]
}
