//! Simplified sliding sync over the sync WebSocket (`?mode=sliding`): requests answered,
//! then answers pushed without a new request, the long-poll's extensions and errors, and
//! one `pos` shared with the long-poll.

use serde_json::{Value, json};
use tungstenite::Message;

use crate::e2ee_support::send_to_device;
use crate::harness::{TestServer, assert_error};
use crate::limits_sync::{BUDGET, ROOMS, page_back, send_round};
use crate::room_support::*;
use crate::sliding_sync::{by_recency, list, pos, room_ids, sliding, state_keys, texts};
use crate::sync_ws::{PATH, Socket, connect, next_frame};

fn open(server: &TestServer, user: &User) -> Socket {
    connect(server, user, "mode=sliding")
}

/// Sends a frame and returns the answer naming its `request_id`, with the answers pushed
/// before it.
fn ask(socket: &mut Socket, frame: Value) -> (Value, Vec<Value>) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .unwrap();
    let mut pushed = Vec::new();
    loop {
        let answer = next_frame(socket);
        if answer["type"] == "sliding_sync" {
            pushed.push(answer["body"].clone());
            continue;
        }
        assert_eq!(answer["request_id"], frame["request_id"], "{answer}");
        return (answer, pushed);
    }
}

/// A `sliding_sync` request's answer body (which must be a success).
#[track_caller]
fn sliding_request(socket: &mut Socket, id: &str, pos: Option<&str>, body: Value) -> Value {
    let mut frame = json!({"type": "sliding_sync", "request_id": id, "body": body});
    if let Some(pos) = pos {
        frame["pos"] = json!(pos);
    }
    let (answer, _) = ask(socket, frame);
    assert_eq!(answer["type"], "response", "{answer}");
    answer["body"].clone()
}

/// The `errcode` a `sliding_sync` request is refused with.
#[track_caller]
fn refused(socket: &mut Socket, id: &str, pos: Option<&str>, body: Value) -> Value {
    let mut frame = json!({"type": "sliding_sync", "request_id": id, "body": body});
    if let Some(pos) = pos {
        frame["pos"] = json!(pos);
    }
    let (answer, _) = ask(socket, frame);
    assert_eq!(answer["type"], "error", "{answer}");
    answer["errcode"].clone()
}

/// The next pushed answer.
#[track_caller]
fn next_push(socket: &mut Socket) -> Value {
    let frame = next_frame(socket);
    assert_eq!(frame["type"], "sliding_sync", "{frame}");
    frame["body"].clone()
}

/// Pushed answers until one has `room` in it; returns that one.
fn push_with_room(socket: &mut Socket, room: &str) -> Value {
    loop {
        let body = next_push(socket);
        if body["rooms"].get(room).is_some() {
            return body;
        }
    }
}

#[test]
fn the_first_answer_is_sorted_by_recency_and_a_message_pushes_its_room_up() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let rooms: Vec<String> = ["first", "second", "third"]
        .iter()
        .map(|name| create_room(&server, &alice, json!({"name": name})))
        .collect();
    for (i, room) in rooms.iter().enumerate() {
        send_text(&server, &alice, room, &format!("t{i}"), &format!("hi {i}"));
    }
    let mut socket = open(&server, &alice);
    let first = sliding_request(
        &mut socket,
        "r1",
        None,
        json!({"lists": {"all": list(json!([[0, 9]]))}}),
    );
    assert_eq!(first["lists"]["all"]["count"], 3, "{first}");
    let newest_first: Vec<String> = rooms.iter().rev().cloned().collect();
    assert_eq!(by_recency(&first), newest_first);
    assert_eq!(first["rooms"][&rooms[2]]["initial"], true);
    assert_eq!(texts(&first["rooms"][&rooms[2]]), ["hi 2"]);
    let newest_stamp = first["rooms"][&rooms[2]]["bump_stamp"].as_u64().unwrap();

    // A message sent over the same socket (the classic frames work here too) comes back
    // in an answer pushed without another request, its room now the most recent.
    let send = json!({"type": "send", "request_id": "s1", "room_id": rooms[0],
        "event_type": "m.room.message", "txn_id": "again",
        "content": {"msgtype": "m.text", "body": "back on top"}});
    let (sent, pushed) = ask(&mut socket, send);
    assert_eq!(sent["type"], "response", "{sent}");
    let update = match pushed
        .into_iter()
        .find(|b| b["rooms"].get(&rooms[0]).is_some())
    {
        Some(update) => update,
        None => push_with_room(&mut socket, &rooms[0]),
    };
    assert_eq!(room_ids(&update), [rooms[0].clone()], "{update}");
    let moved = &update["rooms"][&rooms[0]];
    assert!(moved.get("initial").is_none(), "{moved}");
    assert_eq!(texts(moved), ["back on top"]);
    assert_eq!(moved["num_live"], 1);
    assert!(
        moved["bump_stamp"].as_u64().unwrap() > newest_stamp,
        "{moved}"
    );
    assert_eq!(update["lists"]["all"]["count"], 3);
    assert_ne!(pos(&update), pos(&first));
}

