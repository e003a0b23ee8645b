//! Receipts. `receipts`: `room_id 0xFF receipt_type 0xFF user_id 0xFF thread` →
//! [`ReceiptRecord`] (thread empty for unthreaded receipts). `receipt_stream`: position
//! (u64 BE) → [`ReceiptChange`]; replacing a receipt moves its single stream entry to the
//! new position, so the stream holds one entry per receipt.

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult, keys};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptRecord {
    pub event_id: OwnedEventId,
    pub ts: u64,
    pub position: u64,
    /// The receipted event's position on the event stream, to refuse moving backwards.
    pub event_stream: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptChange {
    pub room_id: OwnedRoomId,
    pub receipt_type: String,
    pub user_id: OwnedUserId,
    /// Empty for an unthreaded receipt.
    pub thread: String,
}

fn room_prefix(room_id: &str) -> Vec<u8> {
    keys::devices_of(room_id)
}

fn receipt_key(change: &ReceiptChange) -> Vec<u8> {
    let mut key = room_prefix(change.room_id.as_str());
    key.extend_from_slice(change.receipt_type.as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(change.user_id.as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(change.thread.as_bytes());
    key
}

impl Store {
    /// One receipt, from memory when recently read (unread counts read four per room
    /// and sync).
    pub fn receipt(&self, change: &ReceiptChange) -> StoreResult<Option<ReceiptRecord>> {
        let key = receipt_key(change);
        self.inner
            .records
            .receipts
            .get_or_load(&key, || self.get_json(Cf::Receipts, &key))
    }

    /// Every receipt in the room.
    pub fn room_receipts(&self, room_id: &str) -> StoreResult<Vec<(ReceiptChange, ReceiptRecord)>> {
        let prefix = room_prefix(room_id);
        let mut out = Vec::new();
        for (key, record) in self.scan_prefix::<ReceiptRecord>(Cf::Receipts, &prefix)? {
            let mut parts = key[prefix.len()..].split(|b| *b == keys::SEP);
            let (Some(receipt_type), Some(user), Some(thread)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(user_id) = OwnedUserId::try_from(String::from_utf8_lossy(user).into_owned())
            else {
                continue;
            };
            let Ok(room_id) = OwnedRoomId::try_from(room_id) else {
                continue;
            };
            out.push((
                ReceiptChange {
                    room_id,
                    receipt_type: String::from_utf8_lossy(receipt_type).into_owned(),
                    user_id,
                    thread: String::from_utf8_lossy(thread).into_owned(),
                },
                record,
            ));
        }
        Ok(out)
    }

    /// Receipts changed after `after` up to `until` (both positions), oldest first.
    pub fn receipt_changes(
        &self,
        after: u64,
        until: u64,
    ) -> StoreResult<Vec<(u64, ReceiptChange)>> {
        let mut out = Vec::new();
        for item in self.raw_iter_from(Cf::ReceiptStream, &after.saturating_add(1).to_be_bytes()) {
            let (key, value) = item?;
            let Ok(position) = <[u8; 8]>::try_from(&key[..]).map(u64::from_be_bytes) else {
                continue;
            };
            if position > until {
                break;
            }
            let change: ReceiptChange =
                serde_json::from_slice(&value).map_err(|e| super::StoreError::Corrupt {
                    cf: Cf::ReceiptStream.name(),
                    detail: e.to_string(),
                })?;
            out.push((position, change));
        }
        Ok(out)
    }
}

impl Batch<'_> {
    /// Stores the receipt and moves its stream entry from `previous` to its new position.
    pub fn put_receipt(
        &mut self,
        change: &ReceiptChange,
        record: &ReceiptRecord,
        previous: Option<u64>,
    ) -> StoreResult<()> {
        if let Some(previous) = previous {
            self.delete(Cf::ReceiptStream, &previous.to_be_bytes());
        }
        self.put_json(Cf::ReceiptStream, &record.position.to_be_bytes(), change)?;
        self.put_json(Cf::Receipts, &receipt_key(change), record)
    }
}
