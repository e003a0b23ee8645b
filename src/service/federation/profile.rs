//! Profiles of users on other servers, asked of their server with
//! `GET /_matrix/federation/v1/query/profile`.

use ruma::UserId;
use ruma::api::federation::query::get_profile_information;
use ruma::profile::ProfileFieldName;
use serde_json::{Map, Value};

use super::FederationClient;
use crate::error::{Error, Result};

impl FederationClient {
    /// The profile of a remote user, or its one field `field`. Fields the remote sends as
    /// `null` count as unset. A remote 404 is `M_NOT_FOUND`; other failures are 502/504.
    pub async fn remote_profile(
        &self,
        user_id: &UserId,
        field: Option<&str>,
    ) -> Result<Map<String, Value>> {
        let mut request = get_profile_information::v1::Request::new(user_id.to_owned());
        request.field = field.map(ProfileFieldName::from);
        let response = self.send(user_id.server_name(), request).await?;
        let profile: Map<String, Value> = response
            .iter()
            .filter(|(key, value)| !value.is_null() && field.is_none_or(|f| f == key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        if field.is_some() && profile.is_empty() {
            return Err(Error::not_found(format!(
                "{user_id} has no profile field {:?}",
                field.unwrap_or_default()
            )));
        }
        Ok(profile)
    }
}
