//! Media metadata. The bytes live in files under `<data>/media/`, named by their SHA-256;
//! these records say which media ID points at which file, and who holds a reserved ID.
//!
//! - `media`: media ID → [`MediaRecord`]
//! - `media_pending`: `user_id 0xFF media_id` → expiry (ms) of a reservation without content
//! - `media_thumbnails`: `sha256 0xFF method 0xFF WIDTHxHEIGHT` → [`ThumbnailRecord`]
//! - `media_remote`: `server_name 0xFF media_id` → [`MediaContent`] of another server's
//!   media fetched over federation (the cache). Kept apart from `media`, so this server
//!   never passes cached remote media off as its own.
//! - `quarantined_media`: `server_name 0xFF media_id` → [`QuarantineRecord`]

use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult, keys};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub uploader: String,
    pub created_ts: u64,
    /// For an ID reserved with `/create` and still without content: when it lapses.
    pub unused_expires_at: Option<u64>,
    pub content: Option<MediaContent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaContent {
    /// The type served: the uploader's claim, unless the bytes contradict a claimed image type.
    pub content_type: String,
    pub size: u64,
    pub filename: Option<String>,
    /// Lowercase hex; also the file's name.
    pub sha256: String,
    /// The raster format the bytes really are (sniffed), if one we can thumbnail.
    pub image: Option<ImageKind>,
    pub uploaded_ts: u64,
}

/// The image formats thumbnails are made from, as recognised from the bytes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbnailRecord {
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub size: u64,
}

/// A thumbnail's method, width and height, as in its key.
pub type ThumbnailSize = (String, u32, u32);

pub fn thumbnail_key(sha256: &str, method: &str, width: u32, height: u32) -> Vec<u8> {
    let mut key = keys::device(sha256, method);
    key.push(keys::SEP);
    key.extend_from_slice(format!("{width}x{height}").as_bytes());
    key
}

impl Store {
    pub fn media(&self, media_id: &str) -> StoreResult<Option<MediaRecord>> {
        self.get_json(Cf::Media, media_id.as_bytes())
    }

    /// A user's reservations without content: (media ID, expiry in ms).
    pub fn pending_media_of(&self, user_id: &str) -> StoreResult<Vec<(String, u64)>> {
        let prefix = keys::devices_of(user_id);
        Ok(self
            .scan_prefix::<u64>(Cf::MediaPending, &prefix)?
            .into_iter()
            .map(|(key, expires)| {
                let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                (id, expires)
            })
            .collect())
    }

    /// Writes a new reservation and drops the user's lapsed ones, in one batch.
    pub fn reserve_media(
        &self,
        media_id: &str,
        record: &MediaRecord,
        expires_at: u64,
        lapsed: &[String],
    ) -> StoreResult<()> {
        let mut batch = self.batch();
        for id in lapsed {
            batch.delete(Cf::Media, id.as_bytes());
            batch.delete(Cf::MediaPending, &keys::device(&record.uploader, id));
        }
        batch.put_json(Cf::Media, media_id.as_bytes(), record)?;
        batch.put_json(
            Cf::MediaPending,
            &keys::device(&record.uploader, media_id),
            &expires_at,
        )?;
        self.write(batch)
    }

    /// Stores media with its content; a reservation for the ID, if any, ends in the same batch.
    pub fn put_media(&self, media_id: &str, record: &MediaRecord) -> StoreResult<()> {
        let mut batch = self.batch();
        batch.put_json(Cf::Media, media_id.as_bytes(), record)?;
        batch.delete(Cf::MediaPending, &keys::device(&record.uploader, media_id));
        self.write(batch)
    }

    /// Another server's media, if fetched before.
    pub fn remote_media(&self, server: &str, media_id: &str) -> StoreResult<Option<MediaContent>> {
        self.get_json(Cf::MediaRemote, &keys::device(server, media_id))
    }

    pub fn put_remote_media(
        &self,
        server: &str,
        media_id: &str,
        content: &MediaContent,
    ) -> StoreResult<()> {
        let mut batch = self.batch();
        batch.put_json(Cf::MediaRemote, &keys::device(server, media_id), content)?;
        self.write(batch)
    }

    pub fn thumbnail(&self, key: &[u8]) -> StoreResult<Option<ThumbnailRecord>> {
        self.get_json(Cf::MediaThumbnails, key)
    }

