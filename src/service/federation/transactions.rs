//! Incoming transactions (`PUT /_matrix/federation/v1/send/{txnId}`): each PDU through
//! the receive pipeline, each EDU to the service it is for; and the EDUs this server
//! sends for its own users.

use std::collections::BTreeSet;
use std::sync::Arc;

use ruma::{OwnedEventId, OwnedServerName, RoomId, ServerName};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::event::PublicKeyMap;
use crate::service::Services;
use crate::service::federation::edus;
use crate::service::rooms::{PduError, Received};

/// The spec's limits on one transaction.
pub const MAX_TXN_PDUS: usize = 50;
pub const MAX_TXN_EDUS: usize = 100;

/// A transaction's body, typed at the edge; PDUs stay JSON until their room's version
/// says how to read them.
#[derive(Debug, Deserialize)]
pub struct Transaction {
    pub origin: OwnedServerName,
    #[serde(default)]
    pub pdus: Vec<Value>,
    #[serde(default)]
    pub edus: Vec<Edu>,
}

#[derive(Debug, Deserialize)]
pub struct Edu {
    pub edu_type: String,
    #[serde(default)]
    pub content: Value,
}

impl Services {
    /// Applies a transaction from `origin` once; a repeat of the same transaction ID
    /// gets the first answer.
    pub async fn receive_transaction(
        self: &Arc<Self>,
        origin: &ServerName,
        txn_id: &str,
        txn: Transaction,
    ) -> Result<Value> {
        if txn.origin != origin {
            return Err(Error::bad_json(format!(
                "the transaction's origin {} is not the server that signed it ({origin})",
                txn.origin
            )));
        }
        if txn.pdus.len() > MAX_TXN_PDUS || txn.edus.len() > MAX_TXN_EDUS {
            return Err(Error::bad_json(format!(
                "a transaction carries at most {MAX_TXN_PDUS} PDUs and {MAX_TXN_EDUS} EDUs"
            )));
        }
        if let Some(answer) = self.store.federation_txn(origin.as_str(), txn_id)? {
            return Ok(answer);
        }
        let mut results = Map::new();
        let mut failed_here = false;
        for pdu in txn.pdus {
            if let Some((event_id, result, our_fault)) = self.transaction_pdu(origin, pdu).await {
                failed_here |= our_fault;
                results.insert(event_id.to_string(), result);
            }
        }
        let mut edu_failed_here = false;
        for edu in txn.edus {
            edu_failed_here |= self.receive_edu(origin, edu);
        }
        if edu_failed_here {
            // An EDU has no per-item answer: the whole transaction fails, and the
            // sender sends it again (what was applied is recognised the second time).
            self.store.sync_wal()?;
            return Err(Error::internal(
                "an EDU of the transaction could not be stored",
            ));
        }
        let answer = json!({ "pdus": results });
        // A PDU this server failed to store is not the sender's fault: the answer is not
        // kept, so that the sender's retry of the transaction tries it again.
        // The PDUs were stored without waiting for the disk; this synced write (or the
        // sync) makes them all durable at once before the sender hears they arrived.
        if failed_here {
            self.store.sync_wal()?;
        } else {
            let mut batch = self.store.batch();
            batch.put_federation_txn(origin.as_str(), txn_id, &answer)?;
            self.store.write(batch)?;
        }
        Ok(answer)
    }

    /// One PDU of a transaction: its event ID, the answer for it, and whether it failed
    /// through a fault of this server; `None` for a PDU of a room this server does not
    /// know (whose event ID it cannot even compute).
    async fn transaction_pdu(
        &self,
        origin: &ServerName,
        pdu: Value,
    ) -> Option<(OwnedEventId, Value, bool)> {
        let room_id = pdu
            .get("room_id")
            .and_then(Value::as_str)
            .and_then(|r| RoomId::parse(r).ok())?;
        let room = self.store.room(room_id.as_str()).ok()??;
        let event_id = crate::event::event_id(&pdu, room.version).ok()?;
        if let Err(e) = self.check_server_acl(&room_id, origin) {
            return Some((event_id, json!({ "error": e.message }), false));
        }
        let keys = self.keys_for_pdu(&pdu).await;
        let received = self
            .receive_pushed_pdu(origin, &room_id, room.version, pdu, &keys)
            .await;
        let result = match received {
            // Processed and stored as rejected: `{}`, as Synapse answers (the spec's
            // `error` is for a PDU that could not be processed).
            Ok((_, Received::Rejected(why))) => {
                tracing::info!(%origin, %event_id, reason = %why, "PDU rejected");
                json!({})
            }
            Ok((_, Received::SoftFailed(why))) => {
                tracing::info!(%origin, %event_id, reason = %why, "PDU soft-failed");
                json!({})
            }
            // A soft-failed event was valid where it was made; the sender did nothing wrong.
            Ok(_) => json!({}),
            Err(PduError::Store(e)) => {
                tracing::error!(%event_id, error = %e.message, "cannot store a received PDU");
                return Some((event_id, json!({ "error": "internal error" }), true));
            }
            Err(e) => {
                tracing::info!(%origin, %event_id, error = %e, "PDU not processed");
                json!({ "error": e.to_string() })
            }
        };
        Some((event_id, result, false))
    }

