//! The sliding-sync transport (`--transport sliding`): each client syncs with simplified
//! sliding sync (MSC4186, `spec/sliding-sync.md`) as Element X's room list does: one
//! list whose range covers the client's rooms, timeline limit 1, the `to_device` and
//! `e2ee` extensions on, long-polling with `pos`. Sends are HTTP, as for long-poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::e2ee::Traffic;
use crate::matrix::{Api, Client, TimelineEvent, ToDeviceEvent};
use crate::run::{Received, Run};

pub const PATH: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

/// Element X's connection for its room list.
const CONN_ID: &str = "room-list";

/// The list's timeline limit: the room list shows each room's latest event.
pub const TIMELINE_LIMIT: u32 = 1;

/// What a room list row needs, close to what matrix-rust-sdk's room list service asks.
const REQUIRED_STATE: &[(&str, &str)] = &[
    ("m.room.name", ""),
    ("m.room.encryption", ""),
    ("m.room.member", "$LAZY"),
    ("m.room.member", "$ME"),
    ("m.room.topic", ""),
    ("m.room.avatar", ""),
    ("m.room.canonical_alias", ""),
    ("m.room.power_levels", ""),
    ("m.room.join_rules", ""),
    ("m.room.tombstone", ""),
];

/// The request body: the one list (its first 100 rooms, Element X's first batch,
/// which holds the bench client's one room) and the two extensions, with the to-device
/// position reached.
pub fn request_body(to_device_since: Option<&str>) -> Value {
    let mut body = json!({
        "conn_id": CONN_ID,
        "lists": {
            "all_rooms": {
                "ranges": [[0, 99]],
                "timeline_limit": TIMELINE_LIMIT,
                "required_state": REQUIRED_STATE,
            },
        },
        "extensions": {
            "to_device": {"enabled": true},
            "e2ee": {"enabled": true},
        },
    });
    if let Some(since) = to_device_since {
        body["extensions"]["to_device"]["since"] = json!(since);
    }
    body
}

/// The parts of a sliding sync response the bench reads.
#[derive(Deserialize, Default)]
pub struct SlidingBody {
    pub pos: Option<String>,
    #[serde(default)]
    pub rooms: HashMap<String, SlidingRoom>,
    #[serde(default)]
    pub extensions: SlidingExtensions,
}

#[derive(Deserialize, Default)]
pub struct SlidingRoom {
    #[serde(default)]
    pub timeline: Vec<TimelineEvent>,
    #[serde(default)]
    pub limited: bool,
}

#[derive(Deserialize, Default)]
pub struct SlidingExtensions {
    #[serde(default)]
    pub to_device: Option<ToDeviceExtension>,
    #[serde(default)]
    pub e2ee: Option<E2eeExtension>,
}

#[derive(Deserialize, Default)]
pub struct ToDeviceExtension {
    pub next_batch: Option<String>,
    #[serde(default)]
    pub events: Vec<ToDeviceEvent>,
}

#[derive(Deserialize, Default)]
pub struct E2eeExtension {
    #[serde(default)]
    pub device_one_time_keys_count: Option<HashMap<String, u64>>,
}

/// The positions a sliding sync client resumes from.
pub struct Position {
    pub pos: String,
    pub to_device_since: Option<String>,
}

