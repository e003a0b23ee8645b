//! `[push]`: the server's own Web Push sending (MSC4174 pushers).

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// The VAPID `sub` claim (RFC 8292): a `mailto:` or `https:` URI at which push
    /// services can reach the operator. Unset: `public_baseurl` when it is https, else
    /// `https://` and the server name.
    pub vapid_subject: Option<String>,
}

impl PushConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(subject) = &self.vapid_subject {
            let valid = (subject.starts_with("mailto:") && subject.len() > "mailto:".len())
                || reqwest::Url::parse(subject)
                    .is_ok_and(|url| url.scheme() == "https" && url.host_str().is_some());
            if !valid {
                return Err(ConfigError::Invalid(format!(
                    "push.vapid_subject {subject:?} must be a mailto: or https: URI"
                )));
            }
        }
        Ok(())
    }
}
