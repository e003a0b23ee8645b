//! Limits on what one sync costs: the bytes of timeline events in one response
//! (`limits.sync_timeline_bytes`), and a sync WebSocket whose client stops reading
//! (`limits.socket_send_secs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, join, send_text, user};
use crate::sync::{bodies, next_batch, sync};

pub const ROOMS: usize = 5;
const MESSAGES: usize = 20;
pub const BUDGET: usize = 20_000;

/// The messages a sync body's room timelines hold, and each room's `prev_batch` when it
/// is limited; asserts the timelines together stay within the budget (each room's newest
/// event may go past it: one event per room is always sent).
fn timelines(body: &Value) -> BTreeMap<String, (Vec<String>, Option<String>)> {
    let mut rooms = BTreeMap::new();
    let mut total = 0;
    let mut largest = 0;
    for (room, section) in body["rooms"]["join"].as_object().into_iter().flatten() {
        let events = section["timeline"]["events"].as_array().unwrap();
        for event in events {
            let size = event.to_string().len();
            total += size;
            largest = largest.max(size);
        }
        let limited = section["timeline"]["limited"] == true;
        let prev_batch = section["timeline"]["prev_batch"]
            .as_str()
            .map(str::to_owned);
        rooms.insert(
            room.clone(),
            (bodies(events), limited.then(|| prev_batch.unwrap())),
        );
    }
    assert!(
        total <= BUDGET + rooms.len() * largest,
        "{total} bytes of timeline in one response"
    );
    rooms
}

/// The messages before `prev_batch` (back to `to`, or the room's start), oldest first.
pub fn page_back(
    server: &TestServer,
    who: &User,
    room: &str,
    prev_batch: &str,
    to: Option<&str>,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut from = prev_batch.to_owned();
    loop {
        let mut path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=7&from={}",
            enc(room),
            enc(&from)
        );
        if let Some(to) = to {
            path.push_str(&format!("&to={}", enc(to)));
        }
        let (status, page) = server.get(&path, Some(&who.token));
        assert_eq!(status, 200, "{page}");
        let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
        found.extend(bodies(&chunk));
        match page["end"].as_str() {
            Some(end) if !chunk.is_empty() => from = end.to_owned(),
            _ => break,
        }
    }
    found.reverse();
    found
}

pub fn send_round(
    server: &TestServer,
    alice: &User,
    rooms: &[String],
    round: usize,
) -> BTreeMap<String, Vec<String>> {
    let padding = "x".repeat(1000);
    let mut sent = BTreeMap::new();
    for (r, room) in rooms.iter().enumerate() {
        let texts: Vec<String> = (0..MESSAGES)
            .map(|i| format!("round {round} room {r} message {i} {padding}"))
            .collect();
        for (i, text) in texts.iter().enumerate() {
            send_text(server, alice, room, &format!("t{round}-{r}-{i}"), text);
        }
        sent.insert(room.clone(), texts);
    }
    sent
}

