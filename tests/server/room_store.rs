//! What the server stores: every event signed and hashed correctly, nothing duplicated,
//! and nothing acknowledged lost across restarts or `kill -9`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hearth::event::{PublicKeyMap, Verified, event_id, verify_event, verify_json};
use hearth::store::Store;
use serde_json::{Value, json};

use crate::harness::{TestServer, into_json};
use crate::room_support::*;

const VERSIONS: [&str; 3] = ["10", "11", "12"];

/// The server's published key, checked against its own self-signature.
fn published_keys(server: &TestServer) -> PublicKeyMap {
    let (status, body) = server.get("/_matrix/key/v2/server", None);
    assert_eq!(status, 200, "{body}");
    let name = server.server_name();
    assert_eq!(body["server_name"], name.as_str());
    let mut keys = PublicKeyMap::new();
    for (key_id, key) in body["verify_keys"].as_object().unwrap() {
        keys.entry(name.clone())
            .or_default()
            .insert(key_id.clone(), key["key"].as_str().unwrap().to_owned());
    }
    verify_json(&body, &name, &keys).expect("the key response is self-signed");
    keys
}

/// Gives every room version a little of everything the room core produces.
fn populate(server: &TestServer) -> (Vec<String>, Vec<String>) {
    let alice = user(server, "alice");
    let bob = user(server, "bob");
    let carl = user(server, "carl");
    let mut rooms = Vec::new();
    let mut sent = Vec::new();
    for version in VERSIONS {
        let room = create_room(
            server,
            &alice,
            json!({
                "room_version": version,
                "preset": "trusted_private_chat",
                "name": format!("v{version}"),
                "topic": "verification",
                "invite": [bob.id],
                "is_direct": true,
                "initial_state": [{ "type": "org.example.s", "state_key": "k", "content": { "ü": "ñ" } }],
                "creation_content": { "m.federate": false },
            }),
        );
        join(server, &bob, &room);
        invite(server, &alice, &room, &carl);
        join(server, &carl, &room);
        set_power(server, &alice, &room, &carl.id, 10);
        for i in 0..3 {
            sent.push(send_text(
                server,
                &alice,
                &room,
                &format!("{version}-{i}"),
                "unicode ✓ \u{1F525}",
            ));
            sent.push(send_text(
                server,
                &bob,
                &room,
                &format!("{version}-{i}"),
                "from bob",
            ));
        }
        let (status, _) = membership(
            server,
            &bob,
            &room,
            "kick",
            json!({ "user_id": carl.id, "reason": "test" }),
        );
        assert_eq!(status, 200);
        let (status, _) = membership(server, &alice, &room, "ban", json!({ "user_id": carl.id }));
        assert_eq!(status, 200);
        let (status, _) = membership(
            server,
            &alice,
            &room,
            "unban",
            json!({ "user_id": carl.id }),
        );
        assert_eq!(status, 200);
        let (status, _) = membership(server, &bob, &room, "leave", json!({}));
        assert_eq!(status, 200);
        rooms.push(room);
    }
    (rooms, sent)
}

#[test]
fn every_stored_event_verifies_against_the_published_key() {
    let mut server = TestServer::start();
    let keys = published_keys(&server);
    let (rooms, sent) = populate(&server);
    assert!(server.terminate().success());

    let store = Store::open(&server.data_dir().join("db"), false).unwrap();
    let events = store.all_events().unwrap();
    let mut per_room: HashMap<String, usize> = HashMap::new();
    for (id, record) in &events {
        let room = store
            .room(record.room_id.as_str())
            .unwrap()
            .expect("room of a stored event");
        let verified = verify_event(&record.pdu, &keys, room.version).unwrap_or_else(|e| {
            panic!(
                "{id} in v{} does not verify: {e}\n{}",
                room.version, record.pdu
            )
        });
        assert_eq!(verified, Verified::All, "{id}: content hash mismatch");
        assert_eq!(
            &event_id(&record.pdu, room.version).unwrap(),
            id,
            "event ID is not the reference hash"
        );
        assert!(
            record.pdu.get("event_id").is_none(),
            "{id}: PDUs carry no event_id key"
        );
        if record.pdu["type"] == "m.room.create" {
            assert_eq!(&room.create_event, id);
            if room.version.as_str() == "12" {
                assert!(record.pdu.get("room_id").is_none());
                assert_eq!(record.room_id.as_str(), format!("!{}", &id.as_str()[1..]));
            }
        } else {
            assert_eq!(record.pdu["room_id"], record.room_id.as_str());
            // Only a v12 creator's own join has no auth events: the create event is
            // implied by the room ID, and nothing else exists yet.
            let first_join = room.version.as_str() == "12"
                && record.pdu["type"] == "m.room.member"
                && record.pdu["depth"] == 2;
            assert_eq!(
                record.pdu["auth_events"].as_array().unwrap().is_empty(),
                first_join,
                "{id}: {}",
                record.pdu
            );
            assert_eq!(
                record.pdu["prev_events"].as_array().unwrap().len(),
                1,
                "{id}"
            );
        }
        *per_room.entry(record.room_id.to_string()).or_default() += 1;
    }
    for id in &sent {
        assert!(
            events.iter().any(|(e, _)| e.as_str() == id),
            "{id} was not stored"
        );
    }
    // create, creator join, power levels, join rules, history, guest access, initial state,
    // name, topic, invite; bob joins; carl invited and joins; power change; 6 messages;
    // kick, ban, unban; bob leaves.
    for room in &rooms {
        assert_eq!(per_room.get(room), Some(&24), "{room}");
    }
    assert_eq!(per_room.len(), rooms.len());
}

