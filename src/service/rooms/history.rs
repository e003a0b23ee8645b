//! Reading a room's past: who may read it, which events each reader may see (history
//! visibility), pagination tokens, and the queries behind `/messages`, `/context`,
//! `/event` and `timestamp_to_event`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use ruma::{OwnedEventId, RoomId, UserId};
use serde_json::Value;

use super::ClientView;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::filter::RoomEventFilter;
use crate::service::sync::SyncToken;
use crate::store::{Direction, EventRecord, EventStatus, TopoKey};

/// The most events one request examines. A reader who may see little of a long history
/// (a peeker, or someone who joined late under `joined` visibility) then gets a short
/// or empty page with a token to go on, instead of a request that reads the whole room.
const SCAN_BUDGET: usize = 2000;

/// Index entries read from the store at a time.
const PAGE: usize = 100;

/// A point between two events in a room's topological order: the events at or before
/// `after` lie behind it, the others ahead. Clients see it as `t{depth}_{stream}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Boundary {
    after: TopoKey,
}

impl Boundary {
    /// Before every event: no event has stream position 0.
    pub const START: Boundary = Boundary {
        after: TopoKey {
            depth: 0,
            stream: 0,
        },
    };

    fn after(key: TopoKey) -> Self {
        Self { after: key }
    }

    fn before(key: TopoKey) -> Self {
        key.pred().map_or(Self::START, Self::after)
    }

    /// Whether `key` lies on the far side of this boundary when moving in `dir`.
    fn passed_by(self, key: TopoKey, dir: Direction) -> bool {
        match dir {
            Direction::Backward => key <= self.after,
            Direction::Forward => key > self.after,
        }
    }

    fn parse_own(token: &str) -> Option<Self> {
        let (depth, stream) = token.strip_prefix('t')?.split_once('_')?;
        Some(Self::after(TopoKey {
            depth: depth.parse().ok()?,
            stream: stream.parse().ok()?,
        }))
    }
}

impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}_{}", self.after.depth, self.after.stream)
    }
}

/// How a user may read a room's history.
pub enum ReadAccess {
    /// A member now; `state_group` is the room's current state.
    Joined {
        state_group: u64,
    },
    /// Left or removed after having been joined: they read up to their departure.
    Departed {
        leave: EventRecord,
    },
    /// Not a member, in a room whose history is world-readable now.
    Peeking,
    Denied(&'static str),
}

const NOT_A_MEMBER: &str = "You are not a member of this room";

impl Services {
    pub fn read_access(&self, room_id: &RoomId, user_id: &UserId) -> Result<ReadAccess> {
        let Some(room) = self.store.room(room_id.as_str())? else {
            return Ok(ReadAccess::Denied(NOT_A_MEMBER));
        };
        let membership = self.store.user_room(user_id.as_str(), room_id.as_str())?;
        let mut denied = NOT_A_MEMBER;
        match membership {
            Some(m) if m.forgotten => denied = "You have forgotten this room",
            Some(m) if m.membership == "join" => {
                return Ok(ReadAccess::Joined {
                    state_group: room.state_group,
                });
            }
            Some(m) if m.membership == "leave" || m.membership == "ban" => {
                let leave = self
                    .store
                    .event(m.event_id.as_str())?
                    .ok_or_else(|| Error::internal("membership event missing"))?;
                // Only someone who was joined until this event keeps a view of the room;
                // a rejected invite or a withdrawn knock gives none.
                let previous = self
                    .state_entries_at(leave.state_before, &[("m.room.member", user_id.as_str())])?
                    .into_iter()
                    .next()
                    .flatten();
                if self
                    .content_str(previous.as_ref(), "membership")?
                    .as_deref()
                    == Some("join")
                {
                    return Ok(ReadAccess::Departed { leave });
                }
            }
            _ => {}
        }
        // As in Synapse, anyone may read a room that is world-readable now, and sees the
        // events that were world-readable when sent.
        let visibility =
            self.store
                .current_state_id(room_id.as_str(), "m.room.history_visibility", "")?;
        if self
            .content_str(visibility.as_ref(), "history_visibility")?
            .as_deref()
            == Some("world_readable")
        {
            return Ok(ReadAccess::Peeking);
        }
        Ok(ReadAccess::Denied(denied))
    }

