//! Unread counts (`unread_notifications` in `/sync`, `counts.unread` for push gateways):
//! the recorded notifications of a room after the user's read receipt, and those among
//! them that highlight. Counts per user and room are cached and extended as new records
//! arrive; a moved receipt or a withdrawn record starts them again.

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

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// The receipt the counts start from (event stream position).
    from: u64,
    /// The counts cover records up to here.
    to: u64,
    counts: Counts,
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
        let from = read_up_to(&self.store, user_id, room_id)?.unwrap_or(joined_at);
        let key = (user_id.to_owned(), room_id.to_owned());
        let cached = lock(&self.notifications.counts).get(&key).copied();
        let mut entry = match cached {
            Some(entry) if entry.from == from && entry.to <= to => {
                // Counts read since this process started see every later record staged.
                if !self.notifications.staged_after(user_id, room_id, entry.to) {
                    let entry = Entry { to, ..entry };
                    lock(&self.notifications.counts).insert(key, entry);
                    return Ok(entry.counts);
                }
                entry
            }
            _ => Entry {
                from,
                to: from,
                counts: Counts::default(),
            },
        };
        if entry.to < to {
            let more = unread_in_room(&self.store, user_id, room_id, entry.to, to)?;
            entry.counts.notifications += more.notifications;
            entry.counts.highlights += more.highlights;
            entry.to = to;
        }
        lock(&self.notifications.counts).insert(key, entry);
        Ok(entry.counts)
    }
}
