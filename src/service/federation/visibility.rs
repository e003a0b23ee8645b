//! Which of a room's events another server may see, following Synapse's
//! `filter_events_for_server`, and whether a server is in a room at all.
//!
//! The history visibility that applies to an event is the one in the room state *after*
//! it (Synapse keeps an event's state group that way), so a server sees its own users'
//! joins, and a change of visibility is judged by its new value. An outlier has no
//! known state: like Synapse, it counts as `shared`.

use std::collections::HashMap;

use ruma::{RoomId, ServerName, UserId};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::{RoomVersion, redact};
use crate::service::Services;
use crate::store::{EventRecord, EventStatus, RoomRecord};

/// An `m.room.history_visibility` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    WorldReadable,
    Shared,
    Invited,
    Joined,
}

impl Visibility {
    /// The setting a `history_visibility` value stands for: a missing event and unknown
    /// values count as `shared`, as the spec says of clients and Synapse does of servers.
    pub fn from_value(value: Option<&str>) -> Self {
        match value {
            Some("world_readable") => Self::WorldReadable,
            Some("invited") => Self::Invited,
            Some("joined") => Self::Joined,
            _ => Self::Shared,
        }
    }
}

/// Whether a server may see an event: `visibility` applies at the event,
/// `memberships` are those of the server's users in the state at the event, and
/// `in_room_now` says whether one of its users is joined to the room now.
///
/// * `world_readable`: any server.
/// * `shared`: a server in the room now (the endpoints that serve history require it
///   anyway) or with a user joined at the event.
/// * `invited`: a server with a user invited or joined at the event.
/// * `joined`: a server with a user joined at the event.
pub fn server_may_see<'m>(
    visibility: Visibility,
    in_room_now: bool,
    memberships: impl IntoIterator<Item = &'m str>,
) -> bool {
    let mut memberships = memberships.into_iter();
    match visibility {
        Visibility::WorldReadable => true,
        Visibility::Shared => in_room_now || memberships.any(|m| m == "join"),
        Visibility::Invited => memberships.any(|m| m == "join" || m == "invite"),
        Visibility::Joined => memberships.any(|m| m == "join"),
    }
}

impl Services {
    /// The checks before a server reads a room's events and state: the room exists here
    /// (404), its server ACL allows `origin` (403) and a user of `origin` is joined to it
    /// (403), as the spec asks of `/state`, `/state_ids`, `/event_auth`, `/backfill` and
    /// `/get_missing_events`, and Synapse of `/timestamp_to_event` too.
    pub fn room_for_server(&self, room_id: &RoomId, origin: &ServerName) -> Result<RoomRecord> {
        let room = self.known_room(room_id)?;
        self.check_server_acl(room_id, origin)?;
        if !self.server_in_room(room_id, origin)? {
            return Err(Error::forbidden(format!(
                "Server {origin} is not in room {room_id}"
            )));
        }
        Ok(room)
    }

    /// The room's record, or 404.
    pub fn known_room(&self, room_id: &RoomId) -> Result<RoomRecord> {
        self.store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))
    }
}

impl Services {
    /// Whether a user of `server` is joined to the room now.
    pub fn server_in_room(&self, room_id: &RoomId, server: &ServerName) -> Result<bool> {
        Ok(self
            .room_members(room_id)?
            .joined
            .iter()
            .any(|user| user.server_name() == server))
    }

    /// `server`'s view of the room for one request. 404 for an unknown room.
    pub fn server_view<'a>(
        &'a self,
        room_id: &'a RoomId,
        server: &'a ServerName,
    ) -> Result<ServerView<'a>> {
        let room = self.known_room(room_id)?;
        Ok(ServerView {
            services: self,
            room_id,
            server,
            version: room.version,
            in_room: self.server_in_room(room_id, server)?,
            users: None,
            decided: HashMap::new(),
        })
    }
}

/// One server's reading of one room during one request. Decisions are remembered per
/// state group, since runs of events share one.
pub struct ServerView<'a> {
    services: &'a Services,
    room_id: &'a RoomId,
    server: &'a ServerName,
    version: RoomVersion,
    in_room: bool,
    /// The server's users with a member event in the room's current state, loaded when
    /// first needed: the only users whose membership at an event can count.
    users: Option<Vec<String>>,
    decided: HashMap<u64, bool>,
}

