//! Joining, leaving, inviting, kicking, banning: membership events built for the user.

use ruma::{OwnedEventId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    Join,
    Leave,
    Invite,
    Kick,
    Ban,
    Unban,
    Knock,
}

impl MembershipChange {
    fn membership(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave | Self::Kick | Self::Unban => "leave",
            Self::Invite => "invite",
            Self::Ban => "ban",
            Self::Knock => "knock",
        }
    }
}

/// Membership content keys a client's request body cannot set.
const SERVER_CHOSEN_MEMBER_KEYS: [&str; 6] = [
    "membership",
    "reason",
    "displayname",
    "avatar_url",
    "join_authorised_via_users_server",
    "third_party_invite",
];

impl Services {
    /// Sends the membership event `sender` asks for about `target` (the sender itself
    /// for join, leave and knock). The auth rules decide whether it is allowed.
    pub async fn change_membership(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        target: &UserId,
        change: MembershipChange,
        reason: Option<String>,
    ) -> Result<OwnedEventId> {
        self.change_membership_with(room_id, sender, target, change, reason, Map::new())
            .await
    }

    /// [`Self::change_membership`] with extra content keys the client chose (those of a
    /// `/join` body, as Synapse copies them into the join). Keys the server decides
    /// (`membership`, `reason`, the profile, and `join_authorised_via_users_server`,
    /// which only a resident server may set for a restricted room) are not taken.
    pub async fn change_membership_with(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        target: &UserId,
        change: MembershipChange,
        reason: Option<String>,
        extra: Map<String, Value>,
    ) -> Result<OwnedEventId> {
        if change == MembershipChange::Leave
            && sender == target
            && self.joins_remotely(room_id)?
            && matches!(
                self.membership(room_id, sender)?.as_deref(),
                Some("invite" | "knock")
            )
        {
            self.reject_remote_invite(room_id, sender).await?;
            return self
                .store
                .user_room(sender.as_str(), room_id.as_str())?
                .map(|r| r.event_id)
                .ok_or_else(|| Error::internal("declined invite left no record"));
        }
        if self.store.room(room_id.as_str())?.is_none() {
            return Err(Error::not_found("This server is not in that room"));
        }
        if change == MembershipChange::Invite {
            self.check_invitable(target)?;
        }
        // The auth rules let a moderator "kick" someone who has left or never came;
        // Synapse refuses that, and clients expect its 403.
        if change == MembershipChange::Kick
            && !matches!(
                self.membership(room_id, target)?.as_deref(),
                Some("join" | "invite" | "knock")
            )
        {
            return Err(Error::forbidden(format!("{target} is not in the room")));
        }
        if change == MembershipChange::Unban
            && self.membership(room_id, target)?.as_deref() != Some("ban")
        {
            return Err(Error::forbidden(format!("{target} is not banned")));
        }
        let mut content: Map<String, Value> = extra
            .into_iter()
            .filter(|(key, _)| !SERVER_CHOSEN_MEMBER_KEYS.contains(&key.as_str()))
            .collect();
        content.insert("membership".into(), json!(change.membership()));
        if let Some(reason) = reason {
            content.insert("reason".into(), Value::String(reason));
        }
        if change == MembershipChange::Invite && target.server_name() != self.server_name() {
            return self
                .invite_remote_user(room_id, sender, target, content)
                .await;
        }
        self.append_member_event(room_id, sender, target, content)
            .await
    }

    /// Marks a room the user has left or been banned from as forgotten: they no longer
    /// read its state or history. Joining, an invite or a knock un-forgets it.
    pub async fn forget_room(&self, room_id: &RoomId, user: &UserId) -> Result<()> {
        // Under the room lock so a membership change cannot be overwritten by a stale record.
        let _guard = self.rooms.lock(room_id).await;
        let Some(mut record) = self.store.user_room(user.as_str(), room_id.as_str())? else {
            return Err(Error::new(
                ErrorKind::Unknown,
                format!("{user} has never been in room {room_id}"),
            ));
        };
        if !matches!(record.membership.as_str(), "leave" | "ban") {
            return Err(Error::new(
                ErrorKind::Unknown,
                format!(
                    "{user} is still in room {room_id} (membership {}): leave it before forgetting it",
                    record.membership
                ),
            ));
        }
        if record.forgotten {
            return Ok(());
        }
        record.forgotten = true;
        let mut batch = self.store.batch();
        batch.put_user_room(user.as_str(), room_id.as_str(), &record)?;
        self.store.write(batch)?;
        Ok(())
    }
}
