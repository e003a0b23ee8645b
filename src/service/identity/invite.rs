//! Third-party invites (client-server API, "Third-party invites"; server-server API,
//! "Third-party invites"). Inviting by 3PID asks the identity server whom the 3PID is
//! bound to and invites that user; an unbound 3PID gets an invitation stored at the
//! identity server and an `m.room.third_party_invite` event with its public keys.
//!
//! Once someone binds the 3PID, the identity server calls `/3pid/onbind` on their
//! homeserver with a block it signed for each invitation. That server turns each into an
//! `m.room.member` invite carrying the block (`third_party_invite`), sent in the name of
//! the original inviter: itself if it is in the room, else through
//! `/exchange_third_party_invite` at a server that is. The server that makes the invite
//! checks that a key of the `m.room.third_party_invite` event signed the block and that
//! the identity server still vouches for that key (`key_validity_url`); the auth rules
//! check the signature again wherever the event goes.

use reqwest::Method;
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::event::third_party::signing_key;
use crate::event::types::{MEMBER, THIRD_PARTY_INVITE};
use crate::service::Services;
use crate::service::federation::remote_join::urlencode;
use crate::service::rooms::{EventTemplate, MembershipChange};

/// An invitation by third-party identifier, as a client asks for it.
#[derive(Debug, Clone)]
pub struct ThirdPartyInvite {
    pub id_server: String,
    pub id_access_token: String,
    pub medium: String,
    pub address: String,
}

/// One invitation of an identity server's `/3pid/onbind` call.
#[derive(Debug, Clone)]
pub struct BoundInvite {
    pub sender: OwnedUserId,
    pub mxid: OwnedUserId,
    pub room_id: OwnedRoomId,
    pub signed: Map<String, Value>,
}

impl BoundInvite {
    /// Reads an entry of `invites`; the `signed` block must name the token and user.
    pub fn parse(invite: &Value) -> Result<Self> {
        let text = |name: &str| {
            invite
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::missing_param(format!("an invite has no {name}")))
        };
        let signed = invite
            .get("signed")
            .and_then(Value::as_object)
            .filter(|s| s.get("token").is_some_and(Value::is_string))
            .filter(|s| s.get("mxid").is_some_and(Value::is_string))
            .cloned()
            .ok_or_else(|| Error::bad_json("an invite has no signed block with token and mxid"))?;
        let parse_user = |name: &str| {
            UserId::parse(text(name)?).map_err(|e| {
                Error::invalid_param(format!("an invite's {name} is not a user ID: {e}"))
            })
        };
        Ok(Self {
            sender: parse_user("sender")?,
            mxid: parse_user("mxid")?,
            room_id: RoomId::parse(text("room_id")?)
                .map_err(|e| Error::invalid_param(format!("an invite's room_id is bad: {e}")))?,
            signed,
        })
    }

    /// A `/join` body's `third_party_signed` (`sender`, `mxid`, `token`, `signatures`),
    /// for the joining user.
    pub fn from_join(signed: &Value, joiner: &UserId, room_id: &RoomId) -> Result<Self> {
        let signed = signed
            .as_object()
            .filter(|s| s.get("token").is_some_and(Value::is_string))
            .cloned()
            .ok_or_else(|| Error::bad_json("third_party_signed needs a token"))?;
        let sender = signed
            .get("sender")
            .and_then(Value::as_str)
            .and_then(|s| UserId::parse(s).ok())
            .ok_or_else(|| Error::bad_json("third_party_signed needs the sender"))?;
        Ok(Self {
            sender,
            mxid: joiner.to_owned(),
            room_id: room_id.to_owned(),
            signed,
        })
    }
}

impl Services {
    /// `POST /rooms/{roomId}/invite` with a 3PID, and `createRoom`'s `invite_3pid`.
    pub async fn invite_third_party(
        &self,
        room_id: &RoomId,
        inviter: &UserId,
        invite: &ThirdPartyInvite,
    ) -> Result<()> {
        if invite.medium.is_empty() || invite.address.is_empty() {
            return Err(Error::invalid_param("medium and address must not be empty"));
        }
        let Some(room) = self.store.room(room_id.as_str())? else {
            return Err(Error::not_found("This server is not in that room"));
        };
        // Refused before the identity server is asked to keep an invitation for nothing.
        if !self.is_joined(room_id, inviter)? {
            return Err(Error::forbidden(format!("{inviter} is not in the room")));
        }
        // A lookup that fails is taken as "not bound", as Synapse does: the invitation
        // is then stored at the identity server.
        let bound = match self
            .identity
            .lookup(
                &invite.id_server,
                &invite.id_access_token,
                &invite.medium,
                &invite.address,
            )
            .await
        {
            Ok(bound) => bound,
            Err(e) => {
                tracing::warn!(error = %e, "3PID lookup failed");
                None
            }
        };
        if let Some(mxid) = bound {
            let target = UserId::parse(&mxid).map_err(|_| {
                Error::new(
                    ErrorKind::BadGateway,
                    format!("the identity server named {mxid:?}, which is not a user ID"),
                )
            })?;
            self.change_membership(room_id, inviter, &target, MembershipChange::Invite, None)
                .await?;
            return Ok(());
        }
        let request = self.store_invite_request(room_id, room.version, inviter, invite)?;
        let stored = self
            .identity
            .store_invite(&invite.id_server, &invite.id_access_token, &request)
            .await?;
        let content = json!({
            "display_name": stored.display_name,
            "public_keys": stored.public_keys,
            "key_validity_url": stored.key_validity_url,
            "public_key": stored.public_key,
        });
        self.append_event(
            room_id,
            inviter,
            EventTemplate::state(THIRD_PARTY_INVITE, &stored.token, content),
            None,
        )
        .await?;
        Ok(())
    }

