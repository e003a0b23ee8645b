//! The media repository: uploads (direct, or into an ID reserved with `/create`), lookups
//! that wait for a reserved ID's content, other servers' media fetched over federation
//! and cached (`remote.rs`), and thumbnails. Bytes go to content-addressed files
//! (`files.rs`), metadata to the `media` column families.
//!
//! Thumbnails of another server's media are made here from its cached content, like
//! those of local media, rather than fetched from the remote: one cache, the same sizes
//! and checks for every image, and no trust in another server's thumbnailer, at the cost
//! of fetching the whole file (within `media.max_upload_bytes`) for its first thumbnail.

pub(crate) mod files;
pub mod multipart;
pub mod remote;
pub mod thumbnail;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use ruma::UserId;
use tokio::sync::{Mutex, Notify, Semaphore};

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::service::federation::FederationClient;
use crate::service::ratelimit::RateLimiter;
use crate::service::{Services, now_ms, random_string};
use crate::store::{ImageKind, MediaContent, MediaRecord, Store, ThumbnailRecord, thumbnail_key};
use files::MediaFiles;
use remote::RemoteMedia;
use thumbnail::{Method, Size};

/// How long a download may wait for a reserved ID's content, whatever the client asks.
const MAX_WAIT_MS: u64 = 60_000;
/// The spec's default for `timeout_ms`.
const DEFAULT_WAIT_MS: u64 = 20_000;
const MAX_FILENAME_BYTES: usize = 1024;
const MAX_CONTENT_TYPE_BYTES: usize = 255;
const MAX_MEDIA_ID_LEN: usize = 255;

pub struct Media {
    files: Arc<MediaFiles>,
    remote: RemoteMedia,
    limiter: RateLimiter,
    /// Woken whenever content arrives, for downloads waiting on a reserved ID.
    uploaded: Notify,
    /// Serialises the check-then-write of reservations and of uploads into them.
    reservations: Mutex<()>,
    /// Decoding is CPU- and memory-heavy: at most two at a time.
    thumbnailers: Semaphore,
}

impl Media {
    pub fn new(
        config: &Config,
        store: Store,
        federation: Arc<FederationClient>,
    ) -> std::io::Result<Self> {
        let files = Arc::new(MediaFiles::open(&config.data, config.sync_writes)?);
        Ok(Self {
            remote: RemoteMedia::new(
                federation,
                store,
                files.clone(),
                config.media.max_upload_bytes,
            ),
            files,
            limiter: RateLimiter::new(config.media.uploads_burst, config.media.uploads_per_minute),
            uploaded: Notify::new(),
            reservations: Mutex::new(()),
            thumbnailers: Semaphore::new(2),
        })
    }
}

/// What the uploader says about the bytes.
#[derive(Debug, Default)]
pub struct UploadMeta {
    pub content_type: Option<String>,
    pub filename: Option<String>,
}

/// Uploaded content and the file that holds it.
#[derive(Debug)]
pub struct StoredMedia {
    pub content: MediaContent,
    pub path: PathBuf,
}

/// A file to send as a thumbnail.
#[derive(Debug)]
pub struct ThumbnailFile {
    pub path: PathBuf,
    pub content_type: String,
    pub size: u64,
    pub kind: ImageKind,
}

#[derive(Debug, Clone, Copy)]
pub struct ThumbnailRequest {
    pub width: u32,
    pub height: u32,
    pub method: Method,
    pub animated: bool,
}

impl ThumbnailRequest {
    /// From the query parameters of a thumbnail request (client or federation).
    pub fn parse(
        width: Option<i64>,
        height: Option<i64>,
        method: Option<&str>,
        animated: Option<bool>,
    ) -> Result<Self> {
        let method = match method {
            None => Method::Scale,
            Some(text) => Method::parse(text)
                .ok_or_else(|| Error::invalid_param("method must be 'crop' or 'scale'"))?,
        };
        Ok(Self {
            width: dimension(width, "width")?,
            height: dimension(height, "height")?,
            method,
            animated: animated.unwrap_or(false),
        })
    }
}

