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

use std::sync::Arc;

use ruma::OwnedUserId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Cf, Store, StoreResult, keys};

/// The IDs of a device's one-time keys kept in memory per algorithm: enough for several
/// claims between two walks of its keys.
const FIRST_KEY_IDS: usize = 16;

/// A device's unclaimed one-time keys, from one walk of them.
#[derive(Debug, Clone, Default)]
pub(super) struct OneTimeKeySummary {
    /// `(algorithm, count)`, in key order.
    counts: Vec<(String, u64)>,
    /// For each algorithm of `counts`, the IDs of its first keys in key order, at most
    /// [`FIRST_KEY_IDS`].
    first_ids: Vec<Vec<String>>,
}

/// The one-time key a claim takes, and the device's keys as they were before it.
pub struct FirstOneTimeKey {
    pub key_id: String,
    pub key: Value,
    /// Its algorithm's index in `before`.
    index: usize,
    /// The keys known before, when the key was found by an ID among them.
    before: Option<Arc<OneTimeKeySummary>>,
}

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

    /// `(device_id, keys)` for every device of the user with keys, from memory when read
    /// since their last change.
    pub fn all_device_keys(&self, user_id: &str) -> StoreResult<Arc<Vec<(String, Value)>>> {
        let start = prefix(&[user_id]);
        self.inner.records.device_keys.get_or_read(&start, || {
            Ok(Arc::new(
                self.scan_prefix::<Value>(Cf::DeviceKeys, &start)?
                    .into_iter()
                    .map(|(key, value)| (last_part(&key), value))
                    .collect(),
            ))
        })
    }

    /// `(algorithm, count)` of the device's unclaimed one-time keys, as a list (the
    /// server reads them in place, [`Self::with_one_time_key_counts`]).
    #[cfg(test)]
    pub fn one_time_key_counts(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> StoreResult<Vec<(String, u64)>> {
        self.with_one_time_key_counts(user_id, device_id, <[_]>::to_vec)
    }

    /// `f` of the device's `(algorithm, count)` of unclaimed one-time keys, read in place
    /// from memory (every sync of the device asks them): no copy of the list.
    pub fn with_one_time_key_counts<R>(
        &self,
        user_id: &str,
        device_id: &str,
        f: impl FnOnce(&[(String, u64)]) -> R,
    ) -> StoreResult<R> {
        Ok(f(&self.one_time_key_summary(user_id, device_id)?.counts))
    }

    /// The device's one-time keys as one walk of them found them, from memory when read
    /// since their last change: every sync of the device asks their counts, and every
    /// claim takes a key.
    fn one_time_key_summary(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> StoreResult<Arc<OneTimeKeySummary>> {
        let start = prefix(&[user_id, device_id]);
        self.inner.records.one_time_keys.get_or_read(&start, || {
            self.read_one_time_key_summary(&start).map(Arc::new)
        })
    }

    fn read_one_time_key_summary(&self, start: &[u8]) -> StoreResult<OneTimeKeySummary> {
        let mut summary = OneTimeKeySummary::default();
        for item in self.raw_iter_within(Cf::OneTimeKeys, start, start) {
            let (key, _) = item?;
            if !key.starts_with(start) {
                break;
            }
            let mut rest = key[start.len()..].splitn(2, |b| *b == keys::SEP);
            let algorithm = String::from_utf8_lossy(rest.next().unwrap_or_default());
            let key_id = rest.next().unwrap_or_default();
            if summary
                .counts
                .last()
                .is_none_or(|(last, _)| *last != algorithm)
            {
                summary.counts.push((algorithm.into_owned(), 0));
                summary.first_ids.push(Vec::new());
            }
            if let (Some((_, n)), Some(ids)) =
                (summary.counts.last_mut(), summary.first_ids.last_mut())
            {
                *n += 1;
                if ids.len() < FIRST_KEY_IDS {
                    ids.push(String::from_utf8_lossy(key_id).into_owned());
                }
            }
        }
        Ok(summary)
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

    /// The first unclaimed one-time key of the algorithm, for a claim to delete: read by
    /// its ID when the device's keys are known in memory, so that a claim walks no keys.
    pub fn first_one_time_key(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> StoreResult<Option<FirstOneTimeKey>> {
        let before = self.one_time_key_summary(user_id, device_id)?;
        let Some(index) = before.counts.iter().position(|(a, _)| a == algorithm) else {
            return Ok(None);
        };
        if let Some(key_id) = before.first_ids[index].first()
            && let Some(key) = self.has_one_time_key(user_id, device_id, algorithm, key_id)?
        {
            return Ok(Some(FirstOneTimeKey {
                key_id: key_id.clone(),
                key,
                index,
                before: Some(before),
            }));
        }
        // Every ID known is taken (more keys than were kept): the first after them, and
        // the keys walked again after the claim.
        let start = prefix(&[user_id, device_id, algorithm]);
        Ok(self
            .scan_first::<Value>(Cf::OneTimeKeys, &start)?
            .map(|(key, value)| FirstOneTimeKey {
                key_id: last_part(&key),
                key: value,
                index,
                before: None,
            }))
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

    /// After a written claim deleted `taken`: the device's keys are known without reading
    /// them again. Claims and uploads are serialised, so nothing else changed them
    /// meanwhile.
    pub fn note_one_time_key_claimed(
        &self,
        user_id: &str,
        device_id: &str,
        taken: FirstOneTimeKey,
    ) {
        let Some(before) = taken.before else {
            return;
        };
        let mut after = Arc::unwrap_or_clone(before);
        let index = taken.index;
        after.first_ids[index].retain(|id| *id != taken.key_id);
        let left = after.counts[index].1.saturating_sub(1);
        if left == 0 {
            after.counts.remove(index);
            after.first_ids.remove(index);
        } else if after.first_ids[index].is_empty() {
            // The IDs kept are all taken: the next claim reads the keys again.
            return;
        } else {
            after.counts[index].1 = left;
        }
        self.inner
            .records
            .one_time_keys
            .set(prefix(&[user_id, device_id]), Arc::new(after));
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
    use rocksdb::perf::{PerfContext, PerfMetric, PerfStatsLevel, set_perf_stats};
    use serde_json::json;

    use super::*;

    /// Claims take a device's one-time keys in key order, each by its ID kept in memory
    /// since one walk of the keys (no memtable seek), with the counts following; once the
    /// IDs kept are all taken, the next claim walks the keys again. A write of the
    /// device's keys drops what was known.
    #[test]
    fn claims_take_one_time_keys_by_their_known_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let alg = "signed_curve25519";
        let id = |i: usize| format!("k{i:03}");
        let total = FIRST_KEY_IDS + 2;
        let mut batch = store.batch();
        for i in 0..total {
            batch
                .put_one_time_key("@a:x", "D", alg, &id(i), &json!(i))
                .unwrap();
        }
        batch
            .put_one_time_key("@a:x", "D", "other", "o1", &json!("o"))
            .unwrap();
        store.write(batch).unwrap();
        let claim = |store: &Store| -> Option<(String, Value)> {
            let first = store.first_one_time_key("@a:x", "D", alg).unwrap()?;
            let mut batch = store.batch();
            batch.delete_one_time_key("@a:x", "D", alg, &first.key_id);
            store.write(batch).unwrap();
            let taken = (first.key_id.clone(), first.key.clone());
            store.note_one_time_key_claimed("@a:x", "D", first);
            Some(taken)
        };
        let counts = |left: usize| vec![("other".to_owned(), 1), (alg.to_owned(), left as u64)];

        assert_eq!(claim(&store), Some((id(0), json!(0))));
        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut context = PerfContext::default();
        context.reset();
        for i in 1..FIRST_KEY_IDS - 1 {
            assert_eq!(claim(&store), Some((id(i), json!(i))));
        }
        assert_eq!(
            store.one_time_key_counts("@a:x", "D").unwrap(),
            counts(total - FIRST_KEY_IDS + 1)
        );
        assert_eq!(context.metric(PerfMetric::SeekOnMemtableCount), 0);
        // The last ID kept; then the keys are walked again for the next.
        assert_eq!(claim(&store).unwrap().0, id(FIRST_KEY_IDS - 1));
        assert_eq!(context.metric(PerfMetric::SeekOnMemtableCount), 0);
        assert_eq!(claim(&store).unwrap().0, id(FIRST_KEY_IDS));
        assert!(context.metric(PerfMetric::SeekOnMemtableCount) > 0);
        set_perf_stats(PerfStatsLevel::Disable);
        assert_eq!(store.one_time_key_counts("@a:x", "D").unwrap(), counts(1));

        // An upload of a key before the one left: the next claim takes it.
        let mut batch = store.batch();
        batch
            .put_one_time_key("@a:x", "D", alg, "a000", &json!("new"))
            .unwrap();
        store.write(batch).unwrap();
        assert_eq!(claim(&store), Some(("a000".to_owned(), json!("new"))));
        assert_eq!(claim(&store).unwrap().0, id(total - 1));
        assert_eq!(claim(&store), None);
        assert_eq!(
            store.one_time_key_counts("@a:x", "D").unwrap(),
            [("other".to_owned(), 1)]
        );
    }

    #[test]
    fn last_part_is_after_the_last_separator() {
        assert_eq!(
            last_part(&join(&["@a:x", "DEV", "signed_curve25519", "AAA"])),
            "AAA"
        );
        assert_eq!(last_part(b"plain"), "plain");
    }
}
