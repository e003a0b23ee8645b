//! `/sync`: initial and incremental syncs, long-poll wake-ups, filters, membership
//! sections, tokens across restarts.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;

/// One `/sync` call; `params` is the rest of the query string.
pub fn sync(server: &TestServer, user: &User, params: &str) -> Value {
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/sync?{params}"),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    body
}

pub fn next_batch(body: &Value) -> String {
    body["next_batch"].as_str().unwrap().to_owned()
}

/// A long-poll from `since` that should be answered by something, not by its timeout.
pub fn poll(server: &TestServer, user: &User, since: &str) -> Value {
    sync(server, user, &format!("since={since}&timeout=20000"))
}

pub fn timeline<'a>(body: &'a Value, room: &str) -> &'a Vec<Value> {
    body["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no timeline for {room} in {body}"))
}

pub fn bodies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
        .collect()
}

fn two_in_a_room(server: &TestServer) -> (User, User, String) {
    let alice = user(server, "alice");
    let bob = user(server, "bob");
    let room = create_room(
        server,
        &alice,
        json!({"preset": "public_chat", "name": "Hall"}),
    );
    join(server, &bob, &room);
    (alice, bob, room)
}

#[test]
fn heroes_name_an_unnamed_room() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    put_state(
        &server,
        &alice,
        &room,
        "m.room.name",
        "",
        &json!({"name": ""}),
    );
    let body = sync(&server, &bob, "");
    let summary = &body["rooms"]["join"][&room]["summary"];
    assert_eq!(summary["m.heroes"], json!([alice.id]), "{summary}");
    assert_eq!(summary["m.joined_member_count"], 2);
}

#[test]
fn initial_sync_shows_joined_rooms_with_state_and_timeline() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    send_text(&server, &alice, &room, "t1", "hello");
    let body = sync(&server, &bob, "");
    let joined = &body["rooms"]["join"][&room];
    assert_eq!(bodies(timeline(&body, &room)), ["hello"]);
    assert!(body["next_batch"].is_string());
    let state_and_timeline: Vec<&Value> = joined["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(timeline(&body, &room))
        .collect();
    for wanted in ["m.room.create", "m.room.name", "m.room.power_levels"] {
        assert!(
            state_and_timeline.iter().any(|e| e["type"] == wanted),
            "{wanted} missing: {joined}"
        );
    }
    assert_eq!(joined["summary"]["m.joined_member_count"], 2);
    // A named room has no heroes (the spec requires them only for unnamed rooms).
    assert!(joined["summary"].get("m.heroes").is_none(), "{joined}");
    // Client format: no federation keys, and the room ID is given.
    let message = timeline(&body, &room).last().unwrap();
    assert_eq!(message["room_id"], room);
    assert!(message.get("hashes").is_none() && message.get("signatures").is_none());
}

#[test]
fn a_long_poll_is_answered_by_the_message_it_waits_for() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    let since = next_batch(&sync(&server, &bob, ""));
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| poll(&server, &bob, &since));
        send_text(&server, &alice, &room, "t1", "wake up");
        let body = waiting.join().unwrap();
        assert_eq!(bodies(timeline(&body, &room)), ["wake up"]);
    });
}

#[test]
fn incremental_syncs_deliver_each_event_once_in_order() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    let mut since = next_batch(&sync(&server, &bob, ""));
    let mut seen = Vec::new();
    for round in 0..5 {
        for i in 0..3 {
            send_text(
                &server,
                &alice,
                &room,
                &format!("t{round}-{i}"),
                &format!("{round}-{i}"),
            );
        }
        let body = poll(&server, &bob, &since);
        seen.extend(bodies(timeline(&body, &room)));
        since = next_batch(&body);
    }
    let expected: Vec<String> = (0..5)
        .flat_map(|r| (0..3).map(move |i| format!("{r}-{i}")))
        .collect();
    assert_eq!(seen, expected);
    // Nothing new: an immediate sync holds no rooms at all.
    let body = sync(&server, &bob, &format!("since={since}&timeout=0"));
    assert!(body["rooms"].as_object().unwrap().is_empty(), "{body}");
    assert_eq!(next_batch(&body), since);
}

