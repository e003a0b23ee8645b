//! A pusher worker's feed: the notifications of its user that the send path records,
//! handed over in memory as they are written (before their event becomes visible), so
//! that the worker does not read back from the store what was written a moment ago.
//!
//! The store stays the source of truth: the feed holds every notification of the user
//! after a stream position ([`Feed::complete_after`], the position allocated when the
//! worker started, moved on when the feed overflows or records are withdrawn). A worker
//! whose progress is before it (after a start, after falling behind) reads its queue from
//! the store until it has caught up past it. A feed holds at most [`FEED_MAX`] records.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::store::NotificationRecord;

/// The most notifications a feed holds: about twenty seconds of a busy user's.
pub(super) const FEED_MAX: usize = 512;

/// A notification with its event's stream position, shared by the pushers of the users
/// that share it (the room's record).
pub(super) type Fed = (u64, Arc<NotificationRecord>);

pub(super) struct Feed {
    /// Oldest first (by stream position).
    records: VecDeque<Fed>,
    /// The feed holds every notification of the user after this stream position.
    complete_after: u64,
}

impl Feed {
    /// An empty feed that will hold every notification after `allocated`, the highest
    /// stream position handed out when it is made.
    pub(super) fn new(allocated: u64) -> Self {
        Self {
            records: VecDeque::new(),
            complete_after: allocated,
        }
    }

    /// Notes a written notification. Positions are written in nearly their order; one
    /// written after a later one goes in its place. The oldest overflows.
    pub(super) fn push(&mut self, stream: u64, record: Arc<NotificationRecord>) {
        if stream <= self.complete_after {
            return;
        }
        let at = self
            .records
            .iter()
            .rposition(|(s, _)| *s < stream)
            .map_or(0, |i| i + 1);
        self.records.insert(at, (stream, record));
        if self.records.len() > FEED_MAX
            && let Some((dropped, _)) = self.records.pop_front()
        {
            self.complete_after = dropped;
        }
    }

    /// Every notification after `seen` up to `to` (visible), oldest first; `None` when
    /// the feed does not hold all of them (the store must answer).
    pub(super) fn take(&mut self, seen: u64, to: u64) -> Option<Vec<Fed>> {
        while self.records.front().is_some_and(|(s, _)| *s <= seen) {
            self.records.pop_front();
        }
        if seen < self.complete_after {
            return None;
        }
        let end = self.records.partition_point(|(s, _)| *s <= to);
        Some(self.records.drain(..end).collect())
    }

    /// The user's records changed (withdrawn, evaluated again): those up to `allocated`
    /// are read from the store.
    pub(super) fn reset(&mut self, allocated: u64) {
        self.records.clear();
        self.complete_after = self.complete_after.max(allocated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Arc<NotificationRecord> {
        Arc::new(NotificationRecord {
            room_id: "!r:x".try_into().unwrap(),
            event_id: format!("$e{n}").try_into().unwrap(),
            actions: Vec::new(),
            highlight: false,
            thread: None,
            ts: n,
        })
    }

    fn streams(taken: Option<Vec<Fed>>) -> Option<Vec<u64>> {
        taken.map(|t| t.into_iter().map(|(s, _)| s).collect())
    }

    #[test]
    fn a_feed_hands_over_what_is_visible_in_order_once() {
        let mut feed = Feed::new(10);
        // Before the feed started: not held.
        feed.push(9, record(9));
        for s in [11, 13, 12, 15] {
            feed.push(s, record(s));
        }
        // A worker whose progress is before the start reads the store.
        assert_eq!(streams(feed.take(5, 20)), None);
        // Up to the visible position only, and only after what the worker has seen.
        assert_eq!(streams(feed.take(11, 13)), Some(vec![12, 13]));
        assert_eq!(streams(feed.take(13, 13)), Some(vec![]));
        assert_eq!(streams(feed.take(13, 20)), Some(vec![15]));
        assert_eq!(streams(feed.take(20, 20)), Some(vec![]));
    }

    #[test]
    fn an_overflowing_or_reset_feed_sends_the_worker_to_the_store() {
        let mut feed = Feed::new(0);
        let last = FEED_MAX as u64 + 3;
        for s in 1..=last {
            feed.push(s, record(s));
        }
        // The three oldest went: a worker that has not seen them reads the store.
        assert_eq!(streams(feed.take(2, last)), None);
        let taken = streams(feed.take(3, last)).unwrap();
        assert_eq!(taken.len(), FEED_MAX);
        assert_eq!(taken.first(), Some(&4));

        feed.push(last + 1, record(last + 1));
        feed.reset(last + 5);
        assert_eq!(streams(feed.take(last, last + 5)), None);
        feed.push(last + 4, record(last + 4));
        feed.push(last + 6, record(last + 6));
        assert_eq!(streams(feed.take(last + 5, last + 6)), Some(vec![last + 6]));
    }
}