    /// The verify keys of every server that signed `pdu`, as far as they can be had.
    /// The receive pipeline decides whether the ones it needs are among them.
    pub async fn keys_for_pdu(&self, pdu: &Value) -> PublicKeyMap {
        let ts = pdu
            .get("origin_server_ts")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut keys = PublicKeyMap::new();
        let Some(signatures) = pdu.get("signatures").and_then(Value::as_object) else {
            return keys;
        };
        for (server, sigs) in signatures.iter().take(10) {
            let Ok(server) = ServerName::parse(server) else {
                continue;
            };
            let ids: Vec<&str> = sigs
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            match self.server_keys.verify_keys(&server, &ids, ts).await {
                Ok(found) => keys.extend(found),
                Err(e) => tracing::info!(%server, error = %e, "no keys to check a PDU with"),
            }
        }
        keys
    }

    /// Applies one EDU; returns whether it failed through a fault of this server (its
    /// store), in which case the transaction fails, so that the sender's retry delivers
    /// it (a to-device message is not lost that way; its message ID keeps it from being
    /// stored twice).
    fn receive_edu(self: &Arc<Self>, origin: &ServerName, edu: Edu) -> bool {
        let outcome = match edu.edu_type.as_str() {
            "m.typing" => self.typing_edu(origin, &edu.content),
            "m.receipt" => self.receipt_edu(origin, &edu.content),
            "m.presence" => self.presence_edu(origin, &edu.content),
            "m.direct_to_device" => self.direct_to_device_edu(origin, &edu.content),
            "m.device_list_update" => self.device_list_update_edu(origin, &edu.content),
            "m.signing_key_update" => self.signing_key_update_edu(origin, &edu.content),
            other => {
                tracing::debug!(%origin, edu_type = other, "ignoring an EDU this server does not handle");
                Ok(())
            }
        };
        match outcome {
            Ok(()) => false,
            Err(e) if e.kind == crate::error::ErrorKind::Internal => {
                tracing::error!(%origin, edu_type = %edu.edu_type, "cannot apply an EDU");
                true
            }
            Err(e) => {
                tracing::info!(%origin, edu_type = %edu.edu_type, error = %e.message, "EDU refused");
                false
            }
        }
    }

    /// A remote user's typing, only from their own server and only while joined.
    fn typing_edu(self: &Arc<Self>, origin: &ServerName, content: &Value) -> Result<()> {
        let t = edus::typing(origin, content)?;
        self.check_server_acl(&t.room_id, origin)?;
        let timeout = t.typing.then_some(std::time::Duration::from_secs(30));
        self.set_typing(&t.room_id, &t.user_id, timeout)
    }

    /// Remote users' read receipts, in rooms whose ACL lets the origin in.
    fn receipt_edu(&self, origin: &ServerName, content: &Value) -> Result<()> {
        for receipt in edus::receipts(origin, content)? {
            if self.check_server_acl(&receipt.room_id, origin).is_err() {
                continue;
            }
            if let Err(e) = self.set_receipt(
                &receipt.user_id,
                &receipt.room_id,
                "m.read",
                receipt.event_id.as_str(),
                receipt.thread_id.as_deref(),
            ) {
                tracing::debug!(user_id = %receipt.user_id, event_id = %receipt.event_id, error = %e.message, "remote receipt refused");
            }
        }
        Ok(())
    }

    /// Remote users' presence, only from their own server.
    fn presence_edu(&self, origin: &ServerName, content: &Value) -> Result<()> {
        for update in edus::presence(origin, content)? {
            self.set_remote_presence(
                &update.user_id,
                update.state,
                update.status_msg,
                update.last_active_ago,
                update.currently_active,
            );
        }
        Ok(())
    }

    /// The other servers with users joined to the room (and while its state is partial,
    /// those in the room at the join), but those its server ACL denies (they are sent
    /// nothing about the room, as they may ask for nothing).
    pub fn room_destinations(&self, room_id: &RoomId) -> Result<Vec<OwnedServerName>> {
        let members = self.room_members(room_id)?;
        let acl = self.room_acl(room_id)?;
        let partial = self.partial_states.servers(room_id);
        let servers: BTreeSet<&ServerName> = members
            .joined
            .iter()
            .map(|u| u.server_name())
            .chain(partial.iter().map(|s| &**s))
            .filter(|s| *s != self.server_name())
            .filter(|s| acl.as_ref().is_none_or(|acl| acl.allows(s)))
            .collect();
        Ok(servers.into_iter().map(ToOwned::to_owned).collect())
    }

    /// Sends an EDU about a room to the room's other servers.
    pub fn federate_room_edu(&self, room_id: &RoomId, edu_type: &str, content: Value) {
        match self.room_destinations(room_id) {
            Ok(destinations) if !destinations.is_empty() => {
                self.sender.send_edu(
                    &destinations,
                    json!({ "edu_type": edu_type, "content": content }),
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(room = %room_id, error = %e.message, "cannot find the room's servers")
            }
        }
    }
}
