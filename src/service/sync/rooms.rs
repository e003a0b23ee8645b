//! The `rooms` part of a sync: per room, its timeline window, the state before it,
//! ephemeral events, account data and summary.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId};

use super::budget::fit_timeline_budget;
use serde_json::{Value, json};

use super::response::{RoomSection, TimelineSection, events_section};
use super::{Pass, SyncToken};
use crate::error::Result;
use crate::service::Services;
use crate::service::notifications::Counts;
use crate::service::rooms::{ClientView, HistoryReader, OutEvent, StateIds};
use crate::store::{EventRecord, UserRoomRecord};

/// Timeline events per room when the filter gives no limit, and the most it may ask.
const DEFAULT_TIMELINE_LIMIT: usize = 10;
const MAX_TIMELINE_LIMIT: usize = 1000;

/// The most events one room's window reads, however many the filters skip.
const SCAN_BUDGET: usize = 2000;

pub(crate) struct Timeline {
    /// `(stream, client event)`, oldest first.
    pub(crate) events: Vec<(u64, OutEvent)>,
    pub(crate) limited: bool,
}

impl Timeline {
    /// The timeline as the response writes it.
    pub(crate) fn into_section(self, prev_batch: String) -> TimelineSection {
        TimelineSection {
            events: self.events.into_iter().map(|(_, e)| e).collect(),
            limited: self.limited,
            prev_batch: Some(prev_batch),
        }
    }

    /// The senders of the timeline's events.
    pub(crate) fn senders(&self) -> BTreeSet<String> {
        self.events
            .iter()
            .filter_map(|(_, e)| e.get("sender").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    }
}

/// Which part of a room's stream a timeline is read from: events in `(from, to]`, at most
/// `limit`; `current_state_visible` shows current state events the history rules hide.
#[derive(Clone, Copy)]
pub(crate) struct TimelineWindow {
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) limit: usize,
    pub(crate) current_state_visible: bool,
}

/// A message (not a state event) from someone the user ignores.
fn is_ignored_message(pass: &Pass<'_>, event: &Value) -> bool {
    !pass.ignored.is_empty()
        && event.get("state_key").is_none()
        && event
            .get("sender")
            .and_then(Value::as_str)
            .is_some_and(|sender| pass.ignored.iter().any(|u| u.as_str() == sender))
}

