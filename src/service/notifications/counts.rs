//! Unread counts (`unread_notifications` in `/sync`, `counts.unread` for push gateways):
//! the recorded notifications of a room after the user's read receipt, and those among
//! them that highlight. Counts per user and room are cached and extended as new records
//! arrive; a moved receipt or a withdrawn record starts them again.
//!
//! The records this process writes are also noted in memory, per user and room (the
//! latest [`RECENT_RECORDS`]), after their batch is written and before their event
//! becomes visible: a count that only needs records noted there (every sync after the
//! first, in an active room) reads nothing from the store. The read receipt the count
//! starts from is kept too, until the next receipt is written anywhere.

use std::collections::VecDeque;

use ruma::{RoomId, UserId};

use super::lock;
use crate::error::Result;
use crate::service::Services;
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
pub(super) struct Unread {
    /// The cached counts.
    counted: Option<Entry>,
    /// Records written by this process, `(stream, highlight)`, in the order written.
    recent: VecDeque<(u64, bool)>,
    /// `recent` holds every record of the user in the room after this stream position.
    complete_after: u64,
    /// The user's read position ([`read_up_to`]) and the receipt stream position it was
    /// read at.
    read: Option<(u64, Option<u64>)>,
}

impl Unread {
    /// Nothing noted yet: every record after `started_at` (the position allocated when
    /// the entry is made) will be.
    pub(super) fn new(started_at: u64) -> Self {
        Self {
            counted: None,
            recent: VecDeque::new(),
            complete_after: started_at,
            read: None,
        }
    }

    pub(super) fn note(&mut self, stream: u64, highlight: bool) {
        self.recent.push_back((stream, highlight));
        if self.recent.len() > RECENT_RECORDS
            && let Some((dropped, _)) = self.recent.pop_front()
        {
            self.complete_after = self.complete_after.max(dropped);
        }
    }

    /// The records changed: counts start again, and records up to `allocated` are read
    /// from the store.
    pub(super) fn forget(&mut self, allocated: u64) {
        self.counted = None;
        self.recent.clear();
        self.complete_after = self.complete_after.max(allocated);
    }

    /// Counts `entry` up to `to` with the noted records, when they cover what it lacks.
    fn extend_from_memory(&self, mut entry: Entry, to: u64) -> Option<Entry> {
        if entry.to < self.complete_after {
            return None;
        }
        for (stream, highlight) in &self.recent {
            if *stream > entry.to && *stream <= to {
                entry.counts.notifications += 1;
                entry.counts.highlights += u64::from(*highlight);
            }
        }
        entry.to = to;
        Some(entry)
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

/// The recorded notifications in the room after `from` up to `to`.
pub fn unread_in_room(
    store: &Store,
    user_id: &UserId,
    room_id: &RoomId,
    from: u64,
    to: u64,
) -> Result<Counts> {
    let mut counts = Counts::default();
    for (_, record) in
        store.room_notifications_after(user_id.as_str(), room_id.as_str(), from, to, MAX_COUNT)?
    {
        counts.notifications += 1;
        counts.highlights += u64::from(record.highlight);
    }
    Ok(counts)
}

/// The user's unread notifications over every room they are joined to.
pub fn total_unread(store: &Store, user_id: &UserId) -> Result<u64> {
    let mut total = 0;
    for (room_id, membership) in store.user_rooms(user_id.as_str())? {
        if membership.membership != "join" {
            continue;
        }
        let from = read_up_to(store, user_id, &room_id)?.unwrap_or(membership.stream);
        total += unread_in_room(store, user_id, &room_id, from, u64::MAX)?.notifications;
    }
    Ok(total)
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
        let key = (user_id.to_owned(), room_id.to_owned());
        // Read before the receipts: a receipt written meanwhile moves it past this.
        let receipts_at = self.receipts.position();
        let known_read = lock(&self.notifications.unread)
            .get(&key)
            .and_then(|unread| unread.read)
            .filter(|(at, _)| *at == receipts_at)
            .map(|(_, read)| read);
        let read = match known_read {
            Some(read) => read,
            None => read_up_to(&self.store, user_id, room_id)?,
        };
        let from = read.unwrap_or(joined_at);
        let start = {
            let mut map = lock(&self.notifications.unread);
            let unread = map
                .entry(key.clone())
                // Read under the lock: an event allocated after this is noted once
                // written, as the entry exists by then.
                .or_insert_with(|| Unread::new(self.rooms.allocated_position()));
            unread.read = Some((receipts_at, read));
            let start = match unread.counted {
                Some(entry) if entry.from == from && entry.to <= to => entry,
                _ => Entry {
                    from,
                    to: from,
                    counts: Counts::default(),
                },
            };
            if let Some(entry) = unread.extend_from_memory(start, to) {
                unread.counted = Some(entry);
                return Ok(entry.counts);
            }
            start
        };
        let mut entry = start;
        if entry.to < to {
            let more = unread_in_room(&self.store, user_id, room_id, entry.to, to)?;
            entry.counts.notifications += more.notifications;
            entry.counts.highlights += more.highlights;
            entry.to = to;
        }
        if let Some(unread) = lock(&self.notifications.unread).get_mut(&key) {
            unread.counted = Some(entry);
        }
        Ok(entry.counts)
    }
}
