//! `[server_notices]`: the server's own account that sends notices to users, each in a
//! room of its own, as Synapse's `server_notices` section. Off until
//! `system_mxid_localpart` is set.

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerNoticesConfig {
    /// The local part of the account notices come from; unset, notices are off.
    pub system_mxid_localpart: Option<String>,
    pub system_mxid_display_name: Option<String>,
    pub system_mxid_avatar_url: Option<String>,
    /// The name of each user's notices room.
    pub room_name: String,
}

impl Default for ServerNoticesConfig {
    fn default() -> Self {
        Self {
            system_mxid_localpart: None,
            system_mxid_display_name: Some("Server Notices".into()),
            system_mxid_avatar_url: None,
            room_name: "Server Notices".into(),
        }
    }
}

pub const SERVER_NOTICES_OPTIONS: &[(&str, &str)] = &[
    (
        "server_notices.system_mxid_localpart",
        "Local part of the account that sends server notices (hearthctl server notice); the account is made when first needed. Unset, notices are off [default: none]",
    ),
    (
        "server_notices.system_mxid_display_name",
        "Display name of that account [default: Server Notices]",
    ),
    (
        "server_notices.system_mxid_avatar_url",
        "Avatar (mxc:// URI) of that account [default: none]",
    ),
    (
        "server_notices.room_name",
        "Name of each user's server-notices room [default: Server Notices]",
    ),
];

impl ServerNoticesConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(localpart) = &self.system_mxid_localpart
            && (localpart.is_empty()
                || !localpart.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/+".contains(&b)
                }))
        {
            return Err(ConfigError::Invalid(format!(
                "server_notices.system_mxid_localpart {localpart:?} is not a valid user ID local part (a-z, 0-9, ._=-/+)"
            )));
        }
        if let Some(url) = &self.system_mxid_avatar_url
            && !url.starts_with("mxc://")
        {
            return Err(ConfigError::Invalid(
                "server_notices.system_mxid_avatar_url must be an mxc:// URI".into(),
            ));
        }
        Ok(())
    }
}
