//! `/keys/query` and `/keys/claim` across servers: local users answered here, remote
//! users someone here shares a room with from their kept device lists
//! (`remote_devices.rs`), other remote users' servers asked concurrently (each within the timeout, failures reported per
//! server), and the same queries served to other servers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use ruma::{OwnedDeviceId, OwnedServerName, OwnedUserId, ServerName, UserId};
use serde_json::{Map, Value, json};

use super::keys::{ClaimRequest, QueryRequest};
use super::remote_devices::add_remote_keys;
use crate::error::{Error, Result};
use crate::service::Services;

/// How long a remote server gets when the client names no timeout, and the most it may ask.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// The cross-signing key kinds and the `/keys/query` field each goes in.
const CROSS_SIGNING: [(&str, &str); 3] = [
    ("master", "master_keys"),
    ("self_signing", "self_signing_keys"),
    ("user_signing", "user_signing_keys"),
];

fn timeout_of(ms: Option<u64>) -> Duration {
    ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis)
        .min(MAX_TIMEOUT)
}

/// Merges `answer[field][user] = …` objects from one server into the response.
fn merge_field(
    response: &mut Map<String, Value>,
    answer: &Value,
    field: &str,
    allowed: &ServerName,
) {
    let Some(entries) = answer.get(field).and_then(Value::as_object) else {
        return;
    };
    let target = response
        .entry(field)
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(target) = target else { return };
    for (user, value) in entries {
        // A server answers only for its own users.
        if UserId::parse(user).is_ok_and(|u| u.server_name() == allowed) {
            target.insert(user.clone(), value.clone());
        }
    }
}

/// Another user's signature of a key (their user-signing key's, of a master key) is seen
/// only by that user: the spec keeps who verified whom from everyone else.
fn keep_visible_signatures(key: &mut Value, owner: &UserId, requester: Option<&UserId>) {
    if let Some(signatures) = key.get_mut("signatures").and_then(Value::as_object_mut) {
        signatures.retain(|signer, _| {
            signer == owner.as_str() || requester.is_some_and(|r| signer == r.as_str())
        });
    }
}