#[test]
fn sync_timelines_are_bounded_and_paging_back_finds_every_event_once() {
    let server =
        TestServer::start_with_env(&[("HEARTH_LIMITS__SYNC_TIMELINE_BYTES", &BUDGET.to_string())]);
    let alice = user(&server, "alice");
    let rooms: Vec<String> = (0..ROOMS)
        .map(|_| create_room(&server, &alice, json!({})))
        .collect();
    let filter = enc(r#"{"room":{"timeline":{"limit":1000}}}"#);

    // An initial sync: bounded, and each room's messages are its timeline plus what
    // paging back from its prev_batch finds, each once.
    let first_sent = send_round(&server, &alice, &rooms, 0);
    let body = sync(&server, &alice, &format!("filter={filter}"));
    let seen = timelines(&body);
    assert!(
        seen.values().any(|(_, prev)| prev.is_some()),
        "nothing was cut: the test sends too little"
    );
    for (room, sent) in &first_sent {
        let (events, prev_batch) = &seen[room];
        let mut all = match prev_batch {
            Some(prev) => page_back(&server, &alice, room, prev, None),
            None => Vec::new(),
        };
        all.extend(events.iter().cloned());
        assert_eq!(&all, sent, "room {room}");
    }

    // Incremental syncs: the same, paging back only as far as the token synced from;
    // no sync repeats what an earlier one sent.
    let mut since = next_batch(&body);
    let mut delivered: BTreeSet<String> = seen.values().flat_map(|(e, _)| e.clone()).collect();
    let second_sent = send_round(&server, &alice, &rooms, 1);
    let body = sync(
        &server,
        &alice,
        &format!("filter={filter}&since={}", enc(&since)),
    );
    let seen = timelines(&body);
    assert!(
        seen.values().any(|(_, prev)| prev.is_some()),
        "nothing was cut"
    );
    for (room, sent) in &second_sent {
        let (events, prev_batch) = &seen[room];
        for event in events {
            assert!(delivered.insert(event.clone()), "{event} sent twice");
        }
        let mut all = match prev_batch {
            Some(prev) => page_back(&server, &alice, room, prev, Some(&since)),
            None => Vec::new(),
        };
        all.extend(events.iter().cloned());
        assert_eq!(&all, sent, "room {room}");
    }
    since = next_batch(&body);
    let body = sync(
        &server,
        &alice,
        &format!("filter={filter}&since={}&timeout=0", enc(&since)),
    );
    assert!(
        body["rooms"]["join"]
            .as_object()
            .is_none_or(|join| join.is_empty()),
        "{body}"
    );
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

fn open_socket(server: &TestServer, who: &User) -> Result<Socket, u16> {
    let url = format!(
        "ws://127.0.0.1:{}/_matrix/client/unstable/org.hearth.sync/ws?access_token={}",
        server.port, who.token
    );
    match tungstenite::connect(url) {
        Ok((socket, _)) => {
            if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
            }
            Ok(socket)
        }
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("the socket neither opened nor was refused: {e}"),
    }
}

/// The next `sync` body, skipping pings and other frames.
fn next_sync(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("a frame arrives") {
            tungstenite::Message::Text(text) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "sync" {
                    return frame["body"].clone();
                }
            }
            _ => continue,
        }
    }
}

#[test]
fn a_socket_that_stops_reading_is_closed_and_its_slot_freed() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_LIMITS__SOCKET_SEND_SECS", "1"),
        ("HEARTH_LIMITS__SYNC_SOCKETS_PER_USER", "1"),
    ]);
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    join(&server, &bob, &room);

    // Alice's socket reads its first update and then nothing more.
    let mut stalled = open_socket(&server, &alice).expect("alice's socket");
    next_sync(&mut stalled);
    let mut bobs = open_socket(&server, &bob).expect("bob's socket");
    next_sync(&mut bobs);

    // Large messages, each an update of its own, until the connection's buffers are
    // full and the server's send to Alice waits; Bob reads his as they come.
    let padding = "y".repeat(50_000);
    // A bound well under the 90 s after which the server gave up such a socket before
    // `limits.socket_send_secs` (here 1 s), not a speed requirement.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    let freed = loop {
        assert!(
            Instant::now() < deadline,
            "alice's socket was never given up"
        );
        let text = format!("message {sent} {padding}");
        send_text(&server, &bob, &room, &format!("m{sent}"), &text);
        sent += 1;
        // Bob's socket keeps up: his update arrives.
        let mut got = Vec::new();
        while !got
            .iter()
            .any(|b: &String| b.starts_with(&format!("message {} ", sent - 1)))
        {
            let body = next_sync(&mut bobs);
            if let Some(events) = body["rooms"]["join"][&room]["timeline"]["events"].as_array() {
                got.extend(bodies(events));
            }
        }
        // Alice's slot is taken while her stalled socket lives (one socket per user).
        match open_socket(&server, &alice) {
            Ok(socket) => break socket,
            Err(status) => assert_eq!(status, 429),
        }
    };
    assert!(
        sent > 10,
        "the socket was given up after {sent} messages only"
    );

    // The new socket syncs, and the stalled one was closed by the server: reading it
    // drains what was buffered and then ends, instead of waiting.
    let mut freed = freed;
    let body = next_sync(&mut freed);
    assert!(body["next_batch"].is_string(), "{body}");
    loop {
        match stalled.read() {
            Ok(tungstenite::Message::Close(frame)) => {
                if let Some(frame) = frame {
                    assert_eq!(u16::from(frame.code), 1013, "{frame:?}");
                }
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e)) => {
                assert!(
                    !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "the server kept the stalled socket open"
                );
                break;
            }
            Err(_) => break,
        }
    }
}
