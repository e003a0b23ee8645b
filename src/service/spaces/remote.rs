//! Summaries of rooms this server does not participate in, asked of other servers with
//! `GET /_matrix/federation/v1/hierarchy/{roomId}`, and kept for a minute as the spec
//! suggests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ruma::api::federation::space::get_hierarchy;
use ruma::{OwnedRoomId, OwnedServerName, RoomId};
use serde_json::Value;

use super::Summary;
use crate::service::Services;

/// Servers of a `via` list asked in turn before giving up on a room.
const MAX_SERVERS: usize = 3;
/// How long another server's summaries are reused.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Summaries kept at once; the cache is emptied when it would grow past this.
const MAX_CACHED: usize = 10_000;

/// What another server said of a space: the space, those of its children the server
/// could describe, and the children it says this server cannot see.
pub(crate) struct RemoteSpace {
    pub room: Summary,
    pub children: Vec<Summary>,
    pub inaccessible: Vec<OwnedRoomId>,
}

/// Other servers' summaries of rooms, by room.
#[derive(Default)]
pub struct RemoteSpaces {
    cache: Mutex<HashMap<OwnedRoomId, (Instant, Summary)>>,
}

impl RemoteSpaces {
    pub(crate) fn cached(&self, room_id: &RoomId) -> Option<Summary> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(room_id)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, summary)| summary.clone())
    }

    pub(crate) fn remember(&self, summaries: impl IntoIterator<Item = Summary>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let now = Instant::now();
        for summary in summaries {
            cache.insert(summary.room_id.clone(), (now, summary));
        }
    }
}

impl Services {
    /// The space `room_id` as the first of `via` that answers describes it; `None` when
    /// none does (unreachable, unknown room, or an answer about another room).
    pub(crate) async fn fetch_remote_space(
        &self,
        room_id: &RoomId,
        via: &[OwnedServerName],
        suggested_only: bool,
    ) -> Option<RemoteSpace> {
        let servers = via
            .iter()
            .filter(|server| server.as_str() != self.server_name().as_str())
            .take(MAX_SERVERS);
        for server in servers {
            let mut request = get_hierarchy::v1::Request::new(room_id.to_owned());
            request.suggested_only = suggested_only;
            let response = match self.federation.send(server, request).await {
                Ok(response) => response,
                Err(err) => {
                    tracing::debug!(%server, %room_id, "no space hierarchy: {err}");
                    continue;
                }
            };
            if response.room.summary.room_id != room_id {
                tracing::debug!(%server, %room_id, "space hierarchy of another room");
                continue;
            }
            let children_state = response
                .room
                .children_state
                .iter()
                .filter(|raw| raw.deserialize().is_ok())
                .filter_map(|raw| raw.deserialize_as_unchecked::<Value>().ok())
                .collect();
            let Some(room) = Summary::from_remote(&response.room.summary, children_state) else {
                continue;
            };
            let children = response
                .children
                .iter()
                .filter_map(|child| Summary::from_remote(child, Vec::new()))
                .collect();
            return Some(RemoteSpace {
                room,
                children,
                inaccessible: response.inaccessible_children,
            });
        }
        None
    }
}
