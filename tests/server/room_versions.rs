//! Rooms of every supported version (1–12) over the client API: creation, joins, messages,
//! redactions, the string power levels of v3–v9, and upgrades out of old rooms.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;

const OLD_VERSIONS: [&str; 9] = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];

fn redact(server: &TestServer, who: &User, room: &str, event_id: &str, txn: &str) -> String {
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{txn}",
            enc(room),
            enc(event_id)
        ),
        Some(&who.token),
        &json!({ "reason": "test" }),
    );
    assert_eq!(status, 200, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

#[test]
fn capabilities_list_versions_1_to_12_as_stable() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let (status, body) = server.get("/_matrix/client/v3/capabilities", Some(&alice.token));
    assert_eq!(status, 200, "{body}");
    let versions = &body["capabilities"]["m.room_versions"];
    assert_eq!(versions["default"], "12");
    let available = versions["available"].as_object().unwrap();
    let mut listed: Vec<u32> = available.keys().map(|k| k.parse().unwrap()).collect();
    listed.sort();
    assert_eq!(listed, (1..=12).collect::<Vec<_>>());
    assert!(available.values().all(|v| v == "stable"), "{available:?}");
}

#[test]
fn old_room_versions_create_join_send_and_redact() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    for version in OLD_VERSIONS {
        let room = create_room(
            &server,
            &alice,
            json!({ "preset": "public_chat", "room_version": version }),
        );
        assert!(
            room.ends_with(&format!(":{}", server.server_name())),
            "{room}"
        );
        let create = state_event(&server, &alice, &room, "m.room.create", "");
        assert_eq!(create["content"]["room_version"], version, "{create}");
        // Up to v10 the create event names its creator.
        assert_eq!(create["content"]["creator"], alice.id.as_str(), "{create}");
        join(&server, &bob, &room);

        let message = send_text(&server, &bob, &room, &format!("m{version}"), "hello");
        if matches!(version, "1" | "2") {
            // v1/v2: the server chooses the ID, with its own name.
            let suffix = format!(":{}", server.server_name());
            assert!(message.ends_with(&suffix), "{message}");
        } else {
            assert!(
                message.starts_with('$') && !message.contains(':'),
                "{message}"
            );
        }
        let (status, event) = get_event(&server, &alice, &room, &message);
        assert_eq!(status, 200, "v{version}: {event}");
        assert_eq!(event["content"]["body"], "hello");

        // Before v11 the redaction names its target at the top level; clients see it there.
        let redaction = redact(&server, &alice, &room, &message, &format!("r{version}"));
        let (status, event) = get_event(&server, &bob, &room, &redaction);
        assert_eq!(status, 200, "{event}");
        assert_eq!(event["redacts"], message.as_str(), "v{version}: {event}");
        let (_, redacted) = get_event(&server, &bob, &room, &message);
        assert_eq!(redacted["content"], json!({}), "v{version}: {redacted}");
    }
}

/// v1–v9 accept power levels written as strings and enforce them by value; v10+ refuse them.
#[test]
fn string_power_levels_until_v10() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    for version in ["4", "9", "10"] {
        let room = create_room(
            &server,
            &alice,
            json!({ "preset": "public_chat", "room_version": version }),
        );
        join(&server, &bob, &room);
        let levels = json!({
            "users": { alice.id.clone(): "100", bob.id.clone(): " 50 " },
            "users_default": "0",
            "events": { "m.room.power_levels": "100" },
            "state_default": "+50",
        });
        let (status, body) = put_state(&server, &alice, &room, "m.room.power_levels", "", &levels);
        if version == "10" {
            assert_eq!(status, 403, "{body}");
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("must be an integer")
            );
            continue;
        }
        assert_eq!(status, 200, "v{version}: {body}");
        // Bob's " 50 " meets the state default "+50".
        let (status, body) = put_state(
            &server,
            &bob,
            &room,
            "m.room.topic",
            "",
            &json!({"topic": "t"}),
        );
        assert_eq!(status, 200, "v{version}: {body}");
        // ... but not the "100" needed to change power levels.
        let (status, body) = put_state(&server, &bob, &room, "m.room.power_levels", "", &levels);
        assert_eq!(status, 403, "v{version}: {body}");
    }
}

/// Upgrading a v5 room with string power levels gives a v12 room with integer levels.
#[test]
fn upgrading_an_old_room_converts_its_power_levels() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let old = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "room_version": "5" }),
    );
    join(&server, &bob, &old);
    let levels = json!({
        "users": { alice.id.clone(): "100", bob.id.clone(): "60" },
        "ban": "60",
    });
    let (status, body) = put_state(&server, &alice, &old, "m.room.power_levels", "", &levels);
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{}/upgrade", enc(&old)),
        Some(&alice.token),
        &json!({ "new_version": "12" }),
    );
    assert_eq!(status, 200, "{body}");
    let new = body["replacement_room"].as_str().unwrap().to_owned();
    let create = state_event(&server, &alice, &new, "m.room.create", "");
    assert_eq!(create["content"]["room_version"], "12");
    let (status, power) = get_state(&server, &alice, &new, "m.room.power_levels", "");
    assert_eq!(status, 200, "{power}");
    assert_eq!(power["ban"], json!(60), "{power}");
    assert_eq!(power["users"][bob.id.as_str()], json!(60), "{power}");
    // The v12 creator is not listed (infinite power).
    assert!(power["users"].get(alice.id.as_str()).is_none(), "{power}");
    let all_integers = |v: &Value| v.as_object().unwrap().values().all(Value::is_i64);
    assert!(all_integers(&power["users"]), "{power}");
}

#[test]
fn unknown_versions_are_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for version in ["0", "13", "1.0"] {
        assert_error(
            try_create_room(&server, &alice, json!({ "room_version": version })),
            400,
            "M_UNSUPPORTED_ROOM_VERSION",
        );
    }
}
