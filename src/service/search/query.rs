//! Answering `/search`: which rooms the user may search and how far, intersecting the
//! postings of the query's terms room by room, ranking, paging, and the extras a client
//! may ask for (context, profiles, room state, groups).

use std::collections::{BTreeSet, HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ruma::{OwnedRoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::index::Field;
use super::terms::words;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::filter::RoomEventFilter;
use crate::service::rooms::{ClientView, HistoryReader, ReadAccess, StateIds};
use crate::service::sync::SyncToken;
use crate::store::{EventRecord, PostingCursor};

/// Results per page when the filter gives no limit, and the most a page may hold.
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;

/// The most distinct words a search term may have.
pub const MAX_QUERY_TERMS: usize = 64;

/// The last word also matches longer words it begins, when it has at least this many
/// characters (shorter ones would expand to too much), up to this many of them.
const PREFIX_MIN_CHARS: usize = 3;
const MAX_EXPANSIONS: usize = 50;

/// A word matched only as the beginning of a longer word counts for less.
const EXPANSION_WEIGHT: f64 = 0.5;

/// BM25's term-frequency saturation and length normalisation, against a fixed
/// reference length rather than the corpus average, so that a result's rank does not
/// move as messages arrive and pages of one search stay consistent.
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;
const REFERENCE_LEN: f64 = 12.0;

/// Matches examined at most to fill one page, in case many fail the checks that need the
/// event itself.
const PAGE_SCAN_BUDGET: usize = 2000;

/// Events examined at most on each side of a result when gathering its context, so a
/// filter that few events pass cannot make one result read a whole room.
const CONTEXT_SCAN: usize = 500;
const CONTEXT_CHUNK: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Rank,
    Recent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKey {
    RoomId,
    Sender,
}

impl GroupKey {
    fn name(self) -> &'static str {
        match self {
            GroupKey::RoomId => "room_id",
            GroupKey::Sender => "sender",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ContextRequest {
    pub before: usize,
    pub after: usize,
    pub include_profile: bool,
}

/// A `room_events` search as the client asked for it, already checked.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub search_term: String,
    pub fields: Vec<Field>,
    pub filter: RoomEventFilter,
    pub order: Order,
    pub context: Option<ContextRequest>,
    pub include_state: bool,
    pub group_by: Vec<GroupKey>,
    pub next_batch: Option<String>,
}

/// Where a page ended, handed to the client as `next_batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    order: Order,
    /// The stream position the first page searched up to. Later pages search the same
    /// events, so new messages cannot shift results between pages.
    snapshot: u64,
    /// The last result's rank (as `f64` bits) and stream position.
    score: u64,
    stream: u64,
    /// Set for a group's `next_batch`: more results of that group only.
    group: Option<(GroupKey, String)>,
}

impl Cursor {
    fn encode(&self) -> String {
        // Serialising a plain struct of numbers and strings cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(token: &str) -> Result<Self> {
        let bad =
            || Error::invalid_param(format!("next_batch {token:?} is not a token from /search"));
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }

    /// Whether `hit` comes after the cursor in the search's order.
    fn precedes(&self, hit: &Hit) -> bool {
        match self.order {
            Order::Recent => hit.stream < self.stream,
            Order::Rank => {
                let score = f64::from_bits(self.score);
                hit.score < score || (hit.score == score && hit.stream < self.stream)
            }
        }
    }
}

/// A room the user may search, and up to where.
struct Searchable {
    room_id: OwnedRoomId,
    /// The newest stream position the user may see: their departure for a former member.
    ceiling: u64,
    /// The state the user may read: current while joined, as they left it otherwise.
    state_group: u64,
    /// A former member's leave (or ban) event's position.
    departure: Option<u64>,
}

/// One matching event, before it is read.
#[derive(Debug, Clone, Copy)]
struct Hit {
    room: usize,
    stream: u64,
    score: f64,
    sender: usize,
}

/// The postings that satisfy one query word: the word itself, or for the last word also
/// the longer words it begins.
struct Slot<'a> {
    members: Vec<Member<'a>>,
}

struct Member<'a> {
    cursor: PostingCursor<'a>,
    weight: f64,
    /// Whether a result matched through this term, for `highlights`.
    matched: bool,
}

