//! Reading history: `/messages`, `/context`, `/event` and `timestamp_to_event`, with
//! history visibility applied per event.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;
use crate::sync::{bodies, next_batch, sync};

fn messages_path(room: &str, query: &str) -> String {
    format!("/_matrix/client/v3/rooms/{}/messages?{query}", enc(room))
}

fn try_messages(server: &TestServer, user: &User, room: &str, query: &str) -> (u16, Value) {
    server.get(&messages_path(room, query), Some(&user.token))
}

#[track_caller]
fn messages(server: &TestServer, user: &User, room: &str, query: &str) -> Value {
    let (status, body) = try_messages(server, user, room, query);
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn chunk(page: &Value) -> &Vec<Value> {
    page["chunk"]
        .as_array()
        .unwrap_or_else(|| panic!("no chunk: {page}"))
}

fn try_context(
    server: &TestServer,
    user: &User,
    room: &str,
    event_id: &str,
    query: &str,
) -> (u16, Value) {
    server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/context/{}?{query}",
            enc(room),
            enc(event_id)
        ),
        Some(&user.token),
    )
}

fn try_timestamp(server: &TestServer, user: &User, room: &str, query: &str) -> (u16, Value) {
    server.get(
        &format!(
            "/_matrix/client/v1/rooms/{}/timestamp_to_event?{query}",
            enc(room)
        ),
        Some(&user.token),
    )
}

fn set_visibility(server: &TestServer, user: &User, room: &str, visibility: &str) {
    let (status, body) = put_state(
        server,
        user,
        room,
        "m.room.history_visibility",
        "",
        &json!({ "history_visibility": visibility }),
    );
    assert_eq!(status, 200, "{body}");
}

/// Every message body the user can page back to from the newest event.
fn all_bodies_back(server: &TestServer, user: &User, room: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut query = "dir=b&limit=50".to_owned();
    loop {
        let page = messages(server, user, room, &query);
        seen.extend(bodies(chunk(&page)));
        match page["end"].as_str() {
            Some(end) => query = format!("dir=b&limit=50&from={}", enc(end)),
            None => return seen,
        }
    }
}

#[test]
fn a_thousand_messages_page_back_and_forth_without_gaps_or_repeats() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let total = 1000;
    for i in 0..total {
        send_text(&server, &alice, &room, &format!("t{i}"), &format!("m{i}"));
    }
    let expected: Vec<String> = (0..total).map(|i| format!("m{i}")).collect();

    let mut all_ids = Vec::new();
    for (dir, first_query) in [("b", "dir=b&limit=37"), ("f", "dir=f&limit=37")] {
        let mut query = first_query.to_owned();
        let mut ids = HashSet::new();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = messages(&server, &bob, &room, &query);
            let events = chunk(&page);
            for event in events {
                let id = event["event_id"].as_str().unwrap().to_owned();
                assert!(ids.insert(id), "{dir}: repeated {event}");
            }
            seen.extend(bodies(events));
            pages += 1;
            let Some(end) = page["end"].as_str() else {
                break;
            };
            assert_eq!(
                events.len(),
                37,
                "{dir}: a page short of the limit has an end"
            );
            query = format!("dir={dir}&limit=37&from={}", enc(end));
        }
        // The room's initial state and bob's join are paged through as well.
        assert!(ids.len() > total, "{dir}");
        assert_eq!(pages, ids.len().div_ceil(37), "{dir}");
        if dir == "b" {
            seen.reverse();
        }
        assert_eq!(seen, expected, "{dir}");
        all_ids.push(ids);
    }
    assert_eq!(
        all_ids[0], all_ids[1],
        "both directions see the same events"
    );
}

