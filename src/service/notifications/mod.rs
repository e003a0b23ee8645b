//! Notifications: each accepted event is evaluated once against the push rules of every
//! local member it may concern (not its sender), and the outcome is recorded with the
//! event (see `store::notifications`). `/sync` counts, `/notifications` and the pushers
//! read that record; nothing evaluates rules at read time.
//!
//! Rule sets are compiled once and kept until the user's `m.push_rules` change; every
//! user without their own rules shares one compiled copy of the predefined rules. When a
//! user changes their rules, their unread events (after their read receipt) are evaluated
//! again, so counts follow the new rules; older notifications keep the outcome they had.

mod counts;
mod evaluate;
mod list;
mod reads;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ruma::{OwnedRoomId, OwnedUserId, UserId};

pub use counts::{Counts, ThreadCounts, UnreadCounts};
pub use evaluate::{Notified, Withdrawn};
pub use list::{NotificationsQuery, notifications_after};
pub use reads::{Reads, read_up_to};

use crate::error::Result;
use crate::event::RoomPowers;
use crate::event::push_rules::{CompiledRules, Ruleset};
use crate::service::Services;
use crate::service::push_rules::PUSH_RULES_TYPE;

/// A user's push rules ready for evaluation, tagged with the account data position of
/// the `m.push_rules` they came from (0: the predefined rules, shared).
#[derive(Clone)]
struct UserPushRules {
    position: u64,
    rules: Arc<CompiledRules>,
}

/// The part of the push context that is the same for every member of the room.
struct RoomPushFacts {
    member_count: u64,
    notification_levels: HashMap<String, i64>,
    powers: RoomPowers,
}

/// A room's push facts with the state group and joined member count they were read at.
type CachedFacts = (u64, usize, Arc<RoomPushFacts>);

pub struct Notifications {
    /// The predefined rules, compiled once for everyone who has not changed them.
    predefined: OnceLock<Arc<CompiledRules>>,
    /// Compiled rules of users with their own `m.push_rules`.
    rules: Mutex<HashMap<OwnedUserId, UserPushRules>>,
    /// Each room's push facts with the state group and member count they were read at.
    rooms: Mutex<HashMap<OwnedRoomId, CachedFacts>>,
    /// Per user and room: the unread counts, extended as new records arrive, and the
    /// records this process wrote lately (see `counts`); shared with the pushers.
    pub counts: Arc<UnreadCounts>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Notifications {
    pub fn new(counts: Arc<UnreadCounts>) -> Self {
        Self {
            predefined: OnceLock::new(),
            rules: Mutex::default(),
            rooms: Mutex::default(),
            counts,
        }
    }
}

impl Services {
    /// The user's compiled push rules: one account data read, compiled again only when
    /// they changed.
    fn compiled_push_rules(&self, user_id: &UserId) -> Result<UserPushRules> {
        let record = self
            .store
            .account_data(user_id.as_str(), None, PUSH_RULES_TYPE)?;
        let Some(record) = record else {
            let rules = self
                .notifications
                .predefined
                .get_or_init(|| {
                    Arc::new(CompiledRules::for_user(
                        &Ruleset::predefined(user_id.as_str()),
                        user_id.as_str(),
                    ))
                })
                .clone();
            return Ok(UserPushRules { position: 0, rules });
        };
        let mut cache = lock(&self.notifications.rules);
        if let Some(cached) = cache.get(user_id)
            && cached.position == record.position
        {
            return Ok(cached.clone());
        }
        let ruleset = Ruleset::from_account_data(Some(&record.content), user_id.as_str());
        let rules = UserPushRules {
            position: record.position,
            rules: Arc::new(CompiledRules::for_user(&ruleset, user_id.as_str())),
        };
        cache.insert(user_id.to_owned(), rules.clone());
        Ok(rules)
    }
}
