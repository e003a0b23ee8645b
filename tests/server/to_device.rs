//! To-device messages on one server: delivery once through `/sync` (and the sync socket),
//! deletion only after acknowledgement, idempotent sends, `*`, and waking long-polls.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::e2ee_support::{
    next_batch, second_device, send_text_to_device, send_to_device,
    status_when_stopped_during_a_hold, sync,
};
use crate::harness::{TestServer, assert_error};
use crate::room_support::{User, alice_and_bob_in_a_room, send_text, user};

fn to_device(body: &Value) -> Vec<Value> {
    body["to_device"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn texts(body: &Value) -> Vec<String> {
    to_device(body)
        .iter()
        .filter_map(|e| e["content"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// `user`'s long-poll from `since` (up to 20 s), answered while or after `meanwhile`
/// runs (once the poll has had time to reach the server).
fn long_poll_while(
    server: &TestServer,
    user: &User,
    since: &str,
    meanwhile: impl FnOnce(),
) -> Value {
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| sync(server, user, Some(since), 20_000));
        std::thread::sleep(Duration::from_millis(300));
        meanwhile();
        waiter.join().unwrap()
    })
}

#[test]
fn a_message_is_delivered_until_acknowledged_then_deleted() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let first = sync(&server, &bob, None, 0);
    let since = next_batch(&first);
    let (status, body) = send_to_device(
        &server,
        &alice,
        "m.test",
        "t1",
        json!({ bob.id.clone(): { bob.device.clone(): {"text": "hello"} } }),
    );
    assert_eq!(status, 200, "{body}");
    let body = sync(&server, &bob, Some(&since), 0);
    let events = to_device(&body);
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["sender"], alice.id);
    assert_eq!(events[0]["type"], "m.test");
    assert_eq!(events[0]["content"]["text"], "hello");
    // Not acknowledged yet: the same token gets it again.
    let again = sync(&server, &bob, Some(&since), 0);
    assert_eq!(texts(&again), ["hello"]);
    // The next token acknowledges it: gone, even from the older token.
    let after = sync(&server, &bob, Some(&next_batch(&body)), 0);
    assert!(to_device(&after).is_empty(), "{after}");
    let stale = sync(&server, &bob, Some(&since), 0);
    assert!(to_device(&stale).is_empty(), "{stale}");
    // The same transaction again is accepted and not delivered twice; a new one is.
    let since = next_batch(&after);
    for txn in ["t1", "t1", "t2"] {
        let (status, _) = send_to_device(
            &server,
            &alice,
            "m.test",
            txn,
            json!({ bob.id.clone(): { bob.device.clone(): {"text": txn} } }),
        );
        assert_eq!(status, 200);
    }
    let body = sync(&server, &bob, Some(&since), 0);
    assert_eq!(texts(&body), ["t2"]);
}

#[test]
fn a_star_reaches_every_device_and_the_initial_sync_carries_waiting_messages() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let bob2 = second_device(&server, "bob", "BOBTWO");
    let (status, _) = send_to_device(
        &server,
        &alice,
        "m.test",
        "star",
        json!({ bob.id.clone(): { "*": {"text": "all"} }, "@nobody:localhost": {"X": {}} }),
    );
    assert_eq!(status, 200);
    for device in [&bob, &bob2] {
        let body = sync(&server, device, None, 0);
        assert_eq!(texts(&body), ["all"], "{}", device.device);
    }
    // Unknown devices are skipped; bad bodies are refused.
    let (status, _) = send_to_device(
        &server,
        &alice,
        "m.test",
        "unknown",
        json!({ bob.id.clone(): { "NOSUCH": {"text": "lost"} } }),
    );
    assert_eq!(status, 200);
    let response = server.send(
        "PUT",
        "/_matrix/client/v3/sendToDevice/m.test/bad",
        Some(&alice.token),
        &json!({"messages": {"not a user id": {}}}),
    );
    assert_error(response, 400, "M_BAD_JSON");
    let response = server.send(
        "PUT",
        "/_matrix/client/v3/sendToDevice/m.test/bad",
        None,
        &json!({"messages": {}}),
    );
    assert_error(response, 401, "M_MISSING_TOKEN");
}

