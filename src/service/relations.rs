//! Relations (`m.relates_to`): reactions, edits, references and threads. Indexed when
//! a local event is appended, forgotten when the child is redacted, and summarised as
//! bundled aggregations (`unsigned.m.relations`) on the parent.

use ruma::{OwnedEventId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;
use crate::service::rooms::ClientView;
use crate::store::{Batch, EventRecord, RelationRecord, ThreadRecord};

pub const ANNOTATION: &str = "m.annotation";
pub const REPLACE: &str = "m.replace";
pub const REFERENCE: &str = "m.reference";
pub const THREAD: &str = "m.thread";

/// The relation an event's content declares, if it is well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub parent: OwnedEventId,
    pub rel_type: String,
    pub key: Option<String>,
}

/// Reads `m.relates_to`; replies without `rel_type` (`m.in_reply_to` only) are not
/// relations the server aggregates.
pub fn relation_of(content: &Value) -> Option<Relation> {
    let relates_to = content.get("m.relates_to")?;
    let rel_type = relates_to.get("rel_type")?.as_str()?;
    let parent = relates_to.get("event_id")?.as_str()?;
    let parent = OwnedEventId::try_from(parent).ok()?;
    let key = relates_to
        .get("key")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if rel_type == ANNOTATION && key.is_none() {
        return None;
    }
    Some(Relation {
        parent,
        rel_type: rel_type.to_owned(),
        key: if rel_type == ANNOTATION { key } else { None },
    })
}

fn str_field<'a>(pdu: &'a Value, field: &str) -> Option<&'a str> {
    pdu.get(field).and_then(Value::as_str)
}

