//! Unread counts (`unread_notifications` in `/sync`, `counts.unread` for push gateways):
//! the recorded notifications of a room after the user's read receipt, and those among
//! them that highlight. Counts per user and room are cached and moved along as new
//! records arrive; a moved receipt or a withdrawn record starts them again.
//!
//! The records this process writes are also noted in memory, per user and room (the
//! latest [`RECENT_RECORDS`]), after their batch is written and before their event
//! becomes visible: a count that only needs records noted there (every sync after the
//! first, in an active room) reads nothing from the store. The read receipt the count
//! starts from is kept too, until the next receipt is written anywhere.
//!
//! A push gateway's badge is the sum over the user's joined rooms ([`UnreadCounts::total`]),
//! made of the same per-room counts, so after the first notify it reads nothing either.
//! The pushers' workers hold an [`UnreadCounts`] of their own (shared with the services).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use super::lock;
use crate::error::Result;
use crate::service::Services;
use crate::service::positions::Watermarks;
use crate::service::receipts::{READ, READ_PRIVATE};
use crate::store::{ReceiptChange, Store};

/// The most records one count reads; older unread notifications are not counted.
const MAX_COUNT: usize = 10_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub notifications: u64,
    pub highlights: u64,
}

/// Records noted per user and room; a user who does not sync for longer reads the older
/// ones from the store.
const RECENT_RECORDS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The receipt the counts start from (event stream position).
    from: u64,
    /// The counts cover records up to here.
    to: u64,
    counts: Counts,
}

/// What is kept in memory for one user in one room.
struct Unread {
    /// The cached counts.
    counted: Option<Entry>,
    /// Records written by this process, `(stream, highlight)`, in the order written.
    recent: VecDeque<(u64, bool)>,
    /// `recent` holds every record of the user in the room after this stream position.
    complete_after: u64,
    /// The user's read position ([`read_up_to`]) and the receipt stream position it was
    /// read at.
    read: Option<(u64, Option<u64>)>,
    /// Moves on each [`Unread::forget`]: counts read from the store before it are not
    /// kept after it.
    generation: u64,
}

impl Unread {
    /// Nothing noted yet: every record after `started_at` (the position allocated when
    /// the entry is made) will be.
    fn new(started_at: u64) -> Self {
        Self {
            counted: None,
            recent: VecDeque::new(),
            complete_after: started_at,
            read: None,
            generation: 0,
        }
    }

    fn note(&mut self, stream: u64, highlight: bool) {
        self.recent.push_back((stream, highlight));
        if self.recent.len() > RECENT_RECORDS
            && let Some((dropped, _)) = self.recent.pop_front()
        {
            self.complete_after = self.complete_after.max(dropped);
        }
    }

    /// The records changed: counts start again, and records up to `allocated` are read
    /// from the store.
    fn forget(&mut self, allocated: u64) {
        self.counted = None;
        self.recent.clear();
        self.complete_after = self.complete_after.max(allocated);
        self.generation += 1;
    }

    /// The noted records in `(after, to]`.
    fn noted(&self, after: u64, to: u64) -> Counts {
        let mut counts = Counts::default();
        for (stream, highlight) in &self.recent {
            if *stream > after && *stream <= to {
                counts.notifications += 1;
                counts.highlights += u64::from(*highlight);
            }
        }
        counts
    }

    /// The counts in `(from, to]` (`from < to`) from the cached counts and the noted
    /// records, when these cover what the cached counts lack (or hold beyond `to`: a
    /// reader at an earlier position than the last one).
    fn counted_in_memory(&mut self, from: u64, to: u64) -> Option<Counts> {
        let cached = self
            .counted
            .filter(|entry| entry.from == from)
            .unwrap_or(Entry {
                from,
                to: from,
                counts: Counts::default(),
            });
        if cached.to <= to {
            if cached.to < self.complete_after {
                return None;
            }
            let more = self.noted(cached.to, to);
            let entry = Entry {
                from,
                to,
                counts: Counts {
                    notifications: cached.counts.notifications + more.notifications,
                    highlights: cached.counts.highlights + more.highlights,
                },
            };
            self.counted = Some(entry);
            Some(entry.counts)
        } else {
            if to < self.complete_after {
                return None;
            }
            let beyond = self.noted(to, cached.to);
            Some(Counts {
                notifications: cached
                    .counts
                    .notifications
                    .saturating_sub(beyond.notifications),
                highlights: cached.counts.highlights.saturating_sub(beyond.highlights),
            })
        }
    }
}