/// One request; `pos` absent starts the connection afresh.
async fn request(
    api: &Api,
    token: &str,
    pos: Option<&str>,
    to_device_since: Option<&str>,
) -> Result<SlidingBody> {
    let mut query = vec![("timeout", "30000")];
    if let Some(pos) = pos {
        query.push(("pos", pos));
    }
    let response = api
        .http
        .post(format!("{}{PATH}", api.base))
        .query(&query)
        .bearer_auth(token)
        .json(&request_body(to_device_since))
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        bail!("{status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// A fresh connection (a request without `pos`, which answers at once); its rooms are
/// not recorded, only the positions.
pub async fn start(api: &Api, client: &Client) -> Result<Position> {
    let body = request(api, &client.token, None, None)
        .await
        .with_context(|| format!("first sliding sync of {}", client.user_id))?;
    let pos = body
        .pos
        .with_context(|| format!("first sliding sync of {}: no pos", client.user_id))?;
    Ok(Position {
        pos,
        to_device_since: body.extensions.to_device.and_then(|t| t.next_batch),
    })
}

/// A sliding sync client: requests with `pos` and `timeout=30000` in a loop until
/// `stop`, recording every timeline event and to-device message as it arrives.
pub async fn poll(
    api: Api,
    clients: Arc<Vec<Client>>,
    index: usize,
    mut position: Position,
    run: Arc<Run>,
    e2ee: Option<Arc<Traffic>>,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let client = &clients[index];
    let mut received = Received::default();
    loop {
        let answer = tokio::select! {
            answer = async {
                let body = request(
                    &api,
                    &client.token,
                    Some(&position.pos),
                    position.to_device_since.as_deref(),
                )
                .await?;
                anyhow::Ok((body, run.now()))
            } => answer,
            _ = stop.changed() => break,
        };
        match answer {
            Ok((body, at)) => {
                for room in body.rooms.values() {
                    run.record_timeline(&room.timeline, room.limited, at, &mut received);
                }
                if let Some(to_device) = body.extensions.to_device {
                    run.record_to_device(&to_device.events, at, &mut received);
                    if to_device.next_batch.is_some() {
                        position.to_device_since = to_device.next_batch;
                    }
                }
                let counts = body
                    .extensions
                    .e2ee
                    .and_then(|e| e.device_one_time_keys_count);
                if let (Some(traffic), Some(counts)) = (&e2ee, counts) {
                    traffic.one_time_key_count(index, &counts);
                }
                match body.pos {
                    Some(pos) => position.pos = pos,
                    None => run.error(format!("sliding sync for {}: no pos", client.user_id)),
                }
            }
            Err(error) => {
                run.error(format!("sliding sync for {}: {error:#}", client.user_id));
                // Do not spin on a server that keeps failing.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    received
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_and_requests_carry_the_to_device_position() {
        let body: SlidingBody = serde_json::from_str(
            r#"{"pos":"12","lists":{"all_rooms":{"count":1}},"rooms":{"!r":{
                "initial":false,"limited":true,"num_live":1,
                "timeline":[{"type":"m.room.encrypted","content":{"algorithm":"m.megolm.v1.aes-sha2","org.hearth.bench.id":7}}]}},
                "extensions":{"to_device":{"next_batch":"5","events":[{"type":"m.room.encrypted","sender":"@a:h","content":{"org.hearth.bench.run":0}}]},
                "e2ee":{"device_lists":{"changed":[],"left":[]},"device_one_time_keys_count":{"signed_curve25519":20}}}}"#,
        )
        .unwrap();
        assert_eq!(body.pos.as_deref(), Some("12"));
        let room = &body.rooms["!r"];
        assert!(room.limited);
        assert_eq!(room.timeline[0].content.bench_id, Some(7));
        let to_device = body.extensions.to_device.unwrap();
        assert_eq!(to_device.next_batch.as_deref(), Some("5"));
        assert_eq!(to_device.events.len(), 1);
        let counts = body.extensions.e2ee.unwrap().device_one_time_keys_count;
        assert_eq!(counts.unwrap()["signed_curve25519"], 20);

        let request = request_body(Some("5"));
        assert_eq!(request["extensions"]["to_device"]["since"], "5");
        assert_eq!(request["extensions"]["e2ee"]["enabled"], true);
        assert_eq!(request["lists"]["all_rooms"]["timeline_limit"], 1);
        assert_eq!(
            request["lists"]["all_rooms"]["required_state"][2][1],
            "$LAZY"
        );
        assert!(
            request_body(None)["extensions"]["to_device"]
                .get("since")
                .is_none()
        );
    }
}
