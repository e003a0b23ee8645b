//! Room deletion, carried out by the fan-out mechanism. The admin's request writes a
//! `deleted_rooms` record (what to do) and a `delete_room` fan-out intent in one batch;
//! the room's fan-out worker then makes each local member leave (after joining them to a
//! new room, when asked), removes or moves the room's aliases and directory entry, purges
//! the history when asked, and completes the record with its audit entry in one write.
//! A pass cut short by a crash is run again at the next start; every step skips what is
//! already done, so nothing happens twice.

use std::collections::HashSet;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::service::fanout::FanoutKind;
use crate::service::rooms::{CreateRoom, EventTemplate, MembershipChange, Preset, TxnRef};
use crate::service::{Services, now_ms, random_string, search};
use crate::store::{AliasRecord, BlockedRoomRecord, DeletedRoomRecord, NewRoomRequest};

/// Marks the create event of the room members of a deleted room are moved to, so that a
/// pass resumed after a crash finds the room it created instead of creating another.
const REPLACES_KEY: &str = "io.hearth.replaces_deleted_room";

/// The notice's transaction, so that a repeated pass sends it once.
const NOTICE_DEVICE: &str = "hearth-room-deletion";

/// Events pruned per write while purging history.
const PURGE_CHUNK: usize = 200;

/// Options of a room deletion, as Synapse's delete room API takes them.
#[derive(Debug, Default, Clone)]
pub struct RoomDeletion {
    pub block: bool,
    pub purge: bool,
    /// Move local members to a new room made by this user, with this name and notice.
    pub new_room: Option<NewRoomRequest>,
}

/// Synapse's defaults for the new room's name and notice.
pub const DEFAULT_NEW_ROOM_NAME: &str = "Content Violation Notification";
pub const DEFAULT_NEW_ROOM_MESSAGE: &str = "Sharing illegal content on this server is not permitted and rooms in violation will be blocked.";

impl Services {
    /// Starts deleting the room: records the deletion and its intent in one write and
    /// wakes the room's fan-out worker. With `wait`, answers once the deletion is
    /// complete (or shutdown began); else at once. Answers the record as it then stands.
    /// A deletion already recorded is not started again: its record is answered.
    pub async fn admin_delete_room(
        &self,
        admin: &UserId,
        room_id: &RoomId,
        options: RoomDeletion,
        wait: bool,
    ) -> Result<DeletedRoomRecord> {
        if self.store.room(room_id.as_str())?.is_none() {
            return Err(Error::not_found("Room not found"));
        }
        if let Some(new_room) = &options.new_room {
            self.local_account(&new_room.creator)?;
        }
        let generation = {
            let _guard = self.admin.deletions.lock().await;
            match self.store.deleted_room(room_id.as_str())? {
                Some(done) if done.finished_ts.is_some() => return Ok(done),
                Some(_) if !self.store.fanout_intents(room_id.as_str())?.is_empty() => None,
                existing => {
                    // A new deletion, or one recorded before deletions were intents.
                    let record = existing.unwrap_or_else(|| DeletedRoomRecord {
                        delete_id: random_string(16),
                        deleted_by: admin.to_owned(),
                        started_ts: now_ms(),
                        finished_ts: None,
                        block: options.block,
                        purge_requested: options.purge,
                        kicked_users: Vec::new(),
                        failed_to_kick_users: Vec::new(),
                        local_aliases: Vec::new(),
                        new_room: options.new_room.clone(),
                        new_room_id: None,
                        purged: false,
                    });
                    let mut batch = self.store.batch();
                    batch.put_deleted_room(room_id.as_str(), &record)?;
                    if record.block {
                        batch.set_blocked_room(
                            room_id.as_str(),
                            Some(&BlockedRoomRecord {
                                blocked_by: record.deleted_by.clone(),
                                ts: now_ms(),
                            }),
                        )?;
                    }
                    let generation =
                        self.fanout
                            .stage(&mut batch, room_id.as_str(), FanoutKind::DeleteRoom)?;
                    self.store.write(batch)?;
                    Some(generation)
                }
            }
        };
        self.fanout.wake(room_id.as_str());
        if wait {
            let generation = match generation {
                Some(generation) => generation,
                None => self
                    .store
                    .fanout_intents(room_id.as_str())?
                    .iter()
                    .map(|i| i.generation)
                    .max()
                    .unwrap_or(0),
            };
            self.fanout
                .finished(room_id.as_str(), FanoutKind::DeleteRoom, generation)
                .await?;
        }
        self.store
            .deleted_room(room_id.as_str())?
            .ok_or_else(|| Error::internal("the room's deletion record is missing"))
    }

