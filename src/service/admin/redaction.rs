//! Redaction by an admin: one event, or a user's events in some rooms or everywhere
//! (optionally only since a time), as Synapse's `POST /user/{userId}/redact`. A bulk
//! redaction is an `admin_redactions` record written with a `redact_user` fan-out intent,
//! so it runs in the background and survives a restart. Its passes go room by room,
//! recording each room once done; each redaction is sent under a transaction ID (the
//! redact ID) and events already redacted are skipped, so a pass repeated after a crash
//! sends nothing twice.
//!
//! Redactions are sent, as in Synapse, by the calling admin when they are in the room
//! with the power to redact; else by the room's creator, else by the local member with
//! the most power, who may redact.

use ruma::{EventId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};

use crate::error::{Error, Result};
use crate::event::power_levels::Power;
use crate::service::fanout::FanoutKind;
use crate::service::rooms::{EventTemplate, TxnRef};
use crate::service::{Services, now_ms, random_string};
use crate::store::{EventStatus, RedactionRecord};

/// Synapse's default: the latest 1000 events of the user per room.
pub const DEFAULT_REDACTION_LIMIT: usize = 1000;

/// The device under which a bulk redaction's events are sent, with the redact ID as the
/// transaction ID.
const REDACTION_DEVICE: &str = "hearth-admin-redaction";

/// Events read per step while looking for the user's events.
const SCAN_CHUNK: usize = 500;

/// What a bulk redaction should cover.
#[derive(Debug, Clone, Default)]
pub struct UserRedaction {
    /// The rooms; empty for every room the user has been in.
    pub rooms: Vec<OwnedRoomId>,
    pub reason: Option<String>,
    pub limit: Option<usize>,
    pub since_ts: Option<u64>,
}

impl Services {
    /// Redacts one event as an admin (see the module notes for who sends it); answers
    /// the redaction's event ID.
    pub async fn admin_redact_event(
        &self,
        admin: &UserId,
        event_id: &EventId,
        reason: Option<String>,
    ) -> Result<OwnedEventId> {
        let event = self
            .store
            .event(event_id.as_str())?
            .filter(|e| e.status == EventStatus::Accepted)
            .ok_or_else(|| Error::not_found("Unknown event"))?;
        let room_id = event.room_id.clone();
        let redactor = self.redactor(&room_id, admin)?.ok_or_else(|| {
            Error::invalid_param(format!("No local member of {room_id} may redact events"))
        })?;
        let redaction = self
            .append_event(
                &room_id,
                &redactor,
                EventTemplate::redaction(event_id.to_owned(), reason),
                Some(TxnRef {
                    device_id: REDACTION_DEVICE.to_owned(),
                    txn_id: format!("event-{}", random_string(12)),
                }),
            )
            .await?;
        self.audit(
            admin,
            "event.redact",
            event_id.as_str(),
            Some(format!("in {room_id} by {redactor}")),
        )?;
        Ok(redaction)
    }

    /// Starts redacting a user's events: records the request with its intent in one
    /// write and wakes its worker. Answers the redact ID at once.
    pub fn admin_redact_user(
        &self,
        admin: &UserId,
        user_id: &UserId,
        request: UserRedaction,
    ) -> Result<String> {
        let rooms = if request.rooms.is_empty() {
            self.store
                .user_rooms(user_id.as_str())?
                .into_iter()
                .map(|(room_id, _)| room_id)
                .collect()
        } else {
            for room_id in &request.rooms {
                if self.store.room(room_id.as_str())?.is_none() {
                    return Err(Error::not_found(format!("Unknown room {room_id}")));
                }
            }
            request.rooms
        };
        let record = RedactionRecord {
            redact_id: random_string(16),
            admin: admin.to_owned(),
            user_id: user_id.to_owned(),
            rooms,
            reason: request.reason,
            limit: request.limit.unwrap_or(DEFAULT_REDACTION_LIMIT),
            since_ts: request.since_ts,
            started_ts: now_ms(),
            finished_ts: None,
            done_rooms: Vec::new(),
            redacted: 0,
            failed_redactions: Default::default(),
        };
        let mut batch = self.store.batch();
        batch.put_admin_redaction(&record)?;
        self.fanout
            .stage(&mut batch, &record.redact_id, FanoutKind::RedactUser)?;
        self.store.write(batch)?;
        self.fanout.wake(&record.redact_id);
        Ok(record.redact_id)
    }

    pub fn admin_redaction_status(&self, redact_id: &str) -> Result<RedactionRecord> {
        self.store
            .admin_redaction(redact_id)?
            .ok_or_else(|| Error::not_found("Unknown redact ID"))
    }