    pub fn put_thumbnail(&self, key: &[u8], record: &ThumbnailRecord) -> StoreResult<()> {
        let mut batch = self.batch();
        batch.put_json(Cf::MediaThumbnails, key, record)?;
        self.write(batch)
    }

    /// The content of every piece of other servers' media in the cache.
    pub fn all_remote_media(&self) -> StoreResult<Vec<MediaContent>> {
        Ok(self
            .scan_prefix::<MediaContent>(Cf::MediaRemote, b"")?
            .into_iter()
            .map(|(_, content)| content)
            .collect())
    }

    /// Every piece of other servers' media in the cache, with its server and media ID.
    pub fn remote_media_entries(&self) -> StoreResult<Vec<(String, String, MediaContent)>> {
        Ok(self
            .scan_prefix::<MediaContent>(Cf::MediaRemote, b"")?
            .into_iter()
            .filter_map(|(key, content)| {
                let split = key.iter().position(|b| *b == keys::SEP)?;
                let server = String::from_utf8(key[..split].to_vec()).ok()?;
                let media_id = String::from_utf8(key[split + 1..].to_vec()).ok()?;
                Some((server, media_id, content))
            })
            .collect())
    }

    /// The thumbnails made of a content: their keys, with method, width and height.
    pub fn thumbnails_of(&self, sha256: &str) -> StoreResult<Vec<(Vec<u8>, ThumbnailSize)>> {
        let mut prefix = sha256.as_bytes().to_vec();
        prefix.push(keys::SEP);
        let mut out = Vec::new();
        for (key, _) in self.scan_prefix::<ThumbnailRecord>(Cf::MediaThumbnails, &prefix)? {
            let rest = &key[prefix.len()..];
            let parsed = rest.iter().position(|b| *b == keys::SEP).and_then(|at| {
                let method = std::str::from_utf8(&rest[..at]).ok()?;
                let (w, h) = std::str::from_utf8(&rest[at + 1..]).ok()?.split_once('x')?;
                Some((method.to_owned(), w.parse().ok()?, h.parse().ok()?))
            });
            if let Some(parsed) = parsed {
                out.push((key, parsed));
            }
        }
        Ok(out)
    }
}

impl Batch<'_> {
    /// Deletes a piece of this server's media (and its reservation, if it had no content).
    pub fn delete_media(&mut self, media_id: &str, record: &MediaRecord) {
        self.delete(Cf::Media, media_id.as_bytes());
        self.delete(Cf::MediaPending, &keys::device(&record.uploader, media_id));
    }

    /// Forgets a cached piece of another server's media.
    pub fn delete_remote_media(&mut self, server: &str, media_id: &str) {
        self.delete(Cf::MediaRemote, &keys::device(server, media_id));
    }

    pub fn delete_thumbnail(&mut self, key: &[u8]) {
        self.delete(Cf::MediaThumbnails, key);
    }
}

/// Media an admin quarantined: never served again, by this server's or another's ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub quarantined_by: String,
    pub ts: u64,
}

fn quarantine_key(server_name: &str, media_id: &str) -> Vec<u8> {
    let mut key = server_name.as_bytes().to_vec();
    key.push(keys::SEP);
    key.extend_from_slice(media_id.as_bytes());
    key
}

impl Store {
    /// Every local media ID with its record.
    pub fn all_media(&self) -> StoreResult<Vec<(String, MediaRecord)>> {
        Ok(self
            .scan_prefix::<MediaRecord>(Cf::Media, b"")?
            .into_iter()
            .filter_map(|(key, record)| Some((String::from_utf8(key).ok()?, record)))
            .collect())
    }

    pub fn quarantined(
        &self,
        server_name: &str,
        media_id: &str,
    ) -> StoreResult<Option<QuarantineRecord>> {
        self.get_json(Cf::QuarantinedMedia, &quarantine_key(server_name, media_id))
    }
}

impl Batch<'_> {
    pub fn set_quarantined(
        &mut self,
        server_name: &str,
        media_id: &str,
        record: Option<&QuarantineRecord>,
    ) -> StoreResult<()> {
        let key = quarantine_key(server_name, media_id);
        match record {
            Some(record) => self.put_json(Cf::QuarantinedMedia, &key, record),
            None => {
                self.delete(Cf::QuarantinedMedia, &key);
                Ok(())
            }
        }
    }
}
