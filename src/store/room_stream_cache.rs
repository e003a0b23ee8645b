//! The latest entries of each room's live stream (`room_stream`), kept in memory as the
//! batches that write them are written, so that a sync's timeline window, which asks
//! for the few events after the client's token, does not open a RocksDB iterator.
//!
//! Only this process writes the store, so every entry after the stream's last position
//! at open went through [`RoomStreamCache::written`] before its batch's write returned.
//! Per room, the cache knows the position after which it holds every entry; a window
//! that starts before it is read from the store.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use ruma::OwnedEventId;

/// Entries kept per room: more than a sync window usually needs (Element asks for 50).
const PER_ROOM: usize = 64;

struct Recent {
    /// Every entry of the room after this position is in `entries`.
    complete_after: u64,
    /// The newest entry's position.
    newest: u64,
    /// `(stream, event)` in the order written.
    entries: VecDeque<(u64, OwnedEventId)>,
}

pub(super) struct RoomStreamCache {
    inner: Mutex<Inner>,
}

struct Inner {
    /// The stream's last position when the store was opened (`u64::MAX` until then:
    /// nothing is answered from memory).
    started_at: u64,
    rooms: HashMap<String, Recent>,
}

impl RoomStreamCache {
    pub(super) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                started_at: u64::MAX,
                rooms: HashMap::new(),
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called once at open, before any write: `last` is the stream's last position.
    pub(super) fn start_after(&self, last: u64) {
        self.inner().started_at = last;
    }

    /// Notes the entries a batch just wrote: `(room, stream, event)`.
    pub(super) fn written(&self, entries: Vec<(String, u64, OwnedEventId)>) {
        if entries.is_empty() {
            return;
        }
        let mut inner = self.inner();
        let started_at = inner.started_at;
        for (room_id, stream, event_id) in entries {
            let recent = inner.rooms.entry(room_id).or_insert_with(|| Recent {
                complete_after: started_at,
                newest: 0,
                entries: VecDeque::new(),
            });
            recent.newest = recent.newest.max(stream);
            recent.entries.push_back((stream, event_id));
            if recent.entries.len() > PER_ROOM
                && let Some((dropped, _)) = recent.entries.pop_front()
            {
                recent.complete_after = recent.complete_after.max(dropped);
            }
        }
    }

    /// Whether the room has an entry after `above`, when the cache knows: it does when
    /// an entry written since the open is; it has none when none written since is and
    /// `above` is at or after the open (or the newest entry written since).
    pub(super) fn any_after(&self, room_id: &str, above: u64) -> Option<bool> {
        let inner = self.inner();
        match inner.rooms.get(room_id) {
            Some(recent) if recent.newest > above => Some(true),
            // The newest since the open is at or before `above`, and so is every entry
            // before the open.
            Some(_) => Some(false),
            None => (above >= inner.started_at).then_some(false),
        }
    }

    /// The room's entries in `(above, newest]`, newest first, at most `limit`, when the
    /// cache holds all of them: when the window lies after the point from which it holds
    /// every entry, or when it holds `limit` entries after that point (the newest ones,
    /// whatever lies before; a room's latest event, its newest messages).
    pub(super) fn rev(
        &self,
        room_id: &str,
        newest: u64,
        above: u64,
        limit: usize,
    ) -> Option<Vec<(u64, OwnedEventId)>> {
        let inner = self.inner();
        let Some(recent) = inner.rooms.get(room_id) else {
            // No entry written since the store was opened.
            return (above >= inner.started_at).then(Vec::new);
        };
        let held_after = above.max(recent.complete_after);
        // Sorted and cut by reference: only the entries kept are copied (a room's
        // latest event, asked for with a limit of 1, copies one event ID, not 64).
        let mut found: Vec<&(u64, OwnedEventId)> = recent
            .entries
            .iter()
            .filter(|(stream, _)| *stream > held_after && *stream <= newest)
            .collect();
        if above < recent.complete_after && found.len() < limit {
            return None;
        }
        found.sort_unstable_by_key(|(stream, _)| std::cmp::Reverse(*stream));
        found.truncate(limit);
        Some(found.into_iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> OwnedEventId {
        OwnedEventId::try_from(format!("$e{n}")).unwrap()
    }

    #[test]
    fn whether_a_room_has_entries_after_a_position() {
        let cache = RoomStreamCache::new();
        assert_eq!(cache.any_after("!r", 5), None, "not started");
        cache.start_after(100);
        assert_eq!(cache.any_after("!r", 100), Some(false));
        assert_eq!(
            cache.any_after("!r", 99),
            None,
            "before the open: the store knows"
        );
        cache.written(vec![
            ("!r".into(), 103, id(103)),
            ("!r".into(), 101, id(101)),
        ]);
        assert_eq!(cache.any_after("!r", 102), Some(true));
        assert_eq!(cache.any_after("!r", 103), Some(false));
        assert_eq!(cache.any_after("!r", 50), Some(true));
        assert_eq!(cache.any_after("!other", 101), Some(false));
    }

    #[test]
    fn answers_only_windows_it_holds_entirely() {
        let cache = RoomStreamCache::new();
        assert_eq!(cache.rev("!r", 10, 5, 10), None, "not started");
        cache.start_after(100);
        assert_eq!(cache.rev("!r", 200, 100, 10), Some(Vec::new()));
        assert_eq!(cache.rev("!r", 200, 99, 10), None, "before the open");
        cache.written(vec![
            ("!r".into(), 101, id(101)),
            ("!r".into(), 103, id(103)),
            ("!other".into(), 102, id(102)),
        ]);
        assert_eq!(
            cache.rev("!r", 200, 100, 10),
            Some(vec![(103, id(103)), (101, id(101))])
        );
        assert_eq!(cache.rev("!r", 102, 100, 10), Some(vec![(101, id(101))]));
        assert_eq!(cache.rev("!r", 200, 100, 1), Some(vec![(103, id(103))]));
        let many = (0..PER_ROOM as u64 + 2)
            .map(|i| ("!r".to_owned(), 104 + i, id(104 + i)))
            .collect();
        cache.written(many);
        // The two oldest are gone: a window reaching below them goes to the store,
        // unless the entries held fill it.
        assert_eq!(cache.rev("!r", 1000, 102, PER_ROOM + 1), None);
        assert_eq!(cache.rev("!r", 106, 0, 2), None);
        assert_eq!(
            cache.rev("!r", 1000, 0, 2),
            Some(vec![
                (104 + PER_ROOM as u64 + 1, id(104 + PER_ROOM as u64 + 1)),
                (104 + PER_ROOM as u64, id(104 + PER_ROOM as u64)),
            ])
        );
        let newest = 104 + PER_ROOM as u64 + 1;
        assert_eq!(
            cache.rev("!r", 1000, newest - 1, 10),
            Some(vec![(newest, id(newest))])
        );
    }
}
