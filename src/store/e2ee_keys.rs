//! End-to-end encryption keys and the device-list stream.
//!
//! - `device_keys`: `user 0xFF device` → the device's signed keys as uploaded (JSON).
//! - `one_time_keys`: `user 0xFF device 0xFF algorithm 0xFF key_id` → the key (JSON).
//! - `fallback_keys`: `user 0xFF device 0xFF algorithm` → [`FallbackKeyRecord`].
//! - `cross_signing_keys`: `user 0xFF usage` (`master`, `self_signing`, `user_signing`)
//!   → the key (JSON), with the signatures others added.
//! - `device_list_stream`: position (u64 BE) → [`DeviceListChange`].
//! - `device_list_users`: `user` → the position of the user's latest change of a device
//!   (u64 BE): the `prev_id` of the next `m.device_list_update` and the `stream_id` of
//!   `/user/devices`.

use ruma::OwnedUserId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Cf, Store, StoreResult, keys};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FallbackKeyRecord {
    pub key_id: String,
    pub key: Value,
    /// Given out by a claim; stays claimable until replaced.
    pub used: bool,
}

/// One entry of the device-list stream: a user whose devices or keys changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceListChange {
    pub user_id: OwnedUserId,
    /// The device that changed, when one did (for the federation EDU).
    #[serde(default)]
    pub device_id: Option<String>,
    /// The device was deleted.
    #[serde(default)]
    pub deleted: bool,
    /// The user's previous position on the stream, 0 for none.
    #[serde(default)]
    pub prev: u64,
    /// Only the user themself is told (their user-signing key changed); such a change
    /// is not a position of theirs that other servers hear of.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own: bool,
}

fn join(parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(keys::SEP);
        }
        key.extend_from_slice(part.as_bytes());
    }
    key
}

fn prefix(parts: &[&str]) -> Vec<u8> {
    let mut key = join(parts);
    key.push(keys::SEP);
    key
}

/// The last 0xFF-separated part of a key, as text.
fn last_part(key: &[u8]) -> String {
    let start = key
        .iter()
        .rposition(|b| *b == keys::SEP)
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&key[start..]).into_owned()
}

impl Store {
    pub fn device_keys(&self, user_id: &str, device_id: &str) -> StoreResult<Option<Value>> {
        self.get_json(Cf::DeviceKeys, &join(&[user_id, device_id]))
    }

    /// `(device_id, keys)` for every device of the user with keys.
    pub fn all_device_keys(&self, user_id: &str) -> StoreResult<Vec<(String, Value)>> {
        Ok(self
            .scan_prefix::<Value>(Cf::DeviceKeys, &prefix(&[user_id]))?
            .into_iter()
            .map(|(key, value)| (last_part(&key), value))
            .collect())
    }