#[test]
fn a_gap_is_marked_limited_with_the_state_it_skipped() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    let since = next_batch(&sync(&server, &bob, ""));
    put_state(
        &server,
        &alice,
        &room,
        "m.room.topic",
        "",
        &json!({"topic": "during the gap"}),
    );
    for i in 0..15 {
        send_text(&server, &alice, &room, &format!("t{i}"), &format!("m{i}"));
    }
    let filter = enc(r#"{"room":{"timeline":{"limit":5}}}"#);
    let body = sync(&server, &bob, &format!("since={since}&filter={filter}"));
    let joined = &body["rooms"]["join"][&room];
    assert_eq!(joined["timeline"]["limited"], true);
    assert_eq!(
        bodies(timeline(&body, &room)),
        ["m10", "m11", "m12", "m13", "m14"]
    );
    // The topic changed inside the gap, so it comes as state.
    let state = joined["state"]["events"].as_array().unwrap();
    assert!(
        state.iter().any(|e| e["type"] == "m.room.topic"),
        "{joined}"
    );
    assert!(joined["timeline"]["prev_batch"].is_string());
    let prev = joined["timeline"]["prev_batch"].as_str().unwrap();
    let (status, page) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=3&from={}",
            enc(&room),
            enc(prev)
        ),
        Some(&bob.token),
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        bodies(page["chunk"].as_array().unwrap()),
        ["m9", "m8", "m7"]
    );
}

#[test]
fn invites_joins_and_leaves_land_in_their_sections() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "private_chat", "name": "Secret"}),
    );
    let since = next_batch(&sync(&server, &bob, ""));

    invite(&server, &alice, &room, &bob);
    let body = poll(&server, &bob, &since);
    let invite_state = body["rooms"]["invite"][&room]["invite_state"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no invite: {body}"));
    assert!(
        invite_state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Secret")
    );
    assert!(invite_state.iter().any(|e| e["type"] == "m.room.member"
        && e["state_key"] == bob.id
        && e["content"]["membership"] == "invite"));
    // Who invited them, as Synapse shares it.
    assert!(invite_state.iter().any(|e| e["type"] == "m.room.member"
        && e["state_key"] == alice.id
        && e["content"]["membership"] == "join"));
    // Stripped state carries no event IDs or signatures.
    assert!(invite_state.iter().all(|e| e.get("event_id").is_none()));
    let since = next_batch(&body);

    join(&server, &bob, &room);
    let body = poll(&server, &bob, &since);
    let joined = &body["rooms"]["join"][&room];
    // A new join gets the room's whole state, as in an initial sync: here the history
    // is short enough that the timeline holds all of it.
    let everything: Vec<&Value> = joined["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(timeline(&body, &room))
        .collect();
    assert!(
        everything.iter().any(|e| e["type"] == "m.room.create"),
        "{joined}"
    );
    let since = next_batch(&body);

    send_text(&server, &alice, &room, "t1", "before you go");
    server.post(
        &format!("/_matrix/client/v3/rooms/{}/kick", enc(&room)),
        Some(&alice.token),
        &json!({"user_id": bob.id, "reason": "bye"}),
    );
    send_text(&server, &alice, &room, "t2", "after you left");
    let body = poll(&server, &bob, &since);
    let left = &body["rooms"]["leave"][&room];
    let events = left["timeline"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(bodies(events), ["before you go"]);
    assert_eq!(events.last().unwrap()["content"]["membership"], "leave");
    assert!(body["rooms"]["join"].get(&room).is_none());
}

#[test]
fn filters_are_stored_checked_and_applied() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    let path = format!("/_matrix/client/v3/user/{}/filter", enc(&bob.id));
    let definition = json!({"room": {"timeline": {"types": ["m.room.message"], "limit": 2}}});
    let (status, created) = server.post(&path, Some(&bob.token), &definition);
    assert_eq!(status, 200, "{created}");
    let filter_id = created["filter_id"].as_str().unwrap();
    let (status, stored) = server.get(&format!("{path}/{filter_id}"), Some(&bob.token));
    assert_eq!((status, &stored), (200, &definition));
    // Filters are private to their owner.
    let alice_path = format!(
        "/_matrix/client/v3/user/{}/filter/{filter_id}",
        enc(&bob.id)
    );
    assert_error(
        server.get(&alice_path, Some(&alice.token)),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.get(&format!("{path}/nosuchfilter"), Some(&bob.token)),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.post(
            &path,
            Some(&bob.token),
            &json!({"room": {"timeline": {"limit": -1}}}),
        ),
        400,
        "M_BAD_JSON",
    );

    for i in 0..3 {
        send_text(&server, &alice, &room, &format!("t{i}"), &format!("m{i}"));
    }
    let body = sync(&server, &bob, &format!("filter={filter_id}"));
    let events = timeline(&body, &room);
    assert_eq!(bodies(events), ["m1", "m2"]);
    assert!(events.iter().all(|e| e["type"] == "m.room.message"));
    assert_eq!(body["rooms"]["join"][&room]["timeline"]["limited"], true);

    // Lazy-loading: only the members who sent timeline events (and the syncing user).
    let lazy = enc(r#"{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true}}}"#);
    let body = sync(&server, &bob, &format!("filter={lazy}"));
    let members: Vec<&str> = body["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    let mut members = members;
    members.sort();
    let mut expected = vec![alice.id.as_str(), bob.id.as_str()];
    expected.sort();
    assert_eq!(members, expected);

    assert_error(
        server.get(
            "/_matrix/client/v3/sync?filter=%7Bnot%20json",
            Some(&bob.token),
        ),
        400,
        "M_BAD_JSON",
    );
}

#[test]
fn bad_tokens_and_parameters_are_refused() {
    let server = TestServer::start();
    let bob = user(&server, "bob");
    for query in [
        "since=garbage",
        "since=s1_2_3",
        "timeout=soon",
        "set_presence=busy",
        "full_state=yes",
    ] {
        assert_error(
            server.get(
                &format!("/_matrix/client/v3/sync?{query}"),
                Some(&bob.token),
            ),
            400,
            "M_INVALID_PARAM",
        );
    }
    assert_error(
        server.get("/_matrix/client/v3/sync", None),
        401,
        "M_MISSING_TOKEN",
    );
}

#[test]
fn account_data_changes_wake_a_sync() {
    let server = TestServer::start();
    let bob = user(&server, "bob");
    let since = next_batch(&sync(&server, &bob, ""));
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| poll(&server, &bob, &since));
        let (status, _) = server.send(
            "PUT",
            &format!(
                "/_matrix/client/v3/user/{}/account_data/org.example.theme",
                enc(&bob.id)
            ),
            Some(&bob.token),
            &json!({"dark": true}),
        );
        assert_eq!(status, 200);
        let body = waiting.join().unwrap();
        let events = body["account_data"]["events"].as_array().unwrap();
        assert_eq!(
            events,
            &vec![json!({"type": "org.example.theme", "content": {"dark": true}})]
        );
    });
}

