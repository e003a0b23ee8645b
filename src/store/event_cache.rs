//! Recently read events, decoded once and shared: a sync reads each new event once per
//! member of its room, and a send reads the room's auth events (create, power levels,
//! the sender's membership) every time.
//!
//! An entry is dropped when a batch that rewrites the event (a redaction, a status
//! change) has been written (see [`ReadCache`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::value::RawValue;

use super::read_cache::ReadCache;
use super::{EventRecord, EventStatus, Store, StoreResult};
use crate::event::{Pdu, RoomVersion};

/// Events kept per cache generation (the cache holds at most twice as many).
pub(super) const EVENT_CACHE: usize = 2048;

pub(super) type EventCache = ReadCache<String, Arc<CachedEvent>>;

/// A stored event and, once asked for, its validated PDU and its content as JSON text.
#[derive(Debug)]
pub struct CachedEvent {
    pub record: EventRecord,
    pdu: OnceLock<(RoomVersion, Arc<Pdu>)>,
    content_json: OnceLock<Option<Box<RawValue>>>,
    /// One more than the [`Store::relations_generation`] at which the event was found
    /// to have nothing to bundle (no edit, reference or thread); 0 when not known.
    unbundled_at: AtomicU64,
}

impl CachedEvent {
    /// The event as a validated PDU of a room of `version`, marked rejected when the
    /// server rejected it (so it is never used as an auth event).
    pub fn pdu(&self, version: RoomVersion) -> crate::event::Result<Arc<Pdu>> {
        if let Some((cached_version, pdu)) = self.pdu.get()
            && *cached_version == version
        {
            return Ok(pdu.clone());
        }
        let mut pdu = Pdu::from_json(self.record.pdu.clone(), version)?;
        pdu.set_rejected(self.record.status == EventStatus::Rejected);
        let pdu = Arc::new(pdu);
        // A room has one version, so the first one asked is the one that stays.
        let _ = self.pdu.set((version, pdu.clone()));
        Ok(pdu)
    }

    /// A non-empty string field of the event's `content` (a room's name, a member's
    /// display name).
    pub fn content_str(&self, field: &str) -> Option<&str> {
        self.record
            .pdu
            .get("content")?
            .get(field)?
            .as_str()
            .filter(|s| !s.is_empty())
    }

    /// The event's `content` written as JSON once, for the many responses that carry
    /// the event unchanged (a message to a room of a thousand goes into a thousand
    /// syncs); `None` when the event has no content.
    pub fn content_json(&self) -> Option<&RawValue> {
        self.content_json
            .get_or_init(|| {
                let content = self.record.pdu.get("content")?;
                serde_json::value::to_raw_value(content).ok()
            })
            .as_deref()
    }

    /// Whether the event was found to have nothing to bundle at relations generation
    /// `generation` (so, while that generation lasts, it still has nothing).
    pub fn unbundled_at(&self, generation: u64) -> bool {
        self.unbundled_at.load(Ordering::Acquire) == generation.wrapping_add(1)
    }

    /// Notes that the event had nothing to bundle when read at `generation` (a
    /// generation read before the relations were).
    pub fn note_unbundled(&self, generation: u64) {
        self.unbundled_at
            .store(generation.wrapping_add(1), Ordering::Release);
    }
}

impl Store {
    /// A stored event, shared with other readers; decoded from the store only when it
    /// is not in memory.
    pub fn event_shared(&self, event_id: &str) -> StoreResult<Option<Arc<CachedEvent>>> {
        self.inner.events.get_or_load(event_id, || {
            Ok(self.event(event_id)?.map(|record| {
                Arc::new(CachedEvent {
                    record,
                    pdu: OnceLock::new(),
                    content_json: OnceLock::new(),
                    unbundled_at: AtomicU64::new(0),
                })
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &str) -> EventRecord {
        EventRecord {
            room_id: ruma::OwnedRoomId::try_from("!r:x").unwrap(),
            pdu: serde_json::json!({"type": "m.room.message", "content": {"body": body}}),
            stream: 1,
            state_before: 0,
            state_after: 0,
            txn: None,
            redacted_because: None,
            status: EventStatus::Accepted,
            after_gap: false,
        }
    }

    fn body(store: &Store) -> Option<serde_json::Value> {
        store
            .event_shared("$e")
            .unwrap()
            .map(|e| e.record.pdu["content"]["body"].clone())
    }

    #[test]
    fn a_rewritten_event_is_read_anew_once_its_batch_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(body(&store), None);
        let mut batch = store.batch();
        batch.put_event("$e", &record("first")).unwrap();
        store.write(batch).unwrap();
        assert_eq!(body(&store), Some("first".into()));
        // Cached now: the same shared copy comes back.
        let a = store.event_shared("$e").unwrap().unwrap();
        let b = store.event_shared("$e").unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b));

        let mut batch = store.batch();
        batch.put_event("$e", &record("redacted")).unwrap();
        // Not yet written: readers still see the stored version.
        assert_eq!(body(&store), Some("first".into()));
        store.write(batch).unwrap();
        assert_eq!(body(&store), Some("redacted".into()));

        let mut batch = store.batch();
        batch.put_event("$e", &record("again")).unwrap();
        store.write_unsynced(batch).unwrap();
        assert_eq!(body(&store), Some("again".into()));
    }
}
