//! `GET /rooms/{roomId}/hierarchy`: a depth-first walk of a space tree, a page at a
//! time. Rooms this server participates in are summarised from their state; others are
//! asked of the servers their `m.space.child` event names (see [`super::remote`]).
//! The rest of a walk waits between pages in memory, as in Synapse, for five minutes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distributions::Alphanumeric;
use ruma::{OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use super::Summary;
use super::remote::RemoteSpace;
use crate::error::{Error, Result};
use crate::service::Services;

/// Rooms per page when the client names no limit, and at most.
const MAX_LIMIT: usize = 50;
/// How far down the tree a walk goes when the client names no `max_depth`, and at most.
const MAX_DEPTH: usize = 50;
/// Rooms one walk visits in all, across its pages: a bound on the work a huge or
/// looping tree can cause.
const MAX_VISITED: usize = 1000;
/// How long the rest of a walk is kept for its next page.
const SESSION_TTL: Duration = Duration::from_secs(300);
/// Walks kept at once; the oldest are dropped first.
const MAX_SESSIONS: usize = 1000;

/// A `/hierarchy` request.
#[derive(Debug, Clone, Default)]
pub struct HierarchyQuery {
    pub from: Option<String>,
    pub limit: Option<u64>,
    pub max_depth: Option<u64>,
    pub suggested_only: bool,
}

/// A room waiting to be visited.
#[derive(Debug, Clone)]
struct Pending {
    room_id: OwnedRoomId,
    via: Vec<OwnedServerName>,
    depth: usize,
    /// Its summary, as the server that described its parent gave it, if that server did.
    known: Option<Summary>,
}

/// A walk in progress: what the next page continues from.
#[derive(Debug, Clone)]
struct Walk {
    user: OwnedUserId,
    root: OwnedRoomId,
    suggested_only: bool,
    max_depth: usize,
    /// A stack: the next room to visit is last.
    pending: Vec<Pending>,
    visited: HashSet<OwnedRoomId>,
    /// Rooms a remote server said this server cannot see; never asked for again.
    inaccessible: HashSet<OwnedRoomId>,
}

/// Walks waiting for their next page, by token.
#[derive(Default)]
pub struct HierarchySessions {
    walks: Mutex<HashMap<String, (Instant, Walk)>>,
}

impl HierarchySessions {
    fn take(&self, token: &str) -> Option<Walk> {
        let mut walks = self.walks.lock().unwrap_or_else(|e| e.into_inner());
        walks.retain(|_, (at, _)| at.elapsed() < SESSION_TTL);
        walks.remove(token).map(|(_, walk)| walk)
    }

    fn keep(&self, walk: Walk) -> String {
        let token: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        let mut walks = self.walks.lock().unwrap_or_else(|e| e.into_inner());
        walks.retain(|_, (at, _)| at.elapsed() < SESSION_TTL);
        while walks.len() >= MAX_SESSIONS {
            let Some(oldest) = walks
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(token, _)| token.clone())
            else {
                break;
            };
            walks.remove(&oldest);
        }
        walks.insert(token.clone(), (Instant::now(), walk));
        token
    }
}