impl Slot<'_> {
    fn start_room(&mut self, room_id: &str) {
        for m in &mut self.members {
            m.cursor.start_room(room_id);
        }
    }

    /// The newest position at or below `at` where any member has a posting.
    fn seek_le(&mut self, at: u64) -> Result<Option<u64>> {
        let mut best = None;
        for m in &mut self.members {
            if let Some(pos) = m.cursor.seek_le(at)? {
                best = best.max(Some(pos));
            }
        }
        Ok(best)
    }
}

fn bm25(tf: u32, len: u32) -> f64 {
    let tf = f64::from(tf);
    let norm = 1.0 - BM25_B + BM25_B * f64::from(len.max(1)) / REFERENCE_LEN;
    tf * (BM25_K1 + 1.0) / (tf + BM25_K1 * norm)
}

/// Everything the matching step found.
struct Matches {
    hits: Vec<Hit>,
    senders: Vec<String>,
    highlights: BTreeSet<String>,
}

/// What a search looks for, read from its request before any store access.
#[derive(Debug)]
pub struct Query {
    /// Where the previous page ended, from `next_batch`.
    cursor: Option<Cursor>,
    /// The distinct index terms of `search_term`, in order.
    pub terms: Vec<String>,
}

/// Decodes the request's `next_batch` and splits its `search_term` into index terms.
pub fn parse_query(request: &SearchRequest) -> Result<Query> {
    let cursor = request
        .next_batch
        .as_deref()
        .map(Cursor::decode)
        .transpose()?;
    if let Some(cursor) = &cursor
        && cursor.order != request.order
    {
        return Err(Error::invalid_param(
            "next_batch belongs to a search with another order_by",
        ));
    }
    // Stops at the first word too many: the check for repeats is quadratic.
    let mut terms: Vec<String> = Vec::new();
    for term in words(&request.search_term) {
        if !terms.contains(&term) {
            if terms.len() == MAX_QUERY_TERMS {
                return Err(Error::invalid_param(format!(
                    "search_term has more than {MAX_QUERY_TERMS} distinct words"
                )));
            }
            terms.push(term);
        }
    }
    Ok(Query { cursor, terms })
}

impl Services {
    /// Runs a `room_events` search for `view.user_id` and returns the category's JSON.
    /// It reads the store synchronously: call it off the async runtime.
    pub fn search_room_events(
        &self,
        view: ClientView<'_>,
        request: &SearchRequest,
    ) -> Result<Value> {
        let Query { cursor, terms } = parse_query(request)?;
        let snapshot = cursor
            .as_ref()
            .map_or_else(|| self.rooms.stream_position(), |c| c.snapshot);
        let group = cursor.as_ref().and_then(|c| c.group.clone());
        let mut rooms = self.searchable_rooms(view.user_id, &request.filter, snapshot)?;
        if let Some((GroupKey::RoomId, room)) = &group {
            rooms.retain(|r| r.room_id.as_str() == room);
        }
        let mut readers = Vec::with_capacity(rooms.len());
        for room in &rooms {
            readers.push(self.history_reader(&room.room_id, view)?);
        }
        let mut matches = if terms.is_empty() {
            // A term of punctuation only has no words to look for.
            Matches {
                hits: Vec::new(),
                senders: Vec::new(),
                highlights: BTreeSet::new(),
            }
        } else {
            self.match_terms(&terms, &rooms, &mut readers, request)?
        };
        if let Some((GroupKey::Sender, sender)) = &group {
            let index = matches.senders.iter().position(|s| s == sender);
            matches.hits.retain(|h| Some(h.sender) == index);
        }
        let hits = &mut matches.hits;
        match request.order {
            Order::Recent => hits.sort_unstable_by_key(|h| std::cmp::Reverse(h.stream)),
            Order::Rank => hits
                .sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(b.stream.cmp(&a.stream))),
        }
        let count = hits.len();
        let start = cursor
            .as_ref()
            .map_or(0, |c| hits.partition_point(|h| !c.precedes(h)));

