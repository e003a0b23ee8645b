//! Simplified sliding sync (MSC4186): the client names lists of its rooms (filtered,
//! sorted by recency, cut to ranges) and rooms it subscribes to; the server sends each
//! such room in full once, then only what changed, plus the extensions asked for.
//!
//! A connection (user, device, `conn_id`) keeps its state under the number its `pos`
//! carries: the stream positions it reached, what it has sent of each room and its
//! sticky configuration; in memory, written to the store about once a second and at
//! shutdown. A `pos` therefore survives a graceful restart. The state of the
//! position a request names is kept until the client uses the next one, so a request
//! retried after a lost answer is answered again.

mod answer;
mod bump;
mod extensions;
mod lists;
mod request;
mod room;
mod threads;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ruma::{DeviceId, OwnedRoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};

pub use answer::SlidingAnswer;
pub use bump::BumpStamps;
pub use request::Body;

use self::extensions::{Scope, parse_to_device_since};
use self::lists::{Candidate, ListCache};
use self::request::{AskedList, Extensions, ListConfig, RoomConfig, RoomWants};
use self::room::SentRoom;
use crate::error::{Error, ErrorKind, Result};
use crate::service::e2ee::MAX_TO_DEVICE_PER_SYNC;
use crate::service::presence::PresenceState;
use crate::service::sync::{MAX_TIMEOUT, SyncToken};
use crate::service::{Services, now_ms};

/// How often the connections' states kept in memory are written to the store.
const STATE_WRITES_EVERY: Duration = Duration::from_secs(1);

pub struct SlidingSyncRequest {
    pub pos: Option<String>,
    pub timeout: Duration,
    pub set_presence: PresenceState,
    pub body: Body,
}

/// A connection's state at one position, as stored. Its configuration is shared (by
/// `Arc`) with the states before it while the client asks the same, as it mostly does:
/// neither copied nor compared again, and freed with the last state that has it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Connection {
    /// The stream positions the connection has reached.
    token: String,
    lists: Arc<BTreeMap<String, ListConfig>>,
    /// The lists' JSON as the request that made `lists` sent it. Not stored: after a
    /// restart, the first request's lists are parsed.
    #[serde(skip)]
    list_json: Arc<BTreeMap<String, AskedList>>,
    /// Room subscriptions stay until `unsubscribe_rooms` names them.
    subscriptions: Arc<BTreeMap<OwnedRoomId, RoomConfig>>,
    extensions: Arc<Extensions>,
    rooms: BTreeMap<OwnedRoomId, SentRoom>,
    list_counts: BTreeMap<String, usize>,
}

/// A connection's lists, and their JSON as the request that asked for them sent it.
type AskedLists = (
    Arc<BTreeMap<String, ListConfig>>,
    Arc<BTreeMap<String, AskedList>>,
);

impl Connection {
    /// Whether `other` asks the same (an `Arc` shared with it is not compared).
    fn same_config(&self, other: &Connection) -> bool {
        self.lists == other.lists
            && self.subscriptions == other.subscriptions
            && self.extensions == other.extensions
    }

    /// The lists a request asks for, each merged over this connection's list of its
    /// name, and their JSON. A list whose JSON is the one this connection's request sent
    /// is this connection's list, not parsed again; when every list is, the lists are
    /// these, shared.
    fn asked_lists(&self, asked: BTreeMap<String, AskedList>) -> Result<AskedLists> {
        let sent_before = |name: &String, list: &AskedList| {
            self.list_json
                .get(name)
                .is_some_and(|before| before.json() == list.json())
        };
        if asked.len() == self.lists.len() && asked.iter().all(|(n, l)| sent_before(n, l)) {
            return Ok((self.lists.clone(), self.list_json.clone()));
        }
        let mut lists = BTreeMap::new();
        for (name, list) in &asked {
            let before = self.lists.get(name);
            let config = match before {
                Some(before) if sent_before(name, list) => before.clone(),
                _ => list.parse(name)?.merged_over(before),
            };
            lists.insert(name.clone(), config);
        }
        // The same lists written otherwise (another order of fields, say): still these,
        // so that what rooms want stays shared.
        if lists == *self.lists {
            return Ok((self.lists.clone(), Arc::new(asked)));
        }
        Ok((Arc::new(lists), Arc::new(asked)))
    }