#[test]
fn to_stops_pagination_and_start_echoes_from() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    for i in 0..10 {
        send_text(&server, &alice, &room, &format!("t{i}"), &format!("m{i}"));
    }
    let first = messages(&server, &bob, &room, "dir=b&limit=3");
    assert_eq!(bodies(chunk(&first)), ["m9", "m8", "m7"]);
    let a = first["end"].as_str().unwrap();
    let second = messages(
        &server,
        &bob,
        &room,
        &format!("dir=b&limit=4&from={}", enc(a)),
    );
    assert_eq!(second["start"], a);
    assert_eq!(bodies(chunk(&second)), ["m6", "m5", "m4", "m3"]);
    let b = second["end"].as_str().unwrap();

    let between = messages(
        &server,
        &bob,
        &room,
        &format!("dir=f&limit=100&from={}&to={}", enc(b), enc(a)),
    );
    assert_eq!(bodies(chunk(&between)), ["m3", "m4", "m5", "m6"]);
    assert_eq!(chunk(&between).len(), 4, "nothing past `to`: {between}");
    let newest = messages(
        &server,
        &bob,
        &room,
        &format!("dir=b&limit=100&to={}", enc(a)),
    );
    assert_eq!(bodies(chunk(&newest)), ["m9", "m8", "m7"]);
    assert_eq!(chunk(&newest).len(), 3, "{newest}");

    // A /sync token works as `from`: going back, its newest event comes first.
    let since = next_batch(&sync(&server, &bob, ""));
    send_text(&server, &alice, &room, "later", "later");
    let page = messages(
        &server,
        &bob,
        &room,
        &format!("dir=b&limit=1&from={}", enc(&since)),
    );
    assert_eq!(page["start"], since.as_str());
    assert_eq!(bodies(chunk(&page)), ["m9"]);
    let page = messages(
        &server,
        &bob,
        &room,
        &format!("dir=f&limit=5&from={}", enc(&since)),
    );
    assert_eq!(bodies(chunk(&page)), ["later"]);
    assert!(page.get("end").is_none(), "nothing after: {page}");
}

#[test]
fn filters_narrow_the_chunk_and_lazy_load_its_senders() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let carol = user(&server, "carol");
    join(&server, &carol, &room);
    send_text(&server, &alice, &room, "a1", "from alice");
    send_text(&server, &bob, &room, "b1", "from bob");
    put_state(
        &server,
        &alice,
        &room,
        "m.room.topic",
        "",
        &json!({"topic": "t"}),
    );

    let only = |filter: Value| {
        let page = messages(
            &server,
            &carol,
            &room,
            &format!("dir=b&limit=2&filter={}", enc(&filter.to_string())),
        );
        chunk(&page).clone()
    };
    let events = only(json!({"types": ["m.room.message"]}));
    assert_eq!(bodies(&events), ["from bob", "from alice"]);
    assert_eq!(events.len(), 2);
    let events = only(json!({"types": ["m.room.message"], "not_senders": [bob.id]}));
    assert_eq!(bodies(&events), ["from alice"]);
    let events = only(json!({"not_types": ["m.room.message"]}));
    assert_eq!(events[0]["type"], "m.room.topic");

    // Lazy-loading: `state` holds the member events of the chunk's senders, no others.
    let lazy = json!({"types": ["m.room.message"], "lazy_load_members": true});
    let page = messages(
        &server,
        &carol,
        &room,
        &format!("dir=b&limit=1&filter={}", enc(&lazy.to_string())),
    );
    assert_eq!(bodies(chunk(&page)), ["from bob"]);
    let members: Vec<&str> = page["state"]
        .as_array()
        .unwrap_or_else(|| panic!("no state: {page}"))
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "m.room.member");
            e["state_key"].as_str().unwrap()
        })
        .collect();
    assert_eq!(members, [bob.id.as_str()]);
    // Without lazy-loading there is no state.
    let page = messages(&server, &carol, &room, "dir=b&limit=1");
    assert!(page.get("state").is_none(), "{page}");

    // A stored filter: its room timeline filter applies.
    let (status, created) = server.post(
        &format!("/_matrix/client/v3/user/{}/filter", enc(&carol.id)),
        Some(&carol.token),
        &json!({"room": {"timeline": {"senders": [alice.id]}}}),
    );
    assert_eq!(status, 200, "{created}");
    let page = messages(
        &server,
        &carol,
        &room,
        &format!(
            "dir=b&limit=100&filter={}",
            created["filter_id"].as_str().unwrap()
        ),
    );
    assert!(!chunk(&page).is_empty());
    assert!(
        chunk(&page).iter().all(|e| e["sender"] == alice.id),
        "{page}"
    );

    assert_error(
        try_messages(&server, &carol, &room, "dir=b&filter=%7Bbroken"),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        try_messages(
            &server,
            &carol,
            &room,
            &format!("dir=b&filter={}", enc(r#"{"senders":["nobody"]}"#)),
        ),
        400,
        "M_BAD_JSON",
    );
}

#[test]
fn redacted_events_come_back_redacted() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let target = send_text(&server, &alice, &room, "t1", "oops");
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/r1",
            enc(&room),
            enc(&target)
        ),
        Some(&alice.token),
        &json!({"reason": "typo"}),
    );
    assert_eq!(status, 200, "{body}");
    let redaction = body["event_id"].as_str().unwrap();
    let page = messages(&server, &bob, &room, "dir=b&limit=5");
    let event = chunk(&page)
        .iter()
        .find(|e| e["event_id"] == target.as_str())
        .unwrap_or_else(|| panic!("redacted event missing: {page}"));
    assert_eq!(event["content"], json!({}));
    assert_eq!(event["unsigned"]["redacted_because"]["event_id"], redaction);
    assert_eq!(event["unsigned"]["redacted_by"], redaction);
    assert_eq!(
        event["unsigned"]["redacted_because"]["content"]["reason"],
        "typo"
    );
}

