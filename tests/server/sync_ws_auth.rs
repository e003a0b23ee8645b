//! A sync socket opened without a token authenticates with its first frame (so that a
//! browser need not put the token in the URL): nothing is served before it, a bad,
//! missing or late token ends the socket with an `error` frame and a 1008 close.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::harness::TestServer;
use crate::room_support::*;
use crate::sync_ws::{PATH, next_frame};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// A socket opened with no token in its URL or headers.
fn connect_without_token(server: &TestServer, query: &str) -> Socket {
    let url = format!("ws://127.0.0.1:{}{PATH}?{query}", server.port);
    let (socket, _) = tungstenite::connect(url).expect("the upgrade needs no token");
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        // A frame that never comes fails the test instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
    }
    socket
}

fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .unwrap();
}

/// The socket's `error` frame (the first frame the server sends) and then its close.
#[track_caller]
fn refused(socket: &mut Socket, errcode: &str, request_id: Value) -> Value {
    let frame = next_frame(socket);
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["errcode"], errcode, "{frame}");
    assert_eq!(frame["request_id"], request_id, "{frame}");
    loop {
        match socket.read() {
            Ok(Message::Close(Some(close))) => {
                assert_eq!(u16::from(close.code), 1008, "{close:?}");
                return frame;
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("expected a 1008 close, got {other:?}"),
        }
    }
}

#[test]
fn a_socket_authenticates_with_its_first_frame() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let mut socket = connect_without_token(&server, "");
    send(
        &mut socket,
        json!({"type": "auth", "request_id": "a1", "access_token": bob.token}),
    );
    // The auth request's answer names the session, then the first update follows.
    let answer = next_frame(&mut socket);
    assert_eq!(answer["type"], "response", "{answer}");
    assert_eq!(answer["request_id"], "a1", "{answer}");
    assert_eq!(answer["body"]["user_id"], bob.id, "{answer}");
    assert_eq!(answer["body"]["device_id"], bob.device, "{answer}");
    let first = next_frame(&mut socket);
    assert_eq!(first["type"], "sync", "{first}");
    assert!(
        first["body"]["rooms"]["join"].get(&room).is_some(),
        "{first}"
    );

    // It is Bob's socket: his sends go out as him.
    send(
        &mut socket,
        json!({"type": "send", "request_id": "r1", "room_id": room,
               "event_type": "m.room.message", "txn_id": "t1",
               "content": {"msgtype": "m.text", "body": "hi"}}),
    );
    let sent = loop {
        let frame = next_frame(&mut socket);
        if frame["type"] != "sync" {
            break frame;
        }
    };
    assert_eq!(sent["type"], "response", "{sent}");
    let event_id = sent["body"]["event_id"].as_str().unwrap();
    let (status, event) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(&room),
            enc(event_id)
        ),
        Some(&alice.token),
    );
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["sender"], bob.id);

    // The token it authenticated with is watched as a URL's is: logging out ends it.
    let (status, _) = server.post("/_matrix/client/v3/logout", Some(&bob.token), &json!({}));
    assert_eq!(status, 200);
    let frame = loop {
        let frame = next_frame(&mut socket);
        if frame["type"] != "sync" {
            break frame;
        }
    };
    assert_eq!(frame["errcode"], "M_UNKNOWN_TOKEN", "{frame}");
    match socket.read() {
        Ok(Message::Close(Some(close))) => assert_eq!(u16::from(close.code), 1008),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn nothing_is_served_before_the_auth_frame_and_bad_tokens_end_the_socket() {
    let server = TestServer::start();
    let bob = user(&server, "bob");

    // A request before authenticating is refused, and the socket ends: no update came
    // before the refusal (it is the first frame).
    let mut socket = connect_without_token(&server, "");
    send(&mut socket, json!({"type": "ping", "request_id": "r1"}));
    refused(&mut socket, "M_MISSING_TOKEN", json!("r1"));

    // An unknown token.
    let mut socket = connect_without_token(&server, "");
    send(
        &mut socket,
        json!({"type": "auth", "request_id": "a1", "access_token": "nonsense"}),
    );
    let frame = refused(&mut socket, "M_UNKNOWN_TOKEN", json!("a1"));
    assert_eq!(frame["soft_logout"], false, "{frame}");

    // An auth frame without a token, one that is not JSON, a binary frame.
    let mut socket = connect_without_token(&server, "");
    send(&mut socket, json!({"type": "auth", "request_id": "a2"}));
    refused(&mut socket, "M_MISSING_TOKEN", json!("a2"));
    let mut socket = connect_without_token(&server, "");
    socket.send(Message::Text("not json".into())).unwrap();
    refused(&mut socket, "M_NOT_JSON", Value::Null);
    let mut socket = connect_without_token(&server, "");
    socket
        .send(Message::Binary(bob.token.clone().into_bytes().into()))
        .unwrap();
    refused(&mut socket, "M_MISSING_TOKEN", Value::Null);

    // A guest may not use the socket, whichever way the token comes.
    let guests = TestServer::start_with_env(&[("HEARTH_REGISTRATION__ALLOW_GUEST_ACCESS", "true")]);
    let (status, guest) = guests.post("/_matrix/client/v3/register?kind=guest", None, &json!({}));
    assert_eq!(status, 200, "{guest}");
    let mut socket = connect_without_token(&guests, "");
    send(
        &mut socket,
        json!({"type": "auth", "request_id": "a3", "access_token": guest["access_token"]}),
    );
    refused(&mut socket, "M_GUEST_ACCESS_FORBIDDEN", json!("a3"));

    // Parameters that need the user are checked once it is known: an unknown filter ID
    // answers the auth request.
    let mut socket = connect_without_token(&server, "filter=12345");
    send(
        &mut socket,
        json!({"type": "auth", "request_id": "a4", "access_token": bob.token}),
    );
    let frame = next_frame(&mut socket);
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["request_id"], "a4", "{frame}");
}