impl Services {
    /// Checks a new local event's relation and adds its index entries to the event's
    /// batch. Runs under the room's lock, so the uniqueness check cannot race.
    /// Relations to unknown events or events of other rooms are ignored, as the spec says.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn stage_relation(
        &self,
        batch: &mut Batch<'_>,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        pdu: &Value,
        sender: &UserId,
        stream: u64,
    ) -> Result<()> {
        let Some(relation) = pdu.get("content").and_then(relation_of) else {
            return Ok(());
        };
        if pdu.get("state_key").is_some() {
            return Ok(());
        }
        let Some(parent) = self.store.event(relation.parent.as_str())? else {
            return Ok(());
        };
        if parent.room_id != room_id {
            return Ok(());
        }
        let event_type = str_field(pdu, "type").unwrap_or_default().to_owned();
        match relation.rel_type.as_str() {
            THREAD if parent.pdu.pointer("/content/m.relates_to").is_some() => {
                return Err(Error::new(
                    ErrorKind::Unknown,
                    "Cannot start a thread from an event that itself relates to another event",
                ));
            }
            ANNOTATION => {
                let key = relation.key.as_deref().unwrap_or_default();
                if self
                    .store
                    .annotation(relation.parent.as_str(), &event_type, key, sender.as_str())?
                    .is_some()
                {
                    return Err(Error::new(
                        ErrorKind::DuplicateAnnotation,
                        format!("You already reacted to this event with {key:?}"),
                    ));
                }
            }
            _ => {}
        }
        let record = RelationRecord {
            event_id: event_id.clone(),
            rel_type: relation.rel_type.clone(),
            event_type,
            sender: sender.to_owned(),
            key: relation.key.clone(),
            origin_server_ts: pdu
                .get("origin_server_ts")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        };
        batch.put_relation(relation.parent.as_str(), stream, &record)?;
        if relation.rel_type == THREAD {
            let previous = self
                .store
                .thread(room_id.as_str(), relation.parent.as_str())?;
            let root_sender =
                str_field(&parent.pdu, "sender").and_then(|s| OwnedUserId::try_from(s).ok());
            let mut thread = previous.clone().unwrap_or_else(|| ThreadRecord {
                latest_event: event_id.clone(),
                latest_stream: stream,
                count: 0,
                participants: root_sender.into_iter().collect(),
            });
            thread.latest_event = event_id.clone();
            thread.latest_stream = stream;
            thread.count += 1;
            if !thread.participants.iter().any(|p| p == sender) {
                thread.participants.push(sender.to_owned());
            }
            batch.put_thread(
                room_id.as_str(),
                relation.parent.as_str(),
                &thread,
                previous.map(|p| p.latest_stream),
            )?;
        }
        Ok(())
    }

    /// A child being redacted stops counting: its reaction may be sent again and it
    /// leaves the aggregations. `record` is the child as it was before the redaction.
    pub(crate) fn unstage_relation(
        &self,
        batch: &mut Batch<'_>,
        child_id: &str,
        record: &EventRecord,
    ) -> Result<()> {
        let Some(relation) = record.pdu.get("content").and_then(relation_of) else {
            return Ok(());
        };
        let Some((stream, stored)) = self
            .store
            .relations(relation.parent.as_str())?
            .into_iter()
            .find(|(_, r)| r.event_id == child_id)
        else {
            return Ok(());
        };
        batch.delete_relation(relation.parent.as_str(), stream, &stored);
        if relation.rel_type == THREAD
            && let Some(mut thread) = self
                .store
                .thread(record.room_id.as_str(), relation.parent.as_str())?
        {
            thread.count = thread.count.saturating_sub(1);
            let latest = thread.latest_stream;
            batch.put_thread(
                record.room_id.as_str(),
                relation.parent.as_str(),
                &thread,
                Some(latest),
            )?;
        }
        Ok(())
    }

    /// The bundled aggregations of an event: its latest valid edit, its references and
    /// its thread summary. `None` when there are none.
    pub fn bundled_relations(
        &self,
        event_id: &str,
        record: &EventRecord,
        view: Option<ClientView<'_>>,
        depth: u8,
    ) -> Result<Option<Value>> {
        // State events get no bundles (spec), and bundles never nest deeper than an
        // edit inside a thread's latest event.
        if record.pdu.get("state_key").is_some() || depth > 1 {
            return Ok(None);
        }
        let mut bundle = Map::new();
        let original_sender = str_field(&record.pdu, "sender").unwrap_or_default();
        let original_type = str_field(&record.pdu, "type").unwrap_or_default();
        let original_is_edit = record
            .pdu
            .pointer("/content/m.relates_to/rel_type")
            .and_then(Value::as_str)
            == Some(REPLACE);
        let mut latest_edit: Option<(u64, String)> = None;
        let mut references = Vec::new();
        for (_, child) in self.store.relations(event_id)? {
            match child.rel_type.as_str() {
                // An edit counts only from the original sender, with the original's type,
                // of an event that is not itself an edit and is not redacted.
                REPLACE
                    if record.redacted_because.is_none()
                        && !original_is_edit
                        && child.sender.as_str() == original_sender
                        && (child.event_type == original_type
                            || child.event_type == "m.room.encrypted") =>
                {
                    let candidate = (child.origin_server_ts, child.event_id.to_string());
                    if latest_edit.as_ref().is_none_or(|best| candidate > *best) {
                        latest_edit = Some(candidate);
                    }
                }
                REFERENCE => references.push(json!({"event_id": child.event_id})),
                _ => {}
            }
        }
        if let Some((_, edit_id)) = latest_edit
            && let Some(edit) = self.store.event(&edit_id)?
            && edit
                .pdu
                .pointer("/content/m.new_content")
                .is_some_and(Value::is_object)
        {
            bundle.insert(
                REPLACE.into(),
                self.client_event_with_bundles(&edit_id, &edit, view, depth + 1)?,
            );
        }
        if !references.is_empty() {
            bundle.insert(REFERENCE.into(), json!({ "chunk": references }));
        }
        if let Some(thread) = self.store.thread(record.room_id.as_str(), event_id)?
            && thread.count > 0
            && let Some(latest) = self.store.event(thread.latest_event.as_str())?
        {
            let latest_event = self.client_event_with_bundles(
                thread.latest_event.as_str(),
                &latest,
                view,
                depth + 1,
            )?;
            let participated =
                view.is_some_and(|v| thread.participants.iter().any(|p| p == v.user_id));
            bundle.insert(
                THREAD.into(),
                json!({
                    "latest_event": latest_event,
                    "count": thread.count,
                    "current_user_participated": participated,
                }),
            );
        }
        Ok((!bundle.is_empty()).then_some(Value::Object(bundle)))
    }
}