#[test]
fn ephemeral_messages_come_back_redacted_once_their_time_has_passed() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // MSC2228's `org.matrix.self_destruct_after`, as Synapse's ephemeral messages
    // (SyTest 04messages): one whose time has passed, one whose time is an hour away.
    let mut sent = Vec::new();
    for (txn, after) in [("e1", now - 1_000), ("e2", now + 3_600_000)] {
        let content = json!({
            "msgtype": "m.text",
            "body": format!("ephemeral {txn}"),
            "org.matrix.self_destruct_after": after,
        });
        let (status, body) = try_send(&server, &alice, &room, txn, &content);
        assert_eq!(status, 200, "{body}");
        sent.push(body["event_id"].as_str().unwrap().to_owned());
    }
    let page = messages(&server, &bob, &room, "dir=b&limit=5");
    let find = |id: &str| {
        chunk(&page)
            .iter()
            .find(|e| e["event_id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {page}"))
            .clone()
    };
    assert_eq!(find(&sent[0])["content"], json!({}));
    assert_eq!(find(&sent[1])["content"]["body"], "ephemeral e2");
    // Every way of reading it agrees: the event itself, and sync.
    let (status, event) = get_event(&server, &alice, &room, &sent[0]);
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["content"], json!({}));
    let body = sync(&server, &bob, "");
    let synced = body["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap();
    let expired = synced.iter().find(|e| e["event_id"] == sent[0].as_str());
    assert_eq!(expired.unwrap()["content"], json!({}), "{body}");
}