#[test]
fn a_subscription_gets_its_timeline_and_required_state_and_a_new_request_adds_to_it() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let (status, _) = put_state(
        &server,
        &alice,
        &room,
        "m.room.name",
        "",
        &json!({"name": "Plans"}),
    );
    assert_eq!(status, 200);
    for i in 0..3 {
        send_text(&server, &alice, &room, &format!("t{i}"), &format!("m{i}"));
    }
    let mut socket = open(&server, &bob);
    let first = sliding_request(
        &mut socket,
        "r1",
        None,
        json!({"room_subscriptions": {room.clone(): {
            "timeline_limit": 2,
            "required_state": [["m.room.name", ""], ["m.room.create", ""]],
        }}}),
    );
    let synced = &first["rooms"][&room];
    assert_eq!(synced["initial"], true, "{first}");
    assert_eq!(synced["name"], "Plans");
    assert_eq!(texts(synced), ["m1", "m2"]);
    assert_eq!(synced["limited"], true);
    assert_eq!(
        state_keys(synced),
        [
            ("m.room.create".to_owned(), String::new()),
            ("m.room.name".to_owned(), String::new())
        ]
    );

    // The subscription is sticky: a message is pushed, with no state that did not change.
    send_text(&server, &alice, &room, "t3", "m3");
    let update = push_with_room(&mut socket, &room);
    let synced = &update["rooms"][&room];
    assert_eq!(texts(synced), ["m3"], "{update}");
    assert_eq!(synced["limited"], false);
    assert_eq!(synced["required_state"], json!([]));

    // A request without `pos` continues the socket's connection: it adds a subscription
    // and keeps the first.
    let other = create_room(&server, &bob, json!({"name": "Own"}));
    let added = sliding_request(
        &mut socket,
        "r2",
        None,
        json!({"room_subscriptions": {other.clone(): {"timeline_limit": 1}}}),
    );
    assert_eq!(room_ids(&added), [other.as_str()], "{added}");
    assert_eq!(added["rooms"][&other]["initial"], true);
    assert_eq!(added["rooms"][&other]["name"], "Own");
    send_text(&server, &alice, &room, "t4", "m4");
    let update = push_with_room(&mut socket, &room);
    assert_eq!(texts(&update["rooms"][&room]), ["m4"], "{update}");
    assert!(update["rooms"][&room].get("initial").is_none());
}