/// The stream position of the newest event the user has a read receipt (public or
/// private, unthreaded or on the main timeline) for.
pub fn read_up_to(store: &Store, user_id: &UserId, room_id: &RoomId) -> Result<Option<u64>> {
    let mut newest = None;
    for receipt_type in [READ, READ_PRIVATE] {
        for thread in ["", "main"] {
            let change = ReceiptChange {
                room_id: room_id.to_owned(),
                receipt_type: receipt_type.to_owned(),
                user_id: user_id.to_owned(),
                thread: thread.to_owned(),
            };
            if let Some(record) = store.receipt(&change)? {
                newest = newest.max(Some(record.event_stream));
            }
        }
    }
    Ok(newest)
}

/// The recorded notifications in the room after `from` up to `to`: the user's own records
/// and the room's shared ones that apply to them, these only after `joined_since` (the
/// start of the user's current join: before it the user was not a member they covered).
pub fn unread_in_room(
    store: &Store,
    user_id: &UserId,
    room_id: &RoomId,
    from: u64,
    to: u64,
    joined_since: u64,
) -> Result<Counts> {
    let mut counts = Counts::default();
    for (_, record) in
        store.room_notifications_after(user_id.as_str(), room_id.as_str(), from, to, MAX_COUNT)?
    {
        counts.notifications += 1;
        counts.highlights += u64::from(record.highlight);
    }
    let shared = store.push_events_after(
        room_id.as_str(),
        from.max(joined_since),
        to,
        MAX_COUNT,
        |record| record.applies_to(user_id.as_str()),
    )?;
    for (_, record) in shared {
        counts.notifications += 1;
        counts.highlights += u64::from(record.highlight);
    }
    Ok(counts)
}

type UnreadMap = HashMap<OwnedUserId, HashMap<OwnedRoomId, Unread>>;

/// The unread counts of every user and room, cached in memory.
pub struct UnreadCounts {
    store: Store,
    /// The event stream: counts go up to a visible position, and an entry made now is
    /// complete after the position allocated now.
    events: Arc<dyn Watermarks>,
    /// The receipt stream: a read position kept in memory holds while this has not moved.
    receipts: Arc<dyn Watermarks>,
    /// Per user and room: the counts, and the records this process wrote lately. Only
    /// for users whose counts were asked for (they sync or have a pusher): others would
    /// hold memory for every room they are notified in without ever reading it.
    unread: Mutex<UnreadMap>,
}

impl UnreadCounts {
    pub fn new(store: Store, events: Arc<dyn Watermarks>, receipts: Arc<dyn Watermarks>) -> Self {
        Self {
            store,
            events,
            receipts,
            unread: Mutex::default(),
        }
    }

    /// Forgets the cached counts and the noted records of a user in a room (their
    /// records changed): nothing up to the highest stream position handed out so far is
    /// counted from memory again.
    pub(super) fn forget(&self, user_id: &UserId, room_id: &RoomId) {
        // Without an entry there is nothing to forget: one made later starts complete
        // only after the position allocated when it is made.
        let allocated = self.events.allocated();
        if let Some(entry) = lock(&self.unread)
            .get_mut(user_id)
            .and_then(|rooms| rooms.get_mut(room_id))
        {
            entry.forget(allocated);
        }
    }

    /// Forgets the cached counts and noted records of every user in a room (its shared
    /// records changed).
    pub(super) fn forget_room(&self, room_id: &RoomId) {
        let allocated = self.events.allocated();
        for rooms in lock(&self.unread).values_mut() {
            if let Some(entry) = rooms.get_mut(room_id) {
                entry.forget(allocated);
            }
        }
    }

    /// Notes the records of an event at `stream`, `(user, highlight)`, once they are
    /// written and before the event becomes visible, so that a count made once it is
    /// visible finds them here.
    pub(super) fn note_written(
        &self,
        room_id: &RoomId,
        stream: u64,
        records: &[(OwnedUserId, bool)],
    ) {
        let mut unread = lock(&self.unread);
        for (user_id, highlight) in records {
            if let Some(entry) = unread
                .get_mut(user_id)
                .and_then(|rooms| rooms.get_mut(room_id))
            {
                entry.note(stream, *highlight);
            }
        }
    }

