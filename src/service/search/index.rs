//! Keeping the search index in step with the events: postings are written in the same
//! batch as the event they describe, removed in the batch that redacts it, and built
//! once at start-up for events stored before the index (or its current layout) existed.

use std::time::Instant;

use serde_json::Value;

use super::terms::term_frequencies;
use crate::store::{Batch, Cf, EventRecord, EventStatus, Posting, Store, StoreResult};

/// Bumped when tokenisation or the posting layout changes, so that start-up rebuilds
/// the index from the stored events.
pub const INDEX_VERSION: u32 = 1;

/// Events re-indexed per write batch at start-up.
const REINDEX_BATCH: usize = 1000;

/// A searchable key of the spec and the one event type it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Body,
    Name,
    Topic,
}

impl Field {
    pub const ALL: [Field; 3] = [Field::Body, Field::Name, Field::Topic];

    /// As stored in postings.
    pub fn code(self) -> &'static str {
        match self {
            Field::Body => "body",
            Field::Name => "name",
            Field::Topic => "topic",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    /// As clients name it in `keys`.
    pub fn key(self) -> &'static str {
        match self {
            Field::Body => "content.body",
            Field::Name => "content.name",
            Field::Topic => "content.topic",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    pub fn event_type(self) -> &'static str {
        match self {
            Field::Body => "m.room.message",
            Field::Name => "m.room.name",
            Field::Topic => "m.room.topic",
        }
    }
}

/// The searchable text of an event (federation format), if it has any. The spec names
/// `content.body` of messages, `content.name` of room names, and `content.topic` of
/// topics together with the `text/plain` body of `content["m.topic"]`.
pub fn searchable_text(pdu: &Value) -> Option<(Field, String)> {
    let event_type = pdu.get("type")?.as_str()?;
    let content = pdu.get("content")?;
    let state_key = pdu.get("state_key").and_then(Value::as_str);
    match (event_type, state_key) {
        ("m.room.message", None) => Some((Field::Body, content.get("body")?.as_str()?.into())),
        ("m.room.name", Some("")) => Some((Field::Name, content.get("name")?.as_str()?.into())),
        ("m.room.topic", Some("")) => {
            let topic = content.get("topic").and_then(Value::as_str);
            let plain = content
                .get("m.topic")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|r| {
                    r.get("mimetype")
                        .and_then(Value::as_str)
                        .is_none_or(|m| m == "text/plain")
                })
                .and_then(|r| r.get("body"))
                .and_then(Value::as_str);
            let text = match (topic, plain) {
                (Some(t), Some(p)) if t != p => format!("{t}\n{p}"),
                (Some(t), _) => t.to_owned(),
                (None, Some(p)) => p.to_owned(),
                (None, None) => return None,
            };
            Some((Field::Topic, text))
        }
        _ => None,
    }
}

/// Adds the postings of a newly stored event to `batch`; `state_after` is the event's
/// `EventRecord::state_after`.
pub fn index_event(
    batch: &mut Batch<'_>,
    room_id: &str,
    stream: u64,
    state_after: u64,
    pdu: &Value,
) -> StoreResult<()> {
    let Some((field, text)) = searchable_text(pdu) else {
        return Ok(());
    };
    let sender = pdu
        .get("sender")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (counts, len) = term_frequencies(&text);
    for (term, tf) in counts {
        batch.put_posting(
            &term,
            room_id,
            stream,
            &Posting {
                field: field.code().to_owned(),
                tf,
                len,
                sender: sender.to_owned(),
                state_group: state_after,
            },
        )?;
    }
    Ok(())
}

/// Removes the postings of an event about to be redacted: `pdu` is its unredacted form,
/// whose text decides which postings exist.
pub fn unindex_event(batch: &mut Batch<'_>, room_id: &str, stream: u64, pdu: &Value) {
    let Some((_, text)) = searchable_text(pdu) else {
        return;
    };
    for term in term_frequencies(&text).0.into_keys() {
        batch.delete_posting(&term, room_id, stream);
    }
}

/// Builds the index from every stored event unless it is already at [`INDEX_VERSION`].
/// This runs before the server answers requests, so no send or redaction races it; a
/// crash part-way leaves the version unset, and the next start begins again.
pub fn index_existing_events(store: &Store) -> StoreResult<()> {
    if store.search_index_version()? == Some(INDEX_VERSION) {
        return Ok(());
    }
    let started = Instant::now();
    let mut batch = store.batch();
    batch.clear_search_index();
    store.write(batch)?;
    let mut batch = store.batch();
    let mut pending = 0;
    let mut indexed = 0u64;
    for item in store.raw_iter_from(Cf::Stream, &[]) {
        let (key, value) = item?;
        let event_id: String = serde_json::from_slice(&value)?;
        let Some(EventRecord {
            room_id,
            pdu,
            stream,
            state_after,
            status,
            ..
        }) = store.event(&event_id)?
        else {
            tracing::warn!(%event_id, stream = ?key, "stream names an event that is not stored");
            continue;
        };
        // An invite to a room this server is not in has a stream position, no text.
        if status != EventStatus::Accepted {
            continue;
        }
        // A redacted event's stored copy has lost its text, so it adds no postings.
        index_event(&mut batch, room_id.as_str(), stream, state_after, &pdu)?;
        indexed += 1;
        pending += 1;
        if pending == REINDEX_BATCH {
            store.write(std::mem::replace(&mut batch, store.batch()))?;
            pending = 0;
        }
    }
    batch.set_search_index_version(INDEX_VERSION);
    store.write(batch)?;
    if indexed > 0 {
        tracing::info!(
            events = indexed,
            seconds = started.elapsed().as_secs_f64(),
            "built the search index from the stored events"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn searchable_text_follows_the_spec_keys() {
        let message = json!({"type": "m.room.message", "content": {"body": "hi there"}});
        assert_eq!(
            searchable_text(&message),
            Some((Field::Body, "hi there".into()))
        );
        let name = json!({"type": "m.room.name", "state_key": "", "content": {"name": "Lobby"}});
        assert_eq!(searchable_text(&name), Some((Field::Name, "Lobby".into())));
        let topic = json!({"type": "m.room.topic", "state_key": "", "content": {
            "topic": "Cats", "m.topic": [
                {"mimetype": "text/html", "body": "<b>Dogs</b>"},
                {"body": "Cats and dogs"}
            ]
        }});
        assert_eq!(
            searchable_text(&topic),
            Some((Field::Topic, "Cats\nCats and dogs".into()))
        );
        let member =
            json!({"type": "m.room.member", "state_key": "@a:x", "content": {"displayname": "x"}});
        assert_eq!(searchable_text(&member), None);
        let state_message =
            json!({"type": "m.room.message", "state_key": "", "content": {"body": "x"}});
        assert_eq!(searchable_text(&state_message), None);
        let no_body = json!({"type": "m.room.message", "content": {"body": 5}});
        assert_eq!(searchable_text(&no_body), None);
    }
}
