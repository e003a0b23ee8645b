//! The device-list stream: whose devices or keys changed, for clients' `device_lists`
//! and `/keys/changes`, and for other servers as `m.device_list_update` EDUs.

use std::collections::{BTreeSet, HashSet};

use ruma::{OwnedServerName, OwnedUserId, UserId};
use serde_json::{Value, json};

use super::lock;
use crate::error::Result;
use crate::service::Services;
use crate::store::DeviceListChange;

/// Whose device lists changed between two positions, as a client sees it.
#[derive(Debug, Default)]
pub struct DeviceListDelta {
    pub changed: BTreeSet<OwnedUserId>,
    pub left: BTreeSet<OwnedUserId>,
}

impl Services {
    /// Records that the user's devices or keys changed; wakes those who share a room
    /// with them and, for a local user's device, tells the servers of those users with
    /// an `m.device_list_update` queued durably in the same write.
    pub fn device_list_changed(
        &self,
        user_id: &UserId,
        device_id: Option<&str>,
        deleted: bool,
    ) -> Result<()> {
        let audience = self.co_members(user_id)?;
        let destinations = match device_id {
            Some(_) if user_id.server_name() == self.server_name() => self.servers_of(&audience),
            _ => Vec::new(),
        };
        let content = match device_id {
            Some(device_id) if !destinations.is_empty() => {
                Some(self.device_update_content(user_id, device_id, deleted)?)
            }
            _ => None,
        };
        self.record_device_list_change(
            user_id,
            device_id,
            deleted,
            false,
            |batch, position, prev| {
                if let Some(mut content) = content {
                    content["stream_id"] = json!(position);
                    content["prev_id"] = json!(if prev > 0 { vec![prev] } else { Vec::new() });
                    let edu = json!({"edu_type": "m.device_list_update", "content": content});
                    self.sender.stage_edu(batch, &destinations, &edu)?;
                }
                Ok(())
            },
        )?;
        self.sender.wake(&destinations);
        self.notifier.wake(audience.iter().map(|u| u.as_ref()));
        Ok(())
    }

    /// An `m.device_list_update` for a local device, but its stream positions.
    fn device_update_content(
        &self,
        user_id: &UserId,
        device_id: &str,
        deleted: bool,
    ) -> Result<Value> {
        let mut content = json!({
            "user_id": user_id,
            "device_id": device_id,
            "deleted": deleted,
        });
        if !deleted {
            if let Some(keys) = self.store.device_keys(user_id.as_str(), device_id)? {
                content["keys"] = keys;
            }
            if let Ok(info) = self.sessions.device(user_id, device_id.into())
                && let Some(name) = info.display_name
            {
                content["device_display_name"] = json!(name);
            }
        }
        Ok(content)
    }

    /// Records a change only the user themself is told of (their user-signing key, which
    /// nobody else sees) and wakes their syncs.
    pub fn own_device_list_changed(&self, user_id: &UserId) -> Result<()> {
        self.record_device_list_change(user_id, None, false, true, |_, _, _| Ok(()))?;
        self.notifier.wake([user_id]);
        Ok(())
    }

    /// Writes one entry of the stream, with whatever `also` adds to the same batch given
    /// the entry's position and the user's previous one (of a device change).
    pub(super) fn record_device_list_change(
        &self,
        user_id: &UserId,
        device_id: Option<&str>,
        deleted: bool,
        own: bool,
        also: impl FnOnce(&mut crate::store::Batch<'_>, u64, u64) -> crate::store::StoreResult<()>,
    ) -> Result<u64> {
        let mut current = lock(&self.e2ee.device_lists);
        let position = *current + 1;
        let prev = self.store.device_list_position(user_id.as_str())?;
        let mut batch = self.store.batch();
        batch.put_device_list_change(
            position,
            &DeviceListChange {
                user_id: user_id.to_owned(),
                device_id: device_id.map(ToOwned::to_owned),
                deleted,
                prev,
                own,
            },
        )?;
        also(&mut batch, position, prev)?;
        self.store.write(batch)?;
        *current = position;
        Ok(position)
    }

    /// The other servers among `users`.
    pub(super) fn servers_of(&self, users: &HashSet<OwnedUserId>) -> Vec<OwnedServerName> {
        let servers: BTreeSet<&ruma::ServerName> = users
            .iter()
            .map(|u| u.server_name())
            .filter(|s| *s != self.server_name())
            .collect();
        servers.into_iter().map(ToOwned::to_owned).collect()
    }

    /// Whose device lists `user_id` should refetch or forget for the window between two
    /// tokens' positions: key changes of people they share a room with, people who
    /// joined a room they are in (or all members of a room they joined), and people
    /// they no longer share any room with.
    pub fn device_list_delta(
        &self,
        user_id: &UserId,
        (lists_from, lists_to): (u64, u64),
        (events_from, events_to): (u64, u64),
    ) -> Result<DeviceListDelta> {
        let mut delta = DeviceListDelta::default();
        if lists_from >= lists_to && events_from >= events_to {
            return Ok(delta);
        }
        let mut maybe_left = BTreeSet::new();
        if events_from < events_to {
            for change in self.store.membership_changes(events_from, events_to)? {
                let (room_id, target, membership) =
                    (change.room_id, change.user_id, change.membership);
                let joined_now = self.room_members(&room_id)?.is_joined(user_id);
                if target == user_id {
                    let members = self.room_members(&room_id)?;
                    if membership == "join" {
                        delta.changed.extend(members.joined.iter().cloned());
                    } else if membership == "leave" || membership == "ban" {
                        maybe_left.extend(members.joined.iter().cloned());
                    }
                } else if joined_now {
                    if membership == "join" {
                        delta.changed.insert(target);
                    } else if membership == "leave" || membership == "ban" {
                        maybe_left.insert(target);
                    }
                }
            }
        }
        // Joins bring the user themself along; their own devices count only when they
        // changed (the stream below), so that their other devices learn of a new one.
        delta.changed.remove(user_id);
        let key_changes = if lists_from < lists_to {
            self.store.device_list_changes(lists_from, lists_to)?
        } else {
            Vec::new()
        };
        // Most windows (messages only) change nobody's devices or rooms: then who shares
        // a room with the user need not be worked out.
        if maybe_left.is_empty() && delta.changed.is_empty() && key_changes.is_empty() {
            return Ok(delta);
        }
        let shared = self.co_members(user_id)?;
        for user in maybe_left {
            if !shared.contains(&user) {
                delta.left.insert(user);
            }
        }
        delta.changed.retain(|u| shared.contains(u));
        for (_, change) in key_changes {
            if change.own && change.user_id != user_id {
                continue;
            }
            if shared.contains(&change.user_id) {
                delta.changed.insert(change.user_id);
            }
        }
        Ok(delta)
    }

    /// Whether any local user shares a room with the remote user: changes of anyone
    /// else concern nobody here and are not recorded.
    pub(super) fn shares_room_with_local_user(&self, user_id: &UserId) -> Result<bool> {
        for (room_id, record) in self.store.user_rooms_shared(user_id.as_str())?.iter() {
            if record.membership == "join"
                && self
                    .room_members(room_id)?
                    .joined
                    .iter()
                    .any(|u| u.server_name() == self.server_name())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