impl Services {
    /// One room's section of the response and which part it belongs in (`join`,
    /// `invite`, `knock`, `leave`), if it has anything to send.
    pub(super) fn sync_room(
        &self,
        pass: &Pass<'_>,
        room_id: &OwnedRoomId,
        record: UserRoomRecord,
    ) -> Result<Option<(&'static str, RoomSection)>> {
        let room_id = room_id.clone();
        let Some(UserRoomRecord {
            membership,
            event_id: membership_event,
            stream: membership_stream,
            forgotten,
            invite_state,
            joined_since,
        }) = self.membership_as_of(&room_id, pass, record)?
        else {
            return Ok(None);
        };
        let changed = pass.since.is_none_or(|s| membership_stream > s.events);
        match membership.as_str() {
            "join" => {
                // As Synapse: a room joined with a partial state is left out of
                // syncs that load all members until its full state is here, and
                // then comes as a new join, with all of it.
                let lazy = pass.filter.room.state.lazy_load_members;
                if !lazy && self.is_partial_state(&room_id) {
                    return Ok(None);
                }
                let completed_since = !lazy
                    && pass.since.is_some_and(|since| {
                        self.partial_states
                            .completed_at(&room_id)
                            .is_some_and(|at| at > since.events)
                    });
                let rejoined = match pass.since {
                    _ if completed_since => true,
                    Some(since) if changed => {
                        self.membership_at(&room_id, pass.user_id, since.events)?
                            .as_deref()
                            != Some("join")
                    }
                    _ => false,
                };
                let from = if rejoined {
                    None
                } else {
                    pass.since.map(|s| s.events)
                };
                if rejoined {
                    let members = self.room_members(&room_id)?;
                    pass.pending_shared.borrow_mut().extend(
                        members
                            .joined
                            .iter()
                            .filter(|u| *u != pass.user_id)
                            .cloned(),
                    );
                }
                Ok(self
                    .joined_room(
                        pass,
                        &room_id,
                        from,
                        joined_since.unwrap_or(membership_stream),
                    )?
                    .map(|section| ("join", section)))
            }
            "invite" if changed && !self.invited_by_ignored(pass, &membership_event)? => {
                // Of a room this server is not in, only what the inviter shared.
                let state = match invite_state {
                    Some(state) => state,
                    None => self.invite_state(&room_id, pass.user_id, &membership_event)?,
                };
                Ok(Some((
                    "invite",
                    RoomSection::new(json!({"invite_state": {"events": state}})),
                )))
            }
            "knock" if changed => {
                // Of a room this server is not in, only what its server shared.
                let state = match invite_state {
                    Some(state) => state,
                    None => self.stripped_state(&room_id, Some(pass.user_id))?,
                };
                Ok(Some((
                    "knock",
                    RoomSection::new(json!({"knock_state": {"events": state}})),
                )))
            }
            "leave" | "ban" if changed && !forgotten => {
                // An initial sync shows rooms left long ago only when asked to.
                if pass.since.is_none() && !pass.filter.room.include_leave {
                    return Ok(None);
                }
                // A declined invite to a room this server was never in: the leave
                // that declined it is the timeline.
                if self.store.room(room_id.as_str())?.is_none() {
                    let events: Vec<OutEvent> = self
                        .client_event_by_id(membership_event.as_str(), Some(pass.view))?
                        .filter(|(record, _)| {
                            record
                                .pdu
                                .pointer("/content/membership")
                                .and_then(Value::as_str)
                                == Some("leave")
                        })
                        .map(|(_, event)| OutEvent::Tree(event))
                        .into_iter()
                        .collect();
                    let mut section = RoomSection::new(json!({
                        "state": {"events": []},
                        "account_data": {"events": []},
                    }));
                    section.timeline = Some(TimelineSection {
                        events,
                        limited: false,
                        prev_batch: None,
                    });
                    return Ok(Some(("leave", section)));
                }
                // Joined and left since the last sync: the client never had the
                // room's state, so it gets all of it (as Synapse).
                let from = match pass.since {
                    Some(since) => {
                        let joined_in_batch = self
                            .membership_at(&room_id, pass.user_id, since.events)?
                            .as_deref()
                            != Some("join")
                            && self
                                .membership_at(
                                    &room_id,
                                    pass.user_id,
                                    membership_stream.saturating_sub(1),
                                )?
                                .as_deref()
                                == Some("join");
                        (!joined_in_batch).then_some(since.events)
                    }
                    None => None,
                };
                Ok(self
                    .left_room(pass, &room_id, from, membership_stream)?
                    .map(|section| ("leave", section)))
            }
            _ => Ok(None),
        }
    }

    /// Whether the invite event `event_id` comes from someone the user ignores.
    fn invited_by_ignored(&self, pass: &Pass<'_>, event_id: &ruma::EventId) -> Result<bool> {
        if pass.ignored.is_empty() {
            return Ok(false);
        }
        Ok(self.store.event(event_id.as_str())?.is_some_and(|e| {
            e.pdu
                .get("sender")
                .and_then(Value::as_str)
                .is_some_and(|sender| pass.ignored.iter().any(|u| u.as_str() == sender))
        }))
    }

    /// The user's membership as of the pass's `now`. A membership change written after
    /// `now` became visible (an earlier position still in flight) is looked up in the
    /// room's state instead, so this pass and the next neither skip nor repeat it.
    fn membership_as_of(
        &self,
        room_id: &RoomId,
        pass: &Pass<'_>,
        record: UserRoomRecord,
    ) -> Result<Option<UserRoomRecord>> {
        if record.stream <= pass.now.events {
            return Ok(Some(record));
        }
        let Some(state) = self.state_at(room_id, pass.now.events)? else {
            return Ok(None);
        };
        let Some(event_id) = state.get(&("m.room.member".to_owned(), pass.user_id.to_string()))
        else {
            return Ok(None);
        };
        let Some(event) = self.store.event(event_id.as_str())? else {
            return Ok(None);
        };
        let membership = event
            .pdu
            .pointer("/content/membership")
            .and_then(Value::as_str)
            .unwrap_or("leave")
            .to_owned();
        // A join that began by `now` and lasts until the record's change began where the
        // record says.
        let joined_since = record
            .joined_since
            .filter(|since| membership == "join" && *since <= event.stream);
        Ok(Some(UserRoomRecord {
            membership,
            event_id: event_id.clone(),
            stream: event.stream,
            forgotten: false,
            invite_state: None,
            joined_since,
        }))
    }

