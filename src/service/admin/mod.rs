//! Server administration: server admins, locked and suspended accounts, the admin
//! API's operations on users, rooms and reports, and the audit log of every admin
//! action. `offline` works on a store no server holds, for `hearthctl --data`.

mod audit;
pub mod backup;
mod media;
mod media_deletion;
pub mod offline;
mod redaction;
mod registration_tokens;
mod reports;
mod restrictions;
mod room_admin;
mod room_deletion;
mod rooms;
mod server_notices;
mod statistics;
mod users;

use std::sync::atomic::AtomicU64;

use ruma::{OwnedUserId, UserId};

pub use audit::{AuditEntry, AuditQuery};
pub use media_deletion::{DEFAULT_USER_MEDIA_LIMIT, OldMedia};
pub use redaction::{DEFAULT_REDACTION_LIMIT, UserRedaction};
pub use registration_tokens::{NewRegistrationToken, RegistrationToken, RegistrationTokenChange};
pub use room_deletion::{DEFAULT_NEW_ROOM_MESSAGE, DEFAULT_NEW_ROOM_NAME, RoomDeletion};
pub use rooms::{RoomListQuery, RoomOrder, RoomSummary};
pub use server_notices::{SERVER_NOTICE_TAG, ServerNotice};
pub use statistics::Statistics;
pub use users::{AdminUser, UserChanges, UserListQuery};

use crate::error::{Error, Result};
use crate::service::Services;
use crate::store::{Store, StoreResult, UserRecord};

/// What administration keeps in memory: the audit log's next ID, a lock that
/// serialises room deletions, and one that serialises making server-notices rooms.
pub struct Admin {
    last_audit_id: AtomicU64,
    deletions: tokio::sync::Mutex<()>,
    notices: tokio::sync::Mutex<()>,
}

impl Admin {
    pub fn new(store: &Store) -> StoreResult<Self> {
        Ok(Self {
            last_audit_id: AtomicU64::new(store.last_u64_key(crate::store::Cf::AdminAudit)?),
            deletions: tokio::sync::Mutex::new(()),
            notices: tokio::sync::Mutex::new(()),
        })
    }
}

impl Services {
    /// Whether the user is a server admin (an active account with the role).
    pub fn require_server_admin(&self, user_id: &UserId) -> Result<()> {
        match self.store.user(user_id.as_str())? {
            Some(user) if user.admin && !user.deactivated => Ok(()),
            _ => Err(Error::forbidden("You are not a server admin")),
        }
    }

    /// A local user that exists and is not deactivated, as the spec's admin endpoints
    /// require: another server's user is `400 M_INVALID_PARAM`, anyone else `404`.
    fn local_account(&self, user_id: &UserId) -> Result<UserRecord> {
        self.check_local(user_id)?;
        match self.store.user(user_id.as_str())? {
            Some(user) if !user.deactivated => Ok(user),
            _ => Err(Error::not_found("User not found")),
        }
    }

    fn check_local(&self, user_id: &UserId) -> Result<()> {
        if user_id.server_name() != self.server_name() {
            return Err(Error::invalid_param(
                "User does not belong to the local server",
            ));
        }
        Ok(())
    }
}

/// Parses a user ID from a path: a full ID, or a local part for convenience.
pub fn parse_user_id(text: &str, services: &Services) -> Result<OwnedUserId> {
    if text.starts_with('@') {
        UserId::parse(text).map_err(|_| Error::invalid_param(format!("Invalid user ID {text}")))
    } else {
        UserId::parse(format!("@{text}:{}", services.server_name()))
            .map_err(|_| Error::invalid_param(format!("Invalid user ID {text}")))
    }
}