impl Services {
    /// One page of the space tree under `root` as `user` may see it:
    /// `{"rooms": [...], "next_batch"?}`. 403 when the user may not see the root.
    pub async fn space_hierarchy(
        &self,
        user: &UserId,
        root: &RoomId,
        query: HierarchyQuery,
    ) -> Result<Value> {
        let limit = match query.limit {
            None => MAX_LIMIT,
            Some(0) => return Err(Error::invalid_param("limit must be greater than zero")),
            Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
        };
        let max_depth = query.max_depth.map_or(MAX_DEPTH, |d| {
            usize::try_from(d).unwrap_or(MAX_DEPTH).min(MAX_DEPTH)
        });
        let mut walk = match &query.from {
            Some(token) => {
                let walk = self
                    .hierarchy_sessions
                    .take(token)
                    .filter(|walk| walk.user == user && walk.root == root)
                    .ok_or_else(|| Error::invalid_param("Unknown or expired pagination token"))?;
                let depth_changed = query.max_depth.is_some() && walk.max_depth != max_depth;
                if walk.suggested_only != query.suggested_only || depth_changed {
                    return Err(Error::invalid_param(
                        "suggested_only and max_depth cannot change on paginated requests",
                    ));
                }
                walk
            }
            None => {
                let summary = match self.participates_in(root)? {
                    true => self.local_summary(root)?,
                    false => None,
                };
                match summary {
                    Some(summary) if self.user_may_preview(user, &summary)? => {}
                    _ => {
                        return Err(Error::forbidden(format!(
                            "You may not see room {root}, or this server does not know it"
                        )));
                    }
                }
                Walk {
                    user: user.to_owned(),
                    root: root.to_owned(),
                    suggested_only: query.suggested_only,
                    max_depth,
                    pending: vec![Pending {
                        room_id: root.to_owned(),
                        via: Vec::new(),
                        depth: 0,
                        known: None,
                    }],
                    visited: HashSet::new(),
                    inaccessible: HashSet::new(),
                }
            }
        };
        let mut rooms = Vec::new();
        while rooms.len() < limit && walk.visited.len() < MAX_VISITED {
            let Some(next) = walk.pending.pop() else {
                break;
            };
            if !walk.visited.insert(next.room_id.clone())
                || walk.inaccessible.contains(&next.room_id)
            {
                continue;
            }
            let Some(summary) = self.visit(&mut walk, &next).await? else {
                continue;
            };
            if next.depth < walk.max_depth {
                let mut children = Vec::new();
                for child in summary.children(walk.suggested_only) {
                    if walk.visited.contains(&child.room_id)
                        || walk.inaccessible.contains(&child.room_id)
                    {
                        continue;
                    }
                    children.push(child);
                }
                // Pushed in reverse so that the first child is visited next.
                for child in children.into_iter().rev() {
                    let known = self.remote_spaces.cached(&child.room_id);
                    walk.pending.push(Pending {
                        room_id: child.room_id,
                        via: child.via,
                        depth: next.depth + 1,
                        known,
                    });
                }
            }
            rooms.push(summary.hierarchy_entry());
        }
        walk.pending.retain(|p| !walk.visited.contains(&p.room_id));
        let mut response = json!({ "rooms": rooms });
        if !walk.pending.is_empty() && walk.visited.len() < MAX_VISITED {
            response["next_batch"] = json!(self.hierarchy_sessions.keep(walk));
        }
        Ok(response)
    }

    /// The summary of one room of the walk, if the user may see it: from the room's
    /// state when this server participates in it, else from the servers its parent
    /// named.
    async fn visit(&self, walk: &mut Walk, room: &Pending) -> Result<Option<Summary>> {
        let user = walk.user.clone();
        if self.participates_in(&room.room_id)? {
            return match self.local_summary(&room.room_id)? {
                Some(summary) if self.user_may_preview(&user, &summary)? => Ok(Some(summary)),
                _ => Ok(None),
            };
        }
        // A non-space summary from the parent's server is all there is to know; a space's
        // children need its own answer.
        let summary = match &room.known {
            Some(summary) if !summary.is_space() => Some(summary.clone()),
            _ => match self
                .fetch_remote_space(&room.room_id, &room.via, walk.suggested_only)
                .await
            {
                Some(RemoteSpace {
                    room,
                    children,
                    inaccessible,
                }) => {
                    walk.inaccessible.extend(inaccessible);
                    self.remote_spaces.remember(children);
                    Some(room)
                }
                None => None,
            },
        };
        match summary {
            Some(summary) if self.user_may_preview(&user, &summary)? => Ok(Some(summary)),
            _ => Ok(None),
        }
    }
}