    /// The room's state after every event up to stream position `at`; `None` before the room.
    pub fn state_at(&self, room_id: &RoomId, at: u64) -> Result<Option<StateIds>> {
        match self.state_group_at(room_id, at)? {
            Some(group) => Ok(Some(self.state_ids_at(group)?)),
            None => Ok(None),
        }
    }

    /// The room's state group after every event up to stream position `at`.
    pub(crate) fn state_group_at(&self, room_id: &RoomId, at: u64) -> Result<Option<u64>> {
        let Some((_, event_id)) = self
            .store
            .room_events_rev(room_id.as_str(), at, 0, 1)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        Ok(self
            .store
            .event_shared(event_id.as_str())?
            .map(|cached| cached.record.state_after))
    }

    /// The user's membership at stream position `at`.
    pub fn membership_at(
        &self,
        room_id: &RoomId,
        user_id: &ruma::UserId,
        at: u64,
    ) -> Result<Option<String>> {
        match self.state_group_at(room_id, at)? {
            Some(group) => self.membership_in_group(group, user_id),
            None => Ok(None),
        }
    }

    /// The newest timeline events in `(from, to]` that pass the filter, at most the limit.
    /// `joined`: the user is in the room now, so the room's current state events are
    /// shown even where the history rules hide them (as Synapse does: a member must see
    /// who joined while they were away, or their client's state is wrong).
    fn timeline(
        &self,
        pass: &Pass<'_>,
        room_id: &RoomId,
        from: u64,
        to: u64,
        joined: bool,
    ) -> Result<Timeline> {
        let filter = &pass.filter.room.timeline;
        let limit = filter.limit_or(DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT);
        let window = TimelineWindow {
            from,
            to,
            limit,
            current_state_visible: joined,
        };
        let mut timeline = self.visible_timeline(room_id, pass.view, window, |event| {
            filter.matches_event(event) && !is_ignored_message(pass, event)
        })?;
        fit_timeline_budget(&pass.timeline_bytes_left, &mut timeline);
        Ok(timeline)
    }

    /// The newest events in `(from, to]` that `view`'s user may see and `keep` keeps, at
    /// most `limit`, for `/sync` and sliding sync. `limited` when there were more, when
    /// the window reaches an event after a gap, or when it skipped too many to go on.
    pub(crate) fn visible_timeline(
        &self,
        room_id: &RoomId,
        view: ClientView<'_>,
        window: TimelineWindow,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<Timeline> {
        let TimelineWindow {
            from,
            to,
            limit,
            current_state_visible,
        } = window;
        // History visibility applies to sync as to `/messages`. Someone with no view of
        // the history at all (a declined invite) still sees their own membership events.
        let mut reader = self.history_reader(room_id, view).ok();
        let mut events = Vec::new();
        let mut limited = false;
        let mut newest = to;
        let mut budget = SCAN_BUDGET;
        // Read in pages: a type filter or the visibility rules may skip most events.
        'scan: loop {
            let page = self
                .store
                .room_events_rev(room_id.as_str(), newest, from, limit + 1)?;
            let exhausted = page.len() < limit + 1;
            for (position, event_id) in page {
                newest = position.saturating_sub(1);
                budget = budget.saturating_sub(1);
                let Some(cached) = self.store.event_shared(event_id.as_str())? else {
                    continue;
                };
                let record = &cached.record;
                let visible =
                    HistoryReader::timeline_visible(reader.as_mut(), view.user_id, record)?
                        || (current_state_visible
                            && self.is_current_state(room_id, &event_id, record)?);
                if visible {
                    let event = self.out_event(event_id.as_str(), &cached, view)?;
                    if keep(event.fields()) {
                        if events.len() == limit {
                            limited = true;
                            break 'scan;
                        }
                        events.push((position, event));
                    }
                }
                // Events this server never got may lie just before it: the client is
                // told, and pages back from here.
                if record.after_gap {
                    limited = true;
                    break 'scan;
                }
                // A window that skipped this much is a gap the client can page back over.
                if budget == 0 {
                    limited = newest > from;
                    break 'scan;
                }
            }
            if exhausted || newest <= from {
                break;
            }
        }
        events.reverse();
        Ok(Timeline { events, limited })
    }