    /// The `/store-invite` body: the 3PID and what the identity server may show in its
    /// invitation (the room's name, alias, avatar, join rule and type; the inviter's
    /// name and avatar), as Synapse sends it.
    fn store_invite_request(
        &self,
        room_id: &RoomId,
        version: crate::event::RoomVersion,
        inviter: &UserId,
        invite: &ThirdPartyInvite,
    ) -> Result<Value> {
        let field = |event_type: &str, state_key: &str, key: &str| -> Result<String> {
            Ok(self
                .current_state_pdu(room_id, version, event_type, state_key)?
                .and_then(|pdu| pdu.content_str(key).map(str::to_owned))
                .unwrap_or_default())
        };
        let mut display_name = field(MEMBER, inviter.as_str(), "displayname")?;
        if display_name.is_empty() {
            display_name = inviter.to_string();
        }
        let mut request = json!({
            "medium": invite.medium,
            "address": invite.address,
            "room_id": room_id,
            "room_alias": field("m.room.canonical_alias", "", "alias")?,
            "room_avatar_url": field("m.room.avatar", "", "url")?,
            "room_join_rules": field("m.room.join_rules", "", "join_rule")?,
            "room_name": field("m.room.name", "", "name")?,
            "sender": inviter,
            "sender_display_name": display_name,
            "sender_avatar_url": field(MEMBER, inviter.as_str(), "avatar_url")?,
        });
        let room_type = field("m.room.create", "", "type")?;
        if !room_type.is_empty() {
            request["room_type"] = Value::String(room_type);
        }
        Ok(request)
    }

    /// `/3pid/onbind`: turns each invitation into an invite. Every one is tried; the
    /// last failure is the answer, as Synapse does.
    pub async fn on_threepid_bound(&self, invites: &[Value]) -> Result<()> {
        let mut last_error = None;
        for entry in invites {
            let result = match BoundInvite::parse(entry) {
                Ok(invite) => self.exchange_third_party_invite(&invite).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::info!(error = %e.message, "third-party invite not exchanged");
                last_error = Some(e);
            }
        }
        last_error.map_or(Ok(()), Err)
    }

    /// Makes the invite of a bound invitation: here if this server is in the room, else
    /// through `/exchange_third_party_invite` at the inviter's server or the room's.
    pub async fn exchange_third_party_invite(&self, invite: &BoundInvite) -> Result<()> {
        if !self.joins_remotely(&invite.room_id)? {
            return self.make_third_party_invite(invite).await;
        }
        let body = json!({
            "type": MEMBER,
            "room_id": invite.room_id,
            "sender": invite.sender,
            "state_key": invite.mxid,
            "content": {
                "membership": "invite",
                "third_party_invite": { "signed": invite.signed },
            },
        });
        let path = format!(
            "/_matrix/federation/v1/exchange_third_party_invite/{}",
            urlencode(invite.room_id.as_str())
        );
        let mut servers = vec![invite.sender.server_name().to_owned()];
        if let Some(server) = invite.room_id.server_name()
            && !servers.iter().any(|s| s == server)
        {
            servers.push(server.to_owned());
        }
        let mut last = None;
        let ours = self.server_name().as_str();
        for server in servers.iter().filter(|s| s.as_str() != ours) {
            match self
                .federation
                .send_json(server, Method::PUT, &path, Some(&body))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(Error::new(
            ErrorKind::BadGateway,
            format!(
                "Failed to forward third party invite: {}",
                last.unwrap_or_else(|| "no server to forward it to".into())
            ),
        ))
    }

    /// The invite for a bound invitation in a room this server is in: the signed block
    /// checked against the room's `m.room.third_party_invite` event and the identity
    /// server's word on the key, then the invite sent in the inviter's name (to the
    /// invitee's server through `/invite` if they are not ours).
    pub async fn make_third_party_invite(&self, invite: &BoundInvite) -> Result<()> {
        let room_id = &invite.room_id;
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found("This server is not in that room"))?;
        if invite.signed.get("mxid").and_then(Value::as_str) != Some(invite.mxid.as_str()) {
            return Err(Error::forbidden("The signed block is for another user"));
        }
        let token = invite
            .signed
            .get("token")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(third_party) =
            self.current_state_pdu(room_id, room.version, THIRD_PARTY_INVITE, token)?
        else {
            return Err(Error::forbidden("Could not find invite"));
        };
        let Some(key) = signing_key(&invite.signed, third_party.content()) else {
            return Err(Error::forbidden(
                "No key of the third-party invite signed the invitation",
            ));
        };
        if let Some(url) = &key.key_validity_url {
            match self.identity.key_is_valid(url, &key.public_key).await {
                Ok(true) => {}
                Ok(false) => return Err(Error::forbidden("Third party certificate was invalid")),
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::BadGateway,
                        format!("Third party certificate could not be checked: {e}"),
                    ));
                }
            }
        }
        let mut third_party_invite = Map::new();
        if let Some(name) = third_party.content().get("display_name") {
            third_party_invite.insert("display_name".into(), name.clone());
        }
        third_party_invite.insert("signed".into(), Value::Object(invite.signed.clone()));
        let mut content = Map::new();
        content.insert("membership".into(), json!("invite"));
        content.insert(
            "third_party_invite".into(),
            Value::Object(third_party_invite),
        );
        if invite.mxid.server_name() == self.server_name() {
            self.append_event(
                room_id,
                &invite.sender,
                EventTemplate::state(MEMBER, invite.mxid.as_str(), Value::Object(content)),
                None,
            )
            .await?;
        } else {
            self.invite_remote_user(room_id, &invite.sender, &invite.mxid, content)
                .await?;
        }
        Ok(())
    }
}