#[test]
fn outsiders_are_refused_and_leavers_read_up_to_their_departure() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let carol = user(&server, "carol");
    let before = send_text(&server, &alice, &room, "t1", "before");
    let (status, body) = membership(&server, &bob, &room, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    // A later millisecond than the leave, for the timestamp lookups below.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let after = send_text(&server, &alice, &room, "t2", "after");

    // Never a member: refused everywhere (the event lookup hides the event instead).
    assert_error(
        try_messages(&server, &carol, &room, "dir=b"),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        try_context(&server, &carol, &room, &before, ""),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        try_timestamp(&server, &carol, &room, "ts=0&dir=f"),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        get_event(&server, &carol, &room, &before),
        404,
        "M_NOT_FOUND",
    );

    // Bob left: his history ends with his leave event, from either end.
    let page = messages(&server, &bob, &room, "dir=b&limit=100");
    let events = chunk(&page);
    assert_eq!(events[0]["type"], "m.room.member");
    assert_eq!(events[0]["state_key"], bob.id);
    assert_eq!(events[0]["content"]["membership"], "leave");
    assert_eq!(bodies(events), ["before"]);
    let page = messages(&server, &bob, &room, "dir=f&limit=100");
    assert_eq!(bodies(chunk(&page)), ["before"]);
    assert_eq!(
        chunk(&page).last().unwrap()["content"]["membership"],
        "leave"
    );
    assert!(page.get("end").is_none(), "{page}");
    // Even from a token that lies after his departure.
    let since = next_batch(&sync(&server, &alice, ""));
    let page = messages(
        &server,
        &bob,
        &room,
        &format!("dir=b&limit=100&from={}", enc(&since)),
    );
    assert_eq!(bodies(chunk(&page)), ["before"]);

    assert_eq!(get_event(&server, &bob, &room, &before).0, 200);
    assert_error(get_event(&server, &bob, &room, &after), 404, "M_NOT_FOUND");
    assert_error(
        try_context(&server, &bob, &room, &after, ""),
        404,
        "M_NOT_FOUND",
    );
    assert_eq!(try_context(&server, &bob, &room, &before, "").0, 200);
    let (_, after_event) = get_event(&server, &alice, &room, &after);
    let after_ts = after_event["origin_server_ts"].as_u64().unwrap();
    let (status, body) = try_timestamp(&server, &bob, &room, &format!("ts={after_ts}&dir=b"));
    assert_eq!(status, 200, "{body}");
    let (_, found) = get_event(&server, &bob, &room, body["event_id"].as_str().unwrap());
    assert_eq!(
        (
            found["state_key"].as_str(),
            found["content"]["membership"].as_str()
        ),
        (Some(bob.id.as_str()), Some("leave")),
        "his departure is the last thing he can find"
    );
    assert_error(
        try_timestamp(&server, &bob, &room, &format!("ts={after_ts}&dir=f")),
        404,
        "M_NOT_FOUND",
    );

    // Forgetting the room ends it.
    let (status, body) = membership(&server, &bob, &room, "forget", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_error(
        try_messages(&server, &bob, &room, "dir=b"),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn joined_visibility_hides_what_came_before_the_join() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    set_visibility(&server, &alice, &room, "joined");
    let early = send_text(&server, &alice, &room, "t1", "early");
    join(&server, &bob, &room);
    send_text(&server, &alice, &room, "t2", "late");

    let page = messages(&server, &bob, &room, "dir=b&limit=100");
    let events = chunk(&page);
    assert_eq!(bodies(events), ["late"]);
    assert!(page.get("end").is_none(), "{page}");
    // Going back: his own join, then the change to `joined`, visible since the state
    // before it (shared) allows it, and then the room's set-up under that shared
    // visibility. The message between the change and his join stays hidden.
    let join_at = events
        .iter()
        .position(|e| e["type"] == "m.room.member" && e["state_key"] == bob.id)
        .unwrap_or_else(|| panic!("no join: {page}"));
    let change = &events[join_at + 1];
    assert_eq!(change["type"], "m.room.history_visibility", "{page}");
    assert_eq!(change["content"]["history_visibility"], "joined");
    assert!(events.iter().any(|e| e["type"] == "m.room.create"));
    assert_error(get_event(&server, &bob, &room, &early), 404, "M_NOT_FOUND");
    assert_error(
        try_context(&server, &bob, &room, &early, ""),
        404,
        "M_NOT_FOUND",
    );
    // Alice, joined throughout, sees everything.
    assert_eq!(all_bodies_back(&server, &alice, &room), ["late", "early"]);

    // After bob leaves and rejoins, the time he was away stays hidden.
    membership(&server, &bob, &room, "leave", json!({}));
    send_text(&server, &alice, &room, "t3", "while away");
    join(&server, &bob, &room);
    send_text(&server, &alice, &room, "t4", "back");
    assert_eq!(all_bodies_back(&server, &bob, &room), ["back", "late"]);
}

#[test]
fn invited_visibility_shows_history_from_the_invite() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({"preset": "private_chat"}));
    set_visibility(&server, &alice, &room, "invited");
    send_text(&server, &alice, &room, "t1", "before the invite");
    invite(&server, &alice, &room, &bob);
    send_text(&server, &alice, &room, "t2", "while invited");
    join(&server, &bob, &room);
    send_text(&server, &alice, &room, "t3", "after joining");
    assert_eq!(
        all_bodies_back(&server, &bob, &room),
        ["after joining", "while invited"]
    );
}

