//! Unread counts (`unread_notifications` and `unread_thread_notifications` in `/sync`,
//! `counts.unread` for push gateways): the recorded notifications of a room that the
//! user's read receipts do not cover, split by thread (the main timeline and each thread
//! root, see [`Reads`]), and those among them that highlight. Counts per user and room
//! are cached and moved along as new records arrive; a moved receipt starts the counts
//! of the threads it covers again, a withdrawn record all of them.
//!
//! The records this process writes are also noted in memory, per user and room (the
//! latest [`RECENT_RECORDS`]), after their batch is written and before their event
//! becomes visible: a count that only needs records noted there (every sync after the
//! first, in an active room) reads nothing from the store. The read receipts the counts
//! start from are kept too, until the next receipt is written anywhere (receipts are
//! then read again from the store's record cache, in memory).
//!
//! A push gateway's badge is the sum over the user's joined rooms ([`UnreadCounts::total`]),
//! made of the same per-room counts, so after the first notify it reads nothing either.
//! The pushers' workers hold an [`UnreadCounts`] of their own (shared with the services).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use ruma::{EventId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};

use super::lock;
use super::reads::Reads;
use crate::error::Result;
use crate::service::Services;
use crate::service::positions::Watermarks;
use crate::store::Store;

/// The most records one count reads; older unread notifications are not counted.
const MAX_COUNT: usize = 10_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub notifications: u64,
    pub highlights: u64,
}

impl Counts {
    fn add(&mut self, highlight: bool) {
        self.notifications += 1;
        self.highlights += u64::from(highlight);
    }

    fn sub(&mut self, highlight: bool) {
        self.notifications = self.notifications.saturating_sub(1);
        self.highlights = self.highlights.saturating_sub(u64::from(highlight));
    }

    fn plus(self, other: Counts) -> Counts {
        Counts {
            notifications: self.notifications + other.notifications,
            highlights: self.highlights + other.highlights,
        }
    }
}

/// A room's unread counts: the main timeline's (thread roots among them) and each
/// thread's with unread notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadCounts {
    pub main: Counts,
    pub threads: BTreeMap<OwnedEventId, Counts>,
}

impl ThreadCounts {
    /// The main timeline and every thread together.
    pub fn total(&self) -> Counts {
        self.threads.values().fold(self.main, |sum, c| sum.plus(*c))
    }
}

/// Records noted per user and room; a user who does not sync for longer reads the older
/// ones from the store.
const RECENT_RECORDS: usize = 64;

/// One notification: its event's stream position, whether it highlights, its thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stream: u64,
    pub highlight: bool,
    pub thread: Option<OwnedEventId>,
}

/// The cached counts of one user in one room.
#[derive(Debug, Clone, PartialEq)]
struct Tally {
    /// The start of the user's join the counts were made for.
    joined_at: u64,
    /// The counts cover records up to here.
    to: u64,
    /// Per thread (`None`: the main timeline) with unread records: where its count
    /// starts ([`Reads::from`]) and the count.
    threads: HashMap<Option<OwnedEventId>, (u64, Counts)>,
}

impl Tally {
    fn new(joined_at: u64, to: u64) -> Self {
        Self {
            joined_at,
            to,
            threads: HashMap::new(),
        }
    }

    /// Counts a record after `to`, unless the thread's receipts cover it. `false` when
    /// the receipt of its thread is not loaded.
    fn add(&mut self, reads: &Reads, record: &Record) -> bool {
        let Some(from) = reads.from(self.joined_at, record.thread.as_deref()) else {
            return false;
        };
        if record.stream > from {
            self.threads
                .entry(record.thread.clone())
                .or_insert((from, Counts::default()))
                .1
                .add(record.highlight);
        }
        true
    }

    fn counts(&self) -> ThreadCounts {
        let mut out = ThreadCounts::default();
        for (thread, (_, counts)) in &self.threads {
            match thread {
                None => out.main = *counts,
                Some(root) if counts.notifications > 0 => {
                    out.threads.insert(root.clone(), *counts);
                }
                Some(_) => {}
            }
        }
        out
    }
}

/// What the memory can say about a count.
#[derive(Debug, PartialEq)]
enum InMemory {
    Counted(ThreadCounts),
    /// These threads' receipts are needed first.
    Receipts(Vec<OwnedEventId>),
    /// The store must answer: records after the given tally's `to` (valid for the
    /// receipts), or without one every record after the base.
    Store(Option<Tally>),
}