    /// The subscriptions after a request's changes to them: these, shared, when it
    /// makes none.
    fn asked_subscriptions(
        &self,
        subscribe: BTreeMap<OwnedRoomId, RoomConfig>,
        unsubscribe: &[OwnedRoomId],
    ) -> Arc<BTreeMap<OwnedRoomId, RoomConfig>> {
        if subscribe.is_empty() && unsubscribe.is_empty() {
            return self.subscriptions.clone();
        }
        let mut subscriptions = (*self.subscriptions).clone();
        for room_id in unsubscribe {
            subscriptions.remove(room_id);
        }
        subscriptions.extend(subscribe);
        if subscriptions == *self.subscriptions {
            return self.subscriptions.clone();
        }
        Arc::new(subscriptions)
    }
}

/// What one answer moves a connection's state on by: the positions reached, the list
/// counts, and the rooms whose sent record changed (the others stay as they were).
struct Sent {
    token: String,
    list_counts: BTreeMap<String, usize>,
    rooms: Vec<(OwnedRoomId, SentRoom)>,
}

impl Sent {
    /// Moves the state on; returns what takes it back.
    fn apply_to(self, connection: &mut Connection) -> Undo {
        Undo {
            token: std::mem::replace(&mut connection.token, self.token),
            list_counts: std::mem::replace(&mut connection.list_counts, self.list_counts),
            rooms: self
                .rooms
                .into_iter()
                .map(|(room_id, sent)| {
                    let before = connection.rooms.insert(room_id.clone(), sent);
                    (room_id, before)
                })
                .collect(),
        }
    }
}

/// What [`Sent::apply_to`] replaced (a room absent before: `None`).
struct Undo {
    token: String,
    list_counts: BTreeMap<String, usize>,
    rooms: Vec<(OwnedRoomId, Option<SentRoom>)>,
}

impl Undo {
    fn apply_to(self, connection: &mut Connection) {
        connection.token = self.token;
        connection.list_counts = self.list_counts;
        for (room_id, before) in self.rooms {
            match before {
                Some(sent) => connection.rooms.insert(room_id, sent),
                None => connection.rooms.remove(&room_id),
            };
        }
    }
}

/// Everything one computation shares.
struct Pass<'a> {
    user_id: &'a UserId,
    device_id: &'a DeviceId,
    since: Option<SyncToken>,
    now: SyncToken,
    lists: ListCache,
    /// Bytes of timeline events the answer may still carry (`limits.sync_timeline_bytes`).
    timeline_bytes_left: Cell<usize>,
}

fn unknown_pos() -> Error {
    Error::new(
        ErrorKind::UnknownPos,
        "Unknown pos: start the connection again without one",
    )
}

/// A connection as one request leaves it: the position its next answer continues from
/// and the sticky configuration that answer follows. The long-poll computes one answer
/// from it; the WebSocket keeps it and computes the next answer from the last one sent,
/// as a client re-polling at once with the new `pos` would.
pub struct SlidingConnection {
    conn_id: String,
    /// The `pos` answered to (absent for a fresh connection) and its number.
    pos: Option<String>,
    seq: Option<u64>,
    since: Option<SyncToken>,
    config: Arc<Connection>,
    /// Whether the request changed what the connection asks (an answer is due).
    config_changed: bool,
    /// Where the to-device messages continue (`extensions.to_device.since`).
    to_device_since: Option<u64>,
}

impl SlidingConnection {
    pub fn conn_id(&self) -> &str {
        &self.conn_id
    }

    /// The `pos` of the last answer (or of the request, before any).
    pub fn pos(&self) -> Option<&str> {
        self.pos.as_deref()
    }

    /// Takes the to-device position from the connection this one continues, when its
    /// request named none: a WebSocket knows what it sent.
    pub fn continue_to_device_from(&mut self, earlier: &SlidingConnection) {
        if self.to_device_since.is_none() {
            self.to_device_since = earlier.to_device_since;
        }
    }

    /// Whether `answer` held as many to-device messages as one answer may: more may be
    /// waiting, and the next answer is due at once.
    pub fn more_waiting(&self, answer: &SlidingAnswer) -> bool {
        let Some(config) = self.config.extensions.to_device.as_ref() else {
            return false;
        };
        let limit = config
            .limit
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(MAX_TO_DEVICE_PER_SYNC)
            .clamp(1, MAX_TO_DEVICE_PER_SYNC);
        answer.to_device_count() >= limit
    }
}

