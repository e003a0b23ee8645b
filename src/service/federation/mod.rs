//! Federation: what this server answers other servers. See `spec/federation-serving.md`.
//!
//! * [`visibility`]: which events a server may see, whether it is in a room, and the
//!   checks before it reads a room.
//! * [`acl`]: the room's `m.room.server_acl`, checked on every request naming a room.
//! * [`events`]: single events, the state at an event, auth chains (`/event`, `/state`,
//!   `/state_ids`, `/event_auth`).
//! * [`history`]: walks back through a room (`/backfill`, `/get_missing_events`,
//!   `/timestamp_to_event`).
//! * [`queries`]: alias lookups and device lists (`/query/directory`, `/user/devices`).

pub mod acl;
pub mod events;
pub mod history;
pub mod queries;
pub mod visibility;
