//! One pusher's queue: the user's notifications after its progress, taken from its feed
//! or the store, and what to send next: the oldest notification not yet read, or a
//! badge-only update when the user read on some device. A lane is driven by a worker of
//! its own ([`super::deliver`]) or by the worker of its gateway's origin
//! ([`super::origin`]), which sends the requests of many lanes together.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ruma::OwnedUserId;

use super::body::PusherPart;
use super::feed::Fed;
use super::{Pushers, Signals, lock};
use crate::service::notifications::notifications_after;
use crate::store::PusherRecord;

/// The longest wait between a pusher's attempts.
const MAX_RETRY: Duration = Duration::from_secs(600);
/// After this many failed attempts a notification is given up (about a day of retries).
const MAX_ATTEMPTS: u32 = 150;
/// The most notifications one read of the store takes into a lane's queue.
const READ_AT_ONCE: usize = 16;

/// 1 s, 2 s, 4 s … up to [`MAX_RETRY`].
fn backoff(failures: u32) -> Duration {
    crate::service::backoff::backoff(failures, MAX_RETRY)
}

/// What a lane sends next.
pub(super) enum Next {
    /// The notify request for the notification at this stream position.
    Notification(Vec<u8>, u64),
    /// A badge-only update.
    Badge(Vec<u8>),
    /// Nothing until the next wake.
    Idle,
}

pub(super) struct Lane {
    pub user_id: OwnedUserId,
    pub pusher: PusherRecord,
    pub signals: Arc<Signals>,
    /// What every request of this pusher sends alike.
    part: PusherPart,
    /// Notifications taken (from the feed or the store) and not yet pushed, oldest first.
    queue: VecDeque<Fed>,
    /// Every notification up to this stream position is pushed or in the queue.
    seen: u64,
    /// Whether the last look found every notification up to the position it looked to:
    /// then only a wake (`signals.new`) makes the lane look again.
    caught_up: bool,
    /// Failed attempts at the request in hand.
    failures: u32,
}

impl Lane {
    /// A lane that goes on from the pusher's stored progress, or from `carried` (the
    /// progress of the worker it replaces) when that is later; `None` when the stored
    /// progress cannot be read.
    pub(super) fn open(
        pushers: &Pushers,
        user_id: OwnedUserId,
        key: &[u8],
        pusher: PusherRecord,
        signals: Arc<Signals>,
        carried: u64,
    ) -> Option<Self> {
        let stored = match pushers.store.pusher_progress(key) {
            Ok(progress) => progress.unwrap_or(0),
            Err(e) => {
                tracing::error!(user = %user_id, error = %e, "cannot read a pusher's progress");
                return None;
            }
        };
        // The progress is stored by `store_progress`, for every worker at once.
        let progress = stored.max(carried);
        signals.saved.store(stored, Ordering::SeqCst);
        signals.progress.store(progress, Ordering::SeqCst);
        Some(Self {
            part: PusherPart::new(&pusher),
            user_id,
            pusher,
            signals,
            queue: VecDeque::new(),
            seen: progress,
            caught_up: false,
            failures: 0,
        })
    }

    /// Takes the user's new notifications into the queue when it is empty, and makes the
    /// next request: notifications read already (or gone) are passed over.
    pub(super) fn next(&mut self, pushers: &Pushers) -> Next {
        loop {
            if self.queue.is_empty()
                && (self.signals.new.swap(false, Ordering::SeqCst) || !self.caught_up)
            {
                self.look(pushers);
            }
            return match self.queue.front() {
                Some((stream, record)) => {
                    let stream = *stream;
                    match pushers.notify_body(&self.user_id, &self.part, stream, record) {
                        Some(body) => Next::Notification(body, stream),
                        None => {
                            // Read already, or gone: nothing to push for it.
                            self.done_with(Some(stream));
                            continue;
                        }
                    }
                }
                None if self.signals.badge.swap(false, Ordering::SeqCst) => {
                    match pushers.badge_body(&self.user_id, &self.pusher, &self.part) {
                        Some(body) => Next::Badge(body),
                        None => continue,
                    }
                }
                None => Next::Idle,
            };
        }
    }

    /// Every notification up to the visible position is written, and was fed before:
    /// from the feed, or from the store after a start or having fallen behind the feed.
    fn look(&mut self, pushers: &Pushers) {
        let visible = pushers.visible.load(Ordering::SeqCst).max(self.seen);
        let fed = lock(&self.signals.feed).take(self.seen, visible);
        if let Some(fed) = fed {
            self.queue.extend(fed);
            self.seen = visible;
            self.caught_up = true;
            return;
        }
        match notifications_after(
            &pushers.store,
            &self.user_id,
            self.seen,
            visible,
            READ_AT_ONCE,
        ) {
            Ok(next) => {
                self.caught_up = next.len() < READ_AT_ONCE;
                self.seen = match next.last() {
                    Some((stream, _)) if !self.caught_up => *stream,
                    _ => visible,
                };
                self.queue
                    .extend(next.into_iter().map(|(s, r)| (s, Arc::new(r))));
            }
            Err(e) => {
                tracing::error!(user = %self.user_id, error = %e, "cannot read notifications");
                // Read again at the next wake.
                self.caught_up = true;
            }
        }
    }

    /// The request for the notification at `stream` (`None`: a badge) was answered.
    pub(super) fn delivered(&mut self, stream: Option<u64>) {
        self.failures = 0;
        self.done_with(stream);
    }

    /// The request failed: how long to wait before the next attempt, or `None` when the
    /// notification is given up after [`MAX_ATTEMPTS`] (the lane goes on with the next).
    pub(super) fn failed(&mut self, stream: Option<u64>, error: &str) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if stream.is_none() {
            // A badge is sent again only if it is still wanted; a newer one replaces it.
            self.signals.badge.store(true, Ordering::SeqCst);
        }
        if self.failures >= MAX_ATTEMPTS {
            tracing::warn!(user = %self.user_id, error, "giving up a push notification");
            self.failures = 0;
            self.done_with(stream);
            return None;
        }
        let wait = backoff(self.failures);
        tracing::info!(user = %self.user_id, error, retry_in = ?wait, "push not delivered");
        Some(wait)
    }

    fn done_with(&mut self, stream: Option<u64>) {
        if let Some(stream) = stream {
            self.queue.pop_front();
            self.signals.progress.store(stream, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(40), MAX_RETRY);
    }
}
