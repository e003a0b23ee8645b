//! Server notices, as Synapse's: the server's own account (`[server_notices]`
//! `system_mxid_localpart`, made when first needed) writes to each local user in a room
//! of their own, which it creates, invites them to and tags `m.server_notice` for them.
//! Everyone but the system account is at power -10 there, so the user reads but cannot
//! send, invite or change anything. A user who left or rejected the room gets a new one
//! with the next notice. The room is recorded per user (`server_notice_rooms`) and marked
//! in its create event, so a room made just before a crash is found rather than made again.

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::{CreateRoom, EventTemplate, Preset, TxnRef};
use crate::service::users::NewAccount;

/// The tag clients know the notices room by.
pub const SERVER_NOTICE_TAG: &str = "m.server_notice";

/// Marks the create event of a user's notices room with the user it is for.
const NOTICES_FOR_KEY: &str = "io.hearth.server_notices_for";

/// One notice: an event the system account sends into the user's notices room.
#[derive(Debug, Clone)]
pub struct ServerNotice {
    pub event_type: String,
    pub state_key: Option<String>,
    pub content: Value,
    /// The admin's transaction ID (the `PUT .../{txnId}` form), so a retry sends once.
    pub txn_id: Option<String>,
}

impl Services {
    /// The system account's user ID, when server notices are on.
    pub fn server_notices_user(&self) -> Option<OwnedUserId> {
        let localpart = self.config.server_notices.system_mxid_localpart.as_ref()?;
        UserId::parse(format!("@{localpart}:{}", self.server_name())).ok()
    }

    /// Sends a notice to a local user; answers its event ID.
    pub async fn admin_send_server_notice(
        &self,
        admin: &UserId,
        user_id: &UserId,
        notice: ServerNotice,
    ) -> Result<OwnedEventId> {
        let system = self
            .server_notices_user()
            .ok_or_else(|| Error::invalid_param("Server notices are not enabled on this server"))?;
        self.local_account(user_id)?;
        if user_id == system {
            return Err(Error::invalid_param(
                "The server notices account cannot be sent notices",
            ));
        }
        let room_id = {
            let _guard = self.admin.notices.lock().await;
            self.ensure_system_account(&system).await?;
            self.notices_room(&system, user_id).await?
        };
        let template = match notice.state_key {
            Some(state_key) => EventTemplate::state(&notice.event_type, &state_key, notice.content),
            None => EventTemplate::message(&notice.event_type, notice.content),
        };
        let txn = notice.txn_id.map(|txn_id| TxnRef {
            device_id: "hearth-server-notices".to_owned(),
            txn_id: format!("{admin}/{user_id}/{txn_id}"),
        });
        let event_id = self.append_event(&room_id, &system, template, txn).await?;
        self.audit(
            admin,
            "server.notice",
            user_id.as_str(),
            Some(format!("{event_id} in {room_id}")),
        )?;
        Ok(event_id)
    }

    /// Makes the system account when it does not exist: no password, so nobody can log
    /// in as it, with the configured display name and avatar.
    async fn ensure_system_account(&self, system: &UserId) -> Result<()> {
        match self.store.user(system.as_str())? {
            Some(user) if user.deactivated => Err(Error::invalid_param(
                "The server notices account is deactivated",
            )),
            Some(_) => Ok(()),
            None => {
                self.create_account(NewAccount {
                    localpart: Some(system.localpart().to_owned()),
                    password: None,
                    device_id: None,
                    device_display_name: None,
                    inhibit_login: true,
                    refreshable: false,
                    admin: false,
                    registration_token: None,
                    guest: false,
                })
                .await?;
                let config = &self.config.server_notices;
                if let Some(name) = &config.system_mxid_display_name {
                    self.set_profile_field(system, system, "displayname", json!(name))
                        .await?;
                }
                if let Some(url) = &config.system_mxid_avatar_url {
                    self.set_profile_field(system, system, "avatar_url", json!(url))
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// The user's notices room, while they are joined to or invited to it; else a new
    /// one (or the one made before a crash, found by its marker).
    async fn notices_room(&self, system: &UserId, user_id: &UserId) -> Result<OwnedRoomId> {
        let in_room = |room_id: &OwnedRoomId| -> Result<bool> {
            let members = self.room_members(room_id)?;
            Ok(members.is_joined(system)
                && (members.is_joined(user_id) || members.invited.iter().any(|u| u == user_id)))
        };
        if let Some(room_id) = self.store.server_notice_room(user_id.as_str())?
            && in_room(&room_id)?
        {
            return Ok(room_id);
        }
        let room_id = match self.marked_notices_room(system, user_id)? {
            Some(room_id) if in_room(&room_id)? => room_id,
            _ => {
                let mut creation_content = Map::new();
                creation_content.insert(NOTICES_FOR_KEY.into(), json!(user_id));
                let mut power = Map::new();
                power.insert("users_default".into(), json!(-10));
                self.create_room(
                    system,
                    CreateRoom {
                        preset: Some(Preset::PrivateChat),
                        creation_content,
                        power_level_content_override: Some(power),
                        name: Some(self.config.server_notices.room_name.clone()),
                        invite: vec![user_id.to_owned()],
                        ..CreateRoom::default()
                    },
                )
                .await?
            }
        };
        self.set_room_tag(user_id, &room_id, SERVER_NOTICE_TAG, Map::new())?;
        let mut batch = self.store.batch();
        batch.put_server_notice_room(user_id.as_str(), &room_id)?;
        self.store.write(batch)?;
        Ok(room_id)
    }

    /// The newest room the system account is joined to whose create event names the user.
    fn marked_notices_room(
        &self,
        system: &UserId,
        user_id: &UserId,
    ) -> Result<Option<OwnedRoomId>> {
        let mut found = None;
        for (room_id, membership) in self.store.user_rooms(system.as_str())? {
            if membership.membership != "join" {
                continue;
            }
            let Some(room) = self.store.room(room_id.as_str())? else {
                continue;
            };
            let Some(create) = self.store.event(room.create_event.as_str())? else {
                continue;
            };
            let newer = found
                .as_ref()
                .is_none_or(|(stream, _)| membership.stream > *stream);
            if newer && create.pdu["content"][NOTICES_FOR_KEY].as_str() == Some(user_id.as_str()) {
                found = Some((membership.stream, room_id));
            }
        }
        Ok(found.map(|(_, room_id)| room_id))
    }
}
