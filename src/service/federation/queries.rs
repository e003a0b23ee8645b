//! Lookups other servers make: a local alias's room, and a local user's devices.

use ruma::{OwnedDeviceId, OwnedRoomId, OwnedServerName, RoomAliasId, UserId};

use crate::error::{Error, Result};
use crate::service::Services;

/// One device as other servers see it.
pub struct RemoteDevice {
    pub device_id: OwnedDeviceId,
    pub display_name: Option<String>,
}

/// A local user's device list for another server.
pub struct DeviceList {
    /// The position of this list on the user's device-list stream, which
    /// `m.device_list_update` EDUs continue. Hearth sends no such EDUs yet, so there is
    /// no update to follow this list and the position is 0.
    pub stream_id: u64,
    pub devices: Vec<RemoteDevice>,
}

impl Services {
    /// `GET /query/directory?room_alias=`: the room a local alias points to, and the
    /// servers with a user joined to it (this server first when it is one of them,
    /// the others in the order they joined), as Synapse answers clients. 400 for an
    /// alias of another server, 404 for an unknown one.
    pub fn alias_for_server(
        &self,
        alias: &RoomAliasId,
    ) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
        if alias.server_name() != self.server_name() {
            return Err(Error::invalid_param(format!(
                "Room alias {alias} is not on this server ({})",
                self.server_name()
            )));
        }
        let room_id = self.resolve_alias(alias)?;
        let members = self.room_members(&room_id)?;
        let mut servers: Vec<OwnedServerName> = Vec::new();
        for user in &members.joined {
            let server = user.server_name();
            if !servers.iter().any(|s| s == server) {
                servers.push(server.to_owned());
            }
        }
        if let Some(ours) = servers.iter().position(|s| s == self.server_name()) {
            let ours = servers.remove(ours);
            servers.insert(0, ours);
        }
        Ok((room_id, servers))
    }

    /// `GET /user/devices/{userId}`: a local user's devices, with their display names.
    /// There are no device keys to give: Hearth has no end-to-end encryption yet. An
    /// unknown local user has no devices (as in Synapse); a user of another server is 400.
    pub fn devices_for_server(&self, user_id: &UserId) -> Result<DeviceList> {
        if user_id.server_name() != self.server_name() {
            return Err(Error::invalid_param(format!(
                "User {user_id} is not a user of this server ({})",
                self.server_name()
            )));
        }
        let devices = self
            .sessions
            .devices(user_id)?
            .into_iter()
            .map(|device| RemoteDevice {
                device_id: device.device_id,
                display_name: device.display_name,
            })
            .collect();
        Ok(DeviceList {
            stream_id: 0,
            devices,
        })
    }
}