impl Services {
    /// One sliding sync response. A request with a `pos` and nothing new waits up to
    /// its timeout for the notifier; it then answers with the same `pos`.
    pub async fn sliding_sync(
        self: &Arc<Self>,
        user_id: &UserId,
        device_id: &DeviceId,
        request: SlidingSyncRequest,
    ) -> Result<SlidingAnswer> {
        let mut connection =
            self.sliding_connection(user_id, device_id, request.pos.as_deref(), request.body)?;
        let _presence = self.begin_sync(user_id, request.set_presence);
        let mut wakes = self.notifier.subscribe(user_id);
        let deadline = tokio::time::Instant::now() + request.timeout.min(MAX_TIMEOUT);
        let shutdown = self.shutdown_started();
        tokio::pin!(shutdown);
        let hold = std::time::Duration::from_millis(self.config.limits.to_device_hold_ms);
        loop {
            let at_deadline = tokio::time::Instant::now() >= deadline;
            if let Some(answer) =
                self.sliding_answer(user_id, device_id, &mut connection, at_deadline)?
            {
                return Ok(answer);
            }
            tokio::select! {
                woken = wakes.changed() => match woken {
                    Err(_) => tokio::time::sleep_until(deadline).await,
                    // As `/sync` does: woken by a room key alone, a moment for the message
                    // it unlocks.
                    Ok(woken) => tokio::select! {
                        () = wakes.hold_after(woken, hold, deadline) => {}
                        _ = &mut shutdown => {
                            return self
                                .sliding_answer(user_id, device_id, &mut connection, true)
                                .map(Option::unwrap_or_default);
                        }
                    },
                },
                _ = tokio::time::sleep_until(deadline) => {}
                _ = &mut shutdown => {
                    return self
                        .sliding_answer(user_id, device_id, &mut connection, true)
                        .map(Option::unwrap_or_default);
                }
            }
        }
    }

    /// Reads the connection a request continues (its `pos`; none starts it afresh) and
    /// applies the request's body to it: the sticky configuration, lists as asked
    /// (missing fields as before), subscriptions added and removed, extensions left out
    /// kept. A `to_device.since` acknowledges the device's messages up to it.
    pub fn sliding_connection(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        pos: Option<&str>,
        body: Body,
    ) -> Result<SlidingConnection> {
        body.check()?;
        let conn_id = body.conn_id.clone().unwrap_or_default();
        let previous = match pos {
            None | Some("") => None,
            Some(pos) => {
                let seq: u64 = pos.parse().map_err(|_| unknown_pos())?;
                let state: Arc<Connection> = self
                    .store
                    .sliding_sync_state(user_id.as_str(), device_id.as_str(), &conn_id, seq)?
                    .ok_or_else(unknown_pos)?;
                let token = SyncToken::parse(&state.token).ok_or_else(unknown_pos)?;
                Some((seq, state, token))
            }
        };
        let since = previous.as_ref().map(|(_, _, token)| *token);
        let seq = previous.as_ref().map(|(seq, _, _)| *seq);
        let before = previous.map(|(_, state, _)| state).unwrap_or_default();
        let mut extensions = body.extensions.merged_over(&before.extensions);
        let to_device_since = extensions.to_device.as_mut().and_then(|c| c.since.take());
        let to_device_since = parse_to_device_since(to_device_since.as_deref())?;
        let extensions = if extensions == *before.extensions {
            before.extensions.clone()
        } else {
            Arc::new(extensions)
        };
        let (lists, list_json) = before.asked_lists(body.lists)?;
        let config = Connection {
            token: before.token.clone(),
            lists,
            list_json,
            subscriptions: before
                .asked_subscriptions(body.room_subscriptions, &body.unsubscribe_rooms),
            extensions,
            rooms: before.rooms.clone(),
            list_counts: before.list_counts.clone(),
        };
        let config_changed = seq.is_none() || !config.same_config(&before);

        // The client has the device's messages up to its `since`: they are done with.
        if let Some(since) = to_device_since {
            self.acknowledge_to_device(user_id, device_id, since)?;
        }
        Ok(SlidingConnection {
            conn_id,
            pos: seq.map(|seq| seq.to_string()),
            seq,
            since,
            config: Arc::new(config),
            config_changed,
            to_device_since,
        })
    }

