//! The membership stream: every change of a user's membership in a room, keyed by the
//! event-stream position it happened at. It lets a sync ask "whose memberships changed
//! in this window" (for `device_lists`) without decoding every event of the window.
//!
//! Keys are `stream (u64 BE) || user_id`; values `{"room_id", "membership"}`. Entries are
//! written with the user's room record ([`Batch::put_user_room`]), so the two never
//! disagree.

use std::sync::atomic::Ordering;

use ruma::{OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreError, StoreResult, UserRoomRecord, keys};

/// Set in `meta` once the stream has been filled from the user-room records of a data
/// directory written before it existed.
const FILLED_KEY: &[u8] = b"membership_stream_filled";

#[derive(Serialize, Deserialize)]
struct Entry {
    room_id: OwnedRoomId,
    membership: String,
}

/// One membership change on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    pub stream: u64,
    pub room_id: OwnedRoomId,
    pub user_id: OwnedUserId,
    pub membership: String,
}

fn key(stream: u64, user_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + user_id.len());
    key.extend_from_slice(&stream.to_be_bytes());
    key.extend_from_slice(user_id.as_bytes());
    key
}

impl Store {
    /// The membership changes at positions in `(after, upto]`, in stream order.
    pub fn membership_changes(&self, after: u64, upto: u64) -> StoreResult<Vec<MembershipChange>> {
        let mut out = Vec::new();
        // Nothing was written after `after`: most syncs end here, without a read.
        if after >= upto || after >= self.inner.membership_stream_last.load(Ordering::Acquire) {
            return Ok(out);
        }
        for item in self.raw_iter_from(Cf::MembershipStream, &(after + 1).to_be_bytes()) {
            let (key, value) = item?;
            let corrupt = |detail: &str| StoreError::Corrupt {
                cf: Cf::MembershipStream.name(),
                detail: detail.to_owned(),
            };
            let (position, user) = key
                .split_at_checked(8)
                .ok_or_else(|| corrupt("short key"))?;
            let position = u64::from_be_bytes(position.try_into().expect("8 bytes"));
            if position > upto {
                break;
            }
            let user_id = std::str::from_utf8(user)
                .ok()
                .and_then(|u| OwnedUserId::try_from(u).ok())
                .ok_or_else(|| corrupt("key does not end in a user ID"))?;
            let entry: Entry =
                serde_json::from_slice(&value).map_err(|e| corrupt(&e.to_string()))?;
            out.push(MembershipChange {
                stream: position,
                room_id: entry.room_id,
                user_id,
                membership: entry.membership,
            });
        }
        Ok(out)
    }

    /// Notes where the stream ends, when the store opens.
    pub(super) fn note_membership_stream_end(&self) -> StoreResult<()> {
        let last = match self.raw_iter_from_end(Cf::MembershipStream).next() {
            Some(item) => {
                let (key, _) = item?;
                key.get(..8)
                    .and_then(|k| <[u8; 8]>::try_from(k).ok())
                    .map_or(0, u64::from_be_bytes)
            }
            None => 0,
        };
        self.membership_stream_written(last);
        Ok(())
    }

    /// Called once a batch is written, with the highest position it put on the stream,
    /// before the event stream position that makes those changes visible moves on.
    pub(super) fn membership_stream_written(&self, position: u64) {
        if position > 0 {
            self.inner
                .membership_stream_last
                .fetch_max(position, Ordering::AcqRel);
        }
    }

    /// Fills the membership stream, once, for a data directory written before it
    /// existed: each user's latest membership in each room, at the position it was
    /// recorded. Earlier changes are not recovered, so a sync token from before the
    /// upgrade may miss a device-list change that a later sync or `/keys/query` shows.
    pub(crate) fn fill_membership_stream(&self) -> StoreResult<()> {
        if self.get_raw(Cf::Meta, FILLED_KEY)?.is_some() {
            return Ok(());
        }
        let mut batch = self.batch();
        for item in self.raw_iter_from(Cf::UserRooms, &[]) {
            let (key, value) = item?;
            let Some(split) = key.iter().position(|b| *b == keys::SEP) else {
                continue;
            };
            let (Ok(user_id), Ok(room_id)) = (
                std::str::from_utf8(&key[..split]),
                std::str::from_utf8(&key[split + 1..]),
            ) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<UserRoomRecord>(&value) else {
                continue;
            };
            batch.put_membership_change(user_id, room_id, &record)?;
        }
        batch.put_raw(Cf::Meta, FILLED_KEY, b"1");
        self.write(batch)
    }
}

