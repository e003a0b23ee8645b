//! Wakes waiting syncs and sockets. Each user has a watch channel; a waiter subscribes
//! before it reads, so a change that lands while it reads still wakes it.

use std::collections::HashMap;
use std::sync::Mutex;

use ruma::{OwnedUserId, UserId};
use tokio::sync::watch;

#[derive(Default)]
pub struct Notifier {
    users: Mutex<HashMap<OwnedUserId, watch::Sender<()>>>,
}

impl Notifier {
    pub fn subscribe(&self, user_id: &UserId) -> watch::Receiver<()> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users
            .entry(user_id.to_owned())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    /// How many are waiting for news now: sync requests in progress (long polls
    /// included), sync WebSockets, sliding syncs and legacy event streams.
    pub fn open_connections(&self) -> usize {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.values().map(watch::Sender::receiver_count).sum()
    }

    pub fn wake<'a>(&self, user_ids: impl IntoIterator<Item = &'a UserId>) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        for user_id in user_ids {
            if let Some(sender) = users.get(user_id) {
                if sender.receiver_count() == 0 {
                    users.remove(user_id);
                } else {
                    sender.send_replace(());
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
        assert!(!rx.has_changed().unwrap());
        notifier.wake([alice.as_ref()]);
        assert!(rx.has_changed().unwrap());
        rx.changed().await.unwrap();
        assert!(!rx.has_changed().unwrap());
    }
}
