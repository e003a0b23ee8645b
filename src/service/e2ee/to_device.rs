//! To-device messages: sent by a client (or arriving from another server), kept per
//! device until the device's sync acknowledges them, and sent on to other servers as
//! `m.direct_to_device` EDUs.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use ruma::{DeviceId, OwnedUserId, ServerName, UserId};
use serde_json::{Map, Value, json};

use super::lock;
use crate::error::Result;
use crate::service::Services;
use crate::store::{Applied, ToDeviceRecord, to_device_client_txn, to_device_edu_txn};

/// The most messages kept for one device: past it, the oldest are dropped. A device
/// away that long has lost its sessions' context anyway, and the bound keeps a sender
/// from filling the disk.
pub const MAX_PENDING_PER_DEVICE: usize = 10_000;

/// The most messages one sync response carries; the rest come with the next.
pub const MAX_PER_SYNC: usize = 100;

/// Acknowledged messages waiting for their deletion that an acknowledgement writes
/// itself rather than leaving them for the next send.
const DELETE_ACKNOWLEDGED_AT: usize = 256;

/// A to-device write applied, to be made durable before its devices are woken.
struct Delivery {
    applied: Applied,
    /// Whether this was the transaction's first delivery (a repeat wakes nobody).
    first: bool,
    woken: HashSet<OwnedUserId>,
}

/// `{user: {device or "*": content}}`.
pub type Messages = BTreeMap<OwnedUserId, BTreeMap<String, Map<String, Value>>>;

impl Services {
    /// `PUT /sendToDevice/{type}/{txnId}` from a local device. A repeated transaction
    /// ID of the same device is accepted and ignored.
    pub async fn send_to_device(
        &self,
        sender: &UserId,
        sender_device: &DeviceId,
        event_type: &str,
        txn_id: &str,
        messages: Messages,
    ) -> Result<()> {
        let txn = to_device_client_txn(sender.as_str(), sender_device.as_str(), txn_id);
        let mut local = Messages::new();
        let mut remote: BTreeMap<ruma::OwnedServerName, Messages> = BTreeMap::new();
        for (user, devices) in messages {
            if user.server_name() == self.server_name() {
                local.insert(user, devices);
            } else {
                remote
                    .entry(user.server_name().to_owned())
                    .or_default()
                    .insert(user, devices);
            }
        }
        // Messages for other servers are queued durably in the same write that accepts
        // the transaction: once the client has its 200 they go out, even across a
        // restart, and a repeated transaction ID queues nothing twice.
        let remote: Vec<(ruma::OwnedServerName, Value)> = remote
            .into_iter()
            .map(|(destination, messages)| {
                let edu = json!({
                    "edu_type": "m.direct_to_device",
                    "content": {
                        "sender": sender,
                        "type": event_type,
                        "message_id": crate::service::random_string(16),
                        "messages": messages,
                    },
                });
                (destination, edu)
            })
            .collect();
        let delivery = self.apply_to_device(sender, event_type, local, &remote, &txn)?;
        let first = delivery.first;
        self.store.durable(delivery.applied).await?;
        if first {
            self.to_device_delivered(&delivery.woken, &remote);
        }
        Ok(())
    }

    /// An `m.direct_to_device` EDU: messages from a user of `origin` for local devices.
    pub fn direct_to_device_edu(&self, origin: &ServerName, content: &Value) -> Result<()> {
        let edu = crate::service::federation::edus::direct_to_device(
            origin,
            self.server_name(),
            content,
        )?;
        let txn = to_device_edu_txn(origin.as_str(), &edu.message_id);
        let delivery =
            self.apply_to_device(&edu.sender, &edu.event_type, edu.messages, &[], &txn)?;
        let first = delivery.first;
        self.store.make_durable(delivery.applied)?;
        if first {
            self.to_device_delivered(&delivery.woken, &[]);
        }
        Ok(())
    }

