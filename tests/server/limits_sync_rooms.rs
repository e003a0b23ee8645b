//! `limits.sync_response_bytes`: a sync response carries the rooms that fit and defers
//! the rest whole to the next one; following `next_batch` (or repeating a request, or
//! going back to an older token) gets every room's state and every event exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, invite, put_state, send_text, user};
use crate::sync::{bodies, next_batch, sync};

const BUDGET: usize = 60_000;
const JOINED: usize = 6;
const INVITED: usize = 3;
const BIG_STATE: usize = 8;
/// The rooms object's own wrapping (`{"join":{...},"invite":{...}}`) around the sections.
const WRAPPING: usize = 100;

struct Setup {
    server: TestServer,
    alice: User,
    joined: Vec<String>,
    invited: Vec<String>,
}

/// Alice in `JOINED` rooms of `BIG_STATE` 2 KB state events each, and invited by Bob
/// to `INVITED` rooms with 20 KB topics: about 200 KB of rooms for a 60 KB budget.
fn setup() -> Setup {
    let server =
        TestServer::start_with_env(&[("HEARTH_LIMITS__SYNC_RESPONSE_BYTES", &BUDGET.to_string())]);
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let padding = "s".repeat(2000);
    let joined: Vec<String> = (0..JOINED)
        .map(|r| {
            let room = create_room(&server, &alice, json!({}));
            for k in 0..BIG_STATE {
                let content = json!({"room": r, "key": k, "padding": padding});
                let (status, body) = put_state(
                    &server,
                    &alice,
                    &room,
                    "org.example.big",
                    &k.to_string(),
                    &content,
                );
                assert_eq!(status, 200, "{body}");
            }
            room
        })
        .collect();
    let invited: Vec<String> = (0..INVITED)
        .map(|_| {
            let topic = "t".repeat(20_000);
            let room = create_room(&server, &bob, json!({"topic": topic}));
            invite(&server, &bob, &room, &alice);
            room
        })
        .collect();
    Setup {
        server,
        alice,
        joined,
        invited,
    }
}

