//! Federation records: the outgoing queue per destination (PDUs, and the EDUs that must
//! not be lost, such as to-device messages), and the answers to incoming transactions
//! (so that a retried transaction is answered, not applied, again).
//!
//! - `federation_outbox`: `destination 0xFF seq (u64 BE)` → [`OutboxRecord`].
//! - `federation_edu_outbox`: `destination 0xFF seq (u64 BE)` → the EDU (JSON).
//! - `federation_txns`: `origin 0xFF txn_id` → the answer given.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Cf, Store, StoreResult, keys};

/// One PDU waiting to go to one destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub event_id: ruma::OwnedEventId,
}

fn outbox_key(destination: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(destination.len() + 9);
    key.extend_from_slice(destination.as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn txn_key(origin: &str, txn_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(origin.len() + txn_id.len() + 1);
    key.extend_from_slice(origin.as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(txn_id.as_bytes());
    key
}

impl Store {
    /// The oldest PDUs queued for `destination`, with their queue positions.
    pub fn outbox(&self, destination: &str, limit: usize) -> StoreResult<Vec<(u64, OutboxRecord)>> {
        self.queued(Cf::FederationOutbox, destination, limit)
    }

    /// The oldest durable EDUs queued for `destination`, with their queue positions.
    pub fn edu_outbox(&self, destination: &str, limit: usize) -> StoreResult<Vec<(u64, Value)>> {
        self.queued(Cf::FederationEduOutbox, destination, limit)
    }

    fn queued<T: serde::de::DeserializeOwned>(
        &self,
        cf: Cf,
        destination: &str,
        limit: usize,
    ) -> StoreResult<Vec<(u64, T)>> {
        let mut prefix = destination.as_bytes().to_vec();
        prefix.push(keys::SEP);
        let mut out = Vec::new();
        for item in self.raw_iter_within(cf, &prefix, &prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let Ok(seq) = <[u8; 8]>::try_from(&key[prefix.len()..]).map(u64::from_be_bytes) else {
                continue;
            };
            out.push((seq, serde_json::from_slice(&value)?));
        }
        Ok(out)
    }

    /// The queue positions of `destination`'s PDUs beyond the newest `keep`, oldest first.
    pub fn outbox_excess(&self, destination: &str, keep: usize) -> StoreResult<Vec<u64>> {
        self.queue_excess(Cf::FederationOutbox, destination, keep)
    }

    /// The queue positions of `destination`'s durable EDUs beyond the newest `keep`.
    pub fn edu_outbox_excess(&self, destination: &str, keep: usize) -> StoreResult<Vec<u64>> {
        self.queue_excess(Cf::FederationEduOutbox, destination, keep)
    }

    fn queue_excess(&self, cf: Cf, destination: &str, keep: usize) -> StoreResult<Vec<u64>> {
        let mut prefix = destination.as_bytes().to_vec();
        prefix.push(keys::SEP);
        let mut last = prefix.clone();
        last.extend_from_slice(&[0xFF; 8]);
        let mut seen = 0;
        let mut excess = Vec::new();
        for item in self.raw_iter_rev_from(cf, &last) {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            seen += 1;
            if seen <= keep {
                continue;
            }
            if let Ok(seq) = <[u8; 8]>::try_from(&key[prefix.len()..]).map(u64::from_be_bytes) {
                excess.push(seq);
            }
        }
        excess.reverse();
        Ok(excess)
    }

    /// Every destination with queued PDUs or durable EDUs, and the highest queue
    /// position in use.
    pub fn outbox_destinations(&self) -> StoreResult<(Vec<String>, u64)> {
        let mut destinations: Vec<String> = Vec::new();
        let mut highest = 0;
        for cf in [Cf::FederationOutbox, Cf::FederationEduOutbox] {
            for item in self.raw_iter_from(cf, &[]) {
                let (key, _) = item?;
                // The position is the last 8 bytes (they may hold 0xFF themselves).
                if key.len() < 9 || key[key.len() - 9] != keys::SEP {
                    continue;
                }
                let split = key.len() - 9;
                let destination = String::from_utf8_lossy(&key[..split]).into_owned();
                if let Ok(seq) = <[u8; 8]>::try_from(&key[split + 1..]).map(u64::from_be_bytes) {
                    highest = highest.max(seq);
                }
                if destinations.last() != Some(&destination) {
                    destinations.push(destination);
                }
            }
        }
        destinations.sort();
        destinations.dedup();
        Ok((destinations, highest))
    }

    /// The answer given to an incoming transaction, if it was processed.
    pub fn federation_txn(&self, origin: &str, txn_id: &str) -> StoreResult<Option<Value>> {
        self.get_json(Cf::FederationTxns, &txn_key(origin, txn_id))
    }
}

impl Batch<'_> {
    pub fn queue_pdu(
        &mut self,
        destination: &str,
        seq: u64,
        record: &OutboxRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::FederationOutbox, &outbox_key(destination, seq), record)
    }

    pub fn unqueue_pdu(&mut self, destination: &str, seq: u64) {
        self.delete(Cf::FederationOutbox, &outbox_key(destination, seq));
    }

    pub fn queue_edu(&mut self, destination: &str, seq: u64, edu: &Value) -> StoreResult<()> {
        self.put_json(Cf::FederationEduOutbox, &outbox_key(destination, seq), edu)
    }

    pub fn unqueue_edu(&mut self, destination: &str, seq: u64) {
        self.delete(Cf::FederationEduOutbox, &outbox_key(destination, seq));
    }

    pub fn put_federation_txn(
        &mut self,
        origin: &str,
        txn_id: &str,
        answer: &Value,
    ) -> StoreResult<()> {
        self.put_json(Cf::FederationTxns, &txn_key(origin, txn_id), answer)
    }
}