    /// A string field of an event's content.
    fn content_str(&self, event_id: Option<&OwnedEventId>, field: &str) -> Result<Option<String>> {
        let Some(event_id) = event_id else {
            return Ok(None);
        };
        Ok(self.store.event_shared(event_id.as_str())?.and_then(|e| {
            e.record
                .pdu
                .get("content")?
                .get(field)?
                .as_str()
                .map(str::to_owned)
        }))
    }

    /// A reader of the room's history for `view.user_id`; `M_FORBIDDEN` if they may not.
    pub fn history_reader<'a>(
        &'a self,
        room_id: &'a RoomId,
        view: ClientView<'a>,
    ) -> Result<HistoryReader<'a>> {
        let (peeking, until) = match self.read_access(room_id, view.user_id)? {
            ReadAccess::Joined { .. } => (false, None),
            ReadAccess::Departed { leave } => {
                let key = leave
                    .topo_key()
                    .ok_or_else(|| Error::internal("membership event without a depth"))?;
                (false, Some(key))
            }
            ReadAccess::Peeking => (true, None),
            ReadAccess::Denied(why) => return Err(Error::forbidden(why)),
        };
        Ok(HistoryReader {
            services: self,
            room_id,
            view,
            peeking,
            until,
            allowed: HashMap::new(),
        })
    }
}

/// One user's reading of one room during one request. Visibility is decided per state
/// group and remembered, since runs of events share a group.
pub struct HistoryReader<'a> {
    services: &'a Services,
    room_id: &'a RoomId,
    view: ClientView<'a>,
    peeking: bool,
    /// A former member's departure: nothing after it is theirs to read.
    until: Option<TopoKey>,
    allowed: HashMap<u64, bool>,
}

/// A page of `/messages`.
pub struct Messages {
    /// Where the page starts: `from`, or the reader's newest or first point without it.
    pub start: Boundary,
    /// Events with their records, in the order asked.
    pub chunk: Vec<(EventRecord, Value)>,
    pub end: Option<Boundary>,
    /// The chunk senders' member events, when lazy-loading was asked for.
    pub state: Vec<Value>,
    /// Events this server lacks just before the page's oldest event: a gap in the
    /// middle of the room that other servers may fill.
    pub gap: Vec<OwnedEventId>,
}

pub struct Context {
    pub event: Value,
    pub before: Vec<Value>,
    pub after: Vec<Value>,
    pub start: Boundary,
    pub end: Boundary,
    pub state: Vec<Value>,
}

enum Stop {
    /// Nothing more the reader may reach lies in this direction.
    Exhausted,
    /// Paging back reached an event whose `prev_events` this server never got.
    Gap,
    ReachedTo,
    Full,
    Budget,
}

struct Scan {
    events: Vec<(EventRecord, Value)>,
    /// Events missing before the oldest one scanned (see [`Stop::Gap`]).
    gap: Vec<OwnedEventId>,
    /// Where to go on from: everything between the scan's start and here was examined.
    cursor: Boundary,
    end: Option<Boundary>,
}

fn sender(event: &Value) -> Option<&str> {
    event.get("sender").and_then(Value::as_str)
}