    /// Whether `record` is a state event that holds its place in the room's current state.
    fn is_current_state(
        &self,
        room_id: &RoomId,
        event_id: &ruma::EventId,
        record: &EventRecord,
    ) -> Result<bool> {
        let (Some(event_type), Some(state_key)) = (
            record.pdu.get("type").and_then(Value::as_str),
            record.pdu.get("state_key").and_then(Value::as_str),
        ) else {
            return Ok(false);
        };
        Ok(self
            .store
            .current_state_id(room_id.as_str(), event_type, state_key)?
            .is_some_and(|id| id == event_id))
    }

    fn joined_room(
        &self,
        pass: &Pass<'_>,
        room_id: &RoomId,
        from: Option<u64>,
        joined_at: u64,
    ) -> Result<Option<RoomSection>> {
        let to = pass.now.events;
        let full = from.is_none() || pass.full_state;
        let mut timeline = self.timeline(pass, room_id, from.unwrap_or(0), to, true)?;
        // A room joined since the last sync is `limited` (the client pages back for its
        // history), as Synapse marks every newly joined room.
        if from.is_none() && pass.since.is_some() {
            timeline.limited = true;
        }
        let state = self.state_section(pass, room_id, from, to, full, &timeline)?;

        let mut ephemeral = Vec::new();
        let typing_since = pass.since.map(|s| s.typing).filter(|_| from.is_some());
        if let Some(users) = self.typing.changed_since(room_id, typing_since) {
            ephemeral.push(json!({"type": "m.typing", "content": {"user_ids": users}}));
        }
        let receipts = match from {
            None => self.receipt_content(pass.user_id, room_id, None)?,
            Some(_) => match pass.receipts.get(room_id) {
                Some(changes) => self.receipt_content(pass.user_id, room_id, Some(changes))?,
                None => None,
            },
        };
        ephemeral.extend(receipts);
        ephemeral.retain(|e| pass.filter.room.ephemeral.matches_event(e));

        let account_data = self.room_account_data(pass, room_id, from.is_none())?;

        let is_member_event =
            |e: &Value| e.get("type").and_then(Value::as_str) == Some("m.room.member");
        if from.is_some() {
            // Someone joining a room the user is in now shares it with them.
            let joiners = timeline.events.iter().map(|(_, e)| e.fields()).filter(|e| {
                is_member_event(e)
                    && e.pointer("/content/membership").and_then(Value::as_str) == Some("join")
            });
            for event in joiners {
                if let Some(user) = event
                    .get("state_key")
                    .and_then(Value::as_str)
                    .filter(|u| *u != pass.user_id.as_str())
                    .and_then(|u| OwnedUserId::try_from(u).ok())
                {
                    pass.pending_shared.borrow_mut().push(user);
                }
            }
        }
        let membership_changed = timeline
            .events
            .iter()
            .any(|(_, e)| is_member_event(e.fields()))
            || state.iter().any(is_member_event);
        if from.is_some()
            && !pass.full_state
            && timeline.events.is_empty()
            && state.is_empty()
            && ephemeral.is_empty()
            && account_data.is_empty()
        {
            return Ok(None);
        }
        let prev_batch = self.prev_batch(pass, &timeline, from, to);
        let unread = self.unread_counts(pass.user_id, room_id, joined_at, to)?;
        let mut section = RoomSection::default();
        section.rest.insert("state".into(), events_section(state));
        section
            .rest
            .insert("ephemeral".into(), events_section(ephemeral));
        section
            .rest
            .insert("account_data".into(), events_section(account_data));
        let count = |c: Counts| json!({"notification_count": c.notifications, "highlight_count": c.highlights});
        if pass.filter.room.timeline.unread_thread_notifications {
            // The main timeline's counts, and each thread's apart (as Synapse: threads
            // without unread notifications, and the map when none has, are left out).
            section
                .rest
                .insert("unread_notifications".into(), count(unread.main));
            if !unread.threads.is_empty() {
                let threads: serde_json::Map<String, Value> = unread
                    .threads
                    .iter()
                    .map(|(root, c)| (root.to_string(), count(*c)))
                    .collect();
                section
                    .rest
                    .insert("unread_thread_notifications".into(), threads.into());
            }
        } else {
            section
                .rest
                .insert("unread_notifications".into(), count(unread.total()));
        }
        if full || membership_changed {
            section
                .rest
                .insert("summary".into(), self.room_summary(pass.user_id, room_id)?);
        }
        section.timeline = Some(timeline.into_section(prev_batch));
        Ok(Some(section))
    }

