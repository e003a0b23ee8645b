//! The Matrix requests the bench makes over HTTP, and the few parts of a sync response
//! it reads.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

/// The content key that carries a message's bench ID.
pub const BENCH_ID_KEY: &str = "org.hearth.bench.id";

/// Filter for the first sync of each client: only its position matters, so one timeline
/// event per room keeps it cheap however many messages earlier runs left behind, and
/// lazy-loaded members keep it so however many members a room has.
pub const INITIAL_FILTER: &str = r#"{"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]},"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true},"account_data":{"not_types":["*"]}}}"#;

/// Filter for the measured syncs: a timeline window large enough that a healthy server
/// never needs to answer `limited`, and no presence or account data.
pub const FILTER: &str = r#"{"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]},"room":{"timeline":{"limit":1000},"account_data":{"not_types":["*"]}}}"#;

/// A registered user with its access token; `room` indexes the room it joined.
pub struct Client {
    pub user_id: String,
    pub token: String,
    pub room: usize,
}

/// The parts of a `/sync` response (or of a socket frame's `body`) the bench reads.
#[derive(Deserialize, Default)]
pub struct SyncBody {
    pub next_batch: Option<String>,
    #[serde(default)]
    pub rooms: Rooms,
    /// Present in the socket's answer to a `send` request.
    pub event_id: Option<String>,
    #[serde(default)]
    pub to_device: ToDevice,
    /// Present for a device that has uploaded keys.
    #[serde(default)]
    pub device_one_time_keys_count: Option<HashMap<String, u64>>,
}

#[derive(Deserialize, Default)]
pub struct ToDevice {
    #[serde(default)]
    pub events: Vec<ToDeviceEvent>,
}

/// A to-device message; the bench reads only its content's bench keys.
#[derive(Deserialize)]
pub struct ToDeviceEvent {
    #[serde(default)]
    pub content: serde_json::Map<String, Value>,
}

#[derive(Deserialize, Default)]
pub struct Rooms {
    #[serde(default)]
    pub join: HashMap<String, JoinedRoom>,
}

#[derive(Deserialize, Default)]
pub struct JoinedRoom {
    #[serde(default)]
    pub timeline: Timeline,
}

#[derive(Deserialize, Default)]
pub struct Timeline {
    #[serde(default)]
    pub events: Vec<TimelineEvent>,
    #[serde(default)]
    pub limited: bool,
}

#[derive(Deserialize)]
pub struct TimelineEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: MessageContent,
}

#[derive(Deserialize, Default)]
pub struct MessageContent {
    #[serde(rename = "org.hearth.bench.id")]
    pub bench_id: Option<u64>,
}