impl Batch<'_> {
    /// Records a membership on the stream at the record's position.
    pub(super) fn put_membership_change(
        &mut self,
        user_id: &str,
        room_id: &str,
        record: &UserRoomRecord,
    ) -> StoreResult<()> {
        let Ok(room_id) = OwnedRoomId::try_from(room_id) else {
            return Ok(());
        };
        self.notes.membership_stream_max = self.notes.membership_stream_max.max(record.stream);
        self.put_json(
            Cf::MembershipStream,
            &key(record.stream, user_id),
            &Entry {
                room_id,
                membership: record.membership.clone(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(membership: &str, stream: u64) -> UserRoomRecord {
        UserRoomRecord {
            membership: membership.to_owned(),
            event_id: ruma::OwnedEventId::try_from(format!("$e{stream}")).unwrap(),
            stream,
            forgotten: false,
            invite_state: None,
            joined_since: None,
        }
    }

    #[test]
    fn room_records_appear_on_the_stream_in_their_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut batch = store.batch();
        batch
            .put_user_room("@a:x", "!r:x", &record("join", 5))
            .unwrap();
        batch
            .put_user_room("@b:x", "!r:x", &record("invite", 7))
            .unwrap();
        batch
            .put_user_room("@a:x", "!s:x", &record("leave", 9))
            .unwrap();
        store.write(batch).unwrap();

        let window: Vec<_> = store
            .membership_changes(5, 9)
            .unwrap()
            .into_iter()
            .map(|c| {
                (
                    c.stream,
                    c.user_id.to_string(),
                    c.room_id.to_string(),
                    c.membership,
                )
            })
            .collect();
        assert_eq!(
            window,
            vec![
                (7, "@b:x".into(), "!r:x".into(), "invite".into()),
                (9, "@a:x".into(), "!s:x".into(), "leave".into()),
            ]
        );
        assert_eq!(store.membership_changes(0, 4).unwrap(), vec![]);
        assert_eq!(store.membership_changes(9, 9).unwrap(), vec![]);
    }

    #[test]
    fn the_streams_end_is_known_again_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), false).unwrap();
            let mut batch = store.batch();
            batch
                .put_user_room("@a:x", "!r:x", &record("join", 5))
                .unwrap();
            store.write(batch).unwrap();
        }
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(store.membership_changes(4, 10).unwrap().len(), 1);
        assert_eq!(store.membership_changes(5, 10).unwrap(), vec![]);
        // A later write moves the end on, unsynced writes too.
        let mut batch = store.batch();
        batch
            .put_user_room("@b:x", "!r:x", &record("join", 8))
            .unwrap();
        store.write_unsynced(batch).unwrap();
        assert_eq!(store.membership_changes(5, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_users_shared_room_list_follows_written_room_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        assert!(store.user_rooms_shared("@a:x").unwrap().is_empty());
        let mut batch = store.batch();
        batch
            .put_user_room("@a:x", "!r:x", &record("join", 5))
            .unwrap();
        store.write(batch).unwrap();
        let rooms = store.user_rooms_shared("@a:x").unwrap();
        assert_eq!(rooms.len(), 1);
        assert!(std::sync::Arc::ptr_eq(
            &rooms,
            &store.user_rooms_shared("@a:x").unwrap()
        ));
        let mut batch = store.batch();
        batch
            .put_user_room("@a:x", "!r:x", &record("leave", 6))
            .unwrap();
        batch
            .put_user_room("@a:x", "!s:x", &record("join", 6))
            .unwrap();
        store.write_unsynced(batch).unwrap();
        let rooms = store.user_rooms_shared("@a:x").unwrap();
        let memberships: Vec<_> = rooms.iter().map(|(_, r)| r.membership.as_str()).collect();
        assert_eq!(memberships, ["leave", "join"]);
    }

    #[test]
    fn an_older_data_directory_gets_its_latest_memberships_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), false).unwrap();
            let mut batch = store.batch();
            batch
                .put_user_room("@a:x", "!r:x", &record("join", 3))
                .unwrap();
            store.write(batch).unwrap();
            // As written before the stream existed: the room record only.
            let mut batch = store.batch();
            batch.delete(Cf::MembershipStream, &key(3, "@a:x"));
            batch.delete(Cf::Meta, FILLED_KEY);
            store.write(batch).unwrap();
            assert_eq!(store.membership_changes(0, 10).unwrap(), vec![]);
        }
        let store = Store::open(dir.path(), false).unwrap();
        let changes = store.membership_changes(0, 10).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].stream, 3);
        assert_eq!(changes[0].membership, "join");
        assert!(store.get_raw(Cf::Meta, FILLED_KEY).unwrap().is_some());
    }
}