fn dimension(value: Option<i64>, name: &str) -> Result<u32> {
    let value =
        value.ok_or_else(|| Error::missing_param(format!("Missing the {name} parameter")))?;
    if value <= 0 {
        return Err(Error::invalid_param(format!("{name} must be positive")));
    }
    Ok(u32::try_from(value).unwrap_or(u32::MAX))
}

/// How a download may be served: how long to wait for content not yet uploaded, and
/// whether another server's media may be fetched (`allow_remote`).
#[derive(Debug, Clone, Copy)]
pub struct Fetch {
    pub timeout_ms: Option<u64>,
    pub allow_remote: bool,
}

impl Fetch {
    /// This server's media only.
    pub fn local(timeout_ms: Option<u64>) -> Self {
        Self {
            timeout_ms,
            allow_remote: false,
        }
    }
}

/// The spec allows only these characters in media IDs, which also keeps every ID a plain
/// file-name-safe key.
pub fn valid_media_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_MEDIA_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The image types whose claim we check against the bytes.
fn claimed_image(essence: &str) -> bool {
    matches!(
        essence,
        "image/png" | "image/apng" | "image/jpeg" | "image/jpg" | "image/gif" | "image/webp"
    )
}

/// The type to serve. A claimed image type the bytes contradict becomes the type the
/// bytes really are, or `application/octet-stream` when they are no image we know (the
/// spec's "reasonably close": an encrypted file claimed as `image/png`).
fn served_type(claimed: Option<&str>, sniffed: Option<ImageKind>) -> String {
    let Some(claimed) = claimed else {
        return "application/octet-stream".into();
    };
    let essence = essence(claimed);
    if !claimed_image(&essence) {
        return claimed.to_owned();
    }
    match sniffed {
        Some(ImageKind::Png) if essence == "image/apng" => claimed.to_owned(),
        Some(kind) if kind.mime() == essence => claimed.to_owned(),
        Some(kind) => kind.mime().to_owned(),
        None => "application/octet-stream".into(),
    }
}

/// `type/subtype` in lowercase, without parameters.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn check_meta(meta: &UploadMeta) -> Result<()> {
    if let Some(ct) = &meta.content_type {
        // It is sent back as a header, so it must be one.
        let printable = ct.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !printable || ct.len() > MAX_CONTENT_TYPE_BYTES || ct.trim().is_empty() {
            return Err(Error::invalid_param(
                "Content-Type must be printable ASCII of at most 255 bytes",
            ));
        }
    }
    if let Some(name) = &meta.filename
        && (name.len() > MAX_FILENAME_BYTES || name.chars().any(char::is_control))
    {
        return Err(Error::invalid_param(
            "filename must be at most 1024 bytes without control characters",
        ));
    }
    Ok(())
}

fn limited(retry_after_ms: u64, what: &str) -> Error {
    Error::new(
        ErrorKind::LimitExceeded { retry_after_ms },
        format!("Too many {what}; try again later"),
    )
}

impl Services {
    pub fn mxc(&self, media_id: &str) -> String {
        format!("mxc://{}/{media_id}", self.server_name())
    }

    fn check_upload_rate(&self, user: &UserId) -> Result<()> {
        self.media
            .limiter
            .check(user.as_str())
            .map_err(|ms| limited(ms, "uploads"))?;
        self.media.limiter.consume(user.as_str());
        Ok(())
    }