        let limit = request.filter.limit_or(DEFAULT_LIMIT, MAX_LIMIT);
        let mut page: Vec<(Hit, EventRecord, Value)> = Vec::new();
        let mut next = start;
        let mut last_inspected = None;
        // Matches that fail here (a `contains_url` filter, which only the event tells, or
        // a redaction since the postings were read) are skipped; a page that meets too
        // many of them ends early, with a next_batch to go on from.
        while next < hits.len() && page.len() < limit && next - start < PAGE_SCAN_BUDGET {
            let hit = hits[next];
            next += 1;
            last_inspected = Some(hit);
            if let Some((record, event)) = self.hit_event(&rooms[hit.room], hit.stream, view)?
                && readers[hit.room].can_see(&record)?
                && request.filter.matches_event(&event)
            {
                page.push((hit, record, event));
            }
        }
        let remaining = &hits[next..];
        let page_cursor = |group: Option<(GroupKey, String)>| {
            last_inspected.map(|hit| {
                Cursor {
                    order: request.order,
                    snapshot,
                    score: hit.score.to_bits(),
                    stream: hit.stream,
                    group,
                }
                .encode()
            })
        };

        let mut out = Map::new();
        out.insert("count".into(), json!(count));
        out.insert(
            "highlights".into(),
            json!(matches.highlights.iter().collect::<Vec<_>>()),
        );
        let mut results = Vec::with_capacity(page.len());
        let mut state_cache: HashMap<u64, StateIds> = HashMap::new();
        for (hit, record, event) in &page {
            let mut result = json!({ "rank": hit.score, "result": event });
            if let Some(context) = &request.context {
                result["context"] = self.result_context(
                    &rooms[hit.room],
                    record,
                    *context,
                    &request.filter,
                    &mut readers[hit.room],
                    view,
                    &mut state_cache,
                )?;
            }
            results.push(result);
        }
        out.insert("results".into(), Value::Array(results));
        if !remaining.is_empty()
            && let Some(token) = page_cursor(group.clone())
        {
            out.insert("next_batch".into(), json!(token));
        }
        if request.include_state {
            let mut state = Map::new();
            for (hit, _, _) in &page {
                let room = &rooms[hit.room];
                if state.contains_key(room.room_id.as_str()) {
                    continue;
                }
                let events = self.state_events(room.state_group, view, &mut state_cache)?;
                state.insert(room.room_id.to_string(), Value::Array(events));
            }
            out.insert("state".into(), Value::Object(state));
        }
        if !request.group_by.is_empty() {
            let mut groups = Map::new();
            for &key in &request.group_by {
                let value_of = |hit: &Hit| match key {
                    GroupKey::RoomId => rooms[hit.room].room_id.to_string(),
                    GroupKey::Sender => matches.senders[hit.sender].clone(),
                };
                let more: HashSet<String> = remaining.iter().map(value_of).collect();
                let mut entries = Map::new();
                for (hit, _, event) in &page {
                    let value = value_of(hit);
                    let order = entries.len() + 1;
                    let entry = entries.entry(value.clone()).or_insert_with(|| {
                        let mut entry = json!({ "order": order, "results": [] });
                        if more.contains(&value)
                            && let Some(token) = page_cursor(Some((key, value.clone())))
                        {
                            entry["next_batch"] = json!(token);
                        }
                        entry
                    });
                    if let Some(list) = entry["results"].as_array_mut() {
                        list.push(event["event_id"].clone());
                    }
                }
                groups.insert(key.name().into(), Value::Object(entries));
            }
            out.insert("groups".into(), Value::Object(groups));
        }
        Ok(Value::Object(out))
    }

    /// Rooms the user is in, and rooms they left after having been in them (searched up
    /// to their departure, as the spec asks), narrowed by the filter's rooms.
    fn searchable_rooms(
        &self,
        user_id: &UserId,
        filter: &RoomEventFilter,
        snapshot: u64,
    ) -> Result<Vec<Searchable>> {
        let mut out = Vec::new();
        for (room_id, membership) in self.store.user_rooms(user_id.as_str())? {
            if membership.forgotten || !filter.allows_room(room_id.as_str()) {
                continue;
            }
            // Peeking into world-readable rooms is not searching "rooms the user has been
            // in", which is what the spec and Synapse search.
            match self.read_access(&room_id, user_id)? {
                ReadAccess::Joined { state_group } => out.push(Searchable {
                    room_id,
                    ceiling: snapshot,
                    state_group,
                    departure: None,
                }),
                ReadAccess::Departed { leave } => out.push(Searchable {
                    room_id,
                    ceiling: leave.stream.min(snapshot),
                    state_group: leave.state_after,
                    departure: Some(leave.stream),
                }),
                ReadAccess::Peeking | ReadAccess::Denied(_) => {}
            }
        }
        Ok(out)
    }

    /// Every event of `rooms` holding all the terms (the last one possibly as the start
    /// of a longer word) in one of the requested fields, passing the filter's types and
    /// senders and visible to the user by history visibility, with its rank. Visibility
    /// comes from the state group the posting records, so no event is read here.
    fn match_terms(
        &self,
        terms: &[String],
        rooms: &[Searchable],
        readers: &mut [HistoryReader<'_>],
        request: &SearchRequest,
    ) -> Result<Matches> {
        let mut slots: Vec<Slot<'_>> = Vec::with_capacity(terms.len());
        for (i, term) in terms.iter().enumerate() {
            let mut members = vec![Member {
                cursor: self.store.posting_cursor(term),
                weight: 1.0,
                matched: false,
            }];
            if i + 1 == terms.len() && term.chars().count() >= PREFIX_MIN_CHARS {
                for longer in self.store.terms_with_prefix(term, MAX_EXPANSIONS + 1)? {
                    if &longer != term && members.len() <= MAX_EXPANSIONS {
                        members.push(Member {
                            cursor: self.store.posting_cursor(&longer),
                            weight: EXPANSION_WEIGHT,
                            matched: false,
                        });
                    }
                }
            }
            slots.push(Slot { members });
        }
        let fields: Vec<&str> = request.fields.iter().map(|f| f.code()).collect();
        let mut hits = Vec::new();
        let mut senders: Vec<String> = Vec::new();
        let mut sender_index: HashMap<String, usize> = HashMap::new();
        for (room_index, room) in rooms.iter().enumerate() {
            for slot in &mut slots {
                slot.start_room(room.room_id.as_str());
            }
            let mut target = room.ceiling;
            'room: while target > 0 {
                // Leapfrog: every slot must have a posting at the same position; a slot
                // whose newest posting at or below the target is older lowers the target.
                let mut agreeing = 0;
                let mut i = 0;
                while agreeing < slots.len() {
                    let Some(pos) = slots[i].seek_le(target)? else {
                        break 'room;
                    };
                    if pos == target {
                        agreeing += 1;
                    } else {
                        target = pos;
                        agreeing = 1;
                    }
                    i = (i + 1) % slots.len();
                }
                if let Some(Scored {
                    score,
                    sender,
                    state_group,
                }) = score_at(&slots, target, &fields, &request.filter)?
                    && readers[room_index].can_see_in_state(state_group)?
                {
                    mark_matched(&mut slots, target);
                    let sender = match sender_index.get(&sender) {
                        Some(&index) => index,
                        None => {
                            senders.push(sender.clone());
                            sender_index.insert(sender, senders.len() - 1);
                            senders.len() - 1
                        }
                    };
                    hits.push(Hit {
                        room: room_index,
                        stream: target,
                        score,
                        sender,
                    });
                }
                target -= 1;
            }
        }
        let highlights = slots
            .iter()
            .flat_map(|s| &s.members)
            .filter(|m| m.matched)
            .map(|m| m.cursor.term().to_owned())
            .collect();
        Ok(Matches {
            hits,
            senders,
            highlights,
        })
    }

    /// The event at `stream` in a room, in client format, unless it is gone or redacted
    /// since it was indexed.
    fn hit_event(
        &self,
        room: &Searchable,
        stream: u64,
        view: ClientView<'_>,
    ) -> Result<Option<(EventRecord, Value)>> {
        let found = self
            .store
            .room_events_rev(room.room_id.as_str(), stream, stream - 1, 1)?;
        // An event backfilled from another server is on the global stream only.
        let event_id = match found.into_iter().next() {
            Some((_, event_id)) => event_id,
            None => match self.store.stream_event(stream)? {
                Some(event_id) => event_id,
                None => return Ok(None),
            },
        };
        Ok(self
            .client_event_by_id(event_id.as_str(), Some(view))?
            .filter(|(record, _)| {
                record.redacted_because.is_none() && record.room_id == room.room_id
            }))
    }

    /// `events_before`, `events_after`, their pagination tokens and, if asked, the
    /// senders' profiles as of the last of them. Context events pass the search's filter
    /// too, as in Synapse.
    #[allow(clippy::too_many_arguments)]
    fn result_context(
        &self,
        room: &Searchable,
        record: &EventRecord,
        request: ContextRequest,
        filter: &RoomEventFilter,
        reader: &mut HistoryReader<'_>,
        view: ClientView<'_>,
        state_cache: &mut HashMap<u64, StateIds>,
    ) -> Result<Value> {
        let room_id = room.room_id.as_str();
        let mut before: Vec<(EventRecord, Value)> = Vec::new();
        let mut start = record.stream.saturating_sub(1);
        let mut scanned = 0;
        'before: while before.len() < request.before && scanned < CONTEXT_SCAN && start > 0 {
            let chunk = self
                .store
                .room_events_rev(room_id, start, 0, CONTEXT_CHUNK)?;
            if chunk.is_empty() {
                start = 0;
                break;
            }
            for (pos, event_id) in chunk {
                scanned += 1;
                start = pos - 1;
                if let Some((r, event)) = self.client_event_by_id(event_id.as_str(), Some(view))?
                    && reader.can_see(&r)?
                    && filter.matches_event(&event)
                {
                    before.push((r, event));
                    if before.len() == request.before {
                        break 'before;
                    }
                }
                if scanned == CONTEXT_SCAN {
                    break 'before;
                }
            }
        }
        // A member sees what has arrived since the search began; a former member
        // nothing after their departure.
        let ceiling = room
            .departure
            .unwrap_or_else(|| self.rooms.stream_position());
        let mut after: Vec<(EventRecord, Value)> = Vec::new();
        let mut end = record.stream;
        let mut scanned = 0;
        'after: while after.len() < request.after && scanned < CONTEXT_SCAN && end < ceiling {
            let chunk = self.store.room_events_after(room_id, end, CONTEXT_CHUNK)?;
            if chunk.is_empty() {
                break;
            }
            for (pos, event_id) in chunk {
                if pos > ceiling {
                    break 'after;
                }
                scanned += 1;
                end = pos;
                if let Some((r, event)) = self.client_event_by_id(event_id.as_str(), Some(view))?
                    && reader.can_see(&r)?
                    && filter.matches_event(&event)
                {
                    after.push((r, event));
                    if after.len() == request.after {
                        break 'after;
                    }
                }
                if scanned == CONTEXT_SCAN {
                    break 'after;
                }
            }
        }
        let token = |events: u64| {
            SyncToken {
                events,
                ..SyncToken::default()
            }
            .to_string()
        };
        let mut context = json!({
            "start": token(start),
            "end": token(end),
            "events_before": before.iter().map(|(_, e)| e).collect::<Vec<_>>(),
            "events_after": after.iter().map(|(_, e)| e).collect::<Vec<_>>(),
        });
        if request.include_profile {
            let senders: BTreeSet<&str> = before
                .iter()
                .chain(after.iter())
                .map(|(r, _)| r)
                .chain([record])
                .filter_map(|r| r.pdu.get("sender").and_then(Value::as_str))
                .collect();
            let last = after.last().map_or(record, |(r, _)| r);
            let state = self.cached_state(last.state_after, state_cache)?;
            let mut profiles = Map::new();
            for sender in senders {
                let Some(id) = state.get(&("m.room.member".to_owned(), sender.to_owned())) else {
                    continue;
                };
                let Some(member) = self.store.event(id.as_str())? else {
                    continue;
                };
                let content = member.pdu.get("content");
                let field = |name: &str| content.and_then(|c| c.get(name)).and_then(Value::as_str);
                if field("membership") != Some("join") {
                    continue;
                }
                let mut profile = Map::new();
                for name in ["displayname", "avatar_url"] {
                    if let Some(value) = field(name) {
                        profile.insert(name.into(), json!(value));
                    }
                }
                profiles.insert(sender.to_owned(), Value::Object(profile));
            }
            context["profile_info"] = Value::Object(profiles);
        }
        Ok(context)
    }

    fn cached_state<'c>(
        &self,
        group: u64,
        cache: &'c mut HashMap<u64, StateIds>,
    ) -> Result<&'c StateIds> {
        Ok(match cache.entry(group) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(self.state_ids_at(group)?)
            }
        })
    }

    fn state_events(
        &self,
        group: u64,
        view: ClientView<'_>,
        cache: &mut HashMap<u64, StateIds>,
    ) -> Result<Vec<Value>> {
        let ids: Vec<_> = self.cached_state(group, cache)?.values().cloned().collect();
        let mut events = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((_, event)) = self.client_event_by_id(id.as_str(), Some(view))? {
                events.push(event);
            }
        }
        Ok(events)
    }
}

