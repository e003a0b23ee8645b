//! What locked and suspended accounts may not do, and rooms an admin deleted.
//!
//! Locked (spec, "Account locking"): every authenticated request but `/logout` and
//! `/logout/all` answers `401 M_USER_LOCKED` with `soft_logout: true`; tokens stay valid
//! so the session resumes once unlocked; logging in again is refused too.
//!
//! Blocked and deleted rooms: nobody on this server may join, knock or be invited.
//!
//! Suspended (spec, "Account suspension"): the user keeps reading, leaving, redacting
//! their own events, managing devices and logging out; joining, knocking, inviting,
//! sending messages and state, changing their profile and redacting others' events
//! answer `403 M_USER_SUSPENDED`.
//!
//! Shadow-banned (as Synapse): the user's messages, state events, invites, typing and
//! public read receipts are answered as if accepted (a plausible event ID) but are not
//! stored and reach nobody; joining, leaving and reading work as before.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ruma::{OwnedEventId, RoomId, UserId};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;

/// The paths a locked account may still use.
const LOCKED_MAY_USE: [&str; 4] = [
    "/_matrix/client/v3/logout",
    "/_matrix/client/v3/logout/all",
    "/_matrix/client/r0/logout",
    "/_matrix/client/r0/logout/all",
];

pub fn locked_error() -> Error {
    Error::new(ErrorKind::UserLocked, "This account has been locked")
}

impl Services {
    /// Called for every authenticated request with its path.
    pub fn check_not_locked(&self, user_id: &UserId, path: &str) -> Result<()> {
        if LOCKED_MAY_USE.contains(&path) {
            return Ok(());
        }
        self.check_login_allowed(user_id)
    }

    /// A locked account cannot obtain new access tokens either.
    pub fn check_login_allowed(&self, user_id: &UserId) -> Result<()> {
        if self.store.user(user_id.as_str())?.is_some_and(|u| u.locked) {
            return Err(locked_error());
        }
        Ok(())
    }

    /// Refuses an action the spec lists as forbidden while suspended.
    pub fn refuse_if_suspended(&self, user_id: &UserId) -> Result<()> {
        if self
            .store
            .user(user_id.as_str())?
            .is_some_and(|u| u.suspended)
        {
            return Err(Error::new(
                ErrorKind::UserSuspended,
                "You cannot perform this action while suspended",
            ));
        }
        Ok(())
    }

    /// Whether an admin shadow-banned this (local) user; other servers' users never are.
    pub fn is_shadow_banned(&self, user_id: &UserId) -> Result<bool> {
        Ok(self
            .store
            .user(user_id.as_str())?
            .is_some_and(|u| u.shadow_banned))
    }

    /// The event ID a shadow-banned user is answered with: shaped like a real one, and
    /// the same for a retried transaction (`seed` holds the device and transaction ID),
    /// random without one.
    pub fn shadow_event_id(&self, user_id: &UserId, seed: Option<&str>) -> Result<OwnedEventId> {
        let seed = match seed {
            Some(seed) => format!("{user_id}\0{seed}"),
            None => crate::service::random_string(32),
        };
        let digest = Sha256::digest(seed.as_bytes());
        let id = format!("${}", URL_SAFE_NO_PAD.encode(digest));
        OwnedEventId::try_from(id).map_err(Error::internal)
    }

    /// A suspended user may redact their own events, not others'.
    pub fn check_suspended_redaction(
        &self,
        user_id: &UserId,
        target: Option<&serde_json::Value>,
    ) -> Result<()> {
        let own = match target.and_then(serde_json::Value::as_str) {
            Some(event_id) => self
                .store
                .event(event_id)?
                .is_some_and(|e| e.pdu["sender"].as_str() == Some(user_id.as_str())),
            None => false,
        };
        if own {
            return Ok(());
        }
        self.refuse_if_suspended(user_id)
    }

    /// Joining, knocking or inviting into a room: refused while suspended, and for
    /// rooms an admin deleted.
    pub fn check_may_enter(&self, user_id: &UserId, room_id: &RoomId) -> Result<()> {
        self.refuse_if_suspended(user_id)?;
        if self.store.deleted_room(room_id.as_str())?.is_some() {
            return Err(Error::forbidden(
                "This room has been deleted by a server admin",
            ));
        }
        if self.store.blocked_room(room_id.as_str())?.is_some() {
            return Err(Error::forbidden(
                "This room has been blocked by a server admin",
            ));
        }
        Ok(())
    }
}