    /// `(algorithm, count)` of the device's unclaimed one-time keys.
    pub fn one_time_key_counts(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> StoreResult<Vec<(String, u64)>> {
        let start = prefix(&[user_id, device_id]);
        self.inner
            .records
            .one_time_key_counts
            .get_or_read(&start, || self.read_one_time_key_counts(&start))
    }

    /// After a written claim took `taken` of the device's one-time keys of `algorithm`,
    /// whose counts were `before` (read after the last change to them): the counts are
    /// known without reading them again. Claims and uploads are serialised, so nothing
    /// else changed them meanwhile.
    pub fn note_one_time_keys_claimed(
        &self,
        user_id: &str,
        device_id: &str,
        mut before: Vec<(String, u64)>,
        algorithm: &str,
        taken: u64,
    ) {
        // Not counted before: the counts were not what the claim found, so they are left
        // to be read again.
        let Some(index) = before.iter().position(|(a, _)| a == algorithm) else {
            return;
        };
        let left = before[index].1.saturating_sub(taken);
        if left == 0 {
            before.remove(index);
        } else {
            before[index].1 = left;
        }
        self.inner
            .records
            .one_time_key_counts
            .set(prefix(&[user_id, device_id]), before);
    }

    fn read_one_time_key_counts(&self, start: &[u8]) -> StoreResult<Vec<(String, u64)>> {
        let mut counts: Vec<(String, u64)> = Vec::new();
        for item in self.raw_iter_within(Cf::OneTimeKeys, start, start) {
            let (key, _) = item?;
            if !key.starts_with(start) {
                break;
            }
            let rest = &key[start.len()..];
            let algorithm = rest.split(|b| *b == keys::SEP).next().unwrap_or_default();
            let algorithm = String::from_utf8_lossy(algorithm);
            match counts.last_mut() {
                Some((last, n)) if *last == algorithm => *n += 1,
                _ => counts.push((algorithm.into_owned(), 1)),
            }
        }
        Ok(counts)
    }

    pub fn has_one_time_key(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
        key_id: &str,
    ) -> StoreResult<Option<Value>> {
        self.get_json(
            Cf::OneTimeKeys,
            &join(&[user_id, device_id, algorithm, key_id]),
        )
    }

    /// The first unclaimed one-time key of the algorithm: `(key_id, key)`.
    pub fn first_one_time_key(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> StoreResult<Option<(String, Value)>> {
        let start = prefix(&[user_id, device_id, algorithm]);
        Ok(self
            .scan_first::<Value>(Cf::OneTimeKeys, &start)?
            .map(|(key, value)| (last_part(&key), value)))
    }

    fn scan_first<T: serde::de::DeserializeOwned>(
        &self,
        cf: Cf,
        start: &[u8],
    ) -> StoreResult<Option<(Vec<u8>, T)>> {
        if let Some(item) = self.raw_iter_within(cf, start, start).next() {
            let (key, value) = item?;
            if key.starts_with(start) {
                let value =
                    serde_json::from_slice(&value).map_err(|e| super::StoreError::Corrupt {
                        cf: cf.name(),
                        detail: e.to_string(),
                    })?;
                return Ok(Some((key.to_vec(), value)));
            }
        }
        Ok(None)
    }

    pub fn fallback_key(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> StoreResult<Option<FallbackKeyRecord>> {
        self.get_json(Cf::FallbackKeys, &join(&[user_id, device_id, algorithm]))
    }

    /// The algorithms of the device's fallback keys that no claim has used, from memory
    /// when recently read: every sync of the device asks.
    pub fn unused_fallback_key_types(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> StoreResult<Vec<String>> {
        let start = prefix(&[user_id, device_id]);
        self.inner
            .records
            .unused_fallback_types
            .get_or_read(&start, || {
                Ok(self
                    .scan_prefix::<FallbackKeyRecord>(Cf::FallbackKeys, &start)?
                    .into_iter()
                    .filter(|(_, record)| !record.used)
                    .map(|(key, _)| last_part(&key))
                    .collect())
            })
    }

    pub fn cross_signing_key(&self, user_id: &str, usage: &str) -> StoreResult<Option<Value>> {
        self.get_json(Cf::CrossSigningKeys, &join(&[user_id, usage]))
    }

    /// Changes after `after` up to `upto`, both positions.
    pub fn device_list_changes(
        &self,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<(u64, DeviceListChange)>> {
        let mut out = Vec::new();
        for item in self.raw_iter_from(Cf::DeviceListStream, &(after + 1).to_be_bytes()) {
            let (key, value) = item?;
            let Ok(position) = <[u8; 8]>::try_from(&key[..]).map(u64::from_be_bytes) else {
                continue;
            };
            if position > upto {
                break;
            }
            let change =
                serde_json::from_slice(&value).map_err(|e| super::StoreError::Corrupt {
                    cf: Cf::DeviceListStream.name(),
                    detail: e.to_string(),
                })?;
            out.push((position, change));
        }
        Ok(out)
    }

    /// The position of the user's latest device-list change, 0 for none.
    pub fn device_list_position(&self, user_id: &str) -> StoreResult<u64> {
        Ok(self
            .get_raw(Cf::DeviceListUsers, user_id.as_bytes())?
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map_or(0, u64::from_be_bytes))
    }
}

impl Batch<'_> {
    pub fn put_device_keys(
        &mut self,
        user_id: &str,
        device_id: &str,
        value: &Value,
    ) -> StoreResult<()> {
        self.put_json(Cf::DeviceKeys, &join(&[user_id, device_id]), value)
    }

    pub fn put_one_time_key(
        &mut self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
        key_id: &str,
        value: &Value,
    ) -> StoreResult<()> {
        self.put_json(
            Cf::OneTimeKeys,
            &join(&[user_id, device_id, algorithm, key_id]),
            value,
        )
    }

    pub fn delete_one_time_key(
        &mut self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
        key_id: &str,
    ) {
        self.delete(
            Cf::OneTimeKeys,
            &join(&[user_id, device_id, algorithm, key_id]),
        );
    }

    pub fn put_fallback_key(
        &mut self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
        record: &FallbackKeyRecord,
    ) -> StoreResult<()> {
        self.put_json(
            Cf::FallbackKeys,
            &join(&[user_id, device_id, algorithm]),
            record,
        )
    }

    pub fn put_cross_signing_key(
        &mut self,
        user_id: &str,
        usage: &str,
        value: &Value,
    ) -> StoreResult<()> {
        self.put_json(Cf::CrossSigningKeys, &join(&[user_id, usage]), value)
    }

    pub fn put_device_list_change(
        &mut self,
        position: u64,
        change: &DeviceListChange,
    ) -> StoreResult<()> {
        self.put_json(Cf::DeviceListStream, &position.to_be_bytes(), change)?;
        // A cross-signing change (no device) goes to other servers as an
        // `m.signing_key_update`, outside the chain of `m.device_list_update` positions.
        if !change.own && change.device_id.is_some() {
            self.put_raw(
                Cf::DeviceListUsers,
                change.user_id.as_bytes(),
                &position.to_be_bytes(),
            );
        }
        Ok(())
    }

    /// Removes a device's keys: its device keys, one-time keys and fallback keys.
    pub fn delete_device_e2ee(&mut self, user_id: &str, device_id: &str) -> StoreResult<()> {
        self.delete(Cf::DeviceKeys, &join(&[user_id, device_id]));
        let start = prefix(&[user_id, device_id]);
        for cf in [Cf::OneTimeKeys, Cf::FallbackKeys, Cf::ToDevice] {
            let mut doomed = Vec::new();
            for item in self.store.raw_iter_within(cf, &start, &start) {
                let (key, _) = item?;
                if !key.starts_with(&start) {
                    break;
                }
                doomed.push(key);
            }
            for key in doomed {
                self.delete(cf, &key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_part_is_after_the_last_separator() {
        assert_eq!(
            last_part(&join(&["@a:x", "DEV", "signed_curve25519", "AAA"])),
            "AAA"
        );
        assert_eq!(last_part(b"plain"), "plain");
    }
}
