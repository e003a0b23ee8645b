//! Lookups other servers make: a local alias's room, and a local user's devices.

use ruma::{OwnedDeviceId, OwnedRoomId, OwnedServerName, RoomAliasId, UserId};

use crate::error::{Error, Result};
use crate::service::Services;

/// One device as other servers see it.
pub struct RemoteDevice {
    pub device_id: OwnedDeviceId,
    pub display_name: Option<String>,
    /// The device's signed identity keys, once uploaded.
    pub keys: Option<serde_json::Value>,
}

/// A local user's device list for another server.
pub struct DeviceList {
    /// The position of the user's latest change on the device-list stream, which
    /// `m.device_list_update` EDUs continue (their `prev_id`).
    pub stream_id: u64,
    pub devices: Vec<RemoteDevice>,
    pub master_key: Option<serde_json::Value>,
    pub self_signing_key: Option<serde_json::Value>,
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

    /// `GET /user/devices/{userId}`: a local user's devices, with their display names and
    /// keys, and their cross-signing keys. An unknown local user has no devices (as in
    /// Synapse); a user of another server is 400.
    pub fn devices_for_server(&self, user_id: &UserId) -> Result<DeviceList> {
        if user_id.server_name() != self.server_name() {
            return Err(Error::invalid_param(format!(
                "User {user_id} is not a user of this server ({})",
                self.server_name()
            )));
        }
        let stream_id = self.store.device_list_position(user_id.as_str())?;
        let mut devices = Vec::new();
        for device in self.sessions.devices(user_id)? {
            let keys = self
                .store
                .device_keys(user_id.as_str(), device.device_id.as_str())?;
            devices.push(RemoteDevice {
                device_id: device.device_id,
                display_name: device.display_name,
                keys,
            });
        }
        Ok(DeviceList {
            stream_id,
            devices,
            master_key: self.store.cross_signing_key(user_id.as_str(), "master")?,
            self_signing_key: self
                .store
                .cross_signing_key(user_id.as_str(), "self_signing")?,
        })
    }
}