/// Every event's `prev_events` names the event before it, so a room's events form one
/// chain from the create event: retries and concurrent sends left no stray events.
#[test]
fn retried_and_concurrent_sends_store_exactly_one_event_per_transaction() {
    let server = Arc::new(TestServer::start());
    let alice = Arc::new(user(&server, "alice"));
    let room = Arc::new(create_room(&server, &alice, json!({})));
    let mut expected = Vec::new();
    for round in 0..5 {
        let txn = format!("race{round}");
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (server, alice, room, txn) =
                    (server.clone(), alice.clone(), room.clone(), txn.clone());
                std::thread::spawn(move || send_text(&server, &alice, &room, &txn, "once"))
            })
            .collect();
        let ids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
        // Sequential retries afterwards too.
        assert_eq!(send_text(&server, &alice, &room, &txn, "once"), ids[0]);
        expected.push(ids[0].clone());
    }
    let mut server = Arc::try_unwrap(server).ok().expect("all threads finished");
    assert!(server.terminate().success());

    let store = Store::open(&server.data_dir().join("db"), false).unwrap();
    let messages: Vec<String> = store
        .all_events()
        .unwrap()
        .into_iter()
        .filter(|(_, r)| r.room_id.as_str() == room.as_str() && r.pdu["type"] == "m.room.message")
        .map(|(id, _)| id.to_string())
        .collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(messages, expected_sorted);
}

#[test]
fn a_restart_keeps_rooms_state_and_memberships() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carl = user(&server, "carl");
    let mut rooms = Vec::new();
    for version in VERSIONS {
        let room = create_room(
            &server,
            &alice,
            json!({ "room_version": version, "name": version }),
        );
        invite(&server, &alice, &room, &bob);
        join(&server, &bob, &room);
        invite(&server, &alice, &room, &carl);
        let message = send_text(&server, &bob, &room, "m", "kept");
        rooms.push((room, message));
    }
    let state_before: Vec<Value> = rooms
        .iter()
        .map(|(room, _)| {
            server
                .get(
                    &format!("/_matrix/client/v3/rooms/{}/state", enc(room)),
                    Some(&alice.token),
                )
                .1
        })
        .collect();
    server.restart();
    for ((room, message), before) in rooms.iter().zip(&state_before) {
        let (status, after) = server.get(
            &format!("/_matrix/client/v3/rooms/{}/state", enc(room)),
            Some(&alice.token),
        );
        assert_eq!(status, 200);
        let ids = |v: &Value| -> Vec<Value> {
            let mut ids: Vec<Value> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event_id"].clone())
                .collect();
            ids.sort_by_key(|v| v.to_string());
            ids
        };
        assert_eq!(ids(&after), ids(before));
        assert_eq!(
            membership_of(&server, &alice, room, &carl.id).as_deref(),
            Some("invite")
        );
        let (status, event) = get_event(&server, &bob, room, message);
        assert_eq!(status, 200, "{event}");
        // The transaction survives too: a retry after the restart is still a retry.
        assert_eq!(send_text(&server, &bob, room, "m", "kept"), *message);
        // And the room goes on.
        send_text(&server, &alice, room, "after-restart", "still here");
        join(&server, &carl, room);
    }
    let mut joined = joined_rooms(&server, &bob);
    joined.sort();
    let mut expected: Vec<String> = rooms.iter().map(|(r, _)| r.clone()).collect();
    expected.sort();
    assert_eq!(joined, expected);
}

#[test]
fn kill_9_during_sends_loses_no_acknowledged_event() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let rooms: Vec<String> = VERSIONS
        .iter()
        .map(|v| create_room(&server, &alice, json!({ "room_version": v })))
        .collect();
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (acknowledged, count) = (acknowledged.clone(), count.clone());
        let (client, base, token, rooms) = (
            server.client.clone(),
            server.url(""),
            alice.token.clone(),
            rooms.clone(),
        );
        std::thread::spawn(move || {
            for i in 0.. {
                let room = &rooms[i % rooms.len()];
                let url = format!(
                    "{base}{}",
                    send_path(room, "m.room.message", &format!("k{i}"))
                );
                // Once the server is gone the request fails, and the thread stops.
                let Ok(response) = client
                    .put(url)
                    .bearer_auth(&token)
                    .json(&json!({ "msgtype": "m.text", "body": format!("n{i}") }))
                    .send()
                else {
                    return;
                };
                let (status, body) = into_json(response);
                if status != 200 {
                    return;
                }
                acknowledged
                    .lock()
                    .unwrap()
                    .push((room.clone(), body["event_id"].as_str().unwrap().to_owned()));
                count.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Kill while the sender is mid-stream: after it has had some answers.
    while count.load(Ordering::SeqCst) < 30 {
        std::thread::yield_now();
    }
    server.kill_9();
    sender.join().unwrap();
    server.restart();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 30);
    let mut per_room: BTreeMap<&str, usize> = BTreeMap::new();
    for (room, id) in &acknowledged {
        let (status, event) = get_event(&server, &alice, room, id);
        assert_eq!(status, 200, "{id} was acknowledged but lost: {event}");
        *per_room.entry(room).or_default() += 1;
    }
    assert_eq!(per_room.len(), 3);
    // Each room still accepts events after the crash.
    for room in &rooms {
        send_text(&server, &alice, room, "after-crash", "ok");
    }
}
