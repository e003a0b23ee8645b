//! Sync over a WebSocket: the same updates as `/sync`, resumption without gaps or
//! repeats, and requests sent over the socket.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::harness::TestServer;
use crate::room_support::*;
use crate::sync::{bodies, next_batch, poll, sync, timeline};

pub type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

pub const PATH: &str = "/_matrix/client/unstable/org.hearth.sync/ws";

pub fn connect(server: &TestServer, user: &User, query: &str) -> Socket {
    let url = format!(
        "ws://127.0.0.1:{}{PATH}?access_token={}&{query}",
        server.port, user.token
    );
    let (socket, _) = tungstenite::connect(url).expect("socket opens");
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        // A frame that never comes fails the test instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
    }
    socket
}

/// The next JSON frame, skipping protocol pings.
pub fn next_frame(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("a frame arrives") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn next_sync(socket: &mut Socket) -> Value {
    let frame = next_frame(socket);
    assert_eq!(frame["type"], "sync", "{frame}");
    frame["body"].clone()
}

fn request(socket: &mut Socket, frame: Value) -> Value {
    socket
        .send(Message::Text(frame.to_string().into()))
        .unwrap();
    // Sync updates may arrive before the answer; the answer names its request.
    loop {
        let answer = next_frame(socket);
        if answer["type"] != "sync" {
            assert_eq!(answer["request_id"], frame["request_id"], "{answer}");
            return answer;
        }
    }
}

fn message_ids(body: &Value, room: &str) -> Vec<String> {
    body["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["type"] == "m.room.message")
                .map(|e| e["event_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_socket_receives_the_same_events_as_a_long_poll() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let mut socket = connect(&server, &bob, "");
    let initial = next_sync(&mut socket);
    assert!(initial["rooms"]["join"].get(&room).is_some(), "{initial}");
    let mut since = next_batch(&sync(&server, &bob, ""));

    let sent: Vec<String> = (0..5)
        .map(|i| send_text(&server, &alice, &room, &format!("t{i}"), &format!("m{i}")))
        .collect();
    let mut over_socket = Vec::new();
    while over_socket.len() < sent.len() {
        over_socket.extend(message_ids(&next_sync(&mut socket), &room));
    }
    let mut over_poll = Vec::new();
    while over_poll.len() < sent.len() {
        let body = poll(&server, &bob, &since);
        over_poll.extend(message_ids(&body, &room));
        since = next_batch(&body);
    }
    assert_eq!(over_socket, sent);
    assert_eq!(over_poll, sent);
}

#[test]
fn reconnecting_with_the_last_token_misses_and_repeats_nothing() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let mut sent = Vec::new();
    let mut received = Vec::new();

    let mut socket = connect(&server, &bob, "");
    let mut last = next_batch(&next_sync(&mut socket));
    for i in 0..3 {
        sent.push(send_text(&server, &alice, &room, &format!("a{i}"), "live"));
    }
    while received.len() < 3 {
        let body = next_sync(&mut socket);
        received.extend(message_ids(&body, &room));
        last = next_batch(&body);
    }
    socket.close(None).unwrap();
    drop(socket);

    for i in 0..4 {
        sent.push(send_text(
            &server,
            &alice,
            &room,
            &format!("b{i}"),
            "while away",
        ));
    }
    let mut socket = connect(&server, &bob, &format!("since={last}"));
    let catch_up = next_sync(&mut socket);
    assert_eq!(
        catch_up["rooms"]["join"][&room]["timeline"]["limited"],
        false
    );
    received.extend(message_ids(&catch_up, &room));
    sent.push(send_text(&server, &alice, &room, "c0", "live again"));
    while received.len() < sent.len() {
        received.extend(message_ids(&next_sync(&mut socket), &room));
    }
    assert_eq!(received, sent);
}

#[test]
fn requests_over_the_socket_are_answered_by_id() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let lonely = create_room(&server, &alice, json!({"preset": "private_chat"}));
    let mut socket = connect(&server, &bob, "");
    next_sync(&mut socket);

    let send = json!({"type": "send", "request_id": "r1", "room_id": room,
        "event_type": "m.room.message", "txn_id": "tx1",
        "content": {"msgtype": "m.text", "body": "over the socket"}});
    let answer = request(&mut socket, send.clone());
    assert_eq!(answer["type"], "response", "{answer}");
    let event_id = answer["body"]["event_id"].as_str().unwrap().to_owned();
    // The same transaction again is the same event, as over HTTP.
    let mut again = send.clone();
    again["request_id"] = json!("r2");
    assert_eq!(request(&mut socket, again)["body"]["event_id"], event_id);
    let body = sync(&server, &alice, "");
    let events = timeline(&body, &room);
    assert_eq!(bodies(events), ["over the socket"]);

    let typing = request(
        &mut socket,
        json!({"type": "typing", "request_id": "r3",
        "room_id": room, "typing": true, "timeout": 10000}),
    );
    assert_eq!(typing["type"], "response", "{typing}");
    let receipt = request(
        &mut socket,
        json!({"type": "receipt", "request_id": "r4",
        "room_id": room, "receipt_type": "m.read", "event_id": event_id}),
    );
    assert_eq!(receipt["type"], "response", "{receipt}");
    let presence = request(
        &mut socket,
        json!({"type": "presence", "request_id": "r5",
        "presence": "unavailable", "status_msg": "lunch"}),
    );
    assert_eq!(presence["type"], "response", "{presence}");
    let ping = request(&mut socket, json!({"type": "ping", "request_id": "r6"}));
    assert_eq!(
        ping,
        json!({"type": "response", "request_id": "r6", "body": {}})
    );

    let refused = request(
        &mut socket,
        json!({"type": "send", "request_id": "r7",
        "room_id": lonely, "event_type": "m.room.message", "txn_id": "tx2",
        "content": {"body": "let me in"}}),
    );
    assert_eq!(
        (&refused["type"], &refused["errcode"]),
        (&json!("error"), &json!("M_FORBIDDEN"))
    );
    let unknown = request(&mut socket, json!({"type": "teleport", "request_id": "r8"}));
    assert_eq!(unknown["errcode"], "M_UNRECOGNIZED", "{unknown}");
    let incomplete = request(&mut socket, json!({"type": "typing", "request_id": "r9"}));
    assert_eq!(incomplete["errcode"], "M_BAD_JSON", "{incomplete}");

    socket.send(Message::Text("not json".into())).unwrap();
    let garbage = next_non_sync(&mut socket);
    assert_eq!(
        (&garbage["errcode"], &garbage["request_id"]),
        (&json!("M_NOT_JSON"), &Value::Null)
    );

    // What was done over the socket is visible to others.
    let body = sync(&server, &alice, "");
    let ephemeral = body["rooms"]["join"][&room]["ephemeral"]["events"]
        .as_array()
        .unwrap();
    assert!(
        ephemeral
            .iter()
            .any(|e| e["type"] == "m.typing" && e["content"]["user_ids"] == json!([bob.id])),
        "{ephemeral:?}"
    );
    assert!(
        ephemeral.iter().any(|e| e["type"] == "m.receipt"
            && e["content"][&event_id]["m.read"].get(&bob.id).is_some()),
        "{ephemeral:?}"
    );
    let (status, status_body) = server.get(
        &format!("/_matrix/client/v3/presence/{}/status", enc(&bob.id)),
        Some(&alice.token),
    );
    assert_eq!(status, 200);
    assert_eq!(status_body["status_msg"], "lunch");
}

fn next_non_sync(socket: &mut Socket) -> Value {
    loop {
        let frame = next_frame(socket);
        if frame["type"] != "sync" {
            return frame;
        }
    }
}

#[test]
fn a_bad_token_is_refused_before_the_upgrade() {
    let server = TestServer::start();
    let url = format!("ws://127.0.0.1:{}{PATH}?access_token=nonsense", server.port);
    match tungstenite::connect(url) {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["errcode"], "M_UNKNOWN_TOKEN");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    // A plain GET (no upgrade) is a Matrix error too.
    let bob = user(&server, "bob");
    let (status, body) = server.get(PATH, Some(&bob.token));
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(body["errcode"], "M_UNRECOGNIZED");
}

#[test]
fn logging_out_ends_the_socket() {
    let server = TestServer::start();
    let bob = user(&server, "bob");
    let mut socket = connect(&server, &bob, "");
    next_sync(&mut socket);
    let (status, _) = server.post("/_matrix/client/v3/logout", Some(&bob.token), &json!({}));
    assert_eq!(status, 200);
    // The server says why, then closes; the read timeout (20 s) is well below the 30 s
    // ping at which the token would otherwise be rechecked.
    let frame = next_frame(&mut socket);
    assert_eq!(
        (&frame["type"], &frame["errcode"]),
        (&json!("error"), &json!("M_UNKNOWN_TOKEN")),
        "{frame}"
    );
    match socket.read() {
        Ok(Message::Close(Some(close))) => assert_eq!(u16::from(close.code), 1008),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn a_frame_larger_than_a_request_body_ends_the_socket() {
    let server = TestServer::start_with_env(&[("HEARTH_MAX_REQUEST_BYTES", "65536")]);
    let alice = user(&server, "alice");
    let mut socket = connect(&server, &alice, "");
    next_sync(&mut socket);
    let big = json!({"id": "1", "method": "x", "pad": "x".repeat(100_000)});
    let _ = socket.send(Message::Text(big.to_string().into()));
    let ended = loop {
        match socket.read() {
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the socket stayed open after the big frame")
            }
            Ok(Message::Close(_)) | Err(_) => break true,
            Ok(Message::Text(text)) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                assert_ne!(frame["id"], "1", "the big frame was read: {frame}");
            }
            Ok(_) => {}
        }
    };
    assert!(ended);
    let (status, _) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200);
}