impl ServerView<'_> {
    /// Whether a user of the server is joined to the room now.
    pub fn in_room(&self) -> bool {
        self.in_room
    }

    /// Whether the server may see the event. Rejected events are never seen.
    pub fn can_see(&mut self, record: &EventRecord) -> Result<bool> {
        match record.status {
            EventStatus::Rejected => Ok(false),
            EventStatus::Outlier => Ok(server_may_see(
                Visibility::Shared,
                self.in_room,
                std::iter::empty(),
            )),
            EventStatus::Accepted | EventStatus::SoftFailed => self.allowed(record.state_after),
        }
    }

    /// The event in federation format as the server may have it: whole when it may see
    /// it, redacted otherwise (as Synapse answers `/backfill`, `/get_missing_events`
    /// and `/event` to servers in the room).
    pub fn pdu_for(&mut self, record: &EventRecord) -> Result<Value> {
        // An erased user's events go out redacted, whoever asks (as Synapse).
        if self.can_see(record)? && !self.services.erased_for_servers(&record.pdu) {
            Ok(record.pdu.clone())
        } else {
            Ok(redact(&record.pdu, self.version)?)
        }
    }

    fn allowed(&mut self, group: u64) -> Result<bool> {
        if let Some(&allowed) = self.decided.get(&group) {
            return Ok(allowed);
        }
        let services = self.services;
        let entry = services
            .state_entries_at(group, &[("m.room.history_visibility", "")])?
            .into_iter()
            .next()
            .flatten();
        let value = content_str(
            services,
            entry.as_ref().map(|id| id.as_str()),
            "history_visibility",
        )?;
        let visibility = Visibility::from_value(value.as_deref());
        let memberships = match visibility {
            Visibility::Invited | Visibility::Joined => self.memberships_at(group)?,
            Visibility::WorldReadable | Visibility::Shared => Vec::new(),
        };
        let allowed = server_may_see(
            visibility,
            self.in_room,
            memberships.iter().map(String::as_str),
        );
        self.decided.insert(group, allowed);
        Ok(allowed)
    }

    /// The memberships of the server's users in a state group.
    fn memberships_at(&mut self, group: u64) -> Result<Vec<String>> {
        let services = self.services;
        if self.users.is_none() {
            let server = self.server;
            let members = services
                .store
                .current_state(self.room_id.as_str(), Some("m.room.member"))?;
            self.users = Some(
                members
                    .into_keys()
                    .map(|(_, user)| user)
                    .filter(|user| {
                        UserId::parse(user.as_str()).is_ok_and(|u| u.server_name() == server)
                    })
                    .collect(),
            );
        }
        let users = self.users.as_deref().unwrap_or_default();
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<(&str, &str)> = users
            .iter()
            .map(|user| ("m.room.member", user.as_str()))
            .collect();
        let mut memberships = Vec::new();
        for event_id in services
            .state_entries_at(group, &wanted)?
            .into_iter()
            .flatten()
        {
            if let Some(membership) = content_str(services, Some(event_id.as_str()), "membership")?
            {
                memberships.push(membership);
            }
        }
        Ok(memberships)
    }
}

/// A string field of a stored event's content.
fn content_str(services: &Services, event_id: Option<&str>, field: &str) -> Result<Option<String>> {
    let Some(event_id) = event_id else {
        return Ok(None);
    };
    let record = services
        .store
        .event(event_id)?
        .ok_or_else(|| Error::internal(format!("state event {event_id} is missing")))?;
    Ok(record
        .pdu
        .get("content")
        .and_then(|c| c.get(field))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_their_defaults() {
        assert_eq!(
            Visibility::from_value(Some("world_readable")),
            Visibility::WorldReadable
        );
        assert_eq!(Visibility::from_value(Some("shared")), Visibility::Shared);
        assert_eq!(Visibility::from_value(Some("invited")), Visibility::Invited);
        assert_eq!(Visibility::from_value(Some("joined")), Visibility::Joined);
        assert_eq!(Visibility::from_value(None), Visibility::Shared);
        assert_eq!(Visibility::from_value(Some("JOINED")), Visibility::Shared);
        assert_eq!(Visibility::from_value(Some("")), Visibility::Shared);
    }

    #[test]
    fn world_readable_is_for_everyone() {
        assert!(server_may_see(Visibility::WorldReadable, false, []));
        assert!(server_may_see(
            Visibility::WorldReadable,
            false,
            ["leave", "ban"]
        ));
    }

    #[test]
    fn shared_needs_the_server_in_the_room_now_or_then() {
        assert!(server_may_see(Visibility::Shared, true, []));
        assert!(server_may_see(Visibility::Shared, false, ["leave", "join"]));
        assert!(!server_may_see(Visibility::Shared, false, []));
        assert!(!server_may_see(
            Visibility::Shared,
            false,
            ["invite", "leave"]
        ));
    }

    #[test]
    fn invited_counts_invites_and_joins_at_the_event() {
        assert!(server_may_see(Visibility::Invited, false, ["invite"]));
        assert!(server_may_see(
            Visibility::Invited,
            false,
            ["leave", "join"]
        ));
        assert!(!server_may_see(
            Visibility::Invited,
            true,
            ["leave", "knock"]
        ));
        assert!(!server_may_see(Visibility::Invited, true, []));
    }

    #[test]
    fn joined_counts_only_joins_at_the_event() {
        assert!(server_may_see(Visibility::Joined, false, ["join"]));
        assert!(server_may_see(Visibility::Joined, false, ["ban", "join"]));
        assert!(!server_may_see(Visibility::Joined, true, ["invite"]));
        // Being in the room now does not open what was sent before the server joined.
        assert!(!server_may_see(Visibility::Joined, true, []));
    }
}
