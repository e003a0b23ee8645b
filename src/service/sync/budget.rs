//! What bounds one sync response: the bytes of its timelines
//! (`limits.sync_timeline_bytes`, cut from their oldest end) and of its rooms as a whole
//! (`limits.sync_response_bytes`, rooms past it deferred whole to the next response).

use std::cell::Cell;

use ruma::OwnedRoomId;

use super::Pass;
use super::response::Rooms;
use super::rooms::Timeline;
use crate::error::Result;
use crate::service::Services;
use crate::store::UserRoomRecord;

/// Keeps one response's timelines within `limits.sync_timeline_bytes` (`bytes_left` is
/// what the response's earlier rooms left of it; sliding sync answers share this): once
/// the budget is spent, a room's window loses its oldest events and is `limited` (its
/// `prev_batch` then lies before the newest kept event, so the client pages back over
/// what was left out, as after any gap). The newest event always stays, so every room
/// with news shows it; nothing is skipped, as the next sync starts after this one's
/// window either way.
pub(crate) fn fit_timeline_budget(bytes_left: &Cell<usize>, timeline: &mut Timeline) {
    let mut left = bytes_left.get();
    let mut keep_from = timeline.events.len();
    for (index, (_, event)) in timeline.events.iter().enumerate().rev() {
        let size = json_size(event);
        if size > left && keep_from < timeline.events.len() {
            break;
        }
        left = left.saturating_sub(size);
        keep_from = index;
    }
    bytes_left.set(left);
    if keep_from > 0 {
        timeline.events.drain(..keep_from);
        timeline.limited = true;
    }
}

/// The length of `value` as JSON, without building the text.
pub(super) fn json_size<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` (or a response part: string keys only) to a sink that never
    // fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

impl Services {
    /// The rooms of the response, in room ID order, as many as fit in what is left of
    /// `limits.sync_response_bytes` (always the first with anything to send); the second
    /// value is the first room left out, when one was: it and every room after it are
    /// deferred to the next response.
    pub(super) fn sync_rooms(&self, pass: &Pass<'_>) -> Result<(Rooms, Option<OwnedRoomId>)> {
        if pass.since.is_none() && pass.rooms_from.is_none() {
            self.lazy_members
                .forget(pass.view.user_id, pass.view.device_id);
        }
        let mut rooms = Rooms::default();
        let user_rooms = self.store.user_rooms_shared(pass.user_id.as_str())?;
        let mut ordered: Vec<&(OwnedRoomId, UserRoomRecord)> = user_rooms
            .iter()
            .filter(|(room_id, _)| {
                pass.rooms_from
                    .is_none_or(|from| room_id.as_str() >= from.as_str())
            })
            .collect();
        ordered.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let mut sent = 0usize;
        let mut deferred = None;
        for (room_id, record) in ordered {
            if !pass.filter.room.allows_room(room_id.as_str()) {
                continue;
            }
            let timeline_bytes_left = pass.timeline_bytes_left.get();
            pass.pending_shared.borrow_mut().clear();
            pass.pending_members.borrow_mut().clear();
            let Some((kind, section)) = self.sync_room(pass, room_id, record.clone())? else {
                continue;
            };
            // The section as it will be written, with its key, quotes and comma.
            let size = json_size(&section) + room_id.as_str().len() + 4;
            let left = pass.room_bytes_left.get();
            if size > left && sent > 0 {
                // Nothing of it was sent: the timeline budget it took is given back.
                pass.timeline_bytes_left.set(timeline_bytes_left);
                deferred = Some(room_id.clone());
                break;
            }
            pass.room_bytes_left.set(left.saturating_sub(size));
            sent += 1;
            pass.newly_shared
                .borrow_mut()
                .extend(pass.pending_shared.borrow_mut().drain(..));
            let members = std::mem::take(&mut *pass.pending_members.borrow_mut());
            if !members.is_empty() {
                self.lazy_members.record(
                    pass.view.user_id,
                    pass.view.device_id,
                    room_id,
                    members.iter().map(|(m, id)| (m.as_str(), id.clone())),
                );
            }
            if let Some(part) = rooms.part(kind) {
                part.insert(room_id.to_string(), section);
            }
        }
        Ok((rooms, deferred))
    }
}