    /// The connection's next answer, when it holds anything new (or its configuration
    /// changed): stored under a new `pos`, which the connection then continues from.
    /// With nothing new it is `None`, or with `always` the empty answer with the same
    /// `pos` (nothing stored).
    pub fn sliding_answer(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        connection: &mut SlidingConnection,
        always: bool,
    ) -> Result<Option<SlidingAnswer>> {
        let (mut response, sent, updates) = self.sliding_sync_once(
            user_id,
            device_id,
            connection.since,
            &connection.config,
            connection.to_device_since,
        )?;
        if updates || connection.config_changed {
            // The connection's state after this answer: the one it continued from, moved
            // on. A long-poll's is its own (made for this request), so it is taken as it
            // is; a WebSocket's last one is shared with the store's memory and copied.
            let mut next = Arc::unwrap_or_clone(std::mem::take(&mut connection.config));
            let undo = sent.apply_to(&mut next);
            let since = SyncToken::parse(&next.token);
            let next = Arc::new(next);
            let saved = self.save_connection(
                user_id,
                device_id,
                &connection.conn_id,
                connection.seq,
                next.clone(),
            );
            let seq = match saved {
                Ok(seq) => seq,
                Err(e) => {
                    // The connection stays as it was, for the socket's next try.
                    let mut config = Arc::unwrap_or_clone(next);
                    undo.apply_to(&mut config);
                    connection.config = Arc::new(config);
                    return Err(e);
                }
            };
            let pos = seq.to_string();
            response.pos.clone_from(&pos);
            // What a client re-polling at once would send: the new `pos`, and the
            // to-device `next_batch` as its `since`.
            if let Some(reached) = response.to_device_next_batch() {
                connection.to_device_since = Some(reached);
            }
            connection.since = since;
            connection.seq = Some(seq);
            connection.pos = Some(pos);
            connection.config = next;
            connection.config_changed = false;
            return Ok(Some(response));
        }
        if !always {
            return Ok(None);
        }
        response.pos = connection.pos.clone().unwrap_or_default();
        Ok(Some(response))
    }

    /// Keeps the connection's next state (the store writes it within about a second,
    /// see below) and returns the next position's number.
    ///
    /// An answer's state is kept in memory and written later, with every other
    /// connection's, in one unsynced batch about once a second and at graceful shutdown
    /// (`Store::flush_sliding_sync_states`): every answer would otherwise cost a write.
    /// A graceful restart keeps every `pos`; `kill -9` or a power loss can lose the
    /// states of the last second, after which the client's `pos` is unknown and it
    /// starts the connection again (`M_UNKNOWN_POS`), as it does for a `pos` that
    /// expired.
    fn save_connection(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        conn_id: &str,
        used: Option<u64>,
        next: Arc<Connection>,
    ) -> Result<u64> {
        let (user, device) = (user_id.as_str(), device_id.as_str());
        let seq = match used {
            // Kept are the state used and the one answered to it: the next goes in
            // place of the one before the one used (the client has moved past it), or
            // of the one answered to it before (a retried request, answered again).
            Some(seq) => seq.saturating_add(1),
            // A new connection numbers from the clock, so a `pos` of an earlier
            // connection with this `conn_id` is not taken for one of this; the earlier
            // connection's states go.
            None => self
                .store
                .restart_sliding_sync_connection(user, device, conn_id, now_ms())?,
        };
        self.store
            .keep_sliding_sync_state(user, device, conn_id, seq, next);
        Ok(seq)
    }

