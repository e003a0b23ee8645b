//! The admin API's operations on accounts: list, show, create and modify, reset
//! passwords, deactivate (leaving every room), lock, suspend and the admin role.

use ruma::{OwnedRoomId, OwnedUserId, UserId};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;
use crate::service::rooms::MembershipChange;
use crate::service::sessions::DeviceInfo;
use crate::service::users::NewAccount;
use crate::store::{RateLimitOverride, ThreepidRecord, UserRecord};

/// One account as the admin API shows it.
#[derive(Debug, Clone)]
pub struct AdminUser {
    pub user_id: OwnedUserId,
    pub record: UserRecord,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    /// The most recent use of any device.
    pub last_seen_ts: Option<u64>,
    /// Verified email addresses with their record.
    pub threepids: Vec<(String, ThreepidRecord)>,
}

#[derive(Debug, Default, Clone)]
pub struct UserListQuery {
    /// Matches the user ID or display name, case-insensitively, as Synapse's `name`.
    pub name: Option<String>,
    /// Matches the user ID only (Synapse's `user_id`).
    pub user_id: Option<String>,
    pub deactivated: bool,
    pub locked: bool,
    pub admins: Option<bool>,
    /// Guest accounts are listed unless this is false (Synapse's `guests`).
    pub guests: bool,
    pub from: usize,
    pub limit: usize,
}

/// What `PUT /_synapse/admin/v2/users/{userId}` asks to change; absent means unchanged.
#[derive(Debug, Default, Clone)]
pub struct UserChanges {
    pub password: Option<String>,
    pub logout_devices: bool,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    pub admin: Option<bool>,
    pub deactivated: Option<bool>,
    pub locked: Option<bool>,
}

impl Services {
    fn admin_user_view(&self, user_id: OwnedUserId, record: UserRecord) -> Result<AdminUser> {
        let displayname = self.store.profile_string(user_id.as_str(), "displayname")?;
        let avatar_url = self.store.profile_string(user_id.as_str(), "avatar_url")?;
        let last_seen_ts = self
            .sessions
            .devices(&user_id)?
            .iter()
            .filter_map(|d| d.last_seen_ts)
            .max();
        let threepids = self.store.user_threepids(user_id.as_str())?;
        Ok(AdminUser {
            user_id,
            record,
            displayname,
            avatar_url,
            last_seen_ts,
            threepids,
        })
    }

    pub fn admin_show_user(&self, user_id: &UserId) -> Result<AdminUser> {
        self.check_local(user_id)?;
        let record = self
            .store
            .user(user_id.as_str())?
            .ok_or_else(|| Error::not_found("User not found"))?;
        self.admin_user_view(user_id.to_owned(), record)
    }

