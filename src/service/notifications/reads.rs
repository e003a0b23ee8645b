//! Where a user has read up to in a room, thread by thread (Client-Server API §Receipts →
//! Threaded read receipts): an unthreaded receipt reads everything up to its event, a
//! `main` receipt the main timeline (events in no thread, thread roots among them), a
//! receipt with a thread root's ID that thread. Public (`m.read`) and private
//! (`m.read.private`) receipts count alike: the newer of the two applies.

use std::collections::HashMap;

use ruma::{EventId, OwnedEventId, RoomId, UserId};

use crate::error::Result;
use crate::service::receipts::{READ, READ_PRIVATE};
use crate::store::{ReceiptChange, Store};

/// The receipt key of the main timeline (`thread_id: "main"`).
const MAIN: &str = "main";

/// The stream position of the newest event the user has a receipt (public or private)
/// for under `thread` (empty: unthreaded; `main`; a thread root's ID).
fn receipt_at(
    store: &Store,
    user_id: &UserId,
    room_id: &RoomId,
    thread: &str,
) -> Result<Option<u64>> {
    let mut newest = None;
    for receipt_type in [READ, READ_PRIVATE] {
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
    Ok(newest)
}

/// The stream position up to which the user has read the events of `thread` (`None`:
/// the main timeline) in the room: the newer of their unthreaded receipt and that
/// thread's own. An event at or before it is read.
pub fn read_up_to(
    store: &Store,
    user_id: &UserId,
    room_id: &RoomId,
    thread: Option<&EventId>,
) -> Result<Option<u64>> {
    let unthreaded = receipt_at(store, user_id, room_id, "")?;
    let own = receipt_at(
        store,
        user_id,
        room_id,
        thread.map_or(MAIN, EventId::as_str),
    )?;
    Ok(unthreaded.max(own))
}

/// A user's receipts in one room, as the unread counts need them: the unthreaded and
/// `main` ones always, a thread's once a count met a notification in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    pub unthreaded: Option<u64>,
    pub main: Option<u64>,
    /// Per thread root: its receipt, if any (absent: not read from the store yet).
    pub threads: HashMap<OwnedEventId, Option<u64>>,
}

impl Reads {
    /// The unthreaded and `main` receipts.
    pub fn load(store: &Store, user_id: &UserId, room_id: &RoomId) -> Result<Self> {
        Ok(Self {
            unthreaded: receipt_at(store, user_id, room_id, "")?,
            main: receipt_at(store, user_id, room_id, MAIN)?,
            threads: HashMap::new(),
        })
    }

    /// Adds the receipt of a thread.
    pub fn load_thread(
        &mut self,
        store: &Store,
        user_id: &UserId,
        room_id: &RoomId,
        root: &EventId,
    ) -> Result<()> {
        let at = receipt_at(store, user_id, room_id, root.as_str())?;
        self.threads.insert(root.to_owned(), at);
        Ok(())
    }

    /// What [`read_up_to`] answers for `thread` (`None`: the main timeline), or `None`
    /// when that thread's receipt is not loaded.
    pub fn up_to(&self, thread: Option<&EventId>) -> Option<Option<u64>> {
        let own = match thread {
            None => self.main,
            Some(root) => *self.threads.get(root)?,
        };
        Some(self.unthreaded.max(own))
    }

    /// Nothing at or before this position is unread: the later of the start of the
    /// user's join (`joined_at`) and their unthreaded receipt.
    pub fn base(&self, joined_at: u64) -> u64 {
        joined_at.max(self.unthreaded.unwrap_or(0))
    }

    /// Where the unread events of `thread` (`None`: the main timeline) start: after the
    /// base and the thread's own receipt. `None` when the thread's receipt is not loaded.
    pub fn from(&self, joined_at: u64, thread: Option<&EventId>) -> Option<u64> {
        let own = match thread {
            None => self.main,
            Some(root) => *self.threads.get(root)?,
        };
        Some(self.base(joined_at).max(own.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_starts_after_the_newest_receipt_that_covers_it() {
        let root: OwnedEventId = "$root".try_into().unwrap();
        let other: OwnedEventId = "$other".try_into().unwrap();
        let mut reads = Reads {
            unthreaded: None,
            main: Some(20),
            threads: HashMap::from([(root.clone(), Some(30)), (other.clone(), None)]),
        };
        // Without an unthreaded receipt: the join, then each thread's own receipt.
        assert_eq!(reads.base(5), 5);
        assert_eq!(reads.from(5, None), Some(20));
        assert_eq!(reads.from(5, Some(&root)), Some(30));
        assert_eq!(reads.from(5, Some(&other)), Some(5));
        // A thread whose receipt was not read yet.
        assert_eq!(
            reads.from(5, Some(<&EventId>::try_from("$new").unwrap())),
            None
        );
        // An unthreaded receipt covers the main timeline and every thread.
        reads.unthreaded = Some(25);
        assert_eq!(reads.from(5, None), Some(25));
        assert_eq!(reads.from(5, Some(&root)), Some(30));
        assert_eq!(reads.from(5, Some(&other)), Some(25));
        // Nothing before the join counts, whatever the receipts.
        assert_eq!(reads.from(40, Some(&root)), Some(40));
        // Where the pushers' "read already" check stops: the join does not count there.
        assert_eq!(reads.up_to(None), Some(Some(25)));
        assert_eq!(reads.up_to(Some(&root)), Some(Some(30)));
        assert_eq!(reads.up_to(Some(&other)), Some(Some(25)));
        assert_eq!(
            reads.up_to(Some(<&EventId>::try_from("$new").unwrap())),
            None
        );
    }
}
