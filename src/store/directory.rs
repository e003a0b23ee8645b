//! Room aliases and the published room directory.

use ruma::{OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult, keys};

/// Where a local alias points, and who made it (who may delete it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasRecord {
    pub room_id: OwnedRoomId,
    pub creator: OwnedUserId,
}

/// `room_id 0xFF`: the separator keeps `!a:x` from matching the aliases of `!a:xy`.
fn room_prefix(room_id: &str) -> Vec<u8> {
    let mut key = room_id.as_bytes().to_vec();
    key.push(keys::SEP);
    key
}

/// `room_id 0xFF alias`
fn room_alias_key(room_id: &str, alias: &str) -> Vec<u8> {
    let mut key = room_prefix(room_id);
    key.extend_from_slice(alias.as_bytes());
    key
}

impl Store {
    pub fn alias(&self, alias: &str) -> StoreResult<Option<AliasRecord>> {
        self.get_json(Cf::Aliases, alias.as_bytes())
    }

    /// The local aliases pointing to the room, in byte order.
    pub fn room_aliases(&self, room_id: &str) -> StoreResult<Vec<String>> {
        let prefix = room_prefix(room_id);
        Ok(self
            .scan_prefix::<()>(Cf::RoomAliases, &prefix)?
            .into_iter()
            .map(|(key, ())| String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
            .collect())
    }

    pub fn is_published(&self, room_id: &str) -> StoreResult<bool> {
        Ok(self
            .get_raw(Cf::PublishedRooms, room_id.as_bytes())?
            .is_some())
    }

    /// Every room in the published directory, whether or not it still exists.
    pub fn published_rooms(&self) -> StoreResult<Vec<OwnedRoomId>> {
        Ok(self
            .scan_prefix::<()>(Cf::PublishedRooms, b"")?
            .into_iter()
            .filter_map(|(key, ())| OwnedRoomId::try_from(String::from_utf8(key).ok()?).ok())
            .collect())
    }
}

impl Batch<'_> {
    pub fn put_alias(&mut self, alias: &str, record: &AliasRecord) -> StoreResult<()> {
        self.put_json(Cf::Aliases, alias.as_bytes(), record)?;
        self.put_json(
            Cf::RoomAliases,
            &room_alias_key(record.room_id.as_str(), alias),
            &(),
        )
    }

    pub fn delete_alias(&mut self, alias: &str, record: &AliasRecord) {
        self.delete(Cf::Aliases, alias.as_bytes());
        self.delete(
            Cf::RoomAliases,
            &room_alias_key(record.room_id.as_str(), alias),
        );
    }

    pub fn set_published(&mut self, room_id: &str, published: bool) -> StoreResult<()> {
        if published {
            self.put_json(Cf::PublishedRooms, room_id.as_bytes(), &())
        } else {
            self.delete(Cf::PublishedRooms, room_id.as_bytes());
            Ok(())
        }
    }
}
