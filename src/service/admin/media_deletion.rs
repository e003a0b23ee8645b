//! Deleting this server's media: one piece by ID, a user's uploads, or everything
//! uploaded before a time (and larger than a size). The records go first, in one batch
//! with the audit entry; then the files whose content no remaining record (this server's
//! media, or the cache of other servers' media) points at, with their thumbnails. Files are
//! named by their SHA-256, so two uploads of the same bytes share one file: deleting one
//! of them leaves the file to the other. A crash between the two steps leaves files no
//! record points at (disk space, never a record without its file).

use std::collections::HashSet;

use ruma::UserId;

use crate::error::{Error, Result};
use crate::service::Services;
use crate::store::MediaRecord;

/// What `DELETE /users/{userId}/media` deletes at most by default, as Synapse.
pub const DEFAULT_USER_MEDIA_LIMIT: usize = 100;

/// Which of this server's media `POST /media/delete` deletes.
#[derive(Debug, Clone, Copy)]
pub struct OldMedia {
    /// Uploaded (or reserved) before this time, in ms.
    pub before_ts: u64,
    /// Larger than this many bytes.
    pub size_gt: u64,
    /// Leave media used as a user's or a room's avatar.
    pub keep_profiles: bool,
}

impl Services {
    /// Deletes one piece of this server's media; answers the IDs deleted.
    pub async fn admin_delete_media(
        &self,
        admin: &UserId,
        server_name: &str,
        media_id: &str,
    ) -> Result<Vec<String>> {
        if server_name != self.server_name().as_str() {
            return Err(Error::invalid_param(
                "Only this server's media can be deleted",
            ));
        }
        let record = crate::service::media::valid_media_id(media_id)
            .then(|| self.store.media(media_id))
            .transpose()?
            .flatten()
            .ok_or_else(|| Error::not_found("Unknown media"))?;
        let target = format!("mxc://{server_name}/{media_id}");
        self.delete_local_media(
            admin,
            vec![(media_id.to_owned(), record)],
            "media.delete",
            &target,
        )
        .await
    }

    /// Deletes up to `limit` of a local user's uploads, oldest first after skipping
    /// `from`; answers the IDs deleted.
    pub async fn admin_delete_user_media(
        &self,
        admin: &UserId,
        user_id: &UserId,
        from: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.check_local(user_id)?;
        let mut media: Vec<(String, MediaRecord)> = self
            .store
            .all_media()?
            .into_iter()
            .filter(|(_, record)| record.uploader == user_id.as_str())
            .collect();
        media.sort_by(|a, b| (a.1.created_ts, &a.0).cmp(&(b.1.created_ts, &b.0)));
        let page: Vec<_> = media.into_iter().skip(from).take(limit).collect();
        self.delete_local_media(admin, page, "media.delete_user", user_id.as_str())
            .await
    }

    /// Deletes this server's media uploaded before a time and larger than a size;
    /// answers the IDs deleted.
    pub async fn admin_delete_old_media(
        &self,
        admin: &UserId,
        which: OldMedia,
    ) -> Result<Vec<String>> {
        let kept = if which.keep_profiles {
            self.avatar_media()?
        } else {
            HashSet::new()
        };
        let media: Vec<(String, MediaRecord)> = self
            .store
            .all_media()?
            .into_iter()
            .filter(|(id, record)| {
                let size = record.content.as_ref().map_or(0, |c| c.size);
                record.created_ts < which.before_ts && size > which.size_gt && !kept.contains(id)
            })
            .collect();
        let target = format!("before_ts={} size_gt={}", which.before_ts, which.size_gt);
        self.delete_local_media(admin, media, "media.delete_old", &target)
            .await
    }