/// The content of bench message `id`.
pub fn message_content(id: u64) -> Value {
    json!({
        "msgtype": "m.text",
        "body": format!("hearth-bench message {id}"),
        BENCH_ID_KEY: id,
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a path segment
/// or query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An HTTP API handle for one server.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    /// A request with a JSON body; an answer that is not a success is an error.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON: {text}"))
    }

    /// Registers `username` through the `m.login.dummy` stage; returns (user ID, token).
    pub async fn register(&self, username: &str) -> Result<(String, String)> {
        let (user_id, token, _) = self.register_device(username).await?;
        Ok((user_id, token))
    }

    /// As [`Api::register`], also returning the new device's ID.
    pub async fn register_device(&self, username: &str) -> Result<(String, String, String)> {
        let body = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/register",
                None,
                &json!({
                    "username": username,
                    "password": "hearth-bench password",
                    "auth": {"type": "m.login.dummy"},
                    "initial_device_display_name": "hearth-bench",
                }),
            )
            .await?;
        let field = |name: &str| {
            body[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("register answered without {name}: {body}"))
        };
        Ok((
            field("user_id")?,
            field("access_token")?,
            field("device_id")?,
        ))
    }

    /// Logs in with `m.login.jwt` (creating the account on the first login, see
    /// `jwt.rs`); returns (user ID, token).
    pub async fn login_jwt(&self, jwt: &str) -> Result<(String, String)> {
        let (user_id, token, _) = self.login_jwt_device(jwt).await?;
        Ok((user_id, token))
    }

    /// As [`Api::login_jwt`], also returning the new device's ID.
    pub async fn login_jwt_device(&self, jwt: &str) -> Result<(String, String, String)> {
        let body = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/login",
                None,
                &json!({
                    "type": "org.matrix.login.jwt",
                    "token": jwt,
                    "initial_device_display_name": "hearth-bench",
                }),
            )
            .await?;
        let field = |name: &str| {
            body[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("login answered without {name}: {body}"))
        };
        Ok((
            field("user_id")?,
            field("access_token")?,
            field("device_id")?,
        ))
    }

    /// `POST /pushers/set`: an HTTP pusher at `url` (a push gateway's notify URL), its
    /// pushkey made from the user ID.
    pub async fn set_http_pusher(&self, token: &str, user_id: &str, url: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            "/_matrix/client/v3/pushers/set",
            Some(token),
            &json!({
                "kind": "http",
                "app_id": "org.hearth.bench",
                "pushkey": format!("bench-{user_id}"),
                "app_display_name": "hearth-bench",
                "device_display_name": "bench",
                "lang": "en",
                "data": { "url": url },
            }),
        )
        .await
        .with_context(|| format!("{user_id} setting a pusher"))?;
        Ok(())
    }

    /// `POST /user/{userId}/filter`; returns the filter ID.
    pub async fn upload_filter(
        &self,
        token: &str,
        user_id: &str,
        filter: &Value,
    ) -> Result<String> {
        let body = self
            .call(
                reqwest::Method::POST,
                &format!("/_matrix/client/v3/user/{}/filter", encode(user_id)),
                Some(token),
                filter,
            )
            .await?;
        body["filter_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("filter upload answered without filter_id: {body}"))
    }

    pub async fn create_room(&self, token: &str, name: &str) -> Result<String> {
        self.create_room_with(token, name, None).await
    }

    /// A `public_chat` room; with `rotation`, `m.room.encryption` in its initial state
    /// (Megolm, a week or `rotation` messages per session).
    pub async fn create_room_with(
        &self,
        token: &str,
        name: &str,
        rotation: Option<usize>,
    ) -> Result<String> {
        let mut request = json!({"preset": "public_chat", "name": name});
        if let Some(rotation) = rotation {
            request["initial_state"] = json!([{
                "type": "m.room.encryption",
                "state_key": "",
                "content": {
                    "algorithm": "m.megolm.v1.aes-sha2",
                    "rotation_period_ms": 604_800_000,
                    "rotation_period_msgs": rotation,
                },
            }]);
        }
        let body = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(token),
                &request,
            )
            .await?;
        body["room_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("createRoom answered without room_id: {body}"))
    }

    pub async fn join(&self, token: &str, room_id: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{room_id}/join"),
            Some(token),
            &json!({}),
        )
        .await?;
        Ok(())
    }

    /// `POST /join/{roomId}?via={server}`: joins a room of another server through it.
    pub async fn join_via(&self, token: &str, room_id: &str, via: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!(
                "/_matrix/client/v3/join/{}?via={}",
                encode(room_id),
                encode(via)
            ),
            Some(token),
            &json!({}),
        )
        .await?;
        Ok(())
    }

    /// The number of users this server sees joined to a room, asked as a member.
    pub async fn joined_member_count(&self, token: &str, room_id: &str) -> Result<usize> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/joined_members",
            encode(room_id)
        );
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {path} answered {status}: {text}");
        }
        let body: Value =
            serde_json::from_str(&text).with_context(|| format!("GET {path}: not JSON: {text}"))?;
        body["joined"]
            .as_object()
            .map(|joined| joined.len())
            .with_context(|| format!("GET {path} answered without joined: {text}"))
    }

    /// One sync without `since`, for a starting position.
    pub async fn initial_sync(&self, token: &str) -> Result<String> {
        self.initial_sync_with(token, INITIAL_FILTER).await
    }

    /// One sync without `since` with `filter` (an ID or inline JSON).
    pub async fn initial_sync_with(&self, token: &str, filter: &str) -> Result<String> {
        let response = self
            .http
            .get(format!("{}/_matrix/client/v3/sync", self.base))
            .query(&[("filter", filter), ("timeout", "0")])
            .bearer_auth(token)
            .send()
            .await
            .context("initial /sync")?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("initial /sync answered {status}: {text}");
        }
        let body: SyncBody =
            serde_json::from_str(&text).with_context(|| format!("initial /sync: {text}"))?;
        body.next_batch
            .with_context(|| format!("initial /sync answered without next_batch: {text}"))
    }

    /// `PUT /rooms/{room}/send/m.room.message/{txn}`; returns the event ID.
    pub async fn send_message(&self, token: &str, room_id: &str, id: u64) -> Result<String> {
        self.send_content(token, room_id, id, &message_content(id))
            .await
    }

    /// As [`Api::send_message`], with the given content (which carries bench ID `id`).
    pub async fn send_content(
        &self,
        token: &str,
        room_id: &str,
        id: u64,
        content: &Value,
    ) -> Result<String> {
        self.send_event(token, room_id, "m.room.message", id, content)
            .await
    }

    /// `PUT /rooms/{room}/send/{event_type}/b{id}`; returns the event ID.
    pub async fn send_event(
        &self,
        token: &str,
        room_id: &str,
        event_type: &str,
        id: u64,
        content: &Value,
    ) -> Result<String> {
        let body = self
            .call(
                reqwest::Method::PUT,
                &format!(
                    "/_matrix/client/v3/rooms/{}/send/{event_type}/b{id}",
                    encode(room_id)
                ),
                Some(token),
                content,
            )
            .await?;
        body["event_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("send answered without event_id: {body}"))
    }

    /// Whether `GET /rooms/{roomId}/event/{eventId}` finds the event.
    pub async fn has_event(&self, token: &str, room_id: &str, event_id: &str) -> Result<bool> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            encode(room_id),
            encode(event_id)
        );
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        match response.status() {
            status if status.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            status => bail!("GET {path} answered {status}: {}", response.text().await?),
        }
    }

    /// `PUT /rooms/{roomId}/state/{type}/{stateKey}`; returns the event ID.
    pub async fn put_state(
        &self,
        token: &str,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<String> {
        let body = self
            .call(
                reqwest::Method::PUT,
                &format!(
                    "/_matrix/client/v3/rooms/{}/state/{event_type}/{}",
                    encode(room_id),
                    encode(state_key)
                ),
                Some(token),
                content,
            )
            .await?;
        body["event_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("state PUT answered without event_id: {body}"))
    }

    /// `GET /rooms/{roomId}/state/{type}/{stateKey}`: the content, or `None` when there
    /// is no such state event.
    pub async fn get_state(
        &self,
        token: &str,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{event_type}/{}",
            encode(room_id),
            encode(state_key)
        );
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            bail!("GET {path} answered {status}: {text}");
        }
        Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!("GET {path}: not JSON: {text}")
        })?))
    }
}
