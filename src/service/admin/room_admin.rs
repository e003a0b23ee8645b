//! `make_room_admin`, as Synapse: a room that lost its admins gets one again. A local
//! member with the most power (or a v12 creator) issues the power-levels event that
//! gives the chosen local user their level, inviting them first if they are not in the
//! room. Without such a member nothing can be done (`400`).

use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::event::power_levels::Power;
use crate::service::Services;
use crate::service::rooms::{EventTemplate, MembershipChange};

const POWER_LEVELS: &str = "m.room.power_levels";

impl Services {
    pub async fn admin_make_room_admin(
        &self,
        admin: &UserId,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<()> {
        self.local_account(user_id)?;
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
        let powers = self.powers_at_current(room_id, room.version)?;
        let members = self.room_members(room_id)?;
        // The local member with the most power who may change the power levels.
        let granter: Option<(Power, OwnedUserId)> = members
            .joined
            .iter()
            .filter(|u| u.server_name() == self.server_name())
            .filter(|u| powers.can_send(u, POWER_LEVELS, true))
            .map(|u| (powers.user_power(u), u.clone()))
            .max();
        let Some((granter_power, granter)) = granter else {
            return Err(Error::invalid_param(format!(
                "No local member of {room_id} can change its power levels"
            )));
        };
        // Infinite (v12 creators): the level an admin usually has, or above anyone's.
        let level = match granter_power {
            Power::Level(level) => level,
            Power::Infinite => powers
                .levels()
                .users
                .values()
                .copied()
                .max()
                .unwrap_or(0)
                .max(100)
                .max(powers.required_level(POWER_LEVELS, true)),
        };
        if !members.is_joined(user_id) && !members.invited.iter().any(|u| u == user_id) {
            self.change_membership(room_id, &granter, user_id, MembershipChange::Invite, None)
                .await?;
        }
        if powers.user_power(user_id) < Power::Level(level) {
            let mut content =
                match self.current_state_pdu(room_id, room.version, POWER_LEVELS, "")? {
                    Some(pdu) => pdu.content().clone(),
                    None => Map::new(),
                };
            let mut users = match content.get("users") {
                Some(Value::Object(users)) => users.clone(),
                _ => Map::new(),
            };
            users.insert(user_id.to_string(), json!(level));
            content.insert("users".into(), Value::Object(users));
            self.send_state(
                room_id,
                &granter,
                EventTemplate::state(POWER_LEVELS, "", Value::Object(content)),
            )
            .await?;
        }
        self.audit(
            admin,
            "room.make_room_admin",
            room_id.as_str(),
            Some(user_id.to_string()),
        )
    }
}