    /// One page of accounts ordered by user ID, and how many match in all.
    pub fn admin_list_users(&self, query: &UserListQuery) -> Result<(Vec<AdminUser>, usize)> {
        let needle = query.name.as_deref().map(str::to_lowercase);
        let mut matching = Vec::new();
        for (user_id, record) in self.store.all_users()? {
            if record.deactivated && !query.deactivated
                || !record.locked && query.locked
                || query.admins.is_some_and(|a| a != record.admin)
                || record.guest && !query.guests
                || query
                    .user_id
                    .as_deref()
                    .is_some_and(|id| !user_id.as_str().contains(id))
            {
                continue;
            }
            let user = self.admin_user_view(user_id, record)?;
            if let Some(needle) = &needle {
                let in_id = user.user_id.as_str().to_lowercase().contains(needle);
                let in_name = user
                    .displayname
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains(needle));
                if !in_id && !in_name {
                    continue;
                }
            }
            matching.push(user);
        }
        let total = matching.len();
        let page = matching
            .into_iter()
            .skip(query.from)
            .take(query.limit)
            .collect();
        Ok((page, total))
    }

    /// The devices of a user, with their last use.
    pub fn admin_user_devices(&self, user_id: &UserId) -> Result<Vec<DeviceInfo>> {
        self.admin_show_user(user_id)?;
        self.sessions.devices(user_id)
    }

    /// The rooms the user is joined to.
    pub fn admin_joined_rooms(&self, user_id: &UserId) -> Result<Vec<OwnedRoomId>> {
        Ok(self
            .store
            .user_rooms(user_id.as_str())?
            .into_iter()
            .filter(|(_, r)| r.membership == "join")
            .map(|(room_id, _)| room_id)
            .collect())
    }

    /// Creates the account, or changes the one that exists. Answers whether it was created.
    pub async fn admin_put_user(
        &self,
        admin: &UserId,
        user_id: &UserId,
        changes: UserChanges,
    ) -> Result<bool> {
        self.check_local(user_id)?;
        let existing = self.store.user(user_id.as_str())?;
        let created = existing.is_none();
        if created {
            if changes.deactivated == Some(true) {
                return Err(Error::invalid_param("A new account cannot be deactivated"));
            }
            self.create_account(NewAccount {
                localpart: Some(user_id.localpart().to_owned()),
                password: changes.password.clone(),
                device_id: None,
                device_display_name: None,
                inhibit_login: true,
                refreshable: false,
                admin: changes.admin.unwrap_or(false),
                registration_token: None,
                guest: false,
            })
            .await?;
            let detail = format!("admin={}", changes.admin.unwrap_or(false));
            self.audit(admin, "user.create", user_id, Some(detail))?;
        } else if let Some(password) = &changes.password {
            self.admin_reset_password(admin, user_id, password.clone(), changes.logout_devices)
                .await?;
        }
        let mut profile_changed = Vec::new();
        if let Some(name) = &changes.displayname {
            self.set_profile_field(user_id, user_id, "displayname", Value::String(name.clone()))
                .await?;
            profile_changed.push("displayname");
        }
        if let Some(url) = &changes.avatar_url {
            self.set_profile_field(user_id, user_id, "avatar_url", Value::String(url.clone()))
                .await?;
            profile_changed.push("avatar_url");
        }
        if !created && !profile_changed.is_empty() {
            self.audit(
                admin,
                "user.update_profile",
                user_id,
                Some(profile_changed.join(", ")),
            )?;
        }
        if let Some(is_admin) = changes.admin
            && !created
        {
            self.admin_set_role(admin, user_id, is_admin).await?;
        }
        if let Some(locked) = changes.locked {
            self.admin_set_locked(admin, user_id, locked).await?;
        }
        match changes.deactivated {
            Some(true) if existing.as_ref().is_some_and(|u| !u.deactivated) => {
                self.admin_deactivate(admin, user_id, false).await?;
            }
            Some(false) if existing.as_ref().is_some_and(|u| u.deactivated) => {
                return Err(Error::new(
                    ErrorKind::Unknown,
                    "Hearth cannot reactivate a deactivated account",
                ));
            }
            _ => {}
        }
        Ok(created)
    }

    pub async fn admin_reset_password(
        &self,
        admin: &UserId,
        user_id: &UserId,
        new_password: String,
        logout_devices: bool,
    ) -> Result<()> {
        self.local_account(user_id)?;
        self.change_password(user_id, new_password).await?;
        if logout_devices {
            self.remove_all_devices(user_id, None).await?;
        }
        self.audit(
            admin,
            "user.reset_password",
            user_id,
            Some(format!("logout_devices={logout_devices}")),
        )
    }

    /// Deactivates and leaves every room (joins, invites and knocks): no password, no
    /// devices, no profile. With `erase`, the account is also marked erased.
    pub async fn admin_deactivate(
        &self,
        admin: &UserId,
        user_id: &UserId,
        erase: bool,
    ) -> Result<()> {
        self.local_account(user_id)?;
        let rooms = self
            .store
            .user_rooms(user_id.as_str())?
            .into_iter()
            .filter(|(_, record)| is_leavable(&record.membership))
            .count();
        self.unbind_all_threepids(user_id, None).await;
        self.deactivate(user_id, true).await?;
        if erase {
            self.mark_erased(user_id).await?;
        }
        self.audit(
            admin,
            "user.deactivate",
            user_id,
            Some(format!("erase={erase}, leaving {rooms} rooms")),
        )
    }

    /// One pass of a [`crate::service::fanout::FanoutKind::LeaveRooms`] intent: the user
    /// leaves every room they are in, invited to or knocking on. Rooms already left are
    /// skipped, so the pass can be repeated after a crash; a room that refuses is logged
    /// and skipped.
    pub(crate) async fn leave_all_rooms(&self, user_id: &UserId) {
        let rooms = match self.store.user_rooms(user_id.as_str()) {
            Ok(rooms) => rooms,
            Err(e) => {
                tracing::warn!(%user_id, error = %e, "could not list the user's rooms");
                return;
            }
        };
        for (room_id, record) in rooms {
            if self.stopping() {
                return;
            }
            if !is_leavable(&record.membership) {
                continue;
            }
            if let Err(e) = self
                .change_membership(&room_id, user_id, user_id, MembershipChange::Leave, None)
                .await
            {
                tracing::warn!(%user_id, %room_id, error = %e, "could not leave room");
            }
        }
    }

    async fn update_user(
        &self,
        user_id: &UserId,
        change: impl FnOnce(&mut UserRecord),
    ) -> Result<UserRecord> {
        let _guard = self.sessions.write_lock.lock().await;
        let mut user = self
            .store
            .user(user_id.as_str())?
            .ok_or_else(|| Error::not_found("User not found"))?;
        change(&mut user);
        let mut batch = self.store.batch();
        batch.put_user(user_id.as_str(), &user)?;
        self.store.write(batch)?;
        Ok(user)
    }

    /// The spec: only for local, active users, and never on another admin.
    fn check_moderation_target(&self, admin: &UserId, user_id: &UserId) -> Result<()> {
        let target = self.local_account(user_id)?;
        if target.admin && admin != user_id {
            return Err(Error::forbidden("The target user is a server admin"));
        }
        Ok(())
    }

    pub fn admin_is_locked(&self, user_id: &UserId) -> Result<bool> {
        Ok(self.local_account(user_id)?.locked)
    }

    pub fn admin_is_suspended(&self, user_id: &UserId) -> Result<bool> {
        Ok(self.local_account(user_id)?.suspended)
    }

    pub async fn admin_set_locked(
        &self,
        admin: &UserId,
        user_id: &UserId,
        locked: bool,
    ) -> Result<()> {
        if admin == user_id {
            return Err(Error::forbidden("You cannot lock your own account"));
        }
        self.check_moderation_target(admin, user_id)?;
        self.update_user(user_id, |u| u.locked = locked).await?;
        if locked {
            // Open sync sockets recheck their tokens now, and end.
            self.sessions.announce_revocation();
        }
        self.audit(
            admin,
            if locked { "user.lock" } else { "user.unlock" },
            user_id,
            None,
        )
    }

    pub async fn admin_set_suspended(
        &self,
        admin: &UserId,
        user_id: &UserId,
        suspended: bool,
    ) -> Result<()> {
        if admin == user_id {
            return Err(Error::forbidden("You cannot suspend your own account"));
        }
        self.check_moderation_target(admin, user_id)?;
        self.update_user(user_id, |u| u.suspended = suspended)
            .await?;
        let action = if suspended {
            "user.suspend"
        } else {
            "user.unsuspend"
        };
        self.audit(admin, action, user_id, None)
    }

    /// Shadow-bans a local user or lifts it (Synapse's `shadow_ban`). Unlike locking,
    /// an admin may be shadow-banned, as in Synapse.
    pub async fn admin_set_shadow_banned(
        &self,
        admin: &UserId,
        user_id: &UserId,
        shadow_banned: bool,
    ) -> Result<()> {
        self.local_account(user_id)?;
        self.update_user(user_id, |u| u.shadow_banned = shadow_banned)
            .await?;
        let action = if shadow_banned {
            "user.shadow_ban"
        } else {
            "user.unshadow_ban"
        };
        self.audit(admin, action, user_id, None)
    }

    /// The user's own request rate set by an admin, if any.
    pub fn admin_ratelimit_override(&self, user_id: &UserId) -> Result<Option<RateLimitOverride>> {
        Ok(self.local_account(user_id)?.ratelimit_override)
    }

    /// Sets (`Some`) or removes (`None`) the user's own request rate, in place of the
    /// configured limits (Synapse's `override_ratelimit`).
    pub async fn admin_set_ratelimit_override(
        &self,
        admin: &UserId,
        user_id: &UserId,
        rate: Option<RateLimitOverride>,
    ) -> Result<()> {
        self.local_account(user_id)?;
        self.update_user(user_id, |u| u.ratelimit_override = rate)
            .await?;
        let (action, details) = match rate {
            Some(rate) => (
                "user.ratelimit_override",
                Some(format!(
                    "{} per second, burst {}",
                    rate.messages_per_second, rate.burst_count
                )),
            ),
            None => ("user.ratelimit_override_removed", None),
        };
        self.audit(admin, action, user_id, details)
    }

    /// Grants or revokes the server admin role. An admin cannot revoke their own, so a
    /// server is not left without one by mistake.
    pub async fn admin_set_role(
        &self,
        admin: &UserId,
        user_id: &UserId,
        is_admin: bool,
    ) -> Result<()> {
        if admin == user_id && !is_admin {
            return Err(Error::forbidden("You cannot revoke your own admin role"));
        }
        self.local_account(user_id)?;
        self.update_user(user_id, |u| u.admin = is_admin).await?;
        let action = if is_admin {
            "user.make_admin"
        } else {
            "user.revoke_admin"
        };
        self.audit(admin, action, user_id, None)
    }
}

fn is_leavable(membership: &str) -> bool {
    matches!(membership, "join" | "invite" | "knock")
}
