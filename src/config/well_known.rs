//! `[well_known]`: the discovery answers Hearth serves itself, for an operator whose
//! server name points at Hearth directly rather than at a web server or proxy.

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WellKnownConfig {
    /// `m.server` of `/.well-known/matrix/server`: the host and port other servers use
    /// for this one (e.g. "matrix.example.org:443"). Unset, the path answers 404 and
    /// other servers connect to the server name on port 8448.
    pub server: Option<String>,
}

impl WellKnownConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(server) = &self.server
            && ruma::ServerName::parse(server).is_err()
        {
            return Err(ConfigError::Invalid(format!(
                "well_known.server {server:?} is not a host with an optional port, e.g. \"matrix.example.org:443\""
            )));
        }
        Ok(())
    }
}