fn filter() -> String {
    enc(r#"{"room":{"timeline":{"limit":10}}}"#)
}

/// What one chain of responses delivered, per room.
#[derive(Default)]
struct Delivered {
    /// Joined room -> (state type, state key) -> times sent as state or in the timeline.
    state: BTreeMap<String, BTreeMap<(String, String), usize>>,
    /// Joined room -> message bodies, in the order sent.
    messages: BTreeMap<String, Vec<String>>,
    /// Invited room -> the length of its topic in `invite_state`.
    invites: BTreeMap<String, usize>,
    /// Responses with rooms in them.
    responses: usize,
}

impl Delivered {
    /// Records one response, checking it is within the budget (or holds a single room)
    /// and holds no room twice.
    fn add(&mut self, body: &Value) {
        let rooms = &body["rooms"];
        let joined = rooms["join"].as_object().cloned().unwrap_or_default();
        let invited = rooms["invite"].as_object().cloned().unwrap_or_default();
        let count = joined.len() + invited.len();
        if count == 0 {
            return;
        }
        self.responses += 1;
        let size = rooms.to_string().len();
        assert!(
            count == 1 || size <= BUDGET + WRAPPING,
            "{count} rooms in {size} bytes"
        );
        for (room, section) in joined {
            let state = self.state.entry(room.clone()).or_default();
            let timeline = section["timeline"]["events"].as_array().unwrap();
            for event in section["state"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .chain(timeline)
            {
                if let Some(key) = event["state_key"].as_str() {
                    let type_ = event["type"].as_str().unwrap().to_owned();
                    *state.entry((type_, key.to_owned())).or_default() += 1;
                }
            }
            self.messages
                .entry(room)
                .or_default()
                .extend(bodies(timeline));
        }
        for (room, section) in invited {
            let topic = section["invite_state"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["type"] == "m.room.topic")
                .and_then(|e| e["content"]["topic"].as_str())
                .map_or(0, str::len);
            assert!(
                self.invites.insert(room.clone(), topic).is_none(),
                "invite to {room} sent twice"
            );
        }
    }

    /// Every joined room had each big state event exactly once.
    fn assert_full_state(&self, setup: &Setup) {
        for room in &setup.joined {
            let state = &self.state[room];
            for k in 0..BIG_STATE {
                assert_eq!(
                    state.get(&("org.example.big".to_owned(), k.to_string())),
                    Some(&1),
                    "room {room}: {state:?}"
                );
            }
            assert_eq!(
                state.get(&("m.room.create".to_owned(), String::new())),
                Some(&1),
                "room {room}"
            );
        }
    }
}

/// Syncs from `params` and follows each `next_batch` until a response holds no rooms
/// (nothing is being sent meanwhile, so that is the end); returns what came and the
/// last token.
fn follow(setup: &Setup, params: &str, delivered: &mut Delivered) -> String {
    let mut body = sync(&setup.server, &setup.alice, params);
    loop {
        let had_rooms = body["rooms"]
            .as_object()
            .is_some_and(|rooms| !rooms.is_empty());
        delivered.add(&body);
        let since = next_batch(&body);
        if !had_rooms {
            return since;
        }
        body = sync(
            &setup.server,
            &setup.alice,
            &format!("filter={}&since={}&timeout=0", filter(), enc(&since)),
        );
    }
}

/// Sends one message to each joined room; returns them by room.
fn send_round(setup: &Setup, round: usize) -> BTreeMap<String, Vec<String>> {
    let padding = "m".repeat(3000);
    let mut sent = BTreeMap::new();
    for (r, room) in setup.joined.iter().enumerate() {
        let texts: Vec<String> = (0..3)
            .map(|i| format!("round {round} room {r} message {i} {padding}"))
            .collect();
        for (i, text) in texts.iter().enumerate() {
            send_text(
                &setup.server,
                &setup.alice,
                room,
                &format!("r{round}-{r}-{i}"),
                text,
            );
        }
        sent.insert(room.clone(), texts);
    }
    sent
}

#[test]
fn initial_and_full_state_syncs_defer_rooms_and_deliver_each_once() {
    let setup = setup();
    let sent = send_round(&setup, 0);

    // An initial sync and the responses after it: every room once, with all its state,
    // every message, and each invite with its whole topic.
    let mut initial = Delivered::default();
    let since = follow(&setup, &format!("filter={}", filter()), &mut initial);
    assert!(
        initial.responses >= 3,
        "{} responses: the rooms were not deferred",
        initial.responses
    );
    assert_eq!(
        initial.state.keys().collect::<BTreeSet<_>>(),
        setup.joined.iter().collect(),
    );
    initial.assert_full_state(&setup);
    assert_eq!(initial.messages, sent);
    assert_eq!(
        initial.invites,
        setup.invited.iter().map(|r| (r.clone(), 20_000)).collect()
    );

    // `full_state`, asked once: each joined room's whole state again, once, across the
    // responses it is spread over; the new messages once; the invites not again.
    let sent = send_round(&setup, 1);
    let mut full = Delivered::default();
    follow(
        &setup,
        &format!("filter={}&since={}&full_state=true", filter(), enc(&since)),
        &mut full,
    );
    assert!(full.responses >= 2, "{} responses", full.responses);
    full.assert_full_state(&setup);
    assert_eq!(full.messages, sent);
    assert!(full.invites.is_empty(), "{:?}", full.invites);
}

#[test]
fn a_deferring_token_repeated_or_an_older_one_still_gets_every_event_once() {
    let setup = setup();
    let mut initial = Delivered::default();
    let since = follow(&setup, &format!("filter={}", filter()), &mut initial);

    // News in every room, more than one response holds (a new big state event each).
    let padding = "n".repeat(9000);
    for (r, room) in setup.joined.iter().enumerate() {
        let content = json!({"round": 1, "padding": padding});
        let (status, body) = put_state(
            &setup.server,
            &setup.alice,
            room,
            "org.example.new",
            &r.to_string(),
            &content,
        );
        assert_eq!(status, 200, "{body}");
    }
    let first_round = send_round(&setup, 1);
    let params = format!("filter={}&since={}&timeout=0", filter(), enc(&since));
    let deferring = sync(&setup.server, &setup.alice, &params);
    let deferred_token = next_batch(&deferring);

    // More news after the deferring response: not in what catches up on it.
    let second_round = send_round(&setup, 2);
    let catch_up = format!(
        "filter={}&since={}&timeout=0",
        filter(),
        enc(&deferred_token)
    );
    let again = sync(&setup.server, &setup.alice, &catch_up);
    let once_more = sync(&setup.server, &setup.alice, &catch_up);
    assert_eq!(
        event_ids(&again),
        event_ids(&once_more),
        "a repeated request differs"
    );
    assert_eq!(next_batch(&again), next_batch(&once_more));
    let again_rooms = again["rooms"]["join"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(!again_rooms.is_empty(), "nothing was deferred");
    for section in again_rooms.values() {
        for text in bodies(section["timeline"]["events"].as_array().unwrap()) {
            assert!(text.starts_with("round 1 "), "{text} came before its turn");
        }
    }

    // Following on from the deferring response: every message of both rounds once.
    let mut followed = Delivered::default();
    followed.add(&deferring);
    follow(&setup, &catch_up, &mut followed);
    let mut expected = first_round.clone();
    for (room, texts) in &second_round {
        expected
            .get_mut(room)
            .unwrap()
            .extend(texts.iter().cloned());
    }
    assert_eq!(followed.messages, expected);
    for room in &setup.joined {
        let new_state: Vec<_> = followed.state[room]
            .iter()
            .filter(|((t, _), _)| t == "org.example.new")
            .collect();
        assert_eq!(new_state.len(), 1, "room {room}: {new_state:?}");
        assert_eq!(*new_state[0].1, 1, "room {room}");
    }

    // A client that goes back to the token before the deferral converges the same way.
    let mut from_older = Delivered::default();
    follow(&setup, &params, &mut from_older);
    assert!(from_older.responses >= 2, "{}", from_older.responses);
    assert_eq!(from_older.messages, expected);
}

/// The events of a response's joined rooms, by room (the ages in `unsigned` aside,
/// which change with time).
fn event_ids(body: &Value) -> BTreeMap<String, Vec<String>> {
    let mut rooms = BTreeMap::new();
    for (room, section) in body["rooms"]["join"].as_object().into_iter().flatten() {
        let ids = ["state", "timeline"]
            .iter()
            .flat_map(|part| section[*part]["events"].as_array().unwrap())
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        rooms.insert(room.clone(), ids);
    }
    rooms
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

#[test]
fn the_websocket_sync_defers_rooms_the_same_way() {
    let setup = setup();
    let sent = send_round(&setup, 0);
    let url = format!(
        "ws://127.0.0.1:{}/_matrix/client/unstable/org.hearth.sync/ws?access_token={}&filter={}",
        setup.server.port,
        setup.alice.token,
        filter()
    );
    let (mut socket, _): (Socket, _) = tungstenite::connect(url).expect("the socket opens");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
    }
    let mut delivered = Delivered::default();
    let all = JOINED + INVITED;
    while delivered.state.len() + delivered.invites.len() < all {
        let text = match socket.read().expect("an update arrives") {
            tungstenite::Message::Text(text) => text,
            _ => continue,
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "sync" {
            delivered.add(&frame["body"]);
        }
    }
    assert!(delivered.responses >= 3, "{}", delivered.responses);
    delivered.assert_full_state(&setup);
    assert_eq!(delivered.messages, sent);
    assert_eq!(delivered.invites.len(), INVITED);
}