#[test]
fn shared_visibility_shows_everything_to_members() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    set_visibility(&server, &alice, &room, "shared");
    let early = send_text(&server, &alice, &room, "t1", "early");
    join(&server, &bob, &room);
    send_text(&server, &alice, &room, "t2", "late");
    assert_eq!(all_bodies_back(&server, &bob, &room), ["late", "early"]);
    assert_eq!(get_event(&server, &bob, &room, &early).0, 200);
    // Shared is for members: an outsider reads nothing.
    assert_error(
        try_messages(&server, &carol, &room, "dir=b"),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn world_readable_history_is_open_to_anyone_while_it_was_world_readable() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let carol = user(&server, "carol");
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    set_visibility(&server, &alice, &room, "joined");
    let hidden = send_text(&server, &alice, &room, "t1", "members only");
    set_visibility(&server, &alice, &room, "world_readable");
    let open = send_text(&server, &alice, &room, "t2", "for everyone");

    // Carol never joined: she peeks at what was world-readable when sent.
    let page = messages(&server, &carol, &room, "dir=b&limit=100");
    let events = chunk(&page);
    assert_eq!(bodies(events), ["for everyone"]);
    // The change to world_readable is visible, since the state after it allows it.
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "m.room.history_visibility"
                && e["content"]["history_visibility"] == "world_readable"),
        "{page}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "m.room.history_visibility"
                && e["content"]["history_visibility"] == "joined"),
        "the earlier joined-only change stays hidden: {page}"
    );
    assert_eq!(get_event(&server, &carol, &room, &open).0, 200);
    assert_error(
        get_event(&server, &carol, &room, &hidden),
        404,
        "M_NOT_FOUND",
    );
    assert_eq!(try_context(&server, &carol, &room, &open, "").0, 200);

    // Once the room is no longer world-readable, outsiders are refused again.
    set_visibility(&server, &alice, &room, "shared");
    assert_error(
        try_messages(&server, &carol, &room, "dir=b"),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn context_surrounds_the_event_with_tokens_for_both_directions() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(send_text(
            &server,
            &alice,
            &room,
            &format!("t{i}"),
            &format!("m{i}"),
        ));
    }
    let filter = enc(r#"{"types":["m.room.message"]}"#);
    let (status, body) = try_context(
        &server,
        &bob,
        &room,
        &ids[5],
        &format!("limit=4&filter={filter}"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event"]["event_id"], ids[5].as_str());
    assert_eq!(
        bodies(body["events_before"].as_array().unwrap()),
        ["m4", "m3"]
    );
    assert_eq!(
        bodies(body["events_after"].as_array().unwrap()),
        ["m6", "m7"]
    );
    // The filter applies to the state as well as to the events around.
    assert!(body["state"].as_array().unwrap().is_empty(), "{body}");

    let start = body["start"].as_str().unwrap();
    let page = messages(
        &server,
        &bob,
        &room,
        &format!("dir=b&limit=10&from={}", enc(start)),
    );
    assert_eq!(bodies(chunk(&page)), ["m2", "m1", "m0"]);
    let end = body["end"].as_str().unwrap();
    let page = messages(
        &server,
        &bob,
        &room,
        &format!("dir=f&limit=10&from={}", enc(end)),
    );
    assert_eq!(bodies(chunk(&page)), ["m8", "m9"]);

    // Without a filter, the state at the last event returned; lazily, only the senders.
    let (status, body) = try_context(&server, &bob, &room, &ids[5], "limit=2");
    assert_eq!(status, 200, "{body}");
    let state = body["state"].as_array().unwrap();
    assert!(state.iter().any(|e| e["type"] == "m.room.create"), "{body}");
    let members = |state: &[Value]| {
        let mut m: Vec<String> = state
            .iter()
            .filter(|e| e["type"] == "m.room.member")
            .map(|e| e["state_key"].as_str().unwrap().to_owned())
            .collect();
        m.sort();
        m
    };
    let mut both = vec![alice.id.clone(), bob.id.clone()];
    both.sort();
    assert_eq!(members(state), both);
    let lazy = enc(r#"{"lazy_load_members":true}"#);
    let (status, body) = try_context(
        &server,
        &bob,
        &room,
        &ids[5],
        &format!("limit=2&filter={lazy}"),
    );
    assert_eq!(status, 200, "{body}");
    let state = body["state"].as_array().unwrap();
    assert_eq!(members(state), [alice.id.as_str()]);
    assert!(state.iter().any(|e| e["type"] == "m.room.create"), "{body}");

    // limit=0 still returns the event itself.
    let (status, body) = try_context(&server, &bob, &room, &ids[0], "limit=0");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event"]["content"]["body"], "m0");
    assert!(body["events_before"].as_array().unwrap().is_empty());
    assert!(body["events_after"].as_array().unwrap().is_empty());

    assert_error(
        try_context(&server, &bob, &room, "$nosuchevent", ""),
        404,
        "M_NOT_FOUND",
    );
    let other = create_room(&server, &bob, json!({"preset": "private_chat"}));
    assert_error(
        try_context(&server, &bob, &other, &ids[5], ""),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn timestamp_to_event_finds_the_nearest_event_either_way() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let mut sent = Vec::new();
    for i in 0..3 {
        // Distinct timestamps, also from the room's creation, make the expected answers
        // unambiguous.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let id = send_text(&server, &alice, &room, &format!("t{i}"), &format!("m{i}"));
        let (status, event) = get_event(&server, &bob, &room, &id);
        assert_eq!(status, 200, "{event}");
        sent.push((id, event["origin_server_ts"].as_u64().unwrap()));
    }
    let find =
        |ts: u64, dir: &str| try_timestamp(&server, &bob, &room, &format!("ts={ts}&dir={dir}"));
    let (a, b, c) = (&sent[0], &sent[1], &sent[2]);
    for (ts, dir, want) in [
        (b.1, "f", b),
        (b.1 - 1, "f", b),
        (a.1 + 1, "f", b),
        (b.1, "b", b),
        (b.1 + 1, "b", b),
        (c.1 - 1, "b", b),
        (c.1 + 1, "b", c),
        (a.1 - 1, "f", a),
    ] {
        let (status, body) = find(ts, dir);
        assert_eq!(status, 200, "ts={ts} dir={dir}: {body}");
        assert_eq!(body["event_id"], want.0.as_str(), "ts={ts} dir={dir}");
        assert_eq!(body["origin_server_ts"], want.1);
    }
    assert_error(find(c.1 + 1, "f"), 404, "M_NOT_FOUND");
    assert_error(find(0, "b"), 404, "M_NOT_FOUND");
    // The very beginning is the room's creation.
    let (status, body) = find(0, "f");
    assert_eq!(status, 200, "{body}");
    let (_, create) = get_event(&server, &bob, &room, body["event_id"].as_str().unwrap());
    assert_eq!(create["type"], "m.room.create");

    // History visibility applies: a message sent under `joined` before carol joined is
    // skipped for her, both ways, but not for bob, who was there.
    let carol = user(&server, "carol");
    let (status, body) = put_state(
        &server,
        &alice,
        &room,
        "m.room.history_visibility",
        "",
        &json!({"history_visibility": "joined"}),
    );
    assert_eq!(status, 200, "{body}");
    let change = body["event_id"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let hidden = send_text(&server, &alice, &room, "t-hidden", "hidden");
    let (_, event) = get_event(&server, &bob, &room, &hidden);
    let hidden_ts = event["origin_server_ts"].as_u64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    join(&server, &carol, &room);
    let found = |who: &User, dir: &str| {
        let (status, body) =
            try_timestamp(&server, who, &room, &format!("ts={hidden_ts}&dir={dir}"));
        assert_eq!(status, 200, "{body}");
        body["event_id"].as_str().unwrap().to_owned()
    };
    assert_eq!(found(&bob, "b"), hidden);
    assert_eq!(found(&carol, "b"), change);
    let (_, join_event) = get_event(&server, &carol, &room, &found(&carol, "f"));
    assert_eq!(join_event["state_key"], carol.id);
    assert_eq!(join_event["content"]["membership"], "join");

    for (query, code) in [
        ("ts=soon&dir=f", "M_INVALID_PARAM"),
        ("ts=1&dir=up", "M_INVALID_PARAM"),
        ("ts=1", "M_MISSING_PARAM"),
        ("dir=f", "M_MISSING_PARAM"),
    ] {
        assert_error(try_timestamp(&server, &bob, &room, query), 400, code);
    }
}

#[test]
fn bad_tokens_and_parameters_are_refused() {
    let server = TestServer::start();
    let (_alice, bob, room) = alice_and_bob_in_a_room(&server);
    for query in [
        "dir=b&from=garbage",
        "dir=b&from=t1",
        "dir=b&from=tx_1",
        "dir=b&from=t1_2_3",
        "dir=f&from=s1_2_3",
        "dir=f&to=nonsense",
        "dir=sideways",
        "dir=b&limit=-1",
        "dir=b&limit=many",
    ] {
        assert_error(
            try_messages(&server, &bob, &room, query),
            400,
            "M_INVALID_PARAM",
        );
    }
    assert_error(
        try_messages(&server, &bob, &room, "limit=5"),
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        try_messages(&server, &bob, "not-a-room", "dir=b"),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        try_context(&server, &bob, &room, "$x", "limit=lots"),
        400,
        "M_INVALID_PARAM",
    );
}
