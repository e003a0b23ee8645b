//! Wakes waiting syncs and sockets. Each user has a watch channel; a waiter subscribes
//! before it reads, so a change that lands while it reads still wakes it.
//!
//! The channel counts the wakes that are not for to-device messages alone, so a waiter
//! can tell a wake that brings only to-device messages (a room key, shared just before
//! the message it unlocks) from the others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ruma::{OwnedUserId, UserId};
use tokio::sync::watch;
use tokio::sync::watch::error::RecvError;
use tokio::time::Instant;

#[derive(Default)]
pub struct Notifier {
    users: Mutex<HashMap<OwnedUserId, watch::Sender<u64>>>,
}

/// What woke a waiter, as far as the notifier knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// To-device messages, and nothing else since the waiter last looked.
    ToDeviceOnly,
    /// Anything else (room events, receipts, typing, presence, account data, keys...).
    Other,
}

/// One waiter's subscription to a user's wakes.
pub struct Wakes {
    rx: watch::Receiver<u64>,
    /// The count of other wakes when the waiter last looked.
    others_seen: u64,
}

impl Wakes {
    /// Waits for the next wake. Cancel-safe: a wake not yet seen stays unseen.
    pub async fn changed(&mut self) -> Result<Woken, RecvError> {
        self.rx.changed().await?;
        let others = *self.rx.borrow_and_update();
        let woken = if others == self.others_seen {
            Woken::ToDeviceOnly
        } else {
            Woken::Other
        };
        self.others_seen = others;
        Ok(woken)
    }

    /// After a wake: one for to-device messages alone (with `hold` not zero) waits up to
    /// `hold`, and not past `deadline`, for another wake, since a room key comes just
    /// before the message it unlocks; any other returns at once.
    pub async fn hold_after(&mut self, woken: Woken, hold: Duration, deadline: Instant) {
        if woken == Woken::ToDeviceOnly && !hold.is_zero() {
            self.other_until(deadline.min(Instant::now() + hold)).await;
        }
    }

    /// Waits until a wake other than for to-device messages, or until `until`.
    pub async fn other_until(&mut self, until: Instant) {
        loop {
            tokio::select! {
                woken = self.changed() => {
                    if !matches!(woken, Ok(Woken::ToDeviceOnly)) {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }
}

impl Notifier {
    pub fn subscribe(&self, user_id: &UserId) -> Wakes {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let rx = users
            .entry(user_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        let others_seen = *rx.borrow();
        Wakes { rx, others_seen }
    }

    /// How many are waiting for news now: sync requests in progress (long polls
    /// included), sync WebSockets, sliding syncs and legacy event streams.
    pub fn open_connections(&self) -> usize {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.values().map(watch::Sender::receiver_count).sum()
    }

    pub fn wake<'a>(&self, user_ids: impl IntoIterator<Item = &'a UserId>) {
        self.wake_with(user_ids, |others| *others += 1);
    }

    /// Wakes for to-device messages alone.
    pub fn wake_for_to_device<'a>(&self, user_ids: impl IntoIterator<Item = &'a UserId>) {
        self.wake_with(user_ids, |_| {});
    }

    fn wake_with<'a>(
        &self,
        user_ids: impl IntoIterator<Item = &'a UserId>,
        modify: impl Fn(&mut u64),
    ) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        for user_id in user_ids {
            if let Some(sender) = users.get(user_id) {
                if sender.receiver_count() == 0 {
                    users.remove(user_id);
                } else {
                    sender.send_modify(&modify);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_after_subscribing_is_seen() {
        let notifier = Notifier::default();
        let alice = UserId::parse("@alice:x").unwrap();
        let bob = UserId::parse("@bob:x").unwrap();
        let mut rx = notifier.subscribe(&alice);
        notifier.wake([bob.as_ref()]);
        assert!(!rx.rx.has_changed().unwrap());
        notifier.wake([alice.as_ref()]);
        assert!(rx.rx.has_changed().unwrap());
        assert_eq!(rx.changed().await.unwrap(), Woken::Other);
        assert!(!rx.rx.has_changed().unwrap());
    }

    #[tokio::test]
    async fn a_wake_for_to_device_messages_alone_is_told_apart() {
        let notifier = Notifier::default();
        let alice = UserId::parse("@alice:x").unwrap();
        let mut rx = notifier.subscribe(&alice);
        notifier.wake_for_to_device([alice.as_ref()]);
        assert_eq!(rx.changed().await.unwrap(), Woken::ToDeviceOnly);
        // Both since the last look: not to-device messages alone.
        notifier.wake_for_to_device([alice.as_ref()]);
        notifier.wake([alice.as_ref()]);
        assert_eq!(rx.changed().await.unwrap(), Woken::Other);
        // A hold ends at the first other wake, past any to-device one.
        notifier.wake_for_to_device([alice.as_ref()]);
        let far = Instant::now() + Duration::from_secs(3600);
        let hold = async {
            rx.other_until(far).await;
        };
        let wake = async {
            tokio::task::yield_now().await;
            notifier.wake_for_to_device([alice.as_ref()]);
            tokio::task::yield_now().await;
            notifier.wake([alice.as_ref()]);
        };
        tokio::join!(hold, wake);
        assert!(!rx.rx.has_changed().unwrap());
    }
}