    /// Counts for the room as of stream position `to` (a visible one). `joined_at`, the
    /// start of the user's current join, bounds the count when the user has no receipt,
    /// and the room's shared records always.
    pub fn room(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        joined_at: u64,
        to: u64,
    ) -> Result<Counts> {
        let (receipts_at, read) = self.read_position(user_id, room_id)?;
        let from = read.unwrap_or(joined_at);
        let (start, generation) = {
            let mut map = lock(&self.unread);
            // Keys are copied only for a new entry.
            if !map.contains_key(user_id) {
                map.insert(user_id.to_owned(), HashMap::new());
            }
            let rooms = map.get_mut(user_id).expect("user entry exists");
            if !rooms.contains_key(room_id) {
                // Made under the lock: an event allocated after this is noted once
                // written, as the entry exists by then.
                rooms.insert(room_id.to_owned(), Unread::new(self.events.allocated()));
            }
            let unread = rooms.get_mut(room_id).expect("room entry exists");
            unread.read = Some((receipts_at, read));
            if to <= from {
                return Ok(Counts::default());
            }
            if let Some(counts) = unread.counted_in_memory(from, to) {
                return Ok(counts);
            }
            let start = match unread.counted {
                Some(entry) if entry.from == from && entry.to <= to => entry,
                _ => Entry {
                    from,
                    to: from,
                    counts: Counts::default(),
                },
            };
            (start, unread.generation)
        };
        let mut entry = start;
        if entry.to < to {
            let more = unread_in_room(&self.store, user_id, room_id, entry.to, to, joined_at)?;
            entry.counts.notifications += more.notifications;
            entry.counts.highlights += more.highlights;
            entry.to = to;
        }
        if let Some(unread) = lock(&self.unread)
            .get_mut(user_id)
            .and_then(|rooms| rooms.get_mut(room_id))
            .filter(|unread| unread.generation == generation)
        {
            unread.counted = Some(entry);
        }
        Ok(entry.counts)
    }

    /// The user's read position in the room ([`read_up_to`]), from memory while no
    /// receipt was written since the last count of the room.
    pub fn read_up_to(&self, user_id: &UserId, room_id: &RoomId) -> Result<Option<u64>> {
        Ok(self.read_position(user_id, room_id)?.1)
    }

    /// The read position and the receipt stream position it holds at.
    fn read_position(&self, user_id: &UserId, room_id: &RoomId) -> Result<(u64, Option<u64>)> {
        // Read before the receipts: a receipt written meanwhile moves it past this.
        let receipts_at = self.receipts.visible();
        let known_read = lock(&self.unread)
            .get(user_id)
            .and_then(|rooms| rooms.get(room_id))
            .and_then(|unread| unread.read)
            .filter(|(at, _)| *at == receipts_at)
            .map(|(_, read)| read);
        let read = match known_read {
            Some(read) => read,
            None => read_up_to(&self.store, user_id, room_id)?,
        };
        Ok((receipts_at, read))
    }

    /// The user's unread notifications over every room they are joined to, as of the
    /// visible stream position: the badge of a push gateway.
    pub fn total(&self, user_id: &UserId) -> Result<u64> {
        let to = self.events.visible();
        let mut total = 0;
        for (room_id, membership) in self.store.user_rooms_shared(user_id.as_str())?.iter() {
            if membership.membership != "join" {
                continue;
            }
            let counts = self.room(user_id, room_id, membership.since(), to)?;
            // One room's count from the store stops at MAX_COUNT records.
            total += counts.notifications.min(MAX_COUNT as u64);
        }
        Ok(total)
    }
}

impl Services {
    /// Counts for the room as of stream position `to`. `joined_at` bounds the count when
    /// the user has no receipt.
    pub fn unread_counts(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        joined_at: u64,
        to: u64,
    ) -> Result<Counts> {
        self.notifications
            .counts
            .room(user_id, room_id, joined_at, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(notifications: u64, highlights: u64) -> Option<Counts> {
        Some(Counts {
            notifications,
            highlights,
        })
    }

    #[test]
    fn noted_records_move_the_counts_forwards_and_back() {
        let mut unread = Unread::new(10);
        unread.note(11, false);
        unread.note(12, true);
        unread.note(14, false);
        assert_eq!(unread.counted_in_memory(10, 12), counts(2, 1));
        assert_eq!(unread.counted_in_memory(10, 14), counts(3, 1));
        // A reader at an earlier position than the last one.
        assert_eq!(unread.counted_in_memory(10, 11), counts(1, 0));
        assert_eq!(unread.counted_in_memory(10, 14), counts(3, 1));
        // Another start (a receipt moved) counts from the noted records alone.
        assert_eq!(unread.counted_in_memory(12, 14), counts(1, 0));
        // Before the entry was made the store must answer.
        assert_eq!(unread.counted_in_memory(9, 14), None);
    }

    #[test]
    fn records_dropped_or_forgotten_are_left_to_the_store() {
        let mut unread = Unread::new(0);
        for stream in 1..=RECENT_RECORDS as u64 + 2 {
            unread.note(stream, false);
        }
        // Records 1 and 2 were dropped.
        assert_eq!(unread.counted_in_memory(1, 10), None);
        assert_eq!(unread.counted_in_memory(2, 10), counts(8, 0));
        unread.forget(70);
        assert_eq!(unread.counted.map(|e| e.counts), None);
        assert_eq!(unread.counted_in_memory(2, 71), None);
        unread.note(71, true);
        assert_eq!(unread.counted_in_memory(70, 71), counts(1, 1));
    }
}
