//! Single events, the room state at an event and auth chains, for other servers.

use ruma::{EventId, OwnedEventId, RoomId, ServerName};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::Services;
use crate::store::{EventRecord, EventStatus};

/// The state before an event and the auth chain of that state, as IDs.
pub struct StateIdsAt {
    pub pdu_ids: Vec<OwnedEventId>,
    pub auth_chain_ids: Vec<OwnedEventId>,
}

/// The state before an event and the auth chain of that state, as PDUs.
pub struct StateAt {
    pub pdus: Vec<Value>,
    pub auth_chain: Vec<Value>,
}

fn unknown_event(event_id: &EventId) -> Error {
    Error::not_found(format!("Unknown event {event_id}"))
}

impl Services {
    /// A stored event that may be served: rejected events count as unknown.
    fn servable_event(&self, event_id: &EventId) -> Result<EventRecord> {
        match self.store.event(event_id.as_str())? {
            Some(record) if record.status != EventStatus::Rejected => Ok(record),
            _ => Err(unknown_event(event_id)),
        }
    }

    /// A servable event of `room_id`: 404 when unknown or in another room.
    fn event_in_room(&self, room_id: &RoomId, event_id: &EventId) -> Result<EventRecord> {
        let record = self.servable_event(event_id)?;
        if record.room_id != room_id {
            return Err(Error::not_found(format!(
                "Event {event_id} is not in room {room_id}"
            )));
        }
        Ok(record)
    }

    /// `GET /event/{eventId}`: the PDU as `origin` may have it. Servers the room's
    /// ACL denies are refused. An event the server may see is served whole; one it
    /// may not see is served redacted to a server in the room (as Synapse does) and
    /// refused to others, which learn nothing of it.
    pub fn event_for_server(&self, event_id: &EventId, origin: &ServerName) -> Result<Value> {
        let record = self.servable_event(event_id)?;
        let room_id = record.room_id.clone();
        self.check_server_acl(&room_id, origin)?;
        let mut view = self.server_view(&room_id, origin)?;
        if !view.in_room() && !view.can_see(&record)? {
            return Err(Error::forbidden(format!(
                "Server {origin} may not see event {event_id}"
            )));
        }
        view.pdu_for(&record)
    }

    /// The IDs of the room state before `event_id` (the state it was authorised
    /// against, without its own change). 404 for an outlier, whose state is not known.
    fn state_before(&self, room_id: &RoomId, event_id: &EventId) -> Result<Vec<OwnedEventId>> {
        let record = self.event_in_room(room_id, event_id)?;
        if record.status == EventStatus::Outlier {
            return Err(Error::not_found(format!(
                "The state at event {event_id} is not known here"
            )));
        }
        let state = self.state_ids_at(record.state_before)?;
        // A room's create event shares its group with the state after it.
        Ok(state
            .into_values()
            .filter(|id| id.as_str() != event_id.as_str())
            .collect())
    }

    /// `GET /state_ids/{roomId}?event_id=`: gated by [`Self::room_for_server`].
    pub fn state_ids_for_server(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        origin: &ServerName,
    ) -> Result<StateIdsAt> {
        self.room_for_server(room_id, origin)?;
        self.refuse_while_partial(room_id, "its state")?;
        let pdu_ids = self.state_before(room_id, event_id)?;
        let auth_chain_ids = self.auth_chain_ids(room_id, &pdu_ids)?;
        Ok(StateIdsAt {
            pdu_ids,
            auth_chain_ids,
        })
    }

    /// `GET /state/{roomId}?event_id=`: gated by [`Self::room_for_server`].
    pub fn state_for_server(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        origin: &ServerName,
    ) -> Result<StateAt> {
        self.room_for_server(room_id, origin)?;
        self.refuse_while_partial(room_id, "its state")?;
        let ids = self.state_before(room_id, event_id)?;
        let mut pdus = Vec::with_capacity(ids.len());
        for id in &ids {
            match self.store.event(id.as_str())? {
                Some(record) => pdus.push(record.pdu),
                None => return Err(Error::internal(format!("state event {id} is missing"))),
            }
        }
        let auth_chain = self
            .auth_chain(room_id, &ids)?
            .into_iter()
            .map(|(_, record)| record.pdu)
            .collect();
        Ok(StateAt { pdus, auth_chain })
    }

    /// `GET /event_auth/{roomId}/{eventId}`: the event's auth chain (its auth events
    /// and theirs, not the event itself), gated by [`Self::room_for_server`].
    pub fn event_auth_for_server(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        origin: &ServerName,
    ) -> Result<Vec<Value>> {
        self.room_for_server(room_id, origin)?;
        self.event_in_room(room_id, event_id)?;
        Ok(self
            .auth_chain(room_id, &[event_id.to_owned()])?
            .into_iter()
            .map(|(_, record)| record.pdu)
            .collect())
    }
}