    fn left_room(
        &self,
        pass: &Pass<'_>,
        room_id: &RoomId,
        from: Option<u64>,
        left_at: u64,
    ) -> Result<Option<RoomSection>> {
        let timeline = self.timeline(pass, room_id, from.unwrap_or(0), left_at, false)?;
        let full = from.is_none() || pass.full_state;
        let state = self.state_section(pass, room_id, from, left_at, full, &timeline)?;
        let account_data = self.room_account_data(pass, room_id, from.is_none())?;
        let prev_batch = self.prev_batch(pass, &timeline, from, left_at);
        let mut section = RoomSection::default();
        section.rest.insert("state".into(), events_section(state));
        section
            .rest
            .insert("account_data".into(), events_section(account_data));
        section.timeline = Some(timeline.into_section(prev_batch));
        Ok(Some(section))
    }

    /// A token for paging back (with `/messages`) from just before the timeline.
    fn prev_batch(
        &self,
        pass: &Pass<'_>,
        timeline: &Timeline,
        from: Option<u64>,
        to: u64,
    ) -> String {
        let events = match timeline.events.first() {
            Some((position, _)) => position.saturating_sub(1),
            None => from.unwrap_or(to).min(to),
        };
        SyncToken { events, ..pass.now }.to_string()
    }