    /// Stores messages for local devices, and queues the EDUs for other servers, under
    /// the transaction key, once. The caller makes the write durable, then calls
    /// [`Self::to_device_delivered`] with what this returns.
    fn apply_to_device(
        &self,
        sender: &UserId,
        event_type: &str,
        messages: Messages,
        remote: &[(ruma::OwnedServerName, Value)],
        txn: &[u8],
    ) -> Result<Delivery> {
        let mut woken: HashSet<OwnedUserId> = HashSet::new();
        let applied = {
            let mut writers = lock(&self.e2ee.to_device);
            if self.store.to_device_txn_seen(txn)? {
                // The first send may still be waiting for its fsync: this answer waits
                // too, and wakes nobody (the first one did).
                let applied = self.store.applied_so_far();
                drop(writers);
                return Ok(Delivery {
                    applied,
                    first: false,
                    woken: HashSet::new(),
                });
            }
            let mut next = self.e2ee.to_device_position();
            let mut batch = self.store.batch();
            // Each target device's pending positions after this write, kept in memory
            // once it is applied (the lock serialises every writer of them).
            let mut pending_after: HashMap<(OwnedUserId, String), Vec<u64>> = HashMap::new();
            for (user, devices) in messages {
                let user_str = user.as_str();
                let known: Vec<String> = self
                    .store
                    .devices_shared(user_str)?
                    .iter()
                    .map(|d| d.device_id.to_string())
                    .collect();
                for (device, content) in devices {
                    let targets: Vec<&String> = if device == "*" {
                        known.iter().collect()
                    } else {
                        known.iter().filter(|d| **d == device).collect()
                    };
                    for target in targets {
                        next += 1;
                        batch.put_to_device(
                            user_str,
                            target,
                            next,
                            &ToDeviceRecord {
                                sender: sender.to_owned(),
                                event_type: event_type.to_owned(),
                                content: Value::Object(content.clone()),
                            },
                        )?;
                        let pending = match pending_after.entry((user.clone(), target.clone())) {
                            Entry::Occupied(entry) => entry.into_mut(),
                            Entry::Vacant(entry) => {
                                entry.insert(self.store.to_device_positions(user_str, target)?)
                            }
                        };
                        if pending.len() >= MAX_PENDING_PER_DEVICE {
                            let excess = pending.len() + 1 - MAX_PENDING_PER_DEVICE;
                            tracing::warn!(user = %user, device = %target, dropped = excess,
                                "too many to-device messages waiting; dropping the oldest");
                            for old in pending.drain(..excess) {
                                batch.delete_to_device(user_str, target, old);
                            }
                        }
                        pending.push(next);
                        woken.insert(user.clone());
                    }
                }
            }
            for (destination, edu) in remote {
                self.sender
                    .stage_edu(&mut batch, std::slice::from_ref(destination), edu)?;
            }
            batch.put_to_device_txn(txn);
            batch.set_to_device_position(next);
            // The acknowledged messages waiting for a write go with this one.
            batch.delete_acknowledged(&mut writers);
            // Applied under the lock, so positions are handed out in order and a reader
            // never sees a position whose message is not there; made durable after it,
            // so that sends arriving together share one fsync. The devices are woken
            // once it is durable.
            let applied = self.store.write_visible(batch)?;
            for ((user, device), positions) in pending_after {
                self.store
                    .set_to_device_positions(user.as_str(), &device, positions);
            }
            self.e2ee.to_device_moved(next);
            applied
        };
        Ok(Delivery {
            applied,
            first: true,
            woken,
        })
    }

    /// Once the write of [`Self::apply_to_device`] is durable: wakes the devices' syncs
    /// and the senders to the other servers.
    fn to_device_delivered(
        &self,
        woken: &HashSet<OwnedUserId>,
        remote: &[(ruma::OwnedServerName, Value)],
    ) {
        self.notifier
            .wake_for_to_device(woken.iter().map(|u| u.as_ref()));
        let destinations: Vec<ruma::OwnedServerName> =
            remote.iter().map(|(d, _)| d.clone()).collect();
        self.sender.wake(&destinations);
    }

    /// The device's messages after `after` up to `upto`: the events, and the position
    /// the client has seen once it has them (`upto`, or the last one when more wait).
    pub fn to_device_for_sync(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        after: u64,
        upto: u64,
    ) -> Result<(Vec<Value>, u64)> {
        if after >= upto {
            return Ok((Vec::new(), upto.max(after)));
        }
        let records = self.store.to_device_messages(
            user_id.as_str(),
            device_id.as_str(),
            after,
            upto,
            MAX_PER_SYNC,
        )?;
        let reached = if records.len() >= MAX_PER_SYNC {
            records.last().map_or(upto, |(p, _)| *p)
        } else {
            upto
        };
        let events = records
            .into_iter()
            .map(|(_, r)| json!({"sender": r.sender, "type": r.event_type, "content": r.content}))
            .collect();
        Ok((events, reached))
    }

    /// The client has the device's messages up to `upto`: they are deleted (the deletion
    /// written later, see [`crate::store::AcknowledgedMessages`]).
    pub fn acknowledge_to_device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        upto: u64,
    ) -> Result<()> {
        let (user, device) = (user_id.as_str(), device_id.as_str());
        // A token from the future (no server hands one out) acknowledges only what exists.
        let upto = upto.min(self.e2ee.to_device_position());
        // Most syncs acknowledge what the one before them did: nothing to read.
        if upto <= self.store.to_device_floor(user, device) {
            return Ok(());
        }
        // Under the lock every writer of the device's messages takes, so that the
        // positions it keeps in memory are the stored ones less those queued for deletion.
        let mut acknowledged = lock(&self.e2ee.to_device);
        let mut pending = self.store.to_device_positions(user, device)?;
        let done = pending.partition_point(|p| *p <= upto);
        if done > 0 {
            acknowledged.add(user, device, pending.drain(..done));
            self.store.set_to_device_positions(user, device, pending);
            // Deleted with the next to-device send (`apply_to_device`), or here once
            // enough wait. Not synced either way: a deletion lost only leaves messages
            // behind the device's position (see `AcknowledgedMessages`).
            if acknowledged.len() >= DELETE_ACKNOWLEDGED_AT {
                self.store.write_acknowledged(&mut acknowledged)?;
            }
        }
        self.store.note_to_device_floor(user, device, upto);
        Ok(())
    }

    /// Writes the deletions of acknowledged messages still waiting (at shutdown).
    pub fn write_acknowledged_to_device(&self) -> Result<()> {
        Ok(self
            .store
            .write_acknowledged(&mut lock(&self.e2ee.to_device))?)
    }
}