#[test]
fn tokens_stay_usable_across_a_restart() {
    let mut server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    send_text(&server, &alice, &room, "t1", "before");
    let since = next_batch(&sync(&server, &bob, ""));
    server.restart();
    send_text(&server, &alice, &room, "t2", "after");
    let body = poll(&server, &bob, &since);
    assert_eq!(bodies(timeline(&body, &room)), ["after"]);
    assert_eq!(body["rooms"]["join"][&room]["timeline"]["limited"], false);
}

#[test]
fn a_filter_can_ask_for_events_in_federation_format() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    let event_id = send_text(&server, &alice, &room, "f1", "hello");
    let filter = json!({"event_format": "federation", "room": {"timeline": {"limit": 1}}});
    let body = sync(
        &server,
        &bob,
        &format!("filter={}", enc(&filter.to_string())),
    );
    let events = timeline(&body, &room);
    assert_eq!(events.len(), 1, "{body}");
    let event = &events[0];
    assert_eq!(event["event_id"], event_id.as_str());
    assert_eq!(event["content"]["body"], "hello");
    for key in [
        "prev_events",
        "auth_events",
        "depth",
        "hashes",
        "signatures",
        "room_id",
    ] {
        assert!(event.get(key).is_some(), "{key} missing from {event}");
    }
    // Without it, the client format.
    let body = sync(&server, &bob, "");
    let event = timeline(&body, &room).last().unwrap().clone();
    assert!(event.get("prev_events").is_none(), "{event}");
}