/// At a position where every slot has a posting: whether the event is in a requested
/// field and passes the filter's types and senders, and if so its rank and sender.
fn score_at(
    slots: &[Slot<'_>],
    at: u64,
    fields: &[&str],
    filter: &RoomEventFilter,
) -> Result<Option<Scored>> {
    let mut score = 0.0;
    let mut first: Option<Scored> = None;
    for slot in slots {
        let mut best: f64 = 0.0;
        for m in &slot.members {
            if m.cursor.current() != Some(at) {
                continue;
            }
            let posting = m.cursor.posting()?;
            if first.is_none() {
                // All postings at one position describe the same event.
                let field = Field::from_code(&posting.field);
                let allowed = field.is_some_and(|f| {
                    fields.contains(&f.code())
                        && filter.base.matches(f.event_type(), Some(&posting.sender))
                });
                if !allowed {
                    return Ok(None);
                }
                first = Some(Scored {
                    score: 0.0,
                    sender: posting.sender.clone(),
                    state_group: posting.state_group,
                });
            }
            best = best.max(m.weight * bm25(posting.tf, posting.len));
        }
        score += best;
    }
    Ok(first.map(|scored| Scored { score, ..scored }))
}

/// The terms that matched at `at`, for `highlights`: only results the user may see count,
/// or a highlight could reveal a word of hidden history.
fn mark_matched(slots: &mut [Slot<'_>], at: u64) {
    for slot in slots {
        for m in &mut slot.members {
            if m.cursor.current() == Some(at) {
                m.matched = true;
            }
        }
    }
}

/// What the postings at one position tell about the event.
struct Scored {
    score: f64,
    sender: String,
    state_group: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bm25_rewards_repeats_and_short_fields() {
        assert!(bm25(2, 12) > bm25(1, 12));
        assert!(bm25(1, 3) > bm25(1, 30));
        // Saturation: the tenth repeat adds little.
        assert!(bm25(10, 12) - bm25(9, 12) < bm25(2, 12) - bm25(1, 12));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            order: Order::Rank,
            snapshot: 99,
            score: 1.25f64.to_bits(),
            stream: 42,
            group: Some((GroupKey::Sender, "@a:x".into())),
        };
        let back = Cursor::decode(&cursor.encode()).unwrap();
        assert_eq!(back.stream, 42);
        assert_eq!(f64::from_bits(back.score), 1.25);
        assert_eq!(back.group, Some((GroupKey::Sender, "@a:x".into())));
        assert!(Cursor::decode("not a token").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"{}")).is_err());
    }

    fn request(search_term: String) -> SearchRequest {
        SearchRequest {
            search_term,
            fields: Field::ALL.to_vec(),
            filter: Default::default(),
            order: Order::Rank,
            context: None,
            include_state: false,
            group_by: Vec::new(),
            next_batch: None,
        }
    }

    /// Found while writing the search fuzz target: every distinct word was compared with
    /// every other before the limit was checked, quadratic in a 1 MiB body's words.
    #[test]
    fn too_many_words_are_refused_at_the_first_one_over() {
        let many: String = (0..200_000).map(|i| format!("w{i} ")).collect();
        assert!(parse_query(&request(many)).is_err());
        let repeated = (0..MAX_QUERY_TERMS)
            .map(|i| format!("w{i} "))
            .collect::<String>()
            .repeat(100);
        let query = parse_query(&request(repeated)).unwrap();
        assert_eq!(query.terms.len(), MAX_QUERY_TERMS);
    }

    #[test]
    fn rank_cursors_order_by_score_then_recency() {
        let cursor = Cursor {
            order: Order::Rank,
            snapshot: 0,
            score: 1.0f64.to_bits(),
            stream: 10,
            group: None,
        };
        let hit = |score, stream| Hit {
            room: 0,
            stream,
            score,
            sender: 0,
        };
        assert!(cursor.precedes(&hit(0.5, 20)));
        assert!(cursor.precedes(&hit(1.0, 9)));
        assert!(!cursor.precedes(&hit(1.0, 10)));
        assert!(!cursor.precedes(&hit(2.0, 1)));
    }
}