    /// State up to the start of the timeline: all of it for a full room, otherwise what
    /// changed between `from` and the timeline's start (nothing unless it is limited).
    ///
    /// With lazy-loaded members, a full room's members are only the timeline's senders
    /// and the user. An incremental sync keeps every change of the gap (members who
    /// joined or left in it included, as Synapse) and adds the timeline senders'
    /// memberships as of the timeline's start, leaving out those this device was already
    /// sent unless the filter asks for `include_redundant_members`.
    fn state_section(
        &self,
        pass: &Pass<'_>,
        room_id: &RoomId,
        from: Option<u64>,
        to: u64,
        full: bool,
        timeline: &Timeline,
    ) -> Result<Vec<Value>> {
        let filter = &pass.filter.room.state;
        let lazy = filter.lazy_load_members;
        // Nothing changed before the timeline, and no sender's membership is wanted.
        let senders_wanted = lazy && !timeline.events.is_empty();
        if !full && !timeline.limited && !senders_wanted {
            return Ok(Vec::new());
        }
        // The state before the timeline's first event (whose record knows it even when
        // nothing before it is on the room's stream, as after joining another server's
        // room), or after the window's end when the timeline is empty.
        let start_group = match timeline.events.first().and_then(|(_, e)| e.event_id()) {
            Some(first) => self
                .store
                .event_shared(first)?
                .map(|cached| cached.record.state_before),
            None => self.state_group_at(room_id, to)?,
        };
        let senders = timeline.senders();
        // A full room, and the changes across a gap, need the whole state at the start;
        // an ordinary incremental sync reads only the memberships it needs.
        let at_start = if full || timeline.limited {
            Some(match start_group {
                Some(group) => self.state_ids_at(group)?,
                None => StateIds::new(),
            })
        } else {
            None
        };
        let mut chosen: BTreeMap<(String, String), OwnedEventId> = match &at_start {
            Some(at_start) if full => at_start.clone(),
            Some(at_start) => {
                let before = match from {
                    Some(from) => self.state_at(room_id, from)?.unwrap_or_default(),
                    None => StateIds::new(),
                };
                at_start
                    .iter()
                    .filter(|(key, id)| before.get(*key) != Some(*id))
                    .map(|(key, id)| (key.clone(), id.clone()))
                    .collect()
            }
            None => BTreeMap::new(),
        };
        let view = pass.view;
        if lazy {
            if full {
                chosen.retain(|(t, k), _| {
                    t != "m.room.member" || senders.contains(k) || k == pass.user_id.as_str()
                });
            } else {
                // Senders whose membership the device has (sent by an earlier sync, or
                // in a timeline since, which a gap would have shown above) are skipped.
                let wanted: Vec<&str> = senders
                    .iter()
                    .map(String::as_str)
                    .filter(|sender| {
                        filter.include_redundant_members
                            || !self.lazy_members.knows(
                                view.user_id,
                                view.device_id,
                                room_id,
                                sender,
                            )
                    })
                    .collect();
                let ids = match &at_start {
                    Some(at_start) => wanted
                        .iter()
                        .map(|s| {
                            at_start
                                .get(&("m.room.member".to_owned(), (*s).to_owned()))
                                .cloned()
                        })
                        .collect(),
                    None => match start_group {
                        Some(group) => {
                            let keys: Vec<(&str, &str)> =
                                wanted.iter().map(|s| ("m.room.member", *s)).collect();
                            self.state_entries_at(group, &keys)?
                        }
                        None => Vec::new(),
                    },
                };
                for (sender, id) in wanted.iter().zip(ids) {
                    if let Some(id) = id {
                        chosen.insert(("m.room.member".to_owned(), (*sender).to_owned()), id);
                    }
                }
            }
        }
        // What the timeline itself carries is not repeated as state (the room's create
        // event, whose record counts it in the state before it, among them).
        let in_timeline: BTreeSet<&str> = timeline
            .events
            .iter()
            .filter_map(|(_, e)| e.event_id())
            .collect();
        chosen.retain(|_, id| !in_timeline.contains(id.as_str()));
        // Members this device was already sent are left out, unless asked for.
        if lazy && !full && !filter.include_redundant_members {
            chosen.retain(|(t, k), id| {
                t != "m.room.member"
                    || !self
                        .lazy_members
                        .was_sent(view.user_id, view.device_id, room_id, k, id)
            });
        }
        let mut events = Vec::new();
        for event_id in chosen.values() {
            if let Some((_, event)) = self.client_event_by_id(event_id.as_str(), Some(pass.view))?
                && filter.matches_event(&event)
            {
                events.push(event);
            }
        }
        if let Some(limit) = filter.base.limit {
            events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        if lazy {
            // Recorded as sent once the room is known to fit in the response.
            let state_events = events
                .iter()
                .map(|e| (e, e.get("event_id").and_then(Value::as_str)));
            let timeline_events = timeline
                .events
                .iter()
                .map(|(_, e)| (e.fields(), e.event_id()));
            let members = state_events
                .chain(timeline_events)
                .filter(|(e, _)| e.get("type").and_then(Value::as_str) == Some("m.room.member"))
                .filter_map(|(e, id)| {
                    let member = e.get("state_key").and_then(Value::as_str)?;
                    Some((member.to_owned(), OwnedEventId::try_from(id?).ok()?))
                });
            pass.pending_members.borrow_mut().extend(members);
        }
        Ok(events)
    }

    fn room_account_data(
        &self,
        pass: &Pass<'_>,
        room_id: &RoomId,
        all: bool,
    ) -> Result<Vec<Value>> {
        let types: Vec<String> = if all {
            self.store
                .account_data_changes_since(pass.user_id.as_str(), 0)?
                .into_iter()
                .filter(|(p, c)| {
                    *p <= pass.now.account_data && c.room_id.as_deref() == Some(room_id.as_str())
                })
                .map(|(_, c)| c.data_type)
                .collect()
        } else {
            pass.room_account_data
                .get(room_id)
                .cloned()
                .unwrap_or_default()
        };
        let mut events = Vec::new();
        for data_type in types {
            if !pass.filter.room.account_data.base.matches(&data_type, None) {
                continue;
            }
            if let Some(content) = self.account_data(pass.user_id, Some(room_id), &data_type)? {
                events.push(json!({"type": data_type, "content": content}));
            }
        }
        Ok(events)
    }
}
