//! Caps on syncs held open at once: long-poll `/sync` requests and sync WebSockets, each
//! counted per user and per client address (`[limits]`). A slot is a guard: taken when
//! the request is admitted and given back when it is dropped, which is when the request
//! ends, however it ends (answered, failed, or the client gone and its future dropped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ruma::UserId;

use crate::config::LimitsConfig;
use crate::error::{Error, ErrorKind, Result};

/// What is held open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncKind {
    LongPoll,
    Socket,
}

impl SyncKind {
    fn what(self) -> &'static str {
        match self {
            SyncKind::LongPoll => "/sync requests",
            SyncKind::Socket => "sync WebSockets",
        }
    }
}

/// Who holds a slot: a user or an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Holder {
    User(String),
    Address(String),
}

type Counts = HashMap<(SyncKind, Holder), usize>;

/// How long a refused client is told to wait before trying again: a held sync ends
/// within its timeout, so a short wait is enough to find out.
const RETRY_AFTER_MS: u64 = 1_000;

pub struct OpenSyncs {
    counts: Arc<Mutex<Counts>>,
    per_user: [usize; 2],
    per_address: [usize; 2],
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

fn index(kind: SyncKind) -> usize {
    match kind {
        SyncKind::LongPoll => 0,
        SyncKind::Socket => 1,
    }
}

impl OpenSyncs {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            counts: Arc::new(Mutex::new(HashMap::new())),
            per_user: [config.syncs_per_user, config.sync_sockets_per_user],
            per_address: [config.syncs_per_address, config.sync_sockets_per_address],
        }
    }

    /// Takes a slot for `user` from `address` (unknown addresses are counted per user
    /// only), or answers `429 M_LIMIT_EXCEEDED` when either already holds its cap.
    pub fn admit(
        &self,
        kind: SyncKind,
        user: &UserId,
        address: Option<&str>,
    ) -> Result<OpenSyncSlot> {
        let mut slot = self.empty_slot(kind);
        let user = Holder::User(user.to_string());
        match address {
            Some(address) => self.take(&mut slot, [user, Holder::Address(address.to_owned())])?,
            None => self.take(&mut slot, [user])?,
        }
        Ok(slot)
    }

    /// Takes a slot for a client at `address` whose user is not known yet (a socket
    /// waiting for its auth frame), so that unauthenticated sockets count toward the
    /// address's cap; [`OpenSyncs::add_user`] adds the user once known.
    pub fn admit_address(&self, kind: SyncKind, address: Option<&str>) -> Result<OpenSyncSlot> {
        let mut slot = self.empty_slot(kind);
        if let Some(address) = address {
            self.take(&mut slot, [Holder::Address(address.to_owned())])?;
        }
        Ok(slot)
    }

    /// Adds `user` to a slot taken with [`OpenSyncs::admit_address`], or answers `429`
    /// when the user already holds its cap (the slot keeps its address part, given back
    /// when it is dropped).
    pub fn add_user(&self, slot: &mut OpenSyncSlot, user: &UserId) -> Result<()> {
        self.take(slot, [Holder::User(user.to_string())])
    }

    fn empty_slot(&self, kind: SyncKind) -> OpenSyncSlot {
        OpenSyncSlot {
            counts: self.counts.clone(),
            kind,
            keys: Vec::with_capacity(2),
        }
    }

    /// Counts the slot for every holder, or for none when one already holds its cap.
    fn take<const N: usize>(&self, slot: &mut OpenSyncSlot, holders: [Holder; N]) -> Result<()> {
        let kind = slot.kind;
        let mut counts = lock(&self.counts);
        for holder in &holders {
            let (cap, who) = match holder {
                Holder::User(_) => (self.per_user[index(kind)], "user"),
                Holder::Address(_) => (self.per_address[index(kind)], "address"),
            };
            let open = counts.get(&(kind, holder.clone())).copied().unwrap_or(0);
            if open >= cap {
                return Err(Error::new(
                    ErrorKind::LimitExceeded {
                        retry_after_ms: RETRY_AFTER_MS,
                    },
                    format!(
                        "Too many {} open at once for this {who} (at most {cap})",
                        kind.what()
                    ),
                ));
            }
        }
        for holder in holders {
            *counts.entry((kind, holder.clone())).or_insert(0) += 1;
            slot.keys.push((kind, holder));
        }
        Ok(())
    }

    /// How many of `kind` the user holds now (for tests and logs).
    pub fn held_by(&self, kind: SyncKind, user: &UserId) -> usize {
        lock(&self.counts)
            .get(&(kind, Holder::User(user.to_string())))
            .copied()
            .unwrap_or(0)
    }
}

/// One open sync; its slots are given back when it is dropped.
pub struct OpenSyncSlot {
    counts: Arc<Mutex<Counts>>,
    kind: SyncKind,
    keys: Vec<(SyncKind, Holder)>,
}

impl Drop for OpenSyncSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        for key in self.keys.drain(..) {
            if let Some(open) = counts.get_mut(&key) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    counts.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(per_user: usize, per_address: usize) -> OpenSyncs {
        OpenSyncs::new(&LimitsConfig {
            syncs_per_user: per_user,
            syncs_per_address: per_address,
            sync_sockets_per_user: 1,
            sync_sockets_per_address: 1,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn slots_are_capped_per_user_and_per_address_and_given_back_on_drop() {
        let open = caps(2, 3);
        let alice = UserId::parse("@alice:x").unwrap();
        let bob = UserId::parse("@bob:x").unwrap();
        let a1 = open
            .admit(SyncKind::LongPoll, &alice, Some("10.0.0.1"))
            .unwrap();
        let _a2 = open
            .admit(SyncKind::LongPoll, &alice, Some("10.0.0.2"))
            .unwrap();
        let refused = open
            .admit(SyncKind::LongPoll, &alice, Some("10.0.0.3"))
            .err()
            .unwrap();
        assert!(matches!(refused.kind, ErrorKind::LimitExceeded { .. }));
        // Sockets are counted apart.
        let _s = open
            .admit(SyncKind::Socket, &alice, Some("10.0.0.1"))
            .unwrap();
        assert!(
            open.admit(SyncKind::Socket, &bob, Some("10.0.0.1"))
                .is_err()
        );
        // 10.0.0.1 holds one long-poll; two of bob's reach its cap (and bob's).
        let _b1 = open
            .admit(SyncKind::LongPoll, &bob, Some("10.0.0.1"))
            .unwrap();
        let _b2 = open
            .admit(SyncKind::LongPoll, &bob, Some("10.0.0.1"))
            .unwrap();
        assert!(open.admit(SyncKind::LongPoll, &bob, None).is_err());
        let carol = UserId::parse("@carol:x").unwrap();
        assert!(
            open.admit(SyncKind::LongPoll, &carol, Some("10.0.0.1"))
                .is_err()
        );
        assert!(
            open.admit(SyncKind::LongPoll, &carol, Some("10.0.0.9"))
                .is_ok()
        );
        drop(a1);
        assert_eq!(open.held_by(SyncKind::LongPoll, &alice), 1);
        assert!(
            open.admit(SyncKind::LongPoll, &alice, Some("10.0.0.1"))
                .is_ok()
        );
    }
}