    /// One pass of a [`FanoutKind::RedactUser`] intent; stops between events when
    /// shutdown begins (the intent is then resumed at the next start).
    pub(crate) async fn carry_out_user_redaction(&self, redact_id: &str) -> Result<()> {
        let Some(mut record) = self.store.admin_redaction(redact_id)? else {
            tracing::error!(%redact_id, "dropping a redaction intent without its record");
            return Ok(());
        };
        if record.finished_ts.is_some() {
            return Ok(());
        }
        for room_id in record.rooms.clone() {
            if record.done_rooms.contains(&room_id) {
                continue;
            }
            if !self.redact_in_room(&mut record, &room_id).await? {
                return Ok(());
            }
            record.done_rooms.push(room_id);
            let mut batch = self.store.batch();
            batch.put_admin_redaction(&record)?;
            self.store.write(batch)?;
        }
        record.finished_ts = Some(now_ms());
        let mut batch = self.store.batch();
        batch.put_admin_redaction(&record)?;
        self.stage_audit(
            &mut batch,
            &record.admin,
            "user.redact",
            &record.user_id,
            Some(format!(
                "{} redacted in {} rooms, {} failed; redact_id={}",
                record.redacted,
                record.rooms.len(),
                record.failed_redactions.len(),
                record.redact_id
            )),
        )?;
        self.store.write(batch)?;
        tracing::info!(%redact_id, redacted = record.redacted, "user's events redacted");
        Ok(())
    }

    /// Redacts the user's events in one room. Answers false when shutdown stopped it.
    async fn redact_in_room(&self, record: &mut RedactionRecord, room_id: &RoomId) -> Result<bool> {
        let events = self.events_to_redact(record, room_id)?;
        if events.is_empty() {
            return Ok(true);
        }
        let Some(redactor) = self.redactor(room_id, &record.admin)? else {
            for event_id in events {
                record.failed_redactions.insert(
                    event_id.to_string(),
                    format!("No local member of {room_id} may redact events"),
                );
            }
            return Ok(true);
        };
        for event_id in events {
            if self.stopping() {
                return Ok(false);
            }
            let outcome = self
                .append_event(
                    room_id,
                    &redactor,
                    EventTemplate::redaction(event_id.clone(), record.reason.clone()),
                    Some(TxnRef {
                        device_id: REDACTION_DEVICE.to_owned(),
                        txn_id: record.redact_id.clone(),
                    }),
                )
                .await;
            match outcome {
                Ok(_) => record.redacted += 1,
                Err(e) => {
                    record
                        .failed_redactions
                        .insert(event_id.to_string(), e.to_string());
                }
            }
            let mut batch = self.store.batch();
            batch.put_admin_redaction(record)?;
            self.store.write_unsynced(batch)?;
        }
        Ok(true)
    }

    /// The user's latest `limit` events in the room (since `since_ts`) that may be
    /// redacted, less those already redacted: messages and other non-state events, and
    /// their membership events (redaction keeps the membership, drops name and avatar);
    /// not redactions, not other state.
    fn events_to_redact(
        &self,
        record: &RedactionRecord,
        room_id: &RoomId,
    ) -> Result<Vec<OwnedEventId>> {
        let mut matching: Vec<(OwnedEventId, bool)> = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .room_events_after(room_id.as_str(), after, SCAN_CHUNK)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = *last;
            for (_, event_id) in page {
                let Some(event) = self.store.event(event_id.as_str())? else {
                    continue;
                };
                let pdu = &event.pdu;
                if event.status != EventStatus::Accepted
                    || pdu["sender"].as_str() != Some(record.user_id.as_str())
                {
                    continue;
                }
                let event_type = pdu["type"].as_str().unwrap_or_default();
                let is_state = pdu.get("state_key").is_some();
                if event_type == "m.room.redaction" || (is_state && event_type != "m.room.member") {
                    continue;
                }
                let ts = pdu["origin_server_ts"].as_u64().unwrap_or(0);
                if record.since_ts.is_some_and(|since| ts < since) {
                    continue;
                }
                matching.push((event_id, event.redacted_because.is_some()));
            }
        }
        let skip = matching.len().saturating_sub(record.limit);
        Ok(matching
            .into_iter()
            .skip(skip)
            .filter(|(_, redacted)| !redacted)
            .map(|(id, _)| id)
            .collect())
    }

    /// Who sends an admin's redactions in the room: the admin, the room's creator, or
    /// the local member with the most power, whoever first is joined and may redact.
    fn redactor(&self, room_id: &RoomId, admin: &UserId) -> Result<Option<OwnedUserId>> {
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
        let powers = self.powers_at_current(room_id, room.version)?;
        let members = self.room_members(room_id)?;
        let may_redact = |user: &UserId| {
            user.server_name() == self.server_name()
                && members.is_joined(user)
                && powers.user_power(user).at_least(powers.redact_level())
                && powers.can_send(user, "m.room.redaction", false)
        };
        if may_redact(admin) {
            return Ok(Some(admin.to_owned()));
        }
        if let Some(creator) = powers.creators().iter().find(|c| may_redact(c)) {
            return Ok(Some(creator.clone()));
        }
        let strongest: Option<(Power, OwnedUserId)> = members
            .joined
            .iter()
            .filter(|u| may_redact(u))
            .map(|u| (powers.user_power(u), u.clone()))
            .max();
        Ok(strongest.map(|(_, user)| user))
    }
}