#[test]
fn a_plain_request_without_a_token_is_still_refused_with_401() {
    let server = TestServer::start();
    let (status, body) = server.get(PATH, None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errcode"], "M_MISSING_TOKEN", "{body}");
}

#[test]
fn a_socket_that_sends_no_auth_frame_is_closed() {
    let server = TestServer::start_with_env(&[("HEARTH_LIMITS__SOCKET_AUTH_SECS", "1")]);
    let mut socket = connect_without_token(&server, "");
    // Nothing is sent: the server gives up on its own (well within the 20 s read timeout).
    refused(&mut socket, "M_MISSING_TOKEN", Value::Null);
}

#[test]
fn a_sliding_socket_authenticates_with_its_first_frame_too() {
    let server = TestServer::start();
    let bob = user(&server, "bob");
    let mut socket = connect_without_token(&server, "mode=sliding");
    send(
        &mut socket,
        json!({"type": "auth", "request_id": "a1", "access_token": bob.token}),
    );
    let answer = next_frame(&mut socket);
    assert_eq!(answer["type"], "response", "{answer}");
    send(
        &mut socket,
        json!({"type": "sliding_sync", "request_id": "s1",
               "body": {"conn_id": "c", "lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1}}}}),
    );
    let answer = next_frame(&mut socket);
    assert_eq!(answer["type"], "response", "{answer}");
    assert_eq!(answer["request_id"], "s1", "{answer}");
    assert!(answer["body"]["pos"].is_string(), "{answer}");
}

/// A socket waiting for its auth frame holds its address's share of the socket cap, so
/// that one address cannot hold unauthenticated sockets without bound; the share is
/// counted once when the socket authenticates, and given back when it closes.
#[test]
fn sockets_waiting_for_their_auth_frame_count_toward_the_address_cap() {
    let server = TestServer::start_with_env(&[("HEARTH_LIMITS__SYNC_SOCKETS_PER_ADDRESS", "2")]);
    let bob = user(&server, "bob");
    let url = format!("ws://127.0.0.1:{}{PATH}", server.port);
    let third_refused = || match tungstenite::connect(url.as_str()) {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED", "{body}");
        }
        Ok(_) => panic!("a third socket from the address was let in"),
        Err(other) => panic!("expected a 429, got {other}"),
    };
    let mut first = connect_without_token(&server, "");
    let waiting = connect_without_token(&server, "");
    third_refused();

    // Authenticating counts the first socket once for the address, not twice.
    send(
        &mut first,
        json!({"type": "auth", "request_id": "a1", "access_token": bob.token}),
    );
    let answer = next_frame(&mut first);
    assert_eq!(answer["type"], "response", "{answer}");
    third_refused();

    // Closing the waiting socket gives its share back.
    drop(waiting);
    let mut attempts = 0;
    loop {
        match tungstenite::connect(url.as_str()) {
            Ok(_) => break,
            Err(tungstenite::Error::Http(response)) if response.status() == 429 => {
                attempts += 1;
                assert!(attempts < 200, "the closed socket's share never came back");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
}