impl Services {
    /// `POST /keys/query` for `requester`.
    pub async fn query_keys(
        self: &Arc<Self>,
        requester: &UserId,
        request: QueryRequest,
    ) -> Result<Value> {
        let mut response = Map::new();
        for field in [
            "device_keys",
            "master_keys",
            "self_signing_keys",
            "user_signing_keys",
            "failures",
        ] {
            response.insert(field.into(), json!({}));
        }
        let mut remote: BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>> =
            BTreeMap::new();
        let mut tracked = Vec::new();
        for (user_id, devices) in request.device_keys {
            if user_id.server_name() == self.server_name() {
                self.add_local_keys(&mut response, &user_id, &devices, Some(requester))?;
            } else if self.shares_room_with_local_user(&user_id)? {
                tracked.push((user_id, devices));
            } else {
                self.forget_remote_devices(&user_id)?;
                remote
                    .entry(user_id.server_name().to_owned())
                    .or_default()
                    .insert(user_id, devices);
            }
        }
        let timeout = timeout_of(request.timeout);
        // Users someone here shares a room with: their kept device lists.
        let mut lists = tokio::task::JoinSet::new();
        for (user_id, devices) in tracked {
            let services = self.clone();
            lists.spawn(async move {
                let list = services.remote_devices_for_query(&user_id, timeout).await;
                (user_id, devices, list)
            });
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (server, users) in remote {
            let services = self.clone();
            tasks.spawn(async move {
                let body = json!({ "device_keys": users });
                let answer = tokio::time::timeout(
                    timeout,
                    services.federation.send_json(
                        &server,
                        Method::POST,
                        "/_matrix/federation/v1/user/keys/query",
                        Some(&body),
                    ),
                )
                .await;
                (server, answer)
            });
        }
        while let Some(joined) = lists.join_next().await {
            let Ok((user_id, devices, list)) = joined else {
                continue;
            };
            match list? {
                Some(list) => add_remote_keys(&mut response, &user_id, &devices, &list),
                None => failure(
                    &mut response,
                    user_id.server_name(),
                    "cannot fetch the user's devices",
                ),
            }
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((server, answer)) = joined else {
                continue;
            };
            match answer {
                Ok(Ok(answer)) => {
                    for field in ["device_keys", "master_keys", "self_signing_keys"] {
                        merge_field(&mut response, &answer, field, &server);
                    }
                }
                Ok(Err(e)) => {
                    tracing::info!(%server, error = %e, "remote key query failed");
                    failure(&mut response, &server, &e.to_string());
                }
                Err(_) => failure(&mut response, &server, "timed out"),
            }
        }
        Ok(Value::Object(response))
    }

    /// A local user's device keys and cross-signing keys into a `/keys/query` answer;
    /// the user-signing key only for the user themself.
    fn add_local_keys(
        &self,
        response: &mut Map<String, Value>,
        user_id: &UserId,
        devices: &[OwnedDeviceId],
        requester: Option<&UserId>,
    ) -> Result<()> {
        let keys = self.local_device_keys(user_id, devices)?;
        if let Some(map) = response
            .get_mut("device_keys")
            .and_then(Value::as_object_mut)
        {
            map.insert(user_id.to_string(), Value::Object(keys));
        }
        for (usage, field) in CROSS_SIGNING {
            if usage == "user_signing" && requester != Some(user_id) {
                continue;
            }
            if let Some(mut key) = self.store.cross_signing_key(user_id.as_str(), usage)?
                && let Some(map) = response.get_mut(field).and_then(Value::as_object_mut)
            {
                keep_visible_signatures(&mut key, user_id, requester);
                map.insert(user_id.to_string(), key);
            }
        }
        Ok(())
    }

    /// `POST /keys/claim`: local devices' keys claimed here, remote ones from their servers.
    pub async fn claim_keys(self: &Arc<Self>, request: ClaimRequest) -> Result<Value> {
        let mut local = BTreeMap::new();
        let mut remote: BTreeMap<
            OwnedServerName,
            BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
        > = BTreeMap::new();
        for (user_id, devices) in request.one_time_keys {
            if user_id.server_name() == self.server_name() {
                local.insert(user_id, devices);
            } else {
                remote
                    .entry(user_id.server_name().to_owned())
                    .or_default()
                    .insert(user_id, devices);
            }
        }
        let mut response = Map::new();
        response.insert(
            "one_time_keys".into(),
            Value::Object(self.claim_local_keys(&local).await?),
        );
        response.insert("failures".into(), json!({}));
        let timeout = timeout_of(request.timeout);
        let mut tasks = tokio::task::JoinSet::new();
        for (server, claims) in remote {
            let services = self.clone();
            tasks.spawn(async move {
                let body = json!({ "one_time_keys": claims });
                let answer = tokio::time::timeout(
                    timeout,
                    services.federation.send_json(
                        &server,
                        Method::POST,
                        "/_matrix/federation/v1/user/keys/claim",
                        Some(&body),
                    ),
                )
                .await;
                (server, answer)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((server, answer)) = joined else {
                continue;
            };
            match answer {
                Ok(Ok(answer)) => merge_field(&mut response, &answer, "one_time_keys", &server),
                Ok(Err(e)) => {
                    tracing::info!(%server, error = %e, "remote key claim failed");
                    failure(&mut response, &server, &e.to_string());
                }
                Err(_) => failure(&mut response, &server, "timed out"),
            }
        }
        Ok(Value::Object(response))
    }

    /// `POST /_matrix/federation/v1/user/keys/query` from `origin`: local users only.
    pub fn serve_keys_query(
        &self,
        device_keys: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
    ) -> Result<Value> {
        let mut response = Map::new();
        for field in ["device_keys", "master_keys", "self_signing_keys"] {
            response.insert(field.into(), json!({}));
        }
        for (user_id, devices) in device_keys {
            if user_id.server_name() != self.server_name() {
                return Err(Error::invalid_param(format!(
                    "{user_id} is not a user of this server"
                )));
            }
            self.add_local_keys(&mut response, user_id, devices, None)?;
        }
        Ok(Value::Object(response))
    }

    /// `POST /_matrix/federation/v1/user/keys/claim`: local devices only.
    pub async fn serve_keys_claim(
        &self,
        claims: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
    ) -> Result<Value> {
        if let Some(user_id) = claims
            .keys()
            .find(|u| u.server_name() != self.server_name())
        {
            return Err(Error::invalid_param(format!(
                "{user_id} is not a user of this server"
            )));
        }
        Ok(json!({ "one_time_keys": self.claim_local_keys(claims).await? }))
    }
}

fn failure(response: &mut Map<String, Value>, server: &ServerName, message: &str) {
    if let Some(failures) = response.get_mut("failures").and_then(Value::as_object_mut) {
        failures.insert(
            server.to_string(),
            json!({"status": 503, "message": message}),
        );
    }
}