#[test]
fn forgotten_and_filtered_rooms_stay_out() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    let other = create_room(&server, &alice, json!({"preset": "public_chat"}));
    join(&server, &bob, &other);
    let filter = enc(&json!({"room": {"not_rooms": [other]}}).to_string());
    let body = sync(&server, &bob, &format!("filter={filter}"));
    assert!(body["rooms"]["join"].get(&room).is_some());
    assert!(body["rooms"]["join"].get(&other).is_none());
    // A left and forgotten room does not come back with include_leave.
    server.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&other)),
        Some(&bob.token),
        &json!({}),
    );
    server.post(
        &format!("/_matrix/client/v3/rooms/{}/forget", enc(&other)),
        Some(&bob.token),
        &json!({}),
    );
    let include_leave = enc(r#"{"room":{"include_leave":true}}"#);
    let body = sync(&server, &bob, &format!("filter={include_leave}"));
    assert!(body["rooms"]["leave"].get(&other).is_none(), "{body}");
}

#[test]
fn members_at_a_sync_token_shows_the_membership_of_that_moment() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    let before_carol = next_batch(&sync(&server, &alice, ""));
    let carol = user(&server, "carol");
    join(&server, &carol, &room);
    let members = |query: &str| -> Vec<String> {
        let (status, body) = server.get(
            &format!("/_matrix/client/v3/rooms/{}/members?{query}", enc(&room)),
            Some(&alice.token),
        );
        assert_eq!(status, 200, "{body}");
        let mut ids: Vec<String> = body["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["state_key"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let mut then = vec![alice.id.clone(), bob.id.clone()];
    then.sort();
    assert_eq!(members(&format!("at={before_carol}")), then);
    assert_eq!(members("").len(), 3);
    assert_error(
        server.get(
            &format!(
                "/_matrix/client/v3/rooms/{}/members?at=yesterday",
                enc(&room)
            ),
            Some(&alice.token),
        ),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn stopping_the_server_answers_waiting_long_polls() {
    let mut server = TestServer::start();
    let bob = user(&server, "bob");
    let since = next_batch(&sync(&server, &bob, ""));
    let url = server.url(&format!(
        "/_matrix/client/v3/sync?since={since}&timeout=120000"
    ));
    let client = server.client.clone();
    let waiting = std::thread::spawn(move || {
        client
            .get(url)
            .bearer_auth(&bob.token)
            .send()
            .map(|r| r.status().as_u16())
    });
    // Let the poll reach the server first. A poll arriving after the stop fails with a
    // connection error, so this wait can only make the test fail, never pass wrongly.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(server.terminate().success());
    // The harness client gives up after 30 s; the poll asked for 120 s, so only an
    // answer at shutdown gets here with a status.
    assert_eq!(waiting.join().unwrap().ok(), Some(200));
}

#[test]
fn sync_shows_only_the_history_a_newcomer_may_see() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "initial_state": [
            {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}
        ]}),
    );
    send_text(&server, &alice, &room, "t1", "before bob");
    join(&server, &bob, &room);
    send_text(&server, &alice, &room, "t2", "after bob");
    let body = sync(&server, &bob, "");
    assert_eq!(bodies(timeline(&body, &room)), ["after bob"]);
    // Alice, there all along, sees both.
    let body = sync(&server, &alice, "");
    assert_eq!(bodies(timeline(&body, &room)), ["before bob", "after bob"]);
}

#[test]
fn state_events_carry_the_content_they_replaced() {
    let server = TestServer::start();
    let (alice, bob, room) = two_in_a_room(&server);
    let event_id = |(status, body): (u16, Value)| {
        assert_eq!(status, 200, "{body}");
        body["event_id"].as_str().unwrap().to_owned()
    };
    let first = event_id(put_state(
        &server,
        &alice,
        &room,
        "m.room.topic",
        "",
        &json!({"topic": "one"}),
    ));
    let second = event_id(put_state(
        &server,
        &alice,
        &room,
        "m.room.topic",
        "",
        &json!({"topic": "two"}),
    ));
    let (status, event) = get_event(&server, &bob, &room, &second);
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["unsigned"]["prev_content"], json!({"topic": "one"}));
    assert_eq!(event["unsigned"]["replaces_state"], first);
    let (_, event) = get_event(&server, &bob, &room, &first);
    assert!(event["unsigned"].get("prev_content").is_none(), "{event}");
}