#[test]
fn to_device_and_typing_extensions_are_pushed() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let mut socket = open(&server, &bob);
    let first = sliding_request(
        &mut socket,
        "r1",
        None,
        json!({
            "lists": {"all": list(json!([[0, 9]]))},
            "extensions": {"to_device": {"enabled": true}, "typing": {"enabled": true}},
        }),
    );
    assert_eq!(first["extensions"]["to_device"]["events"], json!([]));

    let to_bob = |txn: &str, text: &str| {
        let (status, _) = send_to_device(
            &server,
            &alice,
            "m.test",
            txn,
            json!({ bob.id.clone(): { bob.device.clone(): {"text": text} } }),
        );
        assert_eq!(status, 200);
    };
    to_bob("td1", "first");
    start_typing(&server, &alice, &room, 30000);
    let (mut messages, mut typists) = (Vec::new(), None);
    while messages.is_empty() || typists.is_none() {
        let update = next_push(&mut socket);
        let extensions = &update["extensions"];
        messages.extend(
            extensions["to_device"]["events"]
                .as_array()
                .unwrap()
                .clone(),
        );
        if let Some(typing) = extensions["typing"]["rooms"].get(&room) {
            assert_eq!(typing["type"], "m.typing");
            typists = Some(typing["content"]["user_ids"].clone());
        }
    }
    assert_eq!(
        messages,
        [json!({"sender": alice.id, "type": "m.test", "content": {"text": "first"}})]
    );
    assert_eq!(typists, Some(json!([alice.id])));

    // The socket continues after what it sent: the next push holds the new message only.
    to_bob("td2", "second");
    let update = loop {
        let update = next_push(&mut socket);
        if update["extensions"]["to_device"]["events"] != json!([]) {
            break update;
        }
    };
    assert_eq!(
        update["extensions"]["to_device"]["events"],
        json!([{"sender": alice.id, "type": "m.test", "content": {"text": "second"}}]),
        "{update}"
    );

    // A request continuing the connection does not send them again.
    let continued = sliding_request(
        &mut socket,
        "r2",
        None,
        json!({"extensions": {"to_device": {"enabled": true}}}),
    );
    assert_eq!(
        continued["extensions"]["to_device"]["events"],
        json!([]),
        "{continued}"
    );

    // A connection asking for fewer per answer than are waiting gets the rest pushed at
    // once, without news to wake it. Its `since` acknowledges the two seen.
    let since = update["extensions"]["to_device"]["next_batch"].clone();
    for i in 0..3 {
        to_bob(&format!("more{i}"), &format!("more {i}"));
    }
    let answer = sliding_request(
        &mut socket,
        "r3",
        None,
        json!({"conn_id": "keys",
            "extensions": {"to_device": {"enabled": true, "limit": 1, "since": since}}}),
    );
    let text = |e: &Value| e["content"]["text"].as_str().unwrap().to_owned();
    let mut received: Vec<String> = answer["extensions"]["to_device"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(received, ["more 0"], "{answer}");
    while received.len() < 3 {
        let update = next_push(&mut socket);
        let events = update["extensions"]["to_device"]["events"]
            .as_array()
            .unwrap();
        assert!(events.len() <= 1, "{update}");
        received.extend(events.iter().map(text));
    }
    assert_eq!(received, ["more 0", "more 1", "more 2"]);
}

#[test]
fn a_bad_request_gets_an_error_frame_and_the_socket_keeps_working() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let mut socket = open(&server, &bob);
    let request = json!({"lists": {"all": list(json!([[0, 9]]))}});
    let first = sliding_request(&mut socket, "r1", None, request.clone());
    assert_eq!(first["lists"]["all"]["count"], 1);

    let backwards = json!({"lists": {"all": {"ranges": [[5, 1]]}}});
    assert_eq!(
        refused(&mut socket, "r2", None, backwards),
        "M_INVALID_PARAM"
    );
    let shapeless = json!({"lists": {"all": {"ranges": "all"}}});
    assert_eq!(refused(&mut socket, "r3", None, shapeless), "M_BAD_JSON");
    assert_eq!(
        refused(&mut socket, "r4", Some("12345"), request.clone()),
        "M_UNKNOWN_POS"
    );
    let (answer, _) = ask(
        &mut socket,
        json!({"type": "sliding_sync", "request_id": "r5", "body": [1, 2]}),
    );
    assert_eq!(answer["errcode"], "M_BAD_JSON", "{answer}");
    let (answer, _) = ask(
        &mut socket,
        json!({"type": "sliding_sync", "request_id": "r5b", "body": null}),
    );
    assert_eq!(
        answer["errcode"], "M_BAD_JSON",
        "a null body is not an absent one: {answer}"
    );

    // The connection is the one of the last good request: a message is pushed.
    send_text(&server, &alice, &room, "t1", "still here");
    let update = push_with_room(&mut socket, &room);
    assert_eq!(texts(&update["rooms"][&room]), ["still here"]);
    let again = sliding_request(&mut socket, "r6", None, request);
    assert_eq!(again["rooms"], json!({}), "{again}");
    assert_eq!(pos(&again), pos(&update));

    // A `/sync` socket does not take sliding requests; `/sync` parameters and unknown
    // modes are refused before the upgrade.
    let mut classic = connect(&server, &bob, "");
    assert_eq!(next_frame(&mut classic)["type"], "sync");
    let (answer, _) = ask(
        &mut classic,
        json!({"type": "sliding_sync", "request_id": "c1", "body": {}}),
    );
    assert_eq!(answer["errcode"], "M_UNRECOGNIZED", "{answer}");
    for query in ["mode=sliding&since=s1_2_3_4_5", "mode=lazy"] {
        let url = format!(
            "ws://127.0.0.1:{}{PATH}?access_token={}&{query}",
            server.port, bob.token
        );
        match tungstenite::connect(url) {
            Err(tungstenite::Error::Http(response)) => {
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert_error((response.status().as_u16(), body), 400, "M_INVALID_PARAM");
            }
            other => panic!("expected a 400 for {query}, got {other:?}"),
        }
    }
}