impl HistoryReader<'_> {
    /// A `from` or `to` token: one of ours, or a `/sync` token, whose event position
    /// means "everything at or before this point of the stream".
    pub fn parse_token(&self, token: &str) -> Result<Boundary> {
        if let Some(boundary) = Boundary::parse_own(token) {
            return Ok(boundary);
        }
        let sync = SyncToken::parse(token)
            .ok_or_else(|| Error::invalid_param(format!("{token:?} is not a pagination token")))?;
        // The newest of the room's events up to that position marks the same point in
        // topological order. For local events the two orders agree; a backfilled event
        // (old depth, new stream position) is placed by its depth, as history should be.
        let newest =
            self.services
                .store
                .room_events_rev(self.room_id.as_str(), sync.events, 0, 1)?;
        let Some((_, event_id)) = newest.into_iter().next() else {
            return Ok(Boundary::START);
        };
        let record = self
            .services
            .store
            .event(event_id.as_str())?
            .ok_or_else(|| Error::internal(format!("indexed event {event_id} is missing")))?;
        Ok(Boundary::after(self.key_of(&record)?))
    }

    fn key_of(&self, record: &EventRecord) -> Result<TopoKey> {
        record
            .topo_key()
            .ok_or_else(|| Error::internal("stored event without a depth"))
    }

    /// Whether `user_id` sees `record` in a timeline: by the history rules through
    /// `reader`, or, with no view of the history at all (a declined invite), only their
    /// own membership events.
    pub fn timeline_visible(
        reader: Option<&mut Self>,
        user_id: &UserId,
        record: &EventRecord,
    ) -> Result<bool> {
        match reader {
            Some(reader) => reader.can_see(record),
            None => {
                Ok(record.pdu.get("state_key").and_then(Value::as_str) == Some(user_id.as_str()))
            }
        }
    }

    /// Whether the reader may see the event, by the room's history visibility at it.
    pub fn can_see(&mut self, record: &EventRecord) -> Result<bool> {
        let key = self.key_of(record)?;
        if self.until.is_some_and(|until| key > until) {
            return Ok(false);
        }
        if self.allowed(record.state_after)? {
            return Ok(true);
        }
        // A change of visibility, and the reader's own membership changes, are visible
        // when the state on either side of them allows it.
        let event_type = record.pdu.get("type").and_then(Value::as_str);
        let state_key = record.pdu.get("state_key").and_then(Value::as_str);
        let either_side = match (event_type, state_key) {
            (Some("m.room.history_visibility"), Some("")) => true,
            (Some("m.room.member"), Some(key)) => key == self.view.user_id.as_str(),
            _ => false,
        };
        if either_side && record.state_before != record.state_after {
            return self.allowed(record.state_before);
        }
        Ok(false)
    }

    /// Whether the reader may see an event that is neither a history visibility change
    /// nor their own membership, knowing only the room state after it (`state_after`):
    /// search keeps that in its postings, so it need not read every matching event.
    /// A former member's departure is the caller's to apply.
    pub fn can_see_in_state(&mut self, state_after: u64) -> Result<bool> {
        self.allowed(state_after)
    }

    /// The spec's rules for an event whose room state is `group`.
    fn allowed(&mut self, group: u64) -> Result<bool> {
        if let Some(&allowed) = self.allowed.get(&group) {
            return Ok(allowed);
        }
        let services = self.services;
        let key = (group, self.view.user_id.to_owned(), self.peeking);
        if let Some(allowed) = services.rooms.visibility_cache.get(&key) {
            self.allowed.insert(group, allowed);
            return Ok(allowed);
        }
        let entries = services.state_entries_at(
            group,
            &[
                ("m.room.history_visibility", ""),
                ("m.room.member", self.view.user_id.as_str()),
            ],
        )?;
        let visibility = services.content_str(entries[0].as_ref(), "history_visibility")?;
        let membership = services.content_str(entries[1].as_ref(), "membership")?;
        let allowed = visibility.as_deref() == Some("world_readable")
            || membership.as_deref() == Some("join")
            || (!self.peeking
                && match visibility.as_deref() {
                    Some("invited") => membership.as_deref() == Some("invite"),
                    Some("joined") => false,
                    // `shared`, and the default for a missing or unknown value. Readers
                    // who are not peeking joined at some point: now, or before they left.
                    _ => true,
                });
        self.allowed.insert(group, allowed);
        services.rooms.visibility_cache.insert(key, allowed);
        Ok(allowed)
    }

    /// Walks the room from `from` in `dir`, keeping visible events that pass the filter.
    fn scan(
        &mut self,
        from: Boundary,
        to: Option<Boundary>,
        dir: Direction,
        limit: usize,
        filter: &RoomEventFilter,
    ) -> Result<Scan> {
        let services = self.services;
        let room = self.room_id.as_str();
        let from = match (dir, self.until) {
            (Direction::Backward, Some(until)) => from.min(Boundary::after(until)),
            _ => from,
        };
        let mut cursor = from;
        let mut events = Vec::new();
        let mut gap = Vec::new();
        let mut scanned = 0;
        let stop = 'scan: loop {
            if events.len() >= limit {
                break Stop::Full;
            }
            if scanned >= SCAN_BUDGET {
                break Stop::Budget;
            }
            let page = services
                .store
                .room_topo_page(room, cursor.after, dir, PAGE)?;
            if page.is_empty() {
                break Stop::Exhausted;
            }
            for (key, event_id) in page {
                if to.is_some_and(|to| to.passed_by(key, dir)) {
                    break 'scan Stop::ReachedTo;
                }
                if self.until.is_some_and(|until| key > until) {
                    break 'scan Stop::Exhausted;
                }
                cursor = match dir {
                    Direction::Backward => match key.pred() {
                        Some(pred) => Boundary::after(pred),
                        None => break 'scan Stop::Exhausted,
                    },
                    Direction::Forward => Boundary::after(key),
                };
                scanned += 1;
                let Some(record) = services.store.event(event_id.as_str())? else {
                    continue;
                };
                // History before this event never reached this server: the page ends
                // with it so that the caller can ask other servers for what is missing.
                if dir == Direction::Backward && record.after_gap {
                    gap = services.missing_prev_events(&record)?;
                }
                if self.can_see(&record)? {
                    let event =
                        services.client_event_of(event_id.as_str(), &record, Some(self.view))?;
                    if filter.matches_event(&event) {
                        events.push((record, event));
                    }
                }
                if !gap.is_empty() {
                    break 'scan Stop::Gap;
                }
                if events.len() >= limit || scanned >= SCAN_BUDGET {
                    continue 'scan;
                }
            }
        };
        let end = match stop {
            Stop::Exhausted => None,
            // Nothing was examined when `from` already lay beyond `to`; a token would
            // only bring the client back here.
            Stop::ReachedTo => (scanned > 0).then_some(cursor),
            Stop::Full | Stop::Budget | Stop::Gap => {
                let next = services.store.room_topo_page(room, cursor.after, dir, 1)?;
                let more = next.first().is_some_and(|(key, _)| {
                    dir == Direction::Backward || self.until.is_none_or(|until| *key <= until)
                });
                more.then_some(cursor)
            }
        };
        Ok(Scan {
            events,
            gap,
            cursor,
            end,
        })
    }

    /// The newest point the reader may page back from.
    fn newest(&self) -> Result<Boundary> {
        if let Some(until) = self.until {
            return Ok(Boundary::after(until));
        }
        let last = self.services.store.room_topo_page(
            self.room_id.as_str(),
            TopoKey {
                depth: u64::MAX,
                stream: u64::MAX,
            },
            Direction::Backward,
            1,
        )?;
        Ok(last
            .first()
            .map_or(Boundary::START, |(key, _)| Boundary::after(*key)))
    }

    /// `GET /messages`: up to `limit` events from `from` (the newest or the first event
    /// when absent) in `dir`, stopping at `to`.
    pub fn messages(
        &mut self,
        from: Option<Boundary>,
        to: Option<Boundary>,
        dir: Direction,
        limit: usize,
        filter: &RoomEventFilter,
    ) -> Result<Messages> {
        let start = match (from, dir) {
            (Some(from), _) => from,
            (None, Direction::Backward) => self.newest()?,
            (None, Direction::Forward) => Boundary::START,
        };
        let scan = self.scan(start, to, dir, limit, filter)?;
        let state = match scan.events.first() {
            Some((record, _)) if filter.lazy_load_members => {
                let senders: BTreeSet<&str> =
                    scan.events.iter().filter_map(|(_, e)| sender(e)).collect();
                self.member_events(record.state_after, senders)?
            }
            _ => Vec::new(),
        };
        Ok(Messages {
            start,
            chunk: scan.events,
            end: scan.end,
            state,
            gap: scan.gap,
        })
    }

    /// The member events of `users` in a state group, in client format.
    fn member_events(&self, group: u64, users: BTreeSet<&str>) -> Result<Vec<Value>> {
        let wanted: Vec<(&str, &str)> = users.iter().map(|u| ("m.room.member", *u)).collect();
        let mut events = Vec::new();
        for event_id in self
            .services
            .state_entries_at(group, &wanted)?
            .into_iter()
            .flatten()
        {
            if let Some((_, event)) = self
                .services
                .client_event_by_id(event_id.as_str(), Some(self.view))?
            {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// The event, if it is in this room and the reader may see it.
    pub fn event(&mut self, event_id: &str) -> Result<Option<(EventRecord, Value)>> {
        let Some(record) = self.services.store.event(event_id)? else {
            return Ok(None);
        };
        // Outliers, rejected and soft-failed events are never shown to clients.
        if record.room_id != self.room_id
            || record.status != EventStatus::Accepted
            || !self.can_see(&record)?
        {
            return Ok(None);
        }
        let event = self
            .services
            .client_event_of(event_id, &record, Some(self.view))?;
        Ok(Some((record, event)))
    }

    /// `GET /context`: the event, `limit` events split around it, tokens to page on from
    /// either end, and the state at the last event returned (as the spec and Synapse
    /// have it).
    pub fn context(
        &mut self,
        event_id: &str,
        limit: usize,
        filter: &RoomEventFilter,
    ) -> Result<Option<Context>> {
        let Some((record, event)) = self.event(event_id)? else {
            return Ok(None);
        };
        let key = self.key_of(&record)?;
        let before_limit = limit / 2;
        let before = self.scan(
            Boundary::before(key),
            None,
            Direction::Backward,
            before_limit,
            filter,
        )?;
        let after = self.scan(
            Boundary::after(key),
            None,
            Direction::Forward,
            limit - before_limit,
            filter,
        )?;
        let last = after.events.last().map_or(&record, |(r, _)| r);
        let mut ids = self.services.state_ids_at(last.state_after)?;
        if filter.lazy_load_members {
            let senders: BTreeSet<&str> = before
                .events
                .iter()
                .chain(&after.events)
                .map(|(_, e)| e)
                .chain([&event])
                .filter_map(sender)
                .collect();
            ids.retain(|(t, k), _| t != "m.room.member" || senders.contains(k.as_str()));
        }
        let mut state = Vec::new();
        for event_id in ids.values() {
            if let Some((_, event)) = self
                .services
                .client_event_by_id(event_id.as_str(), Some(self.view))?
                && filter.matches_event(&event)
            {
                state.push(event);
            }
        }
        Ok(Some(Context {
            event,
            before: before.events.into_iter().map(|(_, e)| e).collect(),
            after: after.events.into_iter().map(|(_, e)| e).collect(),
            start: before.cursor,
            end: after.cursor,
            state,
        }))
    }

    /// `timestamp_to_event`: the first event the reader may see sent at or after `ts`
    /// (forward), or the last one sent at or before it (backward). A former member's
    /// search ends at their departure, where their view ends.
    pub fn event_at_timestamp(
        &mut self,
        ts: u64,
        dir: Direction,
    ) -> Result<Option<(OwnedEventId, u64)>> {
        let services = self.services;
        let room_id = self.room_id;
        let until = self.until;
        services.event_at_timestamp_where(room_id, ts, dir, until, |record| self.can_see(record))
    }
}

impl Services {
    /// The first event of the room sent at or after `ts` (forward), or the last one sent
    /// at or before it (backward), among those `can_see` accepts and, with `until`, not
    /// after that point. Shared by the client and federation `timestamp_to_event`.
    ///
    /// Binary search over the room's stream positions, which assumes `origin_server_ts`
    /// grows with the stream. That holds for local events: they are stamped and placed
    /// under the room's lock. Events from other servers carry their clocks, so around
    /// them the search lands near, not exactly at, the crossing point; the walk from
    /// there still only returns an event on the asked side of `ts`.
    pub(crate) fn event_at_timestamp_where(
        &self,
        room_id: &RoomId,
        ts: u64,
        dir: Direction,
        until: Option<TopoKey>,
        mut can_see: impl FnMut(&EventRecord) -> Result<bool>,
    ) -> Result<Option<(OwnedEventId, u64)>> {
        let store = &self.store;
        let room = room_id.as_str();
        let ts_of = |record: &EventRecord| {
            record
                .pdu
                .get("origin_server_ts")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let on_our_side = |event_ts: u64| match dir {
            Direction::Forward => event_ts >= ts,
            Direction::Backward => event_ts <= ts,
        };
        let Some((first, _)) = store.room_events_after(room, 0, 1)?.into_iter().next() else {
            return Ok(None);
        };
        let Some((last, _)) = store
            .room_events_rev(room, u64::MAX, 0, 1)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let last = match until {
            Some(until) => last.min(until.stream),
            None => last,
        };
        // The smallest position whose next event was sent after the crossing point (at
        // or after `ts` going forward, after `ts` going backward), or `last + 1`.
        let (mut lo, mut hi) = (first, last.saturating_add(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let past = match store
                .room_events_after(room, mid - 1, 1)?
                .into_iter()
                .next()
            {
                None => true,
                Some((_, event_id)) => {
                    let record = store.event(event_id.as_str())?.ok_or_else(|| {
                        Error::internal(format!("indexed event {event_id} is missing"))
                    })?;
                    match dir {
                        Direction::Forward => ts_of(&record) >= ts,
                        Direction::Backward => ts_of(&record) > ts,
                    }
                }
            };
            if past {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        // Walk from there to the first event the reader may see.
        let mut position = lo;
        let mut scanned = 0;
        while scanned < SCAN_BUDGET {
            let page = match dir {
                Direction::Forward => store.room_events_after(room, position - 1, PAGE)?,
                Direction::Backward => {
                    if position <= 1 {
                        break;
                    }
                    store.room_events_rev(room, position - 1, 0, PAGE)?
                }
            };
            if page.is_empty() {
                break;
            }
            for (at, event_id) in page {
                position = match dir {
                    Direction::Forward => at + 1,
                    Direction::Backward => at,
                };
                scanned += 1;
                let Some(record) = store.event(event_id.as_str())? else {
                    continue;
                };
                if dir == Direction::Forward
                    && until.is_some_and(|until| record.topo_key() > Some(until))
                {
                    return Ok(None);
                }
                if on_our_side(ts_of(&record)) && can_see(&record)? {
                    return Ok(Some((event_id, ts_of(&record))));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_junk_is_refused() {
        let boundary = Boundary::after(TopoKey {
            depth: 42,
            stream: 7,
        });
        assert_eq!(boundary.to_string(), "t42_7");
        assert_eq!(Boundary::parse_own("t42_7"), Some(boundary));
        for bad in [
            "",
            "t",
            "t1",
            "t1_",
            "t_1",
            "t1_2_3",
            "tx_1",
            "t-1_2",
            "s1_2_3_4_5",
        ] {
            assert_eq!(Boundary::parse_own(bad), None, "{bad}");
        }
    }

    #[test]
    fn boundaries_split_events_by_direction() {
        let key = |depth, stream| TopoKey { depth, stream };
        let before = Boundary::before(key(5, 0));
        assert_eq!(before, Boundary::after(key(4, u64::MAX)));
        assert!(!before.passed_by(key(5, 0), Direction::Backward));
        assert!(before.passed_by(key(5, 0), Direction::Forward));
        assert!(before.passed_by(key(4, 9), Direction::Backward));
        assert_eq!(Boundary::before(key(0, 1)), Boundary::START);
    }
}
