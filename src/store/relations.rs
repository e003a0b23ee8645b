//! Relations between events (`m.relates_to`): children by parent, the annotation
//! uniqueness index, and thread summaries ordered by latest activity.
//!
//! `relations`: `parent 0xFF stream (u64 BE)` → [`RelationRecord`]. `annotations`:
//! `parent 0xFF event type 0xFF key 0xFF sender` → child event ID. `threads`:
//! `room 0xFF root` → [`ThreadRecord`]. `thread_activity`: `room 0xFF latest stream
//! (u64 BE)` → root event ID, one entry per thread, moved on every reply.

use ruma::{OwnedEventId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult, keys};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelationRecord {
    pub event_id: OwnedEventId,
    pub rel_type: String,
    pub event_type: String,
    pub sender: OwnedUserId,
    /// The annotation key of an `m.annotation`.
    #[serde(default)]
    pub key: Option<String>,
    pub origin_server_ts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadRecord {
    pub latest_event: OwnedEventId,
    pub latest_stream: u64,
    pub count: u64,
    /// Everyone who sent the root or a reply.
    pub participants: Vec<OwnedUserId>,
}

fn prefix(first: &str) -> Vec<u8> {
    keys::devices_of(first)
}

fn relation_key(parent: &str, stream: u64) -> Vec<u8> {
    let mut key = prefix(parent);
    key.extend_from_slice(&stream.to_be_bytes());
    key
}

fn annotation_key(parent: &str, event_type: &str, annotation: &str, sender: &str) -> Vec<u8> {
    let mut key = prefix(parent);
    for part in [event_type, annotation] {
        key.extend_from_slice(part.as_bytes());
        key.push(keys::SEP);
    }
    key.extend_from_slice(sender.as_bytes());
    key
}

fn thread_key(room_id: &str, root: &str) -> Vec<u8> {
    keys::device(room_id, root)
}

fn activity_key(room_id: &str, stream: u64) -> Vec<u8> {
    let mut key = prefix(room_id);
    key.extend_from_slice(&stream.to_be_bytes());
    key
}

fn stream_of(key: &[u8], prefix_len: usize) -> u64 {
    <[u8; 8]>::try_from(&key[prefix_len..])
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

impl Store {
    /// A count that moves after every written batch that changed any relation or thread
    /// summary, once the new records are readable. A fact about an event's relations
    /// read after this returned `g` holds while it still returns `g`.
    pub fn relations_generation(&self) -> u64 {
        self.inner
            .records
            .relations_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Children of `parent`, in stream order, with their stream positions.
    pub fn relations(&self, parent: &str) -> StoreResult<Vec<(u64, RelationRecord)>> {
        let prefix = prefix(parent);
        self.inner.records.relations.get_or_read(&prefix, || {
            Ok(self
                .scan_prefix::<RelationRecord>(Cf::Relations, &prefix)?
                .into_iter()
                .map(|(key, record)| (stream_of(&key, prefix.len()), record))
                .collect())
        })
    }

    pub fn annotation(
        &self,
        parent: &str,
        event_type: &str,
        annotation: &str,
        sender: &str,
    ) -> StoreResult<Option<OwnedEventId>> {
        self.get_json(
            Cf::Annotations,
            &annotation_key(parent, event_type, annotation, sender),
        )
    }

    pub fn thread(&self, room_id: &str, root: &str) -> StoreResult<Option<ThreadRecord>> {
        let key = thread_key(room_id, root);
        self.inner
            .records
            .threads
            .get_or_load(&key, || self.get_json(Cf::Threads, &key))
    }

    /// Thread roots of a room, most recently active first, active at or before `before`.
    pub fn threads_by_activity(
        &self,
        room_id: &str,
        before: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, OwnedEventId)>> {
        let prefix = prefix(room_id);
        let mut out = Vec::new();
        for item in self.raw_iter_rev_from(Cf::ThreadActivity, &activity_key(room_id, before)) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push((
                stream_of(&key, prefix.len()),
                serde_json::from_slice(&value)?,
            ));
        }
        Ok(out)
    }
}

impl Batch<'_> {
    pub fn put_relation(
        &mut self,
        parent: &str,
        stream: u64,
        record: &RelationRecord,
    ) -> StoreResult<()> {
        if let Some(key) = &record.key {
            self.put_json(
                Cf::Annotations,
                &annotation_key(parent, &record.event_type, key, record.sender.as_str()),
                &record.event_id,
            )?;
        }
        self.put_json(Cf::Relations, &relation_key(parent, stream), record)
    }

    /// Forgets a redacted child: it no longer counts, and its annotation may be sent again.
    pub fn delete_relation(&mut self, parent: &str, stream: u64, record: &RelationRecord) {
        if let Some(key) = &record.key {
            self.delete(
                Cf::Annotations,
                &annotation_key(parent, &record.event_type, key, record.sender.as_str()),
            );
        }
        self.delete(Cf::Relations, &relation_key(parent, stream));
    }

    /// Stores the thread's summary and moves its activity entry from `previous`.
    pub fn put_thread(
        &mut self,
        room_id: &str,
        root: &str,
        record: &ThreadRecord,
        previous: Option<u64>,
    ) -> StoreResult<()> {
        if let Some(previous) = previous {
            self.delete(Cf::ThreadActivity, &activity_key(room_id, previous));
        }
        self.put_json(
            Cf::ThreadActivity,
            &activity_key(room_id, record.latest_stream),
            &root,
        )?;
        self.put_json(Cf::Threads, &thread_key(room_id, root), record)
    }
}