#[test]
fn a_pos_from_the_socket_serves_a_long_poll_and_back_across_a_restart() {
    let mut server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let request = json!({"conn_id": "main", "lists": {"all": list(json!([[0, 9]]))}});
    let mut socket = open(&server, &bob);
    sliding_request(&mut socket, "r1", None, request.clone());
    send_text(&server, &alice, &room, "t1", "one");
    let pushed = push_with_room(&mut socket, &room);
    assert_eq!(texts(&pushed["rooms"][&room]), ["one"]);
    socket.close(None).unwrap();
    drop(socket);

    server.restart();
    send_text(&server, &alice, &room, "t2", "two");
    let polled = sliding(&server, &bob, Some(&pos(&pushed)), &request);
    let synced = &polled["rooms"][&room];
    assert!(synced.get("initial").is_none(), "{polled}");
    assert_eq!(texts(synced), ["two"]);

    // And the long-poll's `pos` continues on a socket.
    send_text(&server, &alice, &room, "t3", "three");
    let mut socket = open(&server, &bob);
    let resumed = sliding_request(&mut socket, "r1", Some(&pos(&polled)), request);
    let synced = &resumed["rooms"][&room];
    assert!(synced.get("initial").is_none(), "{resumed}");
    assert_eq!(texts(synced), ["three"]);
}

#[test]
fn an_answer_carries_at_most_the_timeline_bytes_of_a_sync() {
    let server =
        TestServer::start_with_env(&[("HEARTH_LIMITS__SYNC_TIMELINE_BYTES", &BUDGET.to_string())]);
    let alice = user(&server, "alice");
    let rooms: Vec<String> = (0..ROOMS)
        .map(|_| create_room(&server, &alice, json!({})))
        .collect();
    let sent = send_round(&server, &alice, &rooms, 0);
    let mut socket = open(&server, &alice);
    let answer = sliding_request(
        &mut socket,
        "r1",
        None,
        json!({"lists": {"all": {"ranges": [[0, 99]], "timeline_limit": 1000}}}),
    );
    let (mut total, mut largest, mut cut) = (0, 0, 0);
    for room in &rooms {
        let synced = &answer["rooms"][room];
        for event in synced["timeline"].as_array().unwrap() {
            let size = event.to_string().len();
            total += size;
            largest = largest.max(size);
        }
        // What was left out is found by paging back, each message once.
        let mut all = Vec::new();
        if synced["limited"] == true {
            cut += 1;
            all = page_back(
                &server,
                &alice,
                room,
                synced["prev_batch"].as_str().unwrap(),
                None,
            );
        }
        all.extend(texts(synced));
        assert_eq!(all, sent[room], "room {room}");
    }
    assert!(cut > 0, "nothing was cut: the test sends too little");
    // Each room's newest event may go past the budget: one is always sent.
    assert!(
        total <= BUDGET + ROOMS * largest,
        "{total} bytes of timeline"
    );
}
