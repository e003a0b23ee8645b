//! History across servers: a user who joins a room of another server pages back through
//! what was said before they came, fetched from that server (`/backfill`), as the
//! room's history visibility allows; the old events never show up as new in sync.

use serde_json::{Value, json};

use crate::federation_rooms::{join_via, two_servers};
use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, send_text, user};

/// Every event `user` reads paging back through the room from its newest, `limit` at
/// a time, oldest first, and how many pages it took.
fn page_back(server: &TestServer, user: &User, room: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut events = Vec::new();
    let mut from: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={limit}",
            enc(room)
        );
        if let Some(from) = &from {
            path.push_str(&format!("&from={}", enc(from)));
        }
        let (status, body) = server.get(&path, Some(&user.token));
        assert_eq!(status, 200, "{body}");
        pages += 1;
        events.extend(body["chunk"].as_array().unwrap().iter().cloned());
        match body["end"].as_str() {
            Some(end) => from = Some(end.to_owned()),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    events.reverse();
    (events, pages)
}

fn message_bodies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

fn sync(server: &TestServer, user: &User, since: Option<&str>) -> Value {
    let path = match since {
        Some(since) => format!("/_matrix/client/v3/sync?timeout=0&since={}", enc(since)),
        None => "/_matrix/client/v3/sync?timeout=0".to_owned(),
    };
    let (status, body) = server.get(&path, Some(&user.token));
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn paging_back_after_a_join_fetches_what_came_before_from_the_other_server() {
    let (a, b) = two_servers();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12", "name": "Old news"}),
    );
    // More than one `/backfill` answer holds (100 events).
    let said: Vec<String> = (0..130).map(|i| format!("before bob {i}")).collect();
    for (i, text) in said.iter().enumerate() {
        send_text(&a, &alice, &room, &format!("t{i}"), text);
    }
    let (status, body) = join_via(&b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    let since = sync(&b, &bob, None)["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    let (events, pages) = page_back(&b, &bob, &room, 25);
    assert!(pages >= 6, "{pages} pages of 25 for over 130 events");
    assert_eq!(message_bodies(&events), said);
    // All the way back to the room's creation, in order, each event once.
    assert_eq!(events[0]["type"], "m.room.create", "{}", events[0]);
    assert_eq!(
        events.last().unwrap()["content"]["membership"],
        "join",
        "the newest event is Bob's join"
    );
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "an event came twice");

    // What came from the past is history, not news: sync does not deliver it.
    let later = sync(&b, &bob, Some(&since));
    let timeline = &later["rooms"]["join"][&room]["timeline"]["events"];
    assert!(
        message_bodies(timeline.as_array().map_or(&[][..], Vec::as_slice)).is_empty(),
        "{later}"
    );
    // The backfilled events are readable one by one, with the state they were sent in.
    let old = events
        .iter()
        .find(|e| e["content"]["body"] == "before bob 7")
        .unwrap();
    let (status, event) = b.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(&room),
            enc(old["event_id"].as_str().unwrap())
        ),
        Some(&bob.token),
    );
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["sender"], alice.id.as_str());

    // And searchable.
    let (status, found) = b.post(
        "/_matrix/client/v3/search",
        Some(&bob.token),
        &json!({"search_categories": {"room_events": {"search_term": "bob 7"}}}),
    );
    assert_eq!(status, 200, "{found}");
    let results = found["search_categories"]["room_events"]["results"]
        .as_array()
        .unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["result"]["content"]["body"] == "before bob 7"),
        "{found}"
    );

    // Paging again does not ask for or store anything twice.
    let (again, _) = page_back(&b, &bob, &room, 100);
    assert_eq!(again.len(), events.len());
}

#[test]
fn history_the_room_hid_from_newcomers_stays_hidden_after_backfill() {
    let (a, b) = two_servers();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = create_room(
        &a,
        &alice,
        json!({
            "preset": "public_chat",
            "room_version": "11",
            "initial_state": [{
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "joined"},
            }],
        }),
    );
    let hidden = send_text(&a, &alice, &room, "s1", "before bob could see");
    let (status, body) = join_via(&b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    send_text(&a, &alice, &room, "s2", "after bob joined");
    crate::federation_rooms::eventually(
        std::time::Duration::from_secs(20),
        "the message after the join",
        || {
            let (events, _) = page_back(&b, &bob, &room, 50);
            message_bodies(&events)
                .contains(&"after bob joined".to_owned())
                .then_some(())
        },
    );
    let (events, _) = page_back(&b, &bob, &room, 50);
    assert_eq!(message_bodies(&events), vec!["after bob joined".to_owned()]);
    // Nor is the hidden message readable by ID on Bob's server.
    let (status, body) = b.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(&room),
            enc(&hidden)
        ),
        Some(&bob.token),
    );
    assert_eq!(status, 404, "{body}");
}