/// A page of `/relations` or `/threads`.
pub struct RelationsPage {
    pub chunk: Vec<Value>,
    pub next_batch: Option<String>,
}

/// What `/relations` asks for.
pub struct RelationsQuery<'a> {
    pub rel_type: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub limit: usize,
    pub forward: bool,
}

/// Relation and thread tokens are stream positions: `r{position}`, our own, or any
/// token of `/sync` or `/messages`, as the spec lets clients pass those.
pub fn parse_position(token: &str) -> Result<u64> {
    if let Some(position) = token.strip_prefix('r').and_then(|p| p.parse().ok()) {
        return Ok(position);
    }
    if let Some(sync) = crate::service::sync::SyncToken::parse(token) {
        return Ok(sync.events);
    }
    if let Some((_, stream)) = token.strip_prefix('t').and_then(|t| t.split_once('_'))
        && let Ok(stream) = stream.parse()
    {
        return Ok(stream);
    }
    Err(Error::invalid_param(format!(
        "{token:?} is not a pagination token from this server"
    )))
}

impl Services {
    /// `GET /relations/{eventId}[/{relType}[/{eventType}]]`: the children the viewer may
    /// see of a parent they may see.
    pub fn relations_page(
        &self,
        room_id: &RoomId,
        parent: &str,
        view: ClientView<'_>,
        query: &RelationsQuery<'_>,
    ) -> Result<RelationsPage> {
        let mut reader = self.history_reader(room_id, view)?;
        if reader.event(parent)?.is_none() {
            return Err(Error::not_found(format!(
                "Event {parent} not found in this room"
            )));
        }
        let from = query.from.map(parse_position).transpose()?;
        let to = query.to.map(parse_position).transpose()?;
        let mut children = self.store.relations(parent)?;
        if !query.forward {
            children.reverse();
        }
        let in_range = |position: u64| {
            if query.forward {
                from.is_none_or(|f| position >= f) && to.is_none_or(|t| position < t)
            } else {
                from.is_none_or(|f| position <= f) && to.is_none_or(|t| position > t)
            }
        };
        let mut chunk = Vec::new();
        let mut next_batch = None;
        for (position, child) in children {
            if !in_range(position)
                || query.rel_type.is_some_and(|t| t != child.rel_type)
                || query.event_type.is_some_and(|t| t != child.event_type)
            {
                continue;
            }
            if chunk.len() == query.limit {
                next_batch = Some(format!("r{position}"));
                break;
            }
            if let Some((_, event)) = reader.event(child.event_id.as_str())? {
                chunk.push(event);
            }
        }
        Ok(RelationsPage { chunk, next_batch })
    }

    /// `GET /rooms/{roomId}/threads`: thread roots by latest activity, newest first.
    pub fn threads_page(
        &self,
        room_id: &RoomId,
        view: ClientView<'_>,
        participated_only: bool,
        from: Option<&str>,
        limit: usize,
    ) -> Result<RelationsPage> {
        let mut reader = self.history_reader(room_id, view)?;
        let mut before = from.map(parse_position).transpose()?.unwrap_or(u64::MAX);
        let mut chunk = Vec::new();
        loop {
            let page = self
                .store
                .threads_by_activity(room_id.as_str(), before, limit + 1)?;
            let exhausted = page.len() <= limit;
            for (position, root) in page {
                if chunk.len() == limit {
                    return Ok(RelationsPage {
                        chunk,
                        next_batch: Some(format!("r{position}")),
                    });
                }
                before = position.saturating_sub(1);
                if participated_only {
                    let participated = self
                        .store
                        .thread(room_id.as_str(), root.as_str())?
                        .is_some_and(|t| t.participants.iter().any(|p| p == view.user_id));
                    if !participated {
                        continue;
                    }
                }
                if let Some((_, event)) = reader.event(root.as_str())? {
                    chunk.push(event);
                }
            }
            if exhausted || before == 0 {
                return Ok(RelationsPage {
                    chunk,
                    next_batch: None,
                });
            }
        }
    }
}