/// The state keys of the member events in a room's `state` section of a sync.
fn state_members(body: &Value, room: &str) -> Vec<String> {
    let mut members: Vec<String> = body["rooms"]["join"][room]["state"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.room.member")
        .filter_map(|e| e["state_key"].as_str().map(str::to_owned))
        .collect();
    members.sort();
    members
}

#[test]
fn lazy_loading_sends_each_member_once_and_the_gaps_memberships() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let [bob, carol, dave] = ["bob", "carol", "dave"].map(|name| {
        let u = user(&server, name);
        join(&server, &u, &room);
        u
    });
    let lazy = enc(r#"{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":3}}}"#);
    let redundant = enc(
        r#"{"room":{"state":{"lazy_load_members":true,"include_redundant_members":true},"timeline":{"limit":3}}}"#,
    );
    // Bob fills the first timeline, so that the joins are not in it.
    for i in 0..3 {
        send_text(&server, &bob, &room, &format!("b0{i}"), "from bob");
    }
    let body = sync(&server, &alice, &format!("filter={lazy}"));
    assert_eq!(
        state_members(&body, &room),
        [alice.id.clone(), bob.id.clone()]
    );
    let since = next_batch(&body);

    // Carol speaks: her membership comes once, Bob's (sent already) not again.
    send_text(&server, &carol, &room, "c1", "from carol");
    send_text(&server, &bob, &room, "b2", "bob again");
    let body = sync(&server, &alice, &format!("filter={lazy}&since={since}"));
    assert_eq!(state_members(&body, &room), [carol.id.as_str()]);
    let since = next_batch(&body);
    send_text(&server, &carol, &room, "c2", "carol again");
    let body = sync(&server, &alice, &format!("filter={lazy}&since={since}"));
    assert_eq!(state_members(&body, &room), Vec::<String>::new());
    // Unless the filter asks for redundant members.
    send_text(&server, &carol, &room, "c3", "carol thrice");
    let body = sync(
        &server,
        &alice,
        &format!("filter={redundant}&since={since}"),
    );
    assert_eq!(state_members(&body, &room), [carol.id.as_str()]);
    let since = next_batch(&body);

    // A gap: Dave leaves without a word, then Carol sends more than the timeline holds.
    let (status, body) = membership(&server, &dave, &room, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    for i in 0..5 {
        send_text(&server, &carol, &room, &format!("g{i}"), "filler");
    }
    let body = sync(&server, &alice, &format!("filter={lazy}&since={since}"));
    assert_eq!(body["rooms"]["join"][&room]["timeline"]["limited"], true);
    assert_eq!(state_members(&body, &room), [dave.id.as_str()]);
}

#[test]
fn a_room_joined_since_the_last_sync_is_limited() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    send_text(&server, &alice, &room, "t1", "before bob synced");
    let since = next_batch(&sync(&server, &bob, ""));
    send_text(&server, &alice, &room, "t2", "after bob synced");
    join(&server, &bob, &room);

    // Every message fits in the timeline, yet the room is new to Bob's client, which
    // pages back for its history: `limited`, as Synapse marks every newly joined room
    // (SyTest 03joined).
    let messages_only = r#"{"room":{"timeline":{"types":["m.room.message"],"limit":10}}}"#;
    let body = sync(
        &server,
        &bob,
        &format!("since={since}&filter={}", enc(messages_only)),
    );
    assert_eq!(
        bodies(timeline(&body, &room)),
        ["before bob synced", "after bob synced"]
    );
    assert_eq!(body["rooms"]["join"][&room]["timeline"]["limited"], true);

    // A room already joined at the last sync is not.
    let since = next_batch(&body);
    send_text(&server, &alice, &room, "t3", "later");
    let body = sync(&server, &bob, &format!("since={since}"));
    assert_eq!(bodies(timeline(&body, &room)), ["later"]);
    assert_eq!(body["rooms"]["join"][&room]["timeline"]["limited"], false);
}