    /// Writes the connections' states kept since the last call, about once a second
    /// until shutdown (which writes the rest).
    pub async fn sliding_sync_writer(self: Arc<Self>) {
        let mut tick = tokio::time::interval(STATE_WRITES_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let store = self.store.clone();
            let written = tokio::task::spawn_blocking(move || store.flush_sliding_sync_states());
            match written.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not write sliding sync states"),
                Err(e) => tracing::warn!(error = %e, "sliding sync state writer failed"),
            }
        }
    }

    /// Computes one response (its `pos` left empty) and what it moves the connection's
    /// state on by; the flag says whether it holds anything new.
    fn sliding_sync_once(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        since: Option<SyncToken>,
        config: &Connection,
        to_device_since: Option<u64>,
    ) -> Result<(SlidingAnswer, Sent, bool)> {
        let now = self.sync_position(user_id)?;
        let pass = Pass {
            user_id,
            device_id,
            since,
            now,
            lists: ListCache::default(),
            timeline_bytes_left: Cell::new(self.config.limits.sync_timeline_bytes),
        };
        let rooms = self.store.user_rooms_shared(user_id.as_str())?;
        let all = self.sliding_candidates(&pass, &rooms)?;

        // What each room is asked for by: the lists and subscriptions that take it in.
        let mut wants: BTreeMap<OwnedRoomId, Vec<&RoomConfig>> = BTreeMap::new();
        let mut list_rooms = BTreeMap::new();
        let mut lists_out = Map::new();
        let mut counts = BTreeMap::new();
        for (name, list) in config.lists.iter() {
            let result = self.compute_list(&pass, &all, list)?;
            for room_id in &result.rooms {
                wants.entry(room_id.clone()).or_default().push(&list.room);
            }
            lists_out.insert(name.clone(), json!({ "count": result.count }));
            counts.insert(name.clone(), result.count);
            list_rooms.insert(name.clone(), result.rooms);
        }
        // A room subscribed to that the user left earlier may still be read up to the
        // departure.
        let mut left = Vec::new();
        for room_id in config.subscriptions.keys() {
            if all.iter().any(|c| c.room_id == room_id) {
                continue;
            }
            if let Some(record) = self.store.user_room(user_id.as_str(), room_id.as_str())?
                && matches!(record.membership.as_str(), "leave" | "ban")
                && !record.forgotten
            {
                left.push((room_id.clone(), record));
            }
        }
        let candidates: HashMap<&OwnedRoomId, Candidate> = all
            .iter()
            .copied()
            .chain(
                left.iter()
                    .map(|(room_id, record)| Candidate { room_id, record }),
            )
            .map(|c| (c.room_id, c))
            .collect();
        let mut subscribed = BTreeSet::new();
        for (room_id, room) in config.subscriptions.iter() {
            if !candidates.contains_key(room_id) {
                continue;
            }
            subscribed.insert(room_id.clone());
            wants.entry(room_id.clone()).or_default().push(room);
        }

        let mut sent_rooms = Vec::with_capacity(wants.len());
        let mut rooms_out = BTreeMap::new();
        let mut initial = HashSet::new();
        for (room_id, asked) in &wants {
            let Some(candidate) = candidates.get(room_id) else {
                continue;
            };
            let sent = config.rooms.get(room_id);
            // Shared while the same is asked (most answers), so not compared again: a
            // room asked for by one list (most rooms) wants what the list wants, made
            // once per list; one asked for by several, what it wanted when last sent.
            let wanted = match (asked.as_slice(), sent) {
                ([only], _) => only.wants().clone(),
                (_, Some(sent)) if sent.wants.is_of(asked) => sent.wants.clone(),
                _ => Arc::new(RoomWants::of(asked)),
            };
            // Nothing new in a room the user is in, asked for as when it was sent (most
            // rooms of most answers): nothing to send, nor to keep anew. Its position
            // stays where it was sent up to, which no event has passed.
            if let Some(sent) = sent
                && sent.same_room(candidate, &wanted)
                && (sent.at >= candidate.upto(pass.now.events)
                    || !self
                        .store
                        .room_has_events_after(room_id.as_str(), sent.at)?)
            {
                continue;
            }
            let update = self.sliding_room(&pass, candidate, &wanted, sent)?;
            if let Some(body) = update.body {
                rooms_out.insert(room_id.to_string(), body);
            }
            if update.initial {
                initial.insert(room_id.clone());
            }
            if config.rooms.get(room_id) != Some(&update.sent) {
                sent_rooms.push((room_id.clone(), update.sent));
            }
        }
        let scope = Scope {
            lists: &list_rooms,
            subscriptions: &subscribed,
            initial: &initial,
            candidates: &candidates,
            rooms_out: &rooms_out,
        };
        let (extensions_out, extension_updates) =
            self.sliding_extensions(&pass, &config.extensions, to_device_since, &scope)?;

        let updates = !rooms_out.is_empty() || extension_updates || counts != config.list_counts;
        let sent = Sent {
            token: now.to_string(),
            list_counts: counts,
            rooms: sent_rooms,
        };
        let response = SlidingAnswer {
            extensions: extensions_out,
            lists: lists_out,
            pos: String::new(),
            rooms: rooms_out,
        };
        Ok((response, sent, updates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(json: serde_json::Value) -> BTreeMap<String, AskedList> {
        serde_json::from_str(&json.to_string()).unwrap()
    }

    fn after(lists: AskedLists) -> Connection {
        Connection {
            lists: lists.0,
            list_json: lists.1,
            ..Connection::default()
        }
    }

    /// A list sent again byte for byte is the connection's list, shared; one that
    /// changed is parsed and merged over the connection's; one left out goes; after a
    /// restart (no JSON kept) the lists are parsed again.
    #[test]
    fn lists_sent_as_before_are_kept_and_others_parsed() {
        let first = json!({
            "a": {"ranges": [[0, 9]], "timeline_limit": 1, "required_state": [["m.room.name", ""]]},
            "b": {"ranges": [[0, 0]]}
        });
        let start = after(
            Connection::default()
                .asked_lists(asked(first.clone()))
                .unwrap(),
        );
        assert_eq!(start.lists["a"].ranges, Some(vec![(0, 9)]));

        let again = after(start.asked_lists(asked(first.clone())).unwrap());
        assert!(Arc::ptr_eq(&again.lists, &start.lists));
        assert!(start.same_config(&again));
        // The same written otherwise: parsed, found the same, still shared; its JSON is
        // kept for the next request.
        let reordered = json!({
            "b": {"ranges": [[0, 0]]},
            "a": {"required_state": [["m.room.name", ""]], "timeline_limit": 1, "ranges": [[0, 9]]}
        });
        let again = after(again.asked_lists(asked(reordered.clone())).unwrap());
        assert!(Arc::ptr_eq(&again.lists, &start.lists));
        assert_eq!(
            again.list_json["a"].json(),
            asked(reordered)["a"].json(),
            "the JSON as last sent"
        );

        // `a` without its required_state keeps it; `b` is as before, not parsed again.
        let changed = after(
            again
                .asked_lists(asked(json!({
                    "a": {"ranges": [[0, 19]]},
                    "b": {"ranges": [[0, 0]]}
                })))
                .unwrap(),
        );
        assert_eq!(changed.lists["a"].ranges, Some(vec![(0, 19)]));
        assert_eq!(changed.lists["a"].room.timeline_limit, Some(1));
        assert_eq!(
            changed.lists["a"].room.required_state,
            Some(vec![("m.room.name".to_owned(), String::new())])
        );
        assert_eq!(changed.lists["b"], again.lists["b"]);
        assert!(!changed.same_config(&again));

        let fewer = after(
            changed
                .asked_lists(asked(json!({"b": {"ranges": [[0, 0]]}})))
                .unwrap(),
        );
        assert_eq!(fewer.lists.keys().collect::<Vec<_>>(), ["b"]);

        // As read back from the store: the lists without their JSON.
        let restored = Connection {
            lists: start.lists.clone(),
            ..Connection::default()
        };
        let none = restored.asked_lists(BTreeMap::new()).unwrap();
        assert!(none.0.is_empty(), "a request without lists has none");
        // Parsed (no JSON to compare with), found the same, and kept with its JSON.
        let parsed = restored.asked_lists(asked(first)).unwrap();
        assert!(Arc::ptr_eq(&parsed.0, &restored.lists));
        assert_eq!(parsed.1.len(), 2);

        // A list that changed is checked as it is parsed.
        let error = start
            .asked_lists(asked(json!({"a": {"ranges": [[5, 1]]}})))
            .unwrap_err();
        assert!(matches!(error.kind, ErrorKind::InvalidParam), "{error}");
    }

    /// A room asked for by one list shares that list's wants while the list is the same.
    #[test]
    fn a_lists_wants_are_made_once() {
        let start = after(
            Connection::default()
                .asked_lists(asked(
                    json!({"a": {"required_state": [["m.room.name", ""]]}}),
                ))
                .unwrap(),
        );
        let wants = start.lists["a"].room.wants().clone();
        let again = after(
            start
                .asked_lists(asked(
                    json!({"a": {"required_state": [["m.room.name", ""]]}}),
                ))
                .unwrap(),
        );
        assert!(Arc::ptr_eq(again.lists["a"].room.wants(), &wants));
        assert!(wants.wants("@a:x", "m.room.name", ""));
        let copy = start.lists["a"].clone();
        assert!(
            !Arc::ptr_eq(copy.room.wants(), &wants),
            "a copy makes its own"
        );
        assert_eq!(**copy.room.wants(), *wants);
    }
}