#[test]
fn a_long_poll_wakes_for_a_message_and_deleting_the_device_drops_its_messages() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let since = next_batch(&sync(&server, &bob, None, 0));
    let body = long_poll_while(&server, &bob, &since, || {
        send_text_to_device(
            &server,
            &alice,
            "m.test",
            "wake",
            &bob,
            &bob.device,
            "wake up",
        );
    });
    assert_eq!(texts(&body), ["wake up"]);

    let bob2 = second_device(&server, "bob", "BOBTWO");
    send_to_device(
        &server,
        &alice,
        "m.test",
        "doomed",
        json!({ bob.id.clone(): { "BOBTWO": {"text": "doomed"} } }),
    );
    let (status, _) = server.post("/_matrix/client/v3/logout", Some(&bob2.token), &json!({}));
    assert_eq!(status, 200);
    // Logging in again as that device starts with nothing waiting.
    let bob2 = second_device(&server, "bob", "BOBTWO");
    assert!(to_device(&sync(&server, &bob2, None, 0)).is_empty());
}

/// A long-poll with only to-device messages to give waits `limits.to_device_hold_ms` for
/// a room event: a room key and the message sent right after it come in one response.
/// With nothing following, the messages still come, once the hold is over.
#[test]
fn a_room_key_and_the_message_after_it_come_in_one_long_poll_response() {
    let server = TestServer::start_with_env(&[("HEARTH_LIMITS__TO_DEVICE_HOLD_MS", "1000")]);
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let since = next_batch(&sync(&server, &bob, None, 0));
    let body = long_poll_while(&server, &bob, &since, || {
        send_text_to_device(
            &server,
            &alice,
            "m.room_key",
            "share",
            &bob,
            &bob.device,
            "the key",
        );
        send_text(&server, &alice, &room, "after-key", "the message");
    });
    assert_eq!(texts(&body), ["the key"], "{body}");
    let timeline = body["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        timeline
            .iter()
            .any(|e| e["content"]["body"] == "the message"),
        "{body}"
    );

    let since = next_batch(&body);
    let body = long_poll_while(&server, &bob, &since, || {
        send_text_to_device(
            &server,
            &alice,
            "m.test",
            "alone",
            &bob,
            &bob.device,
            "alone",
        );
    });
    assert_eq!(texts(&body), ["alone"], "{body}");
    assert!(body["rooms"]["join"].get(&room).is_none(), "{body}");
}

/// A long-poll holding for a room event after a wake for another device's to-device
/// message (so with nothing of its own to give) is answered when the server stops.
#[test]
fn stopping_the_server_during_a_hold_answers_the_long_poll() {
    let mut server = TestServer::start_with_env(&[("HEARTH_LIMITS__TO_DEVICE_HOLD_MS", "1000")]);
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    second_device(&server, "bob", "BOBTWO");
    let since = next_batch(&sync(&server, &bob, None, 0));
    let url = server.url(&format!(
        "/_matrix/client/v3/sync?since={}&timeout=120000",
        crate::room_support::enc(&since)
    ));
    let request = server.client.get(url).bearer_auth(&bob.token);
    let status = status_when_stopped_during_a_hold(&mut server, &alice, &bob, request);
    assert_eq!(status, Some(200));
}

