//! The `threads` extension (MSC4360, as Synapse implements it): which threads of the
//! response's rooms had replies since the connection's previous position (every thread,
//! on a connection's first answer), newest first, so a client that was away learns of
//! them without paging through every timeline.

use std::collections::{BTreeMap, HashSet};

use ruma::{OwnedEventId, OwnedRoomId};
use serde_json::{Map, Value, json};

use super::Pass;
use super::answer::SlidingRoom;
use super::extensions::Scope;
use super::request::ThreadsConfig;
use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::ClientView;

/// The most threads one answer names, whatever the client asks, and the default.
const MAX_THREADS: usize = 100;

/// The threads the response's timelines already show a reply of.
fn threads_in_timelines(rooms_out: &BTreeMap<String, SlidingRoom>) -> HashSet<String> {
    let mut threads = HashSet::new();
    for room in rooms_out.values() {
        for event in room.timeline() {
            let Some(relation) = event.get("content").and_then(|c| c.get("m.relates_to")) else {
                continue;
            };
            if relation.get("rel_type").and_then(Value::as_str) == Some("m.thread")
                && let Some(root) = relation.get("event_id").and_then(Value::as_str)
            {
                threads.insert(root.to_owned());
            }
        }
    }
    threads
}

impl Services {
    /// `{"updates": {roomId: {rootId: {thread_root?, prev_batch?}}}}`, or `None` when no
    /// thread of the rooms in scope was replied to in the window (the extension is then
    /// left out of the answer, as Synapse does).
    ///
    /// A thread counts when its latest reply falls after the previous position and the
    /// user may see that reply; for a room the user left, replies after the departure do
    /// not count (so a thread replied to after they left is not named at all). Unless
    /// `include_roots`, a thread one of this answer's timelines shows a reply of is left
    /// out: the client has it. `prev_batch` (a `/relations` token, `dir=b`, just before
    /// the latest reply) is there when the thread had more than one reply in the window,
    /// or when the limit cut the list.
    pub(super) fn threads_extension(
        &self,
        pass: &Pass<'_>,
        config: &ThreadsConfig,
        scope: &Scope<'_>,
    ) -> Result<Option<Value>> {
        let include_roots = config.include_roots == Some(true);
        let limit = config
            .limit
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(MAX_THREADS)
            .clamp(1, MAX_THREADS);
        let after = pass.since.map_or(0, |s| s.events);
        let shown = if include_roots {
            HashSet::new()
        } else {
            threads_in_timelines(scope.rooms_out)
        };

        // The newest threads of each room, then the newest of all of them.
        let mut found: Vec<(u64, OwnedRoomId, OwnedEventId)> = Vec::new();
        for room_id in scope.all_rooms() {
            let Some(candidate) = scope.candidates.get(&room_id) else {
                continue;
            };
            let upto = candidate.upto(pass.now.events);
            if upto <= after {
                continue;
            }
            let page =
                self.store
                    .threads_by_activity(room_id.as_str(), upto, limit + 1 + shown.len())?;
            for (position, root) in page {
                if position <= after {
                    break;
                }
                if !shown.contains(root.as_str()) {
                    found.push((position, room_id.clone(), root));
                }
            }
        }
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
        let cut = found.len() > limit;
        found.truncate(limit);

        let view = ClientView {
            user_id: pass.user_id,
            device_id: pass.device_id,
        };
        let mut by_room: BTreeMap<OwnedRoomId, Vec<(u64, OwnedEventId)>> = BTreeMap::new();
        for (position, room_id, root) in found {
            by_room.entry(room_id).or_default().push((position, root));
        }
        let mut updates = Map::new();
        for (room_id, threads) in by_room {
            // No view of the room's history (an invite to a room that hides it): nothing.
            let Ok(mut reader) = self.history_reader(&room_id, view) else {
                continue;
            };
            let mut room_updates = Map::new();
            for (position, root) in threads {
                let Some(thread) = self.store.thread(room_id.as_str(), root.as_str())? else {
                    continue;
                };
                if reader.event(thread.latest_event.as_str())?.is_none() {
                    continue;
                }
                let mut update = Map::new();
                if include_roots && let Some((_, event)) = reader.event(root.as_str())? {
                    update.insert("thread_root".into(), event);
                }
                let replies_in_window = self
                    .store
                    .relations(root.as_str())?
                    .iter()
                    .filter(|(p, r)| r.rel_type == "m.thread" && *p > after && *p <= position)
                    .count();
                if replies_in_window > 1 || cut {
                    let before_latest = position.saturating_sub(1);
                    update.insert("prev_batch".into(), json!(format!("r{before_latest}")));
                }
                room_updates.insert(root.to_string(), Value::Object(update));
            }
            if !room_updates.is_empty() {
                updates.insert(room_id.to_string(), Value::Object(room_updates));
            }
        }
        if updates.is_empty() {
            return Ok(None);
        }
        Ok(Some(json!({ "updates": updates })))
    }
}