/// What is kept in memory for one user in one room.
struct Unread {
    /// The cached counts.
    counted: Option<Tally>,
    /// Records written by this process, in the order written.
    recent: VecDeque<Record>,
    /// How many of `recent` are in a thread: without any, a count needs no thread's
    /// receipt and the scan for them is skipped.
    threaded: usize,
    /// `recent` holds every record of the user in the room after this stream position.
    complete_after: u64,
    /// The user's receipts ([`Reads`]) and the receipt stream position they were read at.
    read: Option<(u64, Reads)>,
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
            threaded: 0,
            complete_after: started_at,
            read: None,
            generation: 0,
        }
    }

    fn note(&mut self, record: Record) {
        self.threaded += usize::from(record.thread.is_some());
        self.recent.push_back(record);
        if self.recent.len() > RECENT_RECORDS
            && let Some(dropped) = self.recent.pop_front()
        {
            self.threaded -= usize::from(dropped.thread.is_some());
            self.complete_after = self.complete_after.max(dropped.stream);
        }
    }

    /// The records changed: counts start again, and records up to `allocated` are read
    /// from the store.
    fn forget(&mut self, allocated: u64) {
        self.counted = None;
        self.recent.clear();
        self.threaded = 0;
        self.complete_after = self.complete_after.max(allocated);
        self.generation += 1;
    }

    /// The noted records of `thread` in `(after, to]`.
    fn noted(&self, thread: Option<&EventId>, after: u64, to: u64) -> Counts {
        let mut counts = Counts::default();
        for record in &self.recent {
            if record.stream > after && record.stream <= to && record.thread.as_deref() == thread {
                counts.add(record.highlight);
            }
        }
        counts
    }

    /// The cached tally brought to the receipts `reads`: a thread whose start moved is
    /// counted again from the noted records. `None` when these do not reach back far
    /// enough (or the join changed).
    fn revalidated(&self, mut tally: Tally, reads: &Reads) -> Option<Tally> {
        for (thread, (from, counts)) in tally.threads.iter_mut() {
            let now = reads.from(tally.joined_at, thread.as_deref())?;
            if now == *from {
                continue;
            }
            if now < *from || now < self.complete_after {
                return None;
            }
            *from = now;
            *counts = self.noted(thread.as_deref(), now, tally.to);
        }
        tally
            .threads
            .retain(|_, (_, counts)| counts.notifications > 0);
        Some(tally)
    }

    /// The counts in `(base, to]` from the cached counts and the noted records, when
    /// these cover what the cached counts lack (or hold beyond `to`: a reader at an
    /// earlier position than the last one).
    fn counted_in_memory(&mut self, reads: &Reads, joined_at: u64, to: u64) -> InMemory {
        let base = reads.base(joined_at);
        let mut missing: Vec<OwnedEventId> = Vec::new();
        let cached = self
            .counted
            .iter()
            .filter(|tally| tally.joined_at == joined_at)
            .flat_map(|tally| tally.threads.keys().flatten());
        // Without threaded records there is nothing to look for.
        let threaded = if self.threaded == 0 {
            0..0
        } else {
            0..self.recent.len()
        };
        let noted = self
            .recent
            .range(threaded)
            .filter(|record| record.stream > base && record.stream <= to)
            .filter_map(|record| record.thread.as_ref());
        for root in cached.chain(noted) {
            if !reads.threads.contains_key(root) && !missing.contains(root) {
                missing.push(root.clone());
            }
        }
        if !missing.is_empty() {
            return InMemory::Receipts(missing);
        }
        let tally = match self.counted.take().filter(|t| t.joined_at == joined_at) {
            Some(tally) => match self.revalidated(tally, reads) {
                Some(tally) => tally,
                None => return InMemory::Store(None),
            },
            None => Tally::new(joined_at, base),
        };
        if tally.to <= to {
            if tally.to < self.complete_after {
                return InMemory::Store(Some(tally));
            }
            let mut tally = tally;
            for record in &self.recent {
                if record.stream > tally.to && record.stream <= to && !tally.add(reads, record) {
                    return InMemory::Store(None);
                }
            }
            tally.to = to;
            let counts = tally.counts();
            self.counted = Some(tally);
            InMemory::Counted(counts)
        } else {
            if to < self.complete_after {
                self.counted = Some(tally);
                return InMemory::Store(None);
            }
            let mut earlier = tally.clone();
            for record in &self.recent {
                if record.stream > to
                    && record.stream <= tally.to
                    && let Some((from, counts)) = earlier.threads.get_mut(&record.thread)
                    && record.stream > *from
                {
                    counts.sub(record.highlight);
                }
            }
            self.counted = Some(tally);
            InMemory::Counted(earlier.counts())
        }
    }
}