#[test]
fn more_than_a_response_holds_come_in_order_over_several_syncs() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let mut since = next_batch(&sync(&server, &bob, None, 0));
    for i in 0..150 {
        let (status, _) = send_to_device(
            &server,
            &alice,
            "m.test",
            &format!("n{i}"),
            json!({ bob.id.clone(): { bob.device.clone(): {"text": format!("{i}")} } }),
        );
        assert_eq!(status, 200);
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let body = sync(&server, &bob, Some(&since), 0);
        got.extend(texts(&body));
        since = next_batch(&body);
    }
    let expected: Vec<String> = (0..150).map(|i| i.to_string()).collect();
    assert_eq!(got, expected);
}

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn next_sync_frame(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("a frame arrives") {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "sync" {
                    return frame["body"].clone();
                }
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn connect(server: &TestServer, user: &User) -> Socket {
    let url = format!(
        "ws://127.0.0.1:{}/_matrix/client/unstable/org.hearth.sync/ws?access_token={}",
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

#[test]
fn the_sync_socket_pushes_to_device_messages() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let mut socket = connect(&server, &bob);
    let first = next_sync_frame(&mut socket);
    assert!(first["device_one_time_keys_count"].is_object(), "{first}");
    send_to_device(
        &server,
        &alice,
        "m.test",
        "ws",
        json!({ bob.id.clone(): { bob.device.clone(): {"text": "over the socket"} } }),
    );
    let body = next_sync_frame(&mut socket);
    assert_eq!(texts(&body), ["over the socket"]);
    // A device with more waiting than one update holds gets them all in order at
    // connection, without waiting for anything else to happen.
    let bob2 = second_device(&server, "bob", "BOBTWO");
    for i in 0..150 {
        send_to_device(
            &server,
            &alice,
            "m.test",
            &format!("ws{i}"),
            json!({ bob.id.clone(): { "BOBTWO": {"text": format!("{i}")} } }),
        );
    }
    let mut socket = connect(&server, &bob2);
    let mut got = Vec::new();
    while got.len() < 150 {
        got.extend(texts(&next_sync_frame(&mut socket)));
    }
    let expected: Vec<String> = (0..150).map(|i| i.to_string()).collect();
    assert_eq!(got, expected);
}

#[test]
fn waiting_messages_and_the_acknowledgement_survive_kill_9() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let since = next_batch(&sync(&server, &bob, None, 0));
    for (txn, text) in [("k1", "before the crash"), ("k2", "also before")] {
        let (status, body) = send_to_device(
            &server,
            &alice,
            "m.test",
            txn,
            json!({ bob.id.clone(): { bob.device.clone(): {"text": text} } }),
        );
        assert_eq!(status, 200, "{body}");
    }
    server.kill_9();
    server.restart();
    let body = sync(&server, &bob, Some(&since), 0);
    assert_eq!(texts(&body), ["before the crash", "also before"]);
    // Acknowledged messages (by the next token) do not come again after a crash, though
    // their deletion may not have been written: a sync reads after its token. The
    // transaction IDs are still known: a retried send after the crash is not delivered
    // twice.
    let after = next_batch(&sync(&server, &bob, Some(&next_batch(&body)), 0));
    server.kill_9();
    server.restart();
    let (status, _) = send_to_device(
        &server,
        &alice,
        "m.test",
        "k1",
        json!({ bob.id.clone(): { bob.device.clone(): {"text": "before the crash"} } }),
    );
    assert_eq!(status, 200);
    let body = sync(&server, &bob, Some(&after), 0);
    assert!(to_device(&body).is_empty(), "{body}");
}

/// An acknowledgement's deletion waits for a later write (the next to-device send, or
/// enough of them); a clean stop writes what still waits, so that after it even a token
/// from before the acknowledgement gets nothing.
#[test]
fn acknowledged_messages_stay_deleted_across_a_clean_restart() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let since = next_batch(&sync(&server, &bob, None, 0));
    send_text_to_device(
        &server,
        &alice,
        "m.test",
        "a1",
        &bob,
        &bob.device,
        "acknowledged",
    );
    let body = sync(&server, &bob, Some(&since), 0);
    assert_eq!(texts(&body), ["acknowledged"]);
    let after = sync(&server, &bob, Some(&next_batch(&body)), 0);
    assert!(to_device(&after).is_empty(), "{after}");
    server.restart();
    let stale = sync(&server, &bob, Some(&since), 0);
    assert!(to_device(&stale).is_empty(), "{stale}");
}

/// A send is visible a moment before its fsync, so a power loss can take back a position
/// a client already holds in its `next_batch`. After a restart new messages must come
/// after any such position: here the client's token names three positions past the
/// stored one (as it would after such a loss), and the next message still reaches it.
#[test]
fn messages_after_a_restart_come_after_positions_a_client_may_already_hold() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let since = next_batch(&sync(&server, &bob, None, 0));
    server.restart();
    let mut parts: Vec<u64> = since
        .strip_prefix('s')
        .expect("a plain token")
        .split('_')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(parts.len(), 7, "{since}");
    parts[5] += 3;
    let ahead = format!(
        "s{}",
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("_")
    );
    let (status, body) = send_to_device(
        &server,
        &alice,
        "m.test",
        "after-restart",
        json!({ bob.id.clone(): { bob.device.clone(): {"text": "still here"} } }),
    );
    assert_eq!(status, 200, "{body}");
    let body = sync(&server, &bob, Some(&ahead), 0);
    assert_eq!(texts(&body), ["still here"], "{body}");
}