    /// The IDs of this server's media that some local user or some room has as its
    /// avatar.
    fn avatar_media(&self) -> Result<HashSet<String>> {
        let prefix = format!("mxc://{}/", self.server_name());
        let mut ids = HashSet::new();
        let mut note = |url: Option<&str>| {
            if let Some(id) = url.and_then(|u| u.strip_prefix(&prefix)) {
                ids.insert(id.to_owned());
            }
        };
        for (user_id, _) in self.store.all_users()? {
            let avatar = self.store.profile_field(user_id.as_str(), "avatar_url")?;
            note(avatar.as_ref().and_then(|v| v.as_str()));
        }
        for room_id in self.store.all_room_ids()? {
            let Some(event_id) =
                self.store
                    .current_state_id(room_id.as_str(), "m.room.avatar", "")?
            else {
                continue;
            };
            if let Some(event) = self.store.event(event_id.as_str())? {
                note(event.pdu["content"]["url"].as_str());
            }
        }
        Ok(ids)
    }

    async fn delete_local_media(
        &self,
        admin: &UserId,
        media: Vec<(String, MediaRecord)>,
        action: &str,
        target: &str,
    ) -> Result<Vec<String>> {
        let files = self.media_files();
        // No upload may place a file and write its record while this decides which
        // files nothing points at any more.
        let _placing = files.lock_placing().await;
        let mut batch = self.store.batch();
        let mut hashes = HashSet::new();
        for (id, record) in &media {
            batch.delete_media(id, record);
            if let Some(content) = &record.content {
                hashes.insert(content.sha256.clone());
            }
        }
        self.stage_audit(
            &mut batch,
            admin,
            action,
            target,
            Some(format!("{} media", media.len())),
        )?;
        self.store.write(batch)?;
        self.remove_unreferenced_files(hashes).await?;
        Ok(media.into_iter().map(|(id, _)| id).collect())
    }
}

impl Services {
    /// Deletes the cached copies of other servers' media fetched before `before_ts`
    /// (ms), with the files nothing else points at; answers how many went. Synapse
    /// compares with the last access; Hearth keeps no accesses and uses the fetch time.
    pub async fn admin_purge_remote_media(&self, admin: &UserId, before_ts: u64) -> Result<usize> {
        let files = self.media_files();
        let _placing = files.lock_placing().await;
        let old: Vec<(String, String, String)> = self
            .store
            .remote_media_entries()?
            .into_iter()
            .filter(|(_, _, content)| content.uploaded_ts < before_ts)
            .map(|(server, id, content)| (server, id, content.sha256))
            .collect();
        let mut batch = self.store.batch();
        let mut hashes = HashSet::new();
        for (server, id, sha256) in &old {
            batch.delete_remote_media(server, id);
            hashes.insert(sha256.clone());
        }
        self.stage_audit(
            &mut batch,
            admin,
            "media.purge_remote",
            format!("before_ts={before_ts}"),
            Some(format!("{} media", old.len())),
        )?;
        self.store.write(batch)?;
        self.remove_unreferenced_files(hashes).await?;
        Ok(old.len())
    }

    /// Removes the files (and their thumbnails) of these contents that no record, of
    /// this server's media or of the cache, points at any more. The caller holds the
    /// placing lock, so no upload points a new record at one meanwhile.
    async fn remove_unreferenced_files(&self, mut hashes: HashSet<String>) -> Result<()> {
        let files = self.media_files();
        for (_, record) in self.store.all_media()? {
            if let Some(content) = record.content {
                hashes.remove(&content.sha256);
            }
        }
        for content in self.store.all_remote_media()? {
            hashes.remove(&content.sha256);
        }
        for sha256 in &hashes {
            let thumbnails = self.store.thumbnails_of(sha256)?;
            let mut batch = self.store.batch();
            for (key, _) in &thumbnails {
                batch.delete_thumbnail(key);
            }
            self.store.write(batch)?;
            for (_, (method, width, height)) in thumbnails {
                remove_file(&files.thumbnail_path(sha256, &method, width, height)).await?;
            }
            remove_file(&files.content_path(sha256)).await?;
        }
        Ok(())
    }
}

/// Removes a file; one already gone is no error.
async fn remove_file(path: &std::path::Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::internal(e)),
    }
}