/// The recorded notifications in the room after `from` up to `to`, oldest first: the
/// user's own records and the room's shared ones that apply to them, these only after
/// `joined_since` (the start of the user's current join: before it the user was not a
/// member they covered).
pub fn unread_in_room(
    store: &Store,
    user_id: &UserId,
    room_id: &RoomId,
    from: u64,
    to: u64,
    joined_since: u64,
) -> Result<Vec<Record>> {
    let mut records: Vec<Record> = store
        .room_notifications_after(user_id.as_str(), room_id.as_str(), from, to, MAX_COUNT)?
        .into_iter()
        .map(|(stream, record)| Record {
            stream,
            highlight: record.highlight,
            thread: record.thread,
        })
        .collect();
    let shared = store.push_events_after(
        room_id.as_str(),
        from.max(joined_since),
        to,
        MAX_COUNT,
        |record| record.applies_to(user_id.as_str()),
    )?;
    records.extend(shared.into_iter().map(|(stream, record)| Record {
        stream,
        highlight: record.highlight,
        thread: record.thread,
    }));
    records.sort_by_key(|record| record.stream);
    Ok(records)
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

    /// Notes the records of an event at `stream` in `thread`, `(user, highlight)`, once
    /// they are written and before the event becomes visible, so that a count made once
    /// it is visible finds them here.
    pub(super) fn note_written(
        &self,
        room_id: &RoomId,
        stream: u64,
        thread: Option<&EventId>,
        records: &[(OwnedUserId, bool)],
    ) {
        let mut unread = lock(&self.unread);
        for (user_id, highlight) in records {
            if let Some(entry) = unread
                .get_mut(user_id)
                .and_then(|rooms| rooms.get_mut(room_id))
            {
                entry.note(Record {
                    stream,
                    highlight: *highlight,
                    thread: thread.map(ToOwned::to_owned),
                });
            }
        }
    }

    /// Counts for the room as of stream position `to` (a visible one), per thread.
    /// `joined_at`, the start of the user's current join, bounds the count: nothing
    /// before it is unread.
    pub fn room(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        joined_at: u64,
        to: u64,
    ) -> Result<ThreadCounts> {
        // Read before the receipts: a receipt written meanwhile moves it past this.
        let receipts_at = self.receipts.visible();
        let known = lock(&self.unread)
            .get(user_id)
            .and_then(|rooms| rooms.get(room_id))
            .and_then(|unread| unread.read.as_ref())
            .filter(|(at, _)| *at == receipts_at)
            .map(|(_, reads)| reads.clone());
        let mut reads = match known {
            Some(reads) => reads,
            None => Reads::load(&self.store, user_id, room_id)?,
        };
        let mut attempts = 0;
        let (start, generation) = loop {
            let missing = {
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
                if to <= reads.base(joined_at) {
                    unread.read = Some((receipts_at, reads));
                    return Ok(ThreadCounts::default());
                }
                match unread.counted_in_memory(&reads, joined_at, to) {
                    InMemory::Counted(counts) => {
                        unread.read = Some((receipts_at, reads));
                        return Ok(counts);
                    }
                    InMemory::Store(start) => break (start, unread.generation),
                    InMemory::Receipts(missing) if attempts < 3 => missing,
                    InMemory::Receipts(_) => break (None, unread.generation),
                }
            };
            attempts += 1;
            for root in missing {
                reads.load_thread(&self.store, user_id, room_id, &root)?;
            }
        };
        let mut tally = start.unwrap_or_else(|| Tally::new(joined_at, reads.base(joined_at)));
        if tally.to < to {
            let records = unread_in_room(&self.store, user_id, room_id, tally.to, to, joined_at)?;
            for record in &records {
                if !tally.add(&reads, record)
                    && let Some(root) = &record.thread
                {
                    reads.load_thread(&self.store, user_id, room_id, root)?;
                    tally.add(&reads, record);
                }
            }
            tally.to = to;
        }
        let counts = tally.counts();
        if let Some(unread) = lock(&self.unread)
            .get_mut(user_id)
            .and_then(|rooms| rooms.get_mut(room_id))
            .filter(|unread| unread.generation == generation)
        {
            unread.counted = Some(tally);
            unread.read = Some((receipts_at, reads));
        }
        Ok(counts)
    }

    /// The stream position up to which the user has read `thread` (`None`: the main
    /// timeline) in the room, as [`super::read_up_to`] answers it: from the receipts kept
    /// here for the counts while no receipt was written since they were read (a thread's
    /// receipt is read once and kept with them), else from the store, and kept.
    pub fn read_up_to(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        thread: Option<&EventId>,
    ) -> Result<Option<u64>> {
        // Read before the receipts: a receipt written meanwhile moves it past this.
        let receipts_at = self.receipts.visible();
        let kept = {
            let unread = lock(&self.unread);
            let kept = unread
                .get(user_id)
                .and_then(|rooms| rooms.get(room_id))
                .and_then(|entry| entry.read.as_ref())
                .filter(|(at, _)| *at == receipts_at)
                .map(|(_, reads)| reads);
            match kept.map(|reads| (reads.up_to(thread), reads)) {
                Some((Some(at), _)) => return Ok(at),
                // Kept, but not yet this thread's receipt.
                Some((None, reads)) => Some(reads.clone()),
                None => None,
            }
        };
        let mut reads = match kept {
            Some(reads) => reads,
            None => Reads::load(&self.store, user_id, room_id)?,
        };
        if let Some(root) = thread
            && !reads.threads.contains_key(root)
        {
            reads.load_thread(&self.store, user_id, room_id, root)?;
        }
        let at = reads.up_to(thread).flatten();
        // Kept only where the counts keep theirs (the badge made the entry).
        if let Some(entry) = lock(&self.unread)
            .get_mut(user_id)
            .and_then(|rooms| rooms.get_mut(room_id))
            && entry
                .read
                .as_ref()
                .is_none_or(|(kept_at, _)| *kept_at <= receipts_at)
        {
            entry.read = Some((receipts_at, reads));
        }
        Ok(at)
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
            let counts = self.room(user_id, room_id, membership.since(), to)?.total();
            // One room's count from the store stops at MAX_COUNT records.
            total += counts.notifications.min(MAX_COUNT as u64);
        }
        Ok(total)
    }
}