    /// One pass of a [`FanoutKind::DeleteRoom`] intent. Stops between steps when
    /// shutdown begins; the intent is then resumed at the next start.
    pub(crate) async fn carry_out_room_deletion(&self, room_id: &RoomId) -> Result<()> {
        let Some(mut record) = self.store.deleted_room(room_id.as_str())? else {
            tracing::error!(%room_id, "dropping a room deletion intent without its record");
            return Ok(());
        };
        if record.finished_ts.is_some() {
            return Ok(());
        }
        // A new room that cannot be made (its creator deactivated meanwhile, say) does not
        // hold the deletion up for good: the members then only leave.
        let new_room_id = match record.new_room.clone() {
            Some(request) => match self.deletion_new_room(room_id, &mut record, &request).await {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::warn!(%room_id, error = %e, "could not make the room members move to; they only leave");
                    record.new_room_id.clone()
                }
            },
            None => None,
        };
        if !self
            .remove_local_members(room_id, &mut record, new_room_id.as_deref())
            .await?
        {
            return Ok(());
        }
        self.remove_room_aliases(room_id, &mut record, new_room_id.as_deref())
            .await?;
        if record.purge_requested && !record.purged {
            if !self.purge_room_history(room_id).await? {
                return Ok(());
            }
            record.purged = true;
        }
        record.finished_ts = Some(now_ms());
        let mut batch = self.store.batch();
        batch.put_deleted_room(room_id.as_str(), &record)?;
        self.stage_audit(
            &mut batch,
            &record.deleted_by,
            "room.delete",
            room_id,
            Some(format!(
                "removed {} members, {} aliases; block={}, purged={}, new room={}",
                record.kicked_users.len(),
                record.local_aliases.len(),
                record.block,
                record.purged,
                record
                    .new_room_id
                    .as_ref()
                    .map_or("none".to_owned(), ToString::to_string),
            )),
        )?;
        self.store.write(batch)?;
        tracing::info!(%room_id, delete_id = %record.delete_id, "room deleted");
        Ok(())
    }

    /// The room members are moved to: found by its marker when a pass before created it,
    /// else created (public, only its creator may speak, as Synapse makes it), with the
    /// notice sent once.
    async fn deletion_new_room(
        &self,
        room_id: &RoomId,
        record: &mut DeletedRoomRecord,
        request: &NewRoomRequest,
    ) -> Result<OwnedRoomId> {
        let new_room_id = match &record.new_room_id {
            Some(id) => id.clone(),
            None => {
                let id = match self.find_replacement_room(room_id, &request.creator)? {
                    Some(id) => id,
                    None => {
                        let mut creation_content = Map::new();
                        creation_content.insert(REPLACES_KEY.into(), json!(room_id));
                        let mut power = Map::new();
                        power.insert("users_default".into(), json!(-10));
                        self.create_room(
                            &request.creator,
                            CreateRoom {
                                preset: Some(Preset::PublicChat),
                                creation_content,
                                power_level_content_override: Some(power),
                                name: Some(request.name.clone()),
                                ..CreateRoom::default()
                            },
                        )
                        .await?
                    }
                };
                record.new_room_id = Some(id.clone());
                let mut batch = self.store.batch();
                batch.put_deleted_room(room_id.as_str(), record)?;
                self.store.write(batch)?;
                id
            }
        };
        // A kill can cut the new room's creation short after its create event: the
        // room's own fan-out worker then finishes it (power levels, join rules) while
        // this one resumes. Members sent in before that would be refused by a room with
        // no join rules yet (invite-only), so wait for it.
        self.fanout
            .finished(new_room_id.as_str(), FanoutKind::CreateRoom, u64::MAX)
            .await?;
        self.append_event(
            &new_room_id,
            &request.creator,
            EventTemplate::message(
                "m.room.message",
                json!({ "msgtype": "m.text", "body": request.message }),
            ),
            Some(TxnRef {
                device_id: NOTICE_DEVICE.to_owned(),
                txn_id: record.delete_id.clone(),
            }),
        )
        .await?;
        Ok(new_room_id)
    }

    /// A room made by the creator whose create event names the deleted room: one they
    /// are joined to, or one whose creation a kill cut short before they joined it (its
    /// creation intent is still pending), so a resumed deletion never makes a second.
    fn find_replacement_room(
        &self,
        room_id: &RoomId,
        creator: &UserId,
    ) -> Result<Option<OwnedRoomId>> {
        let mut candidates: Vec<OwnedRoomId> = Vec::new();
        for (candidate, membership) in self.store.user_rooms(creator.as_str())? {
            if membership.membership == "join" {
                candidates.push(candidate);
            }
        }
        for subject in self.store.fanout_subjects()?.0 {
            let Ok(candidate) = RoomId::parse(&subject) else {
                continue;
            };
            if self
                .store
                .fanout_intents(&subject)?
                .iter()
                .any(|i| i.kind == FanoutKind::CreateRoom)
            {
                candidates.push(candidate);
            }
        }
        for candidate in candidates {
            let Some(room) = self.store.room(candidate.as_str())? else {
                continue;
            };
            let Some(create) = self.store.event(room.create_event.as_str())? else {
                continue;
            };
            if create.pdu["sender"].as_str() == Some(creator.as_str())
                && create.pdu["content"][REPLACES_KEY].as_str() == Some(room_id.as_str())
            {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }

    /// Every local member (joined or invited) leaves, by their own leave event as
    /// Synapse does; joined members first join the new room, when there is one, so a
    /// member who left was moved. Answers false when shutdown stopped it part-way.
    async fn remove_local_members(
        &self,
        room_id: &RoomId,
        record: &mut DeletedRoomRecord,
        new_room_id: Option<&RoomId>,
    ) -> Result<bool> {
        let members = self.room_members(room_id)?;
        let joined: HashSet<OwnedUserId> = members.joined.iter().cloned().collect();
        let local: Vec<OwnedUserId> = members
            .audience()
            .filter(|u| u.server_name() == self.server_name())
            .map(ToOwned::to_owned)
            .collect();
        for user_id in local {
            if self.stopping() {
                return Ok(false);
            }
            if let Some(new_room_id) = new_room_id
                && joined.contains(&user_id)
                && !self.is_joined(new_room_id, &user_id)?
                && let Err(e) = self
                    .change_membership(
                        new_room_id,
                        &user_id,
                        &user_id,
                        MembershipChange::Join,
                        None,
                    )
                    .await
            {
                tracing::warn!(%room_id, %new_room_id, %user_id, error = %e, "could not move a member to the new room");
            }
            let outcome = self
                .change_membership(room_id, &user_id, &user_id, MembershipChange::Leave, None)
                .await;
            let list = match outcome {
                Ok(_) => &mut record.kicked_users,
                Err(e) => {
                    tracing::warn!(%room_id, %user_id, error = %e, "could not remove member");
                    &mut record.failed_to_kick_users
                }
            };
            if !list.contains(&user_id) {
                list.push(user_id);
            }
            let mut batch = self.store.batch();
            batch.put_deleted_room(room_id.as_str(), record)?;
            self.store.write(batch)?;
        }
        Ok(true)
    }

    /// The room's local aliases are removed, or pointed at the new room; the room leaves
    /// the published directory.
    async fn remove_room_aliases(
        &self,
        room_id: &RoomId,
        record: &mut DeletedRoomRecord,
        new_room_id: Option<&RoomId>,
    ) -> Result<()> {
        let _aliases_guard = self.lock_aliases().await;
        let aliases = self.store.room_aliases(room_id.as_str())?;
        let mut batch = self.store.batch();
        for alias in &aliases {
            if let Some(alias_record) = self.store.alias(alias)? {
                batch.delete_alias(alias, &alias_record);
                if let (Some(new_room_id), Some(request)) = (new_room_id, &record.new_room) {
                    batch.put_alias(
                        alias,
                        &AliasRecord {
                            room_id: new_room_id.to_owned(),
                            creator: request.creator.clone(),
                        },
                    )?;
                }
            }
            if !record.local_aliases.contains(alias) {
                record.local_aliases.push(alias.clone());
            }
        }
        batch.set_published(room_id.as_str(), false)?;
        batch.put_deleted_room(room_id.as_str(), record)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Purges the room's history from the store: every event's content is pruned as a
    /// redaction prunes it (what the auth rules need stays, so the room's graph and state
    /// remain whole for the remote servers still in it), and the events' search postings,
    /// relations and notifications go. Pruning twice changes nothing, so a repeated pass
    /// only finds work where the last one stopped. Answers false when shutdown stopped it.
    async fn purge_room_history(&self, room_id: &RoomId) -> Result<bool> {
        let version = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found("Room not found"))?
            .version;
        let mut after = 0;
        let mut pruned = 0usize;
        loop {
            if self.stopping() {
                return Ok(false);
            }
            let page = self
                .store
                .room_events_after(room_id.as_str(), after, PURGE_CHUNK)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = *last;
            // Under the room's lock, so no event of the room is written meanwhile.
            let _guard = self.rooms.lock(room_id).await;
            let mut batch = self.store.batch();
            for (_, event_id) in &page {
                let Some(mut event) = self.store.event(event_id.as_str())? else {
                    continue;
                };
                let redacted: Value = crate::event::redact(&event.pdu, version)?;
                if redacted == event.pdu {
                    continue;
                }
                self.unstage_relation(&mut batch, event_id.as_str(), &event)?;
                search::unindex_event(&mut batch, room_id.as_str(), event.stream, &event.pdu);
                self.stage_withdraw_notifications(&mut batch, event_id.as_str())?;
                event.pdu = redacted;
                batch.put_event(event_id.as_str(), &event)?;
                pruned += 1;
            }
            self.store.write(batch)?;
        }
        tracing::info!(%room_id, pruned, "room history purged");
        Ok(true)
    }
}
