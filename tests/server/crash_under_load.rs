//! The server killed with `SIGKILL` at random moments under load, again and again: after
//! each restart on the same data directory, every write answered 2xx is there exactly
//! once, no room is half created, transaction IDs still answer the same event, sync tokens
//! handed out before the kill resume without gaps or repeats, and RocksDB opened without
//! complaint. See `spec/reliability.md`.
//!
//! `CRASH_ROUNDS=<n>` runs `n` kills instead of the short form's 8 (not `HEARTH_*`: the
//! server would read that as one of its settings).

use std::collections::{HashMap, HashSet};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::stream::MaybeTlsStream;

use crate::admin_support::{self, admin};
use crate::fanout::random_below;
use crate::harness::TestServer;
use crate::room_support::*;

/// How long a room creation cut by a kill may take to be finished after the restart
/// before the test fails. Not a speed requirement: a bound so that one never finished
/// fails the test.
const CATCH_UP: Duration = Duration::from_secs(30);

/// How many HTTP clients write at once.
const WRITERS: usize = 3;

const WS_PATH: &str = "/_matrix/client/unstable/org.hearth.sync/ws";

/// A write a client sent; kept while unanswered, so the checks know it may or may not
/// have happened.
#[derive(Debug, Clone)]
enum Op {
    Message { room: String, txn: String },
    Topic { topic: String },
    Receipt { event_id: String },
    Upload { bytes: Vec<u8> },
    CreateRoom { name: String },
    Upgrade { room: String, version: &'static str },
}

/// A message answered with its event ID.
#[derive(Debug, Clone)]
struct Sent {
    room: String,
    txn: String,
    event_id: String,
}

/// One HTTP client: what it sent and had answered, and the write cut by the kill.
struct Writer {
    index: usize,
    user: User,
    /// A room of its own whose topic it changes.
    own_room: String,
    counter: u64,
    messages: Vec<Sent>,
    /// Topic changes answered, in order, with their event IDs.
    topics: Vec<(String, String)>,
    /// The event its last answered read receipt in the hall names.
    receipt: Option<String>,
    /// How many read receipts were answered this round.
    receipts_answered: usize,
    uploads: Vec<(String, Vec<u8>)>,
    rooms: Vec<String>,
    /// Rooms it may upgrade (those it created, and their replacements), oldest first.
    to_upgrade: std::collections::VecDeque<String>,
    /// Upgrades answered: `(old room, new room)`.
    upgrades: Vec<(String, String)>,
    pending: Option<Op>,
    /// Where this round's answered writes begin.
    round_start: (usize, usize, usize, usize, usize),
    anomalies: Vec<String>,
}

impl Writer {
    fn mark_round(&mut self) {
        self.receipts_answered = 0;
        self.round_start = (
            self.messages.len(),
            self.topics.len(),
            self.uploads.len(),
            self.rooms.len(),
            self.upgrades.len(),
        );
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The answer's status and JSON body; `Err` when the connection broke (the kill).
fn answer(response: reqwest::Result<reqwest::blocking::Response>) -> Result<(u16, Value), ()> {
    let response = response.map_err(|_| ())?;
    let status = response.status().as_u16();
    let text = response.text().map_err(|_| ())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn text(txn: &str) -> Value {
    json!({ "msgtype": "m.text", "body": txn })
}

fn upload_bytes(txn: &str) -> Vec<u8> {
    let seed = random_below(u64::MAX);
    let len = 200 + (seed % 3000) as usize;
    (0..len)
        .map(|i| (seed.rotate_left((i % 64) as u32) as u8) ^ txn.as_bytes()[i % txn.len()])
        .collect()
}

/// Writes until the connection breaks or `stop` is set.
fn run_writer(
    mut w: Writer,
    base: String,
    hall: String,
    invitee: String,
    stop: Arc<AtomicBool>,
) -> Writer {
    let http = client();
    let token = w.user.token.clone();
    while !stop.load(Ordering::SeqCst) {
        w.counter += 1;
        let n = w.counter;
        let txn = format!("w{}n{n}", w.index);
        let op = match n % 10 {
            5 => Op::Message {
                room: w.own_room.clone(),
                txn: txn.clone(),
            },
            6 => Op::Topic {
                topic: format!("topic {txn}"),
            },
            7 => match w.messages.iter().rev().find(|m| m.room == hall) {
                Some(last) => Op::Receipt {
                    event_id: last.event_id.clone(),
                },
                None => Op::Upload {
                    bytes: upload_bytes(&txn),
                },
            },
            8 => Op::Upload {
                bytes: upload_bytes(&txn),
            },
            9 if n % 20 == 9 => Op::CreateRoom {
                name: format!("room {txn}"),
            },
            9 if !w.to_upgrade.is_empty() => Op::Upgrade {
                room: w.to_upgrade.pop_front().unwrap_or_default(),
                version: if n % 40 == 19 { "11" } else { "12" },
            },
            _ => Op::Message {
                room: hall.clone(),
                txn: txn.clone(),
            },
        };
        w.pending = Some(op.clone());
        let request = match &op {
            Op::Message { room, txn } => http
                .put(format!("{base}{}", send_path(room, "m.room.message", txn)))
                .json(&text(txn)),
            Op::Topic { topic } => http
                .put(format!(
                    "{base}{}",
                    state_path(&w.own_room, "m.room.topic", "")
                ))
                .json(&json!({ "topic": topic })),
            Op::Receipt { event_id } => http
                .post(format!(
                    "{base}/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                    enc(&hall),
                    enc(event_id)
                ))
                .json(&json!({})),
            Op::Upload { bytes } => http
                .post(format!("{base}/_matrix/media/v3/upload"))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
            Op::CreateRoom { name } => http
                .post(format!("{base}/_matrix/client/v3/createRoom"))
                .json(&json!({
                    "preset": "private_chat",
                    "name": name,
                    "topic": format!("about {name}"),
                    "creation_content": { "org.hearth.crashtest": true },
                    "initial_state": [{
                        "type": "org.hearth.crashtest",
                        "state_key": "",
                        "content": { "name": name },
                    }],
                    "invite": [invitee],
                })),
            Op::Upgrade { room, version } => http
                .post(format!(
                    "{base}/_matrix/client/v3/rooms/{}/upgrade",
                    enc(room)
                ))
                .json(&json!({ "new_version": version })),
        };
        let Ok((status, body)) = answer(request.bearer_auth(&token).send()) else {
            // Killed: the write stays pending.
            break;
        };
        w.pending = None;
        if status != 200 {
            w.anomalies.push(format!(
                "writer {}: {op:?} answered {status}: {body}",
                w.index
            ));
            continue;
        }
        match op {
            Op::Message { room, txn } => w.messages.push(Sent {
                room,
                txn,
                event_id: body["event_id"].as_str().unwrap_or_default().to_owned(),
            }),
            Op::Topic { topic } => w
                .topics
                .push((topic, body["event_id"].as_str().unwrap_or_default().into())),
            Op::Receipt { event_id } => {
                w.receipt = Some(event_id);
                w.receipts_answered += 1;
            }
            Op::Upload { bytes } => w.uploads.push((
                body["content_uri"].as_str().unwrap_or_default().into(),
                bytes,
            )),
            Op::CreateRoom { .. } => {
                let room: String = body["room_id"].as_str().unwrap_or_default().into();
                w.to_upgrade.push_back(room.clone());
                w.rooms.push(room);
            }
            Op::Upgrade { room, .. } => {
                let new_room: String = body["replacement_room"].as_str().unwrap_or_default().into();
                w.to_upgrade.push_back(new_room.clone());
                w.upgrades.push((room, new_room));
            }
        }
    }
    w
}

/// A client following the rooms by sync: every timeline event it was handed, in order,
/// and the tokens it was handed with how many events it had by then.
struct Syncer {
    user: User,
    /// Over the sync WebSocket rather than long-poll `/sync`.
    socket: bool,
    token: String,
    delivered: Vec<String>,
    seen: HashSet<String>,
    /// This round's tokens: `(token, delivered.len() when it was handed out)`.
    tokens: Vec<(String, usize)>,
    anomalies: Vec<String>,
}

impl Syncer {
    fn name(&self) -> &'static str {
        if self.socket { "socket" } else { "long-poll" }
    }

    /// Takes in one sync response.
    fn absorb(&mut self, body: &Value, scope: &[String]) {
        for room in scope {
            let timeline = &body["rooms"]["join"][room]["timeline"];
            if timeline["limited"] == true {
                self.anomalies.push(format!(
                    "{}: a limited timeline (a gap) for {room} since {}",
                    self.name(),
                    self.token
                ));
            }
            for event in timeline["events"].as_array().into_iter().flatten() {
                let id = event["event_id"].as_str().unwrap_or_default().to_owned();
                if !self.seen.insert(id.clone()) {
                    self.anomalies.push(format!(
                        "{}: {id} delivered again (since {})",
                        self.name(),
                        self.token
                    ));
                    continue;
                }
                self.delivered.push(id);
            }
        }
        if let Some(next) = body["next_batch"].as_str() {
            self.token = next.to_owned();
            self.tokens.push((next.to_owned(), self.delivered.len()));
        }
    }
}

fn sync_filter(scope: &[String]) -> String {
    enc(&json!({ "room": { "rooms": scope, "timeline": { "limit": 1000 } } }).to_string())
}

type Socket = tungstenite::WebSocket<MaybeTlsStream<TcpStream>>;

fn open_socket(port: u16, token: &str, since: &str, filter: &str) -> Option<Socket> {
    let url = format!(
        "ws://127.0.0.1:{port}{WS_PATH}?access_token={token}&since={since}&filter={filter}"
    );
    let (socket, _) = tungstenite::connect(url).ok()?;
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
    }
    Some(socket)
}

/// The next `sync` body from the socket; `None` once it breaks.
fn next_sync(socket: &mut Socket) -> Option<Value> {
    loop {
        match socket.read().ok()? {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(&text).ok()?;
                if frame["type"] == "sync" {
                    return Some(frame["body"].clone());
                }
            }
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Follows the rooms until the connection breaks.
fn run_syncer(mut s: Syncer, server_port: u16, scope: Vec<String>) -> Syncer {
    let filter = sync_filter(&scope);
    if s.socket {
        let Some(mut socket) = open_socket(server_port, &s.user.token, &s.token, &filter) else {
            return s;
        };
        while let Some(body) = next_sync(&mut socket) {
            s.absorb(&body, &scope);
        }
    } else {
        let http = client();
        loop {
            let url = format!(
                "http://127.0.0.1:{server_port}/_matrix/client/v3/sync?since={}&timeout=2000&filter={filter}",
                enc(&s.token)
            );
            let Ok((status, body)) = answer(http.get(url).bearer_auth(&s.user.token).send()) else {
                break;
            };
            if status != 200 {
                s.anomalies
                    .push(format!("long-poll: /sync answered {status}: {body}"));
                break;
            }
            s.absorb(&body, &scope);
        }
    }
    s
}

/// What the checks found.
#[derive(Default)]
struct Tally {
    checked: usize,
    anomalies: Vec<String>,
}

impl Tally {
    fn check(&mut self, ok: bool, detail: impl FnOnce() -> String) {
        self.checked += 1;
        if !ok {
            let detail = detail();
            eprintln!("ANOMALY: {detail}");
            self.anomalies.push(detail);
        }
    }
}

/// Messages answered since `starts` (per writer) are in their rooms exactly once.
fn check_messages(
    server: &TestServer,
    viewer: &User,
    writers: &[Writer],
    rooms: &[String],
    whole: bool,
    tally: &mut Tally,
) {
    for room in rooms {
        let wanted: HashSet<&str> = writers
            .iter()
            .flat_map(|w| {
                let start = if whole { 0 } else { w.round_start.0 };
                w.messages[start..].iter()
            })
            .filter(|m| &m.room == room)
            .map(|m| m.event_id.as_str())
            .collect();
        let history = room_history(server, viewer, room, |events| {
            // One page beyond the oldest wanted event, to see any later copy of it.
            !whole
                && wanted
                    .iter()
                    .all(|id| events.iter().any(|e| e["event_id"] == *id))
        });
        let mut by_txn: HashMap<&str, Vec<&str>> = HashMap::new();
        for event in &history {
            if event["type"] == "m.room.message"
                && let (Some(body), Some(id)) = (
                    event["content"]["body"].as_str(),
                    event["event_id"].as_str(),
                )
            {
                by_txn.entry(body).or_default().push(id);
            }
        }
        for (txn, ids) in &by_txn {
            if ids.len() > 1 {
                tally.anomalies.push(format!(
                    "message {txn} is in {room} {} times: {ids:?}",
                    ids.len()
                ));
                eprintln!("ANOMALY: {}", tally.anomalies.last().unwrap());
            }
        }
        for w in writers {
            let start = if whole { 0 } else { w.round_start.0 };
            for sent in w.messages[start..].iter().filter(|m| &m.room == room) {
                let found = by_txn.get(sent.txn.as_str());
                tally.check(
                    found.is_some_and(|ids| ids == &[sent.event_id.as_str()]),
                    || {
                        format!(
                            "answered message {} ({}) in {room}: found {found:?}",
                            sent.txn, sent.event_id
                        )
                    },
                );
            }
        }
    }
}

/// Every room the server has, with every initial event; load-created rooms with all
/// their requested state. Returns the rooms found complete.
fn check_rooms(
    server: &TestServer,
    root: &User,
    verified: &mut HashSet<String>,
    answered: &HashSet<String>,
    tally: &mut Tally,
) {
    let (status, list) = server.get("/_synapse/admin/v1/rooms?limit=100000", Some(&root.token));
    assert_eq!(status, 200, "{list}");
    let listed: HashSet<String> = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["room_id"].as_str().map(str::to_owned))
        .collect();
    for room in answered {
        tally.check(listed.contains(room), || {
            format!("room {room} answered by createRoom is not on the server")
        });
    }
    for room in listed.difference(&verified.clone()) {
        // A creation cut by the kill is finished in the background after the restart.
        let deadline = Instant::now() + CATCH_UP;
        let missing = loop {
            let missing = missing_initial_state(server, root, room);
            if missing.is_empty() || Instant::now() > deadline {
                break missing;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        tally.check(missing.is_empty(), || {
            format!("room {room} is half created: no {}", missing.join(", "))
        });
        verified.insert(room.clone());
    }
}

/// What the room lacks of what `createRoom` gives every room (and, for rooms the load
/// created, of what their requests asked for).
fn missing_initial_state(server: &TestServer, root: &User, room: &str) -> Vec<String> {
    let (status, state) = server.get(
        &format!("/_synapse/admin/v1/rooms/{}/state", enc(room)),
        Some(&root.token),
    );
    assert_eq!(status, 200, "{state}");
    let events = state["state"].as_array().unwrap();
    let find = |t: &str, k: &str| {
        events
            .iter()
            .find(|e| e["type"] == t && e["state_key"] == k)
    };
    let Some(create) = find("m.room.create", "") else {
        return vec!["m.room.create".into()];
    };
    let creator = create["sender"].as_str().unwrap_or_default();
    let mut missing: Vec<String> = Vec::new();
    if find("m.room.member", creator).map(|e| &e["content"]["membership"]) != Some(&json!("join")) {
        missing.push(format!("the creator {creator}'s join"));
    }
    let mut wanted = vec![
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
    ];
    // Every room but a new one with the public_chat preset (a public join rule) gets a
    // guest-access event, as Synapse's presets do; a replacement room always has one.
    let public =
        find("m.room.join_rules", "").map(|e| &e["content"]["join_rule"]) == Some(&json!("public"));
    if !public || create["content"]["predecessor"].is_object() {
        wanted.push("m.room.guest_access");
    }
    // A replacement room: the state copied from the old one (every room the load
    // upgrades has a name and a topic), and the old room's tombstone naming it.
    if let Some(old) = create["content"]["predecessor"]["room_id"].as_str() {
        wanted.extend(["m.room.name", "m.room.topic"]);
        let (status, old_state) = server.get(
            &format!("/_synapse/admin/v1/rooms/{}/state", enc(old)),
            Some(&root.token),
        );
        let tombstone = old_state["state"].as_array().and_then(|events| {
            events
                .iter()
                .find(|e| e["type"] == "m.room.tombstone" && e["state_key"] == "")
        });
        if status != 200
            || tombstone.map(|t| &t["content"]["replacement_room"]) != Some(&json!(room))
        {
            missing.push(format!("the tombstone in {old} naming it ({status})"));
        }
    }
    if create["content"]["org.hearth.crashtest"] == true {
        wanted.extend(["m.room.name", "m.room.topic", "org.hearth.crashtest"]);
        if !events
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["content"]["membership"] == "invite")
        {
            missing.push("the invite".into());
        }
    }
    missing.extend(
        wanted
            .into_iter()
            .filter(|t| find(t, "").is_none())
            .map(str::to_owned),
    );
    missing
}

/// Upgrades: every answered one (and every one the kill cut, if it happened) left the
/// old room with a tombstone naming a whole new room, and raised the old room's levels
/// so that ordinary members can no longer talk there.
fn check_upgrades(
    server: &TestServer,
    root: &User,
    upgrades: &[(String, String)],
    cut: &[String],
    tally: &mut Tally,
) {
    let tombstone_of = |room: &str| {
        let (status, state) = server.get(
            &format!("/_synapse/admin/v1/rooms/{}/state", enc(room)),
            Some(&root.token),
        );
        assert_eq!(status, 200, "{state}");
        let events = state["state"].as_array().cloned().unwrap_or_default();
        let find = |t: &str| {
            events
                .iter()
                .find(|e| e["type"] == t && e["state_key"] == "")
                .cloned()
        };
        (
            find("m.room.tombstone")
                .and_then(|t| t["content"]["replacement_room"].as_str().map(str::to_owned)),
            find("m.room.power_levels").map(|pl| pl["content"]["events_default"].clone()),
        )
    };
    let answered = upgrades.iter().map(|(old, new)| (old, Some(new)));
    for (old, new) in answered.chain(cut.iter().map(|old| (old, None))) {
        // The new room of an upgrade cut by the kill may be finished in the background.
        let deadline = Instant::now() + CATCH_UP;
        let (tombstone, events_default, missing) = loop {
            let (tombstone, events_default) = tombstone_of(old);
            let missing = match &tombstone {
                Some(replacement) => missing_initial_state(server, root, replacement),
                None => Vec::new(),
            };
            let done = missing.is_empty() && (new.is_none() || tombstone.is_some());
            if done || Instant::now() > deadline {
                break (tombstone, events_default, missing);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(new) = new {
            tally.check(tombstone.as_ref() == Some(new), || {
                format!(
                    "upgrade of {old} answered {new}: the old room's tombstone names {tombstone:?}"
                )
            });
        }
        if tombstone.is_some() {
            tally.check(missing.is_empty(), || {
                format!(
                    "{old}'s tombstone names {tombstone:?}, which is half made: no {}",
                    missing.join(", ")
                )
            });
            tally.check(
                events_default.as_ref().and_then(Value::as_i64) >= Some(50),
                || format!("{old} was upgraded but its events_default is {events_default:?}"),
            );
        }
    }
}

/// A sync from a token handed out before the kill answers exactly the events after it.
fn check_resume(
    server: &TestServer,
    s: &Syncer,
    token_at: (String, usize),
    must_have: &HashSet<String>,
    scope: &[String],
    tally: &mut Tally,
) {
    let (token, count) = token_at;
    let filter = sync_filter(scope);
    let body = if s.socket {
        let mut socket = open_socket(server.port, &s.user.token, &token, &filter)
            .expect("the socket opens with a token from before the kill");
        next_sync(&mut socket).expect("the catch-up update")
    } else {
        let (status, body) = server.get(
            &format!(
                "/_matrix/client/v3/sync?since={}&timeout=0&filter={filter}",
                enc(&token)
            ),
            Some(&s.user.token),
        );
        tally.check(status == 200, || {
            format!(
                "{}: /sync from pre-kill token {token} answered {status}: {body}",
                s.name()
            )
        });
        body
    };
    let before: HashSet<&String> = s.delivered[..count].iter().collect();
    let mut got: Vec<String> = Vec::new();
    for room in scope {
        let timeline = &body["rooms"]["join"][room]["timeline"];
        tally.check(timeline["limited"] != true, || {
            format!(
                "{}: resuming from {token}: {room}'s timeline is limited",
                s.name()
            )
        });
        got.extend(
            timeline["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["event_id"].as_str().map(str::to_owned)),
        );
    }
    let got_set: HashSet<&String> = got.iter().collect();
    let repeats: Vec<&String> = got.iter().filter(|id| before.contains(id)).collect();
    tally.check(repeats.is_empty() && got_set.len() == got.len(), || {
        format!(
            "{}: resuming from {token} repeats events delivered before it: {repeats:?}",
            s.name()
        )
    });
    let gaps: Vec<&String> = s.delivered[count..]
        .iter()
        .chain(must_have.iter())
        .filter(|id| !before.contains(id) && !got_set.contains(id))
        .collect();
    tally.check(gaps.is_empty(), || {
        format!(
            "{}: resuming from {token} misses events after it: {gaps:?}",
            s.name()
        )
    });
}

/// Whether a log line says the store was repaired or found corrupt. A write-ahead log
/// whose last record the kill cut in the middle is not: RocksDB drops that record (a
/// write never acknowledged, since a write is answered only once its record is whole)
/// and says so; see [`torn_tail`].
fn complaint(line: &str) -> bool {
    let lower = line.to_lowercase();
    (lower.contains("corruption") && !torn_tail(line))
        || lower.contains("repair")
        || lower.contains("panicked")
        || lower.contains("corrupt record")
}

/// RocksDB's note, on opening, that the write-ahead log ends in a record cut short:
/// either in a fragment of a record written in pieces ("encountering EOF") or in the
/// body of a record whose header made it to the file ("truncated record body", which
/// RocksDB reports only when it reached the end of the file).
fn torn_tail(line: &str) -> bool {
    line.contains("db_impl_open.cc")
        && line.contains(".log: dropping")
        && (line.contains("error reading trailing data due to encountering EOF")
            || line.contains("truncated record body"))
}

#[test]
fn killed_under_load_again_and_again_nothing_answered_is_lost() {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8);
    // At info, the server logs the room creations it resumes at start-up.
    let mut server = TestServer::start_with_env(&[
        ("HEARTH_REGISTRATION__SHARED_SECRET", admin_support::SECRET),
        ("RUST_LOG", "warn,hearth::service::fanout=info"),
        // The writers upload as fast as the server answers: on a quiet machine that is
        // past the per-user upload allowance, which has tests of its own.
        ("HEARTH_MEDIA__UPLOADS_BURST", "1000000"),
        // Synced writes, as a deployed server has them: sends then go through the group
        // commit's waits (`store/group_commit.rs`), merged with other writers' batches.
        ("HEARTH_SYNC_WRITES", "true"),
    ]);
    let root = admin(&server, "root");
    let owner = user(&server, "owner");
    let hall = create_room(
        &server,
        &owner,
        json!({ "preset": "public_chat", "name": "hall" }),
    );
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|index| {
            let u = user(&server, &format!("writer{index}"));
            join(&server, &u, &hall);
            let own_room = create_room(&server, &u, json!({ "preset": "public_chat" }));
            Writer {
                index,
                user: u,
                own_room,
                counter: 0,
                messages: Vec::new(),
                topics: Vec::new(),
                receipt: None,
                receipts_answered: 0,
                uploads: Vec::new(),
                rooms: Vec::new(),
                to_upgrade: Default::default(),
                upgrades: Vec::new(),
                pending: None,
                round_start: (0, 0, 0, 0, 0),
                anomalies: Vec::new(),
            }
        })
        .collect();
    let scope: Vec<String> = std::iter::once(hall.clone())
        .chain(writers.iter().map(|w| w.own_room.clone()))
        .collect();
    let mut syncers: Vec<Syncer> = [false, true]
        .into_iter()
        .map(|socket| {
            let u = user(&server, if socket { "watcher" } else { "listener" });
            for room in &scope {
                join(&server, &u, room);
            }
            let mut s = Syncer {
                user: u,
                socket,
                token: String::new(),
                delivered: Vec::new(),
                seen: HashSet::new(),
                tokens: Vec::new(),
                anomalies: Vec::new(),
            };
            let (status, body) = server.get(
                &format!("/_matrix/client/v3/sync?filter={}", sync_filter(&scope)),
                Some(&s.user.token),
            );
            assert_eq!(status, 200, "{body}");
            s.absorb(&body, &scope);
            s
        })
        .collect();
    let invitee = syncers[0].user.id.clone();
    let base = server.url("");
    let mut tally = Tally::default();
    let mut verified_rooms: HashSet<String> = HashSet::new();
    let mut answered_rooms: HashSet<String> = HashSet::new();
    let mut writes = 0;
    let mut resumed = 0;
    let mut torn_tails = 0;
    let mut resumes_checked = 0;
    let mut upgrades_answered = 0;
    let started = Instant::now();

    for round in 0..rounds {
        for w in &mut writers {
            w.mark_round();
        }
        for s in &mut syncers {
            s.tokens.clear();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writer_threads: Vec<JoinHandle<Writer>> = writers
            .drain(..)
            .map(|w| {
                let (base, hall, invitee, stop) =
                    (base.clone(), hall.clone(), invitee.clone(), stop.clone());
                std::thread::spawn(move || run_writer(w, base, hall, invitee, stop))
            })
            .collect();
        let syncer_threads: Vec<JoinHandle<Syncer>> = syncers
            .drain(..)
            .map(|s| {
                let (port, scope) = (server.port, scope.clone());
                std::thread::spawn(move || run_syncer(s, port, scope))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + random_below(900)));
        // SIGKILL; the logs are those of the run that began at the last restart.
        let logs = server.stop_and_logs();
        if logs.contains("resuming fan-outs left unfinished") {
            resumed += 1;
        }
        for line in logs.lines().filter(|l| complaint(l)) {
            tally.check(false, || {
                format!("round {round}: the server logged {line:?}")
            });
        }
        stop.store(true, Ordering::SeqCst);
        writers = writer_threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        syncers = syncer_threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        server.restart();
        let rocks_log =
            std::fs::read_to_string(server.data_dir().join("db").join("LOG")).unwrap_or_default();
        torn_tails += rocks_log.lines().filter(|l| torn_tail(l)).count();
        for line in rocks_log.lines().filter(|l| complaint(l)) {
            tally.check(false, || format!("round {round}: RocksDB logged {line:?}"));
        }

        // The write the kill cut, sent again with its transaction ID, and the last
        // answered one: the same event, and the cut one there once whatever happened.
        for w in &mut writers {
            tally.anomalies.append(&mut w.anomalies);
            if let Some(Op::Message { room, txn }) = w.pending.clone() {
                w.pending = None;
                let (status, body) = try_send(&server, &w.user, &room, &txn, &text(&txn));
                assert_eq!(status, 200, "{body}");
                w.messages.push(Sent {
                    room,
                    txn,
                    event_id: body["event_id"].as_str().unwrap().to_owned(),
                });
            }
            if let Some(last) = w.messages[w.round_start.0..].last().cloned() {
                let (status, body) =
                    try_send(&server, &w.user, &last.room, &last.txn, &text(&last.txn));
                tally.check(status == 200 && body["event_id"] == *last.event_id, || {
                    format!(
                        "txn {} sent again after the restart answered {status} {body}, not {}",
                        last.txn, last.event_id
                    )
                });
            }
        }
        for s in &mut syncers {
            tally.anomalies.append(&mut s.anomalies);
        }
        check_messages(
            &server,
            &syncers[0].user,
            &writers,
            &scope,
            false,
            &mut tally,
        );

        // Topics: the last answered one, or the one cut by the kill.
        for w in &mut writers {
            let cut = match w.pending.take() {
                Some(Op::Topic { topic }) => Some(topic),
                other => {
                    w.pending = other;
                    None
                }
            };
            let Some((topic, _)) = w.topics.last() else {
                continue;
            };
            let (status, body) = get_state(&server, &w.user, &w.own_room, "m.room.topic", "");
            let got = body["topic"].as_str();
            tally.check(
                status == 200 && (got == Some(topic) || got == cut.as_deref()),
                || {
                    format!(
                        "{}'s topic is {status} {body}, answered {topic:?}",
                        w.user.id
                    )
                },
            );
        }

        // Read receipts, as a new sync shows them.
        let (status, sync_body) = server.get(
            &format!(
                "/_matrix/client/v3/sync?filter={}",
                enc(
                    &json!({ "room": { "rooms": [hall], "timeline": { "limit": 1 } } }).to_string()
                )
            ),
            Some(&owner.token),
        );
        assert_eq!(status, 200, "{sync_body}");
        let mut receipts: HashMap<String, String> = HashMap::new();
        for event in sync_body["rooms"]["join"][&hall]["ephemeral"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == "m.receipt")
        {
            for (event_id, kinds) in event["content"].as_object().into_iter().flatten() {
                for user_id in kinds["m.read"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(u, _)| u)
                {
                    receipts.insert(user_id.clone(), event_id.clone());
                }
            }
        }
        for w in &mut writers {
            let cut = match w.pending.take() {
                Some(Op::Receipt { event_id }) => Some(event_id),
                other => {
                    w.pending = other;
                    None
                }
            };
            let Some(answered) = &w.receipt else { continue };
            let got = receipts.get(&w.user.id);
            tally.check(
                got == Some(answered) || (got.is_some() && got == cut.as_ref()),
                || {
                    format!(
                        "{}'s read receipt is at {got:?}, answered {answered}",
                        w.user.id
                    )
                },
            );
        }

        // Uploads: the same bytes.
        for w in &writers {
            for (mxc, bytes) in &w.uploads[w.round_start.2..] {
                let (server_name, id) = mxc
                    .strip_prefix("mxc://")
                    .and_then(|m| m.split_once('/'))
                    .unwrap_or_default();
                let response = server
                    .client
                    .get(server.url(&format!(
                        "/_matrix/client/v1/media/download/{}/{}",
                        enc(server_name),
                        enc(id)
                    )))
                    .bearer_auth(&w.user.token)
                    .send()
                    .unwrap();
                let status = response.status().as_u16();
                let got = response.bytes().unwrap();
                tally.check(status == 200 && got.as_ref() == bytes.as_slice(), || {
                    format!(
                        "upload {mxc}: {status}, {} bytes of {}",
                        got.len(),
                        bytes.len()
                    )
                });
            }
        }

        // Upgrades: the one the kill cut is sent again and answers a whole new room (the
        // one it made before the kill, if it made one); then every answered one checked.
        let mut cut_upgrades = Vec::new();
        for w in &mut writers {
            if let Some(Op::Upgrade { room, version }) = w.pending.clone() {
                w.pending = None;
                cut_upgrades.push(room.clone());
                let (status, body) = server.post(
                    &format!("/_matrix/client/v3/rooms/{}/upgrade", enc(&room)),
                    Some(&w.user.token),
                    &json!({ "new_version": version }),
                );
                tally.check(status == 200, || {
                    format!("upgrade of {room} cut by the kill, sent again: {status} {body}")
                });
                if let Some(new_room) = body["replacement_room"].as_str() {
                    w.to_upgrade.push_back(new_room.to_owned());
                    w.upgrades.push((room, new_room.to_owned()));
                }
            }
        }
        let this_round: Vec<(String, String)> = writers
            .iter()
            .flat_map(|w| w.upgrades[w.round_start.4..].iter().cloned())
            .collect();
        check_upgrades(&server, &root, &this_round, &cut_upgrades, &mut tally);
        upgrades_answered += this_round.len();

        // Rooms: every one whole.
        for w in &writers {
            answered_rooms.extend(w.rooms[w.round_start.3..].iter().cloned());
            answered_rooms.extend(
                w.upgrades[w.round_start.4..]
                    .iter()
                    .map(|(_, new)| new.clone()),
            );
        }
        check_rooms(
            &server,
            &root,
            &mut verified_rooms,
            &answered_rooms,
            &mut tally,
        );

        // Sync tokens from before the kill: the last, and one picked at random.
        let must_have: HashSet<String> = writers
            .iter()
            .flat_map(|w| {
                w.messages
                    .iter()
                    .map(|m| m.event_id.clone())
                    .chain(w.topics.iter().map(|(_, id)| id.clone()))
            })
            .collect();
        for s in &syncers {
            let mut picked: Vec<(String, usize)> = s.tokens.last().cloned().into_iter().collect();
            if !s.tokens.is_empty() {
                picked.push(s.tokens[random_below(s.tokens.len() as u64) as usize].clone());
            }
            for token_at in picked {
                resumes_checked += 1;
                check_resume(&server, s, token_at, &must_have, &scope, &mut tally);
            }
        }
        for w in &mut writers {
            // A cut upload or createRoom left nothing a client could look for.
            w.pending = None;
        }
        writes += writers
            .iter()
            .map(|w| {
                (w.messages.len() - w.round_start.0)
                    + (w.topics.len() - w.round_start.1)
                    + (w.uploads.len() - w.round_start.2)
                    + (w.rooms.len() - w.round_start.3)
                    + (w.upgrades.len() - w.round_start.4)
                    + w.receipts_answered
            })
            .sum::<usize>();
    }

    // At the end, the whole history once more.
    for w in &mut writers {
        w.round_start = (0, 0, 0, 0, 0);
    }
    check_messages(
        &server,
        &syncers[0].user,
        &writers,
        &scope,
        true,
        &mut tally,
    );
    // The run after the last kill may have resumed a creation too.
    if server
        .stop_and_logs()
        .contains("resuming fan-outs left unfinished")
    {
        resumed += 1;
    }
    println!(
        "{rounds} kills survived in {:?}; {writes} writes answered, {} checks of answered \
         writes; {} rooms checked whole, {upgrades_answered} upgrades checked, {resumed} \
         restarts finished a creation or upgrade cut short; \
         {resumes_checked} syncs resumed from pre-kill tokens; events handed to the \
         long-poll / socket clients: {} / {}; {torn_tails} restarts dropped a write-ahead \
         log record the kill cut short; {} anomalies",
        started.elapsed(),
        tally.checked,
        verified_rooms.len(),
        syncers[0].delivered.len(),
        syncers[1].delivered.len(),
        tally.anomalies.len()
    );
    assert!(
        tally.anomalies.is_empty(),
        "{} anomalies:\n{}",
        tally.anomalies.len(),
        tally.anomalies.join("\n")
    );
}