impl Services {
    /// Counts for the room as of stream position `to`, per thread. `joined_at` (the start
    /// of the user's current join) bounds the count.
    pub fn unread_counts(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        joined_at: u64,
        to: u64,
    ) -> Result<ThreadCounts> {
        self.notifications
            .counts
            .room(user_id, room_id, joined_at, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(notifications: u64, highlights: u64) -> Counts {
        Counts {
            notifications,
            highlights,
        }
    }

    fn main_only(notifications: u64, highlights: u64) -> InMemory {
        InMemory::Counted(ThreadCounts {
            main: counts(notifications, highlights),
            threads: BTreeMap::new(),
        })
    }

    fn record(stream: u64, highlight: bool, thread: Option<&str>) -> Record {
        Record {
            stream,
            highlight,
            thread: thread.map(|t| t.try_into().unwrap()),
        }
    }

    fn root(id: &str) -> OwnedEventId {
        id.try_into().unwrap()
    }

    #[test]
    fn noted_records_move_the_counts_forwards_and_back() {
        let mut unread = Unread::new(10);
        unread.note(record(11, false, None));
        unread.note(record(12, true, None));
        unread.note(record(14, false, None));
        let mut reads = Reads::default();
        assert_eq!(unread.counted_in_memory(&reads, 10, 12), main_only(2, 1));
        assert_eq!(unread.counted_in_memory(&reads, 10, 14), main_only(3, 1));
        // A reader at an earlier position than the last one.
        assert_eq!(unread.counted_in_memory(&reads, 10, 11), main_only(1, 0));
        assert_eq!(unread.counted_in_memory(&reads, 10, 14), main_only(3, 1));
        // Another start (a receipt moved) counts from the noted records alone.
        reads.unthreaded = Some(12);
        assert_eq!(unread.counted_in_memory(&reads, 10, 14), main_only(1, 0));
        // Before the entry was made the store must answer.
        reads.unthreaded = None;
        assert!(matches!(
            unread.counted_in_memory(&reads, 9, 14),
            InMemory::Store(_)
        ));
    }

    #[test]
    fn records_dropped_or_forgotten_are_left_to_the_store() {
        let mut unread = Unread::new(0);
        for stream in 1..=RECENT_RECORDS as u64 + 2 {
            unread.note(record(stream, false, None));
        }
        // Records 1 and 2 were dropped.
        let reads = Reads::default();
        assert!(matches!(
            unread.counted_in_memory(&reads, 1, 10),
            InMemory::Store(_)
        ));
        assert_eq!(unread.counted_in_memory(&reads, 2, 10), main_only(8, 0));
        unread.forget(70);
        assert_eq!(unread.counted, None);
        assert!(matches!(
            unread.counted_in_memory(&reads, 2, 71),
            InMemory::Store(_)
        ));
        unread.note(record(71, true, None));
        assert_eq!(unread.counted_in_memory(&reads, 70, 71), main_only(1, 1));
    }

    #[test]
    fn each_receipt_reads_its_own_thread() {
        let mut unread = Unread::new(10);
        unread.note(record(11, false, None));
        unread.note(record(12, true, Some("$a")));
        unread.note(record(13, false, Some("$b")));
        unread.note(record(14, false, Some("$a")));
        unread.note(record(15, false, None));
        let mut reads = Reads::default();
        // The threads' receipts are asked for before anything is counted.
        assert_eq!(
            unread.counted_in_memory(&reads, 10, 15),
            InMemory::Receipts(vec![root("$a"), root("$b")])
        );
        reads.threads.insert(root("$a"), None);
        reads.threads.insert(root("$b"), None);
        let all = ThreadCounts {
            main: counts(2, 0),
            threads: BTreeMap::from([(root("$a"), counts(2, 1)), (root("$b"), counts(1, 0))]),
        };
        assert_eq!(
            unread.counted_in_memory(&reads, 10, 15),
            InMemory::Counted(all.clone())
        );
        assert_eq!(all.total(), counts(5, 1));
        // A receipt in thread $a at 12 reads its first record only.
        reads.threads.insert(root("$a"), Some(12));
        let InMemory::Counted(now) = unread.counted_in_memory(&reads, 10, 15) else {
            panic!("counted from memory");
        };
        assert_eq!(now.threads.get(&root("$a")), Some(&counts(1, 0)));
        assert_eq!((now.main, now.threads.len()), (counts(2, 0), 2));
        // A `main` receipt at the newest event leaves the threads unread.
        reads.main = Some(15);
        let InMemory::Counted(now) = unread.counted_in_memory(&reads, 10, 15) else {
            panic!("counted from memory");
        };
        assert_eq!(now.main, counts(0, 0));
        assert_eq!(now.total(), counts(2, 0));
        // Receipts only move forwards: nothing is unread after a `main` receipt at 15 and
        // an unthreaded one at 14.
        reads.unthreaded = Some(14);
        assert_eq!(
            unread.counted_in_memory(&reads, 10, 15),
            InMemory::Counted(ThreadCounts::default())
        );
        // Another user, who has no receipt, then reads the room at an earlier position.
        let reads = Reads {
            threads: HashMap::from([(root("$a"), None), (root("$b"), None)]),
            ..Reads::default()
        };
        let mut fresh = Unread::new(10);
        for record in &unread.recent {
            fresh.note(record.clone());
        }
        assert_eq!(
            fresh.counted_in_memory(&reads, 10, 15),
            InMemory::Counted(all)
        );
        let InMemory::Counted(earlier) = fresh.counted_in_memory(&reads, 10, 13) else {
            panic!("counted from memory");
        };
        assert_eq!(earlier.main, counts(1, 0));
        assert_eq!(earlier.total(), counts(3, 1));
        // An unthreaded receipt at 14 reads every thread up to it.
        let reads = Reads {
            unthreaded: Some(14),
            ..reads
        };
        assert_eq!(fresh.counted_in_memory(&reads, 10, 15), main_only(1, 0));
    }
}
