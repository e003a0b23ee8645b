//! `GET /pushers` and `POST /pushers/set`: kinds `http` (a push gateway) and `webpush`
//! (MSC4174, see `webpush.rs`).

use ruma::{DeviceId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Pushers;
use super::gateway::GatewayClient;
use super::webpush::{self, is_webpush};
use crate::error::{Error, Result};
use crate::service::{Services, now_ms};
use crate::store::{PusherActivation, PusherRecord};

/// The path every HTTP pusher's URL must have (the push gateway API).
pub const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";
const MAX_APP_ID_CHARS: usize = 64;
const MAX_PUSHKEY_BYTES: usize = 512;
/// How long a Web Push pusher's activation token is accepted (MSC4174: 5 minutes).
const ACTIVATION_MS: u64 = 5 * 60 * 1000;

/// The body of `POST /pushers/set`.
#[derive(Debug, Deserialize)]
pub struct SetPusher {
    pub pushkey: Option<String>,
    /// Absent and `null` differ: `null` removes the pusher.
    #[serde(default, deserialize_with = "present")]
    pub kind: Option<Option<String>>,
    pub app_id: Option<String>,
    pub app_display_name: Option<String>,
    pub device_display_name: Option<String>,
    pub profile_tag: Option<String>,
    pub lang: Option<String>,
    pub data: Option<Map<String, Value>>,
    #[serde(default)]
    pub append: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn required(value: Option<String>, name: &str) -> Result<String> {
    value.ok_or_else(|| Error::missing_param(format!("{name} is required")))
}

/// Checks an HTTP pusher's `data`: a URL with the gateway's notify path, not at a
/// denied IP address, and a format that is a string.
fn check_http_data(data: &Map<String, Value>, gateway: &GatewayClient) -> Result<()> {
    let url = match data.get("url") {
        Some(Value::String(url)) => url,
        Some(_) => return Err(Error::invalid_param("data.url must be a string")),
        None => {
            return Err(Error::missing_param(
                "data.url is required for an http pusher",
            ));
        }
    };
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::invalid_param(format!("data.url is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid_param("data.url must be an http(s) URL"));
    }
    if let Some(ip) = gateway.denied_literal(&parsed) {
        return Err(Error::invalid_param(format!(
            "data.url points at {ip}, an address this server does not send to"
        )));
    }
    if parsed.path() != NOTIFY_PATH {
        return Err(Error::invalid_param(format!(
            "data.url must have the path {NOTIFY_PATH}"
        )));
    }
    // The spec names one format, `event_id_only`; like Synapse, any other string is kept
    // (and echoed by `GET /pushers`) and gets the full notification.
    match data.get("format") {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(_) => Err(Error::invalid_param("data.format must be a string")),
    }
}

impl Services {
    /// The user's pushers in the client API's format.
    pub fn get_pushers(&self, user_id: &UserId) -> Result<Value> {
        let pushers: Vec<Value> = self
            .store
            .pushers(user_id.as_str())?
            .into_iter()
            .map(|p| {
                let mut pusher = json!({
                    "kind": p.kind,
                    "app_id": p.app_id,
                    "pushkey": p.pushkey,
                    "app_display_name": p.app_display_name,
                    "device_display_name": p.device_display_name,
                    "lang": p.lang,
                    "data": p.data,
                });
                if let Some(tag) = p.profile_tag {
                    pusher["profile_tag"] = json!(tag);
                }
                if is_webpush(&p.kind) {
                    pusher["activated"] = json!(p.activation.is_none());
                }
                pusher
            })
            .collect();
        Ok(json!({ "pushers": pushers }))
    }

    /// Adds, replaces or (with `kind: null`) removes one of the user's pushers. True
    /// when the pusher is a Web Push one waiting for its activation (answered 201).
    pub fn set_pusher(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        body: SetPusher,
    ) -> Result<bool> {
        let pushkey = required(body.pushkey, "pushkey")?;
        let app_id = required(body.app_id, "app_id")?;
        if pushkey.len() > MAX_PUSHKEY_BYTES {
            return Err(Error::invalid_param(format!(
                "pushkey may have at most {MAX_PUSHKEY_BYTES} bytes"
            )));
        }
        if app_id.chars().count() > MAX_APP_ID_CHARS {
            return Err(Error::invalid_param(format!(
                "app_id may have at most {MAX_APP_ID_CHARS} characters"
            )));
        }
        let kind = match body.kind {
            None => return Err(Error::missing_param("kind is required")),
            Some(None) => {
                let mut batch = self.store.batch();
                batch.delete_pusher(user_id.as_str(), &app_id, &pushkey);
                self.store.write(batch)?;
                self.pushers.stop(user_id, &app_id, &pushkey);
                return Ok(false);
            }
            Some(Some(kind)) => kind,
        };
        let data = body
            .data
            .ok_or_else(|| Error::missing_param("data is required"))?;
        if kind == super::EMAIL_KIND {
            // Digests to one of the user's verified addresses (as Synapse's email
            // pushers): not tied to the device that set it.
            if app_id != crate::service::email::threepid::EMAIL_APP_ID {
                return Err(Error::invalid_param(
                    "Email pushers have the app_id m.email",
                ));
            }
            if self.store.threepid_owner(&pushkey)?.as_deref() != Some(user_id.as_str()) {
                return Err(Error::invalid_param(
                    "The pushkey of an email pusher must be one of your verified addresses",
                ));
            }
        } else if kind == "http" {
            check_http_data(&data, &self.pushers.gateway)?;
        } else if is_webpush(&kind) {
            webpush::check_data(&pushkey, &data, self.pushers.webpush.guard())?;
        } else {
            return Err(Error::invalid_param(format!(
                "Pushers of kind {kind:?} are not supported; this server has http, webpush and email pushers"
            )));
        }
        let owning_device = (kind != super::EMAIL_KIND).then(|| device_id.to_string());
        let record = PusherRecord {
            kind,
            app_id,
            pushkey,
            app_display_name: required(body.app_display_name, "app_display_name")?,
            device_display_name: required(body.device_display_name, "device_display_name")?,
            profile_tag: body.profile_tag,
            lang: required(body.lang, "lang")?,
            data: Value::Object(data),
            ts: now_ms(),
            device_id: owning_device,
            activation: None,
        };
        let mut record = record;
        // Without `append`, the pushkey belongs to this user alone: other users' pushers
        // with the same app and pushkey go.
        let others = if body.append {
            Vec::new()
        } else {
            self.store
                .all_pushers()?
                .into_iter()
                .filter(|(other, p)| {
                    other != user_id && p.app_id == record.app_id && p.pushkey == record.pushkey
                })
                .map(|(other, _)| other)
                .collect()
        };
        let mut batch = self.store.batch();
        for other in &others {
            batch.delete_pusher(other.as_str(), &record.app_id, &record.pushkey);
        }
        let existing = self
            .store
            .pusher(user_id.as_str(), &record.app_id, &record.pushkey)?;
        if is_webpush(&record.kind) {
            record.activation = activation_for(&record, existing.as_ref());
        }
        batch.put_pusher(user_id.as_str(), &record)?;
        if existing.is_none() {
            // A new pusher starts from now: earlier notifications are not pushed.
            let key = crate::store::pusher_key(user_id.as_str(), &record.app_id, &record.pushkey);
            batch.put_pusher_progress(&key, self.rooms.stream_position());
        }
        self.store.write(batch)?;
        for other in &others {
            self.pushers.stop(other, &record.app_id, &record.pushkey);
        }
        let needs_activation = record.activation.is_some();
        Pushers::start(&self.pushers, user_id, record);
        Ok(needs_activation)
    }
}

/// A Web Push pusher stays activated when set again with the same kind, URL and secret;
/// otherwise (new, changed, or set again before its activation) it gets a new token.
fn activation_for(
    record: &PusherRecord,
    existing: Option<&PusherRecord>,
) -> Option<PusherActivation> {
    let unchanged = existing.is_some_and(|old| {
        old.activation.is_none()
            && is_webpush(&old.kind)
            && old.data.get("url") == record.data.get("url")
            && old.data.get("auth") == record.data.get("auth")
    });
    (!unchanged).then(|| PusherActivation {
        token: super::activation::new_token(),
        expires_ms: now_ms() + ACTIVATION_MS,
    })
}