    fn refuse_declared_size(&self, declared: Option<u64>) -> Result<()> {
        let limit = self.config.media.max_upload_bytes;
        if declared.is_some_and(|len| len > limit) {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("Cannot upload files larger than {limit} bytes"),
            ));
        }
        Ok(())
    }

    /// Receives the bytes and moves them into place; the caller writes the record.
    async fn receive_content<S, B, E>(
        &self,
        meta: UploadMeta,
        body: S,
    ) -> Result<(MediaContent, files::TempFile)>
    where
        S: Stream<Item = std::result::Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let received = self
            .media
            .files
            .receive(
                body,
                self.config.media.max_upload_bytes,
                Some(Duration::from_secs(self.config.limits.upload_idle_secs)),
            )
            .await?;
        let image = ImageKind::sniff(&received.head);
        let content = MediaContent {
            content_type: served_type(meta.content_type.as_deref().map(str::trim), image),
            size: received.size,
            filename: meta.filename,
            sha256: received.sha256,
            image,
            uploaded_ts: now_ms(),
        };
        Ok((content, received.file))
    }

    async fn place_content(&self, content: &MediaContent, file: files::TempFile) -> Result<()> {
        let dest = self.media.files.content_path(&content.sha256);
        self.media.files.place(file, &dest).await
    }

    /// The media files on disk, for deletion.
    pub(crate) fn media_files(&self) -> &files::MediaFiles {
        &self.media.files
    }

    /// `POST /_matrix/media/v3/upload`: returns the new media ID.
    pub async fn upload_media<S, B, E>(
        &self,
        user: &UserId,
        meta: UploadMeta,
        declared: Option<u64>,
        body: S,
    ) -> Result<String>
    where
        S: Stream<Item = std::result::Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        check_meta(&meta)?;
        self.refuse_declared_size(declared)?;
        self.check_upload_rate(user)?;
        let (content, file) = self.receive_content(meta, body).await?;
        let _placing = self.media.files.lock_placing().await;
        self.place_content(&content, file).await?;
        // 24 random alphanumerics: a collision is not a practical concern.
        let media_id = random_string(24);
        let record = MediaRecord {
            uploader: user.to_string(),
            created_ts: content.uploaded_ts,
            unused_expires_at: None,
            content: Some(content),
        };
        self.store.put_media(&media_id, &record)?;
        Ok(media_id)
    }

    /// `POST /_matrix/media/v1/create`: reserves an ID; returns it and when it lapses.
    pub async fn create_media(&self, user: &UserId) -> Result<(String, u64)> {
        self.check_upload_rate(user)?;
        let _guard = self.media.reservations.lock().await;
        let now = now_ms();
        let (live, lapsed): (Vec<_>, Vec<_>) = self
            .store
            .pending_media_of(user.as_str())?
            .into_iter()
            .partition(|(_, expires)| *expires > now);
        let max = self.config.media.max_pending_uploads as usize;
        if live.len() >= max {
            let soonest = live.iter().map(|(_, e)| *e).min().unwrap_or(now);
            return Err(Error::new(
                ErrorKind::LimitExceeded {
                    retry_after_ms: soonest.saturating_sub(now).max(1),
                },
                format!(
                    "You already have {max} media IDs waiting for their content; upload to them first"
                ),
            ));
        }
        let expires_at = now.saturating_add(
            self.config
                .media
                .pending_upload_expiry_secs
                .saturating_mul(1000),
        );
        let media_id = random_string(24);
        let record = MediaRecord {
            uploader: user.to_string(),
            created_ts: now,
            unused_expires_at: Some(expires_at),
            content: None,
        };
        let lapsed: Vec<String> = lapsed.into_iter().map(|(id, _)| id).collect();
        self.store
            .reserve_media(&media_id, &record, expires_at, &lapsed)?;
        Ok((media_id, expires_at))
    }

    /// Why `user` may not upload into `media_id` now, if anything stands in the way.
    fn check_reserved(&self, user: &UserId, media_id: &str) -> Result<MediaRecord> {
        let unknown =
            || Error::not_found("Unknown media ID; create one with /_matrix/media/v1/create");
        let record = self.store.media(media_id)?.ok_or_else(unknown)?;
        if record.uploader != user.as_str() {
            return Err(Error::forbidden(
                "This media ID was created by another user",
            ));
        }
        if record.content.is_some() {
            return Err(Error::new(
                ErrorKind::CannotOverwriteMedia,
                "Media already uploaded",
            ));
        }
        if record.unused_expires_at.is_none_or(|t| t <= now_ms()) {
            return Err(Error::not_found("This media ID has expired"));
        }
        Ok(record)
    }

    /// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`.
    pub async fn upload_reserved_media<S, B, E>(
        &self,
        user: &UserId,
        server_name: &str,
        media_id: &str,
        meta: UploadMeta,
        declared: Option<u64>,
        body: S,
    ) -> Result<()>
    where
        S: Stream<Item = std::result::Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        if server_name != self.server_name().as_str() || !valid_media_id(media_id) {
            return Err(Error::not_found(
                "Unknown media ID; create one with /_matrix/media/v1/create",
            ));
        }
        check_meta(&meta)?;
        // Refuse before reading the body when the answer is already known.
        self.check_reserved(user, media_id)?;
        self.refuse_declared_size(declared)?;
        let (content, file) = self.receive_content(meta, body).await?;
        let _guard = self.media.reservations.lock().await;
        // A concurrent upload into the same ID may have won while this one streamed.
        let mut record = self.check_reserved(user, media_id)?;
        let _placing = self.media.files.lock_placing().await;
        self.place_content(&content, file).await?;
        record.unused_expires_at = None;
        record.content = Some(content);
        self.store.put_media(media_id, &record)?;
        self.media.uploaded.notify_waiters();
        Ok(())
    }

    /// The content behind an `mxc://` URI. This server's: for an ID reserved with
    /// `/create` whose content has not arrived, waits up to `timeout_ms` for it. Another
    /// server's (when `allow_remote`): from the cache, or fetched over federation.
    pub async fn media_content(
        &self,
        server_name: &str,
        media_id: &str,
        fetch: Fetch,
    ) -> Result<StoredMedia> {
        let Ok(server) = ruma::ServerName::parse(server_name) else {
            return Err(Error::invalid_param("Invalid server name"));
        };
        if !valid_media_id(media_id) {
            return Err(Error::invalid_param(
                "Media IDs consist of A-Z, a-z, 0-9, '_' and '-'",
            ));
        }
        // Quarantined media is never served, whoever asks and over whichever API.
        if self.store.quarantined(server.as_str(), media_id)?.is_some() {
            return Err(Error::not_found("This media has been quarantined"));
        }
        let wait =
            Duration::from_millis(fetch.timeout_ms.unwrap_or(DEFAULT_WAIT_MS).min(MAX_WAIT_MS));
        if server != self.server_name() {
            let remote = &self.media.remote;
            // As Synapse: `allow_remote=false` forbids asking the remote, not the cache.
            let content = if fetch.allow_remote {
                // The fetch goes on for other waiters; this request ends with the server.
                let shutdown = self.shutdown_started();
                tokio::select! {
                    fetched = remote.content(&server, media_id, wait) => fetched?,
                    () = shutdown => return Err(Error::new(
                        ErrorKind::GatewayTimeout,
                        "The server is shutting down",
                    )),
                }
            } else {
                remote.cached(&server, media_id).await?.ok_or_else(|| {
                    Error::not_found(
                        "Media of another server, not cached here, and allow_remote is false",
                    )
                })?
            };
            let path = self.media.files.content_path(&content.sha256);
            return Ok(StoredMedia { content, path });
        }
        let deadline = tokio::time::Instant::now() + wait;
        let shutdown = self.shutdown_started();
        tokio::pin!(shutdown);
        loop {
            // Registered before the read, so an upload finishing in between still wakes us.
            let notified = self.media.uploaded.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = self
                .store
                .media(media_id)?
                .ok_or_else(|| Error::not_found("Unknown media ID"))?;
            if let Some(content) = record.content {
                let path = self.media.files.content_path(&content.sha256);
                return Ok(StoredMedia { content, path });
            }
            if record.unused_expires_at.is_none_or(|t| t <= now_ms()) {
                return Err(Error::not_found("Unknown media ID"));
            }
            let not_yet = || {
                Error::new(
                    ErrorKind::NotYetUploaded,
                    "Content has not yet been uploaded",
                )
            };
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => return Err(not_yet()),
                () = &mut shutdown => return Err(not_yet()),
            }
        }
    }

    /// A thumbnail of local image content: a cached one, a new one, or, when the image is
    /// no larger than asked for (and not animated unless animation is welcome), the
    /// original, as the spec asks.
    pub async fn media_thumbnail(
        &self,
        server_name: &str,
        media_id: &str,
        request: ThumbnailRequest,
        fetch: Fetch,
    ) -> Result<ThumbnailFile> {
        let stored = self.media_content(server_name, media_id, fetch).await?;
        let Some(kind) = stored.content.image else {
            return Err(Error::new(
                ErrorKind::Unknown,
                "Cannot generate thumbnails for the requested content: it is not a JPEG, PNG, GIF or WebP image",
            ));
        };
        let source = stored.path.clone();
        let probe = blocking(move || thumbnail::probe(&source, kind)).await?;
        let original_ok = !probe.animated || request.animated;
        let fits_request = probe.width <= request.width && probe.height <= request.height;
        let size = thumbnail::choose(request.width, request.height, request.method);
        let unchanged =
            size.is_none_or(|s| thumbnail::plan(probe.width, probe.height, s).is_none());
        if original_ok && (fits_request || unchanged) {
            return Ok(ThumbnailFile {
                path: stored.path,
                content_type: kind.mime().to_owned(),
                size: stored.content.size,
                kind,
            });
        }
        // What is left is a still image: shrunk to a listed size, or, for an animation
        // that must not move, its first frame at full size.
        let target = if fits_request || unchanged {
            None
        } else {
            size
        };
        self.cached_thumbnail(&stored.content.sha256, &stored.path, kind, target)
            .await
    }

    async fn cached_thumbnail(
        &self,
        sha256: &str,
        source: &std::path::Path,
        kind: ImageKind,
        target: Option<Size>,
    ) -> Result<ThumbnailFile> {
        let (method, width, height) = match target {
            Some(s) => (s.method.as_str(), s.width, s.height),
            None => ("still", 0, 0),
        };
        let key = thumbnail_key(sha256, method, width, height);
        let path = self
            .media
            .files
            .thumbnail_path(sha256, method, width, height);
        let found = |record: ThumbnailRecord| ThumbnailFile {
            path: path.clone(),
            kind: if record.content_type == "image/jpeg" {
                ImageKind::Jpeg
            } else {
                ImageKind::Png
            },
            content_type: record.content_type,
            size: record.size,
        };
        if let Some(record) = self.store.thumbnail(&key)? {
            return Ok(found(record));
        }
        let _permit = self
            .media
            .thumbnailers
            .acquire()
            .await
            .map_err(Error::internal)?;
        // Another request may have made it while this one waited.
        if let Some(record) = self.store.thumbnail(&key)? {
            return Ok(found(record));
        }
        let temp = self.media.files.temp();
        let (source, dest, sync) = (
            source.to_path_buf(),
            temp.path().to_path_buf(),
            self.media.files.sync_enabled(),
        );
        let rendered = blocking(move || {
            let rendered = thumbnail::render(&source, kind, target, &dest)?;
            if sync {
                std::fs::File::open(&dest)
                    .and_then(|f| f.sync_all())
                    .map_err(Error::internal)?;
            }
            let size = std::fs::metadata(&dest).map_err(Error::internal)?.len();
            Ok((rendered, size))
        })
        .await;
        let (rendered, size) = rendered?;
        let _placing = self.media.files.lock_placing().await;
        // Its content may have been deleted while it was drawn.
        if !tokio::fs::try_exists(self.media.files.content_path(sha256))
            .await
            .unwrap_or(false)
        {
            return Err(Error::not_found("The media was deleted"));
        }
        self.media.files.place(temp, &path).await?;
        let record = ThumbnailRecord {
            content_type: rendered.kind.mime().to_owned(),
            width: rendered.width,
            height: rendered.height,
            size,
        };
        self.store.put_thumbnail(&key, &record)?;
        Ok(found(record))
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_allow_only_the_spec_characters() {
        assert!(valid_media_id("AbC09_-"));
        assert!(!valid_media_id(""));
        assert!(!valid_media_id("../etc"));
        assert!(!valid_media_id("a.b"));
        assert!(!valid_media_id("a%2Fb"));
        assert!(!valid_media_id(&"a".repeat(256)));
    }

    #[test]
    fn a_claimed_image_type_must_match_the_bytes() {
        let png = Some(ImageKind::Png);
        assert_eq!(served_type(Some("image/png"), png), "image/png");
        assert_eq!(served_type(Some("image/apng"), png), "image/apng");
        assert_eq!(served_type(Some("image/jpeg"), png), "image/png");
        assert_eq!(
            served_type(Some("image/png"), None),
            "application/octet-stream"
        );
        // Other claims are kept; serving decisions never rest on them alone.
        assert_eq!(served_type(Some("text/html"), png), "text/html");
        assert_eq!(served_type(None, png), "application/octet-stream");
    }
}
