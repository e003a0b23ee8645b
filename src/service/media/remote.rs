//! Other servers' media, fetched over federation and cached.
//!
//! A fetch asks the media's server for `GET /_matrix/federation/v1/media/download/{id}`
//! (signed), and reads its `multipart/mixed` answer: a JSON part, then the content or a
//! `Location` to fetch it from. A server that answers that endpoint with 404
//! `M_UNRECOGNIZED` is asked for the deprecated `/_matrix/media/v3/download/...` with
//! `allow_remote=false`, as the spec asks. Redirects (a `Location` part or a 3xx answer)
//! are followed, at most [`MAX_REDIRECTS`] times, only to HTTPS, through the same
//! `ip_range_denylist` guard as every federation request; a redirect URL is never kept.
//!
//! The bytes stream into a content-addressed file like an upload's, counted as they
//! arrive: past `media.max_upload_bytes` the fetch is refused, whatever the headers
//! said. The result is kept in `media_remote`, keyed by (server, media ID), so the next
//! request is served from the cache without asking the remote. Concurrent requests for
//! the same media share one fetch, which runs as its own task: a client that goes away
//! does not cancel it for the others. Failures are not cached.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use ruma::{OwnedServerName, ServerName};
use tokio::sync::watch;

use super::files::MediaFiles;
use super::multipart::{self, PartHeaders, Reader};
use super::{UploadMeta, check_meta, served_type};
use crate::error::{Error, ErrorKind};
use crate::service::federation::client::{body_error, error_of};
use crate::service::federation::{FederationClient, OutboundError};
use crate::service::now_ms;
use crate::store::{ImageKind, MediaContent, Store};

/// How many redirects one fetch follows.
const MAX_REDIRECTS: usize = 5;
/// Beyond the remote's own wait for content not yet uploaded: time to connect and answer.
const ANSWER_SLACK: Duration = Duration::from_secs(10);
/// The longest pause between two chunks of a body before the fetch is given up.
const BODY_IDLE: Duration = Duration::from_secs(30);
/// The metadata part is an empty object today; anything much larger is not one.
const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Why another server's media could not be had. Kept apart from client errors; converted
/// into one (502, 504, 404...) only at the end.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteMediaError {
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error("the media on {server} is larger than this server's limit of {limit} bytes")]
    TooLarge { server: OwnedServerName, limit: u64 },
    /// A failure on our side (store, files).
    #[error("{0}")]
    Local(Error),
}

impl From<RemoteMediaError> for Error {
    fn from(err: RemoteMediaError) -> Self {
        match err {
            RemoteMediaError::Local(e) => e,
            RemoteMediaError::TooLarge { .. } => {
                Error::new(ErrorKind::RemoteTooLarge, err.to_string())
            }
            RemoteMediaError::Outbound(OutboundError::Disabled) => {
                Error::not_found("Media of other servers is not available: federation is disabled")
            }
            RemoteMediaError::Outbound(e) => match &e {
                OutboundError::Remote {
                    errcode: Some(code),
                    ..
                } if code == "M_NOT_YET_UPLOADED" => {
                    Error::new(ErrorKind::NotYetUploaded, e.to_string())
                }
                OutboundError::Remote {
                    errcode: Some(code),
                    ..
                } if code == "M_TOO_LARGE" => Error::new(ErrorKind::RemoteTooLarge, e.to_string()),
                _ => e.into(),
            },
        }
    }
}

/// A failure while reading a body: the transport's, or a malformed multipart answer.
#[derive(Debug)]
enum BodyError {
    Transport(OutboundError),
    Malformed(String),
}

impl From<String> for BodyError {
    fn from(text: String) -> Self {
        BodyError::Malformed(text)
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Transport(e) => e.fmt(f),
            BodyError::Malformed(text) => f.write_str(text),
        }
    }
}

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;
type Fetched = Result<MediaContent, RemoteMediaError>;
type Key = (OwnedServerName, String);

/// The narrow handles a fetch needs: the federation client, the store, the files.
pub struct RemoteMedia {
    inner: Arc<Inner>,
}

struct Inner {
    client: Arc<FederationClient>,
    store: Store,
    files: Arc<MediaFiles>,
    max_bytes: u64,
    /// The fetches running now; their waiters watch for the result.
    inflight: Mutex<HashMap<Key, watch::Receiver<Option<Fetched>>>>,
}

/// Takes a finished (or failed, or panicked) fetch off the in-flight list.
struct InflightEntry {
    inner: Arc<Inner>,
    key: Key,
}

impl Drop for InflightEntry {
    fn drop(&mut self) {
        let mut inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        inflight.remove(&self.key);
    }
}

impl RemoteMedia {
    pub fn new(
        client: Arc<FederationClient>,
        store: Store,
        files: Arc<MediaFiles>,
        max_bytes: u64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                store,
                files,
                max_bytes,
                inflight: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The media's content, from the cache or fetched now. `wait` is how long the remote
    /// may wait for content not yet uploaded (sent on as its `timeout_ms`).
    pub async fn content(
        &self,
        server: &ServerName,
        media_id: &str,
        wait: Duration,
    ) -> Result<MediaContent, RemoteMediaError> {
        if let Some(content) = self.cached(server, media_id).await? {
            return Ok(content);
        }
        let mut result = self.join_or_start(server, media_id, wait);
        let outcome = result
            .wait_for(Option::is_some)
            .await
            .map_err(|_| RemoteMediaError::Local(Error::internal("a media fetch task ended")))?;
        outcome
            .clone()
            .unwrap_or_else(|| Err(RemoteMediaError::Local(Error::internal("no fetch result"))))
    }

    /// The media's content if it was fetched before; the remote is not asked.
    pub async fn cached(
        &self,
        server: &ServerName,
        media_id: &str,
    ) -> Result<Option<MediaContent>, RemoteMediaError> {
        let record = self
            .inner
            .store
            .remote_media(server.as_str(), media_id)
            .map_err(|e| RemoteMediaError::Local(e.into()))?;
        let Some(content) = record else {
            return Ok(None);
        };
        // A file removed by hand is fetched again rather than served as an error.
        let path = self.inner.files.content_path(&content.sha256);
        let present = tokio::fs::try_exists(&path).await.unwrap_or(false);
        Ok(present.then_some(content))
    }

    fn join_or_start(
        &self,
        server: &ServerName,
        media_id: &str,
        wait: Duration,
    ) -> watch::Receiver<Option<Fetched>> {
        let key: Key = (server.to_owned(), media_id.to_owned());
        let mut inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(running) = inflight.get(&key) {
            return running.clone();
        }
        let (done, result) = watch::channel(None);
        inflight.insert(key.clone(), result.clone());
        drop(inflight);
        let entry = InflightEntry {
            inner: self.inner.clone(),
            key,
        };
        tokio::spawn(async move {
            let (server, media_id) = (entry.key.0.clone(), entry.key.1.clone());
            let fetched = entry.inner.fetch(&server, &media_id, wait).await;
            if let Err(e) = &fetched {
                tracing::info!(%server, %media_id, error = %e, "could not fetch remote media");
            }
            // Off the list first: a request arriving after this finds the cache.
            drop(entry);
            done.send_replace(Some(fetched));
        });
        result
    }
}

impl Inner {
    async fn fetch(&self, server: &ServerName, media_id: &str, wait: Duration) -> Fetched {
        let ms = wait.as_millis();
        let answer_wait = wait + ANSWER_SLACK;
        let target = format!("/_matrix/federation/v1/media/download/{media_id}?timeout_ms={ms}");
        let response = self
            .client
            .get_streaming(server, &target, answer_wait)
            .await?;
        if response.status().as_u16() == 404 {
            let err = error_of(server, response).await;
            let unrecognized = matches!(
                &err,
                OutboundError::Remote { errcode: Some(code), .. } if code == "M_UNRECOGNIZED"
            );
            if !unrecognized {
                return Err(err.into());
            }
            let legacy = format!(
                "/_matrix/media/v3/download/{}/{media_id}?allow_remote=false&timeout_ms={ms}",
                path_segment(server.as_str())
            );
            let response = self
                .client
                .get_streaming(server, &legacy, answer_wait)
                .await?;
            return self.plain(server, media_id, response, answer_wait, 0).await;
        }
        if !response.status().is_success() {
            return self.plain(server, media_id, response, answer_wait, 0).await;
        }
        let content_type = header_text(response.headers().get(CONTENT_TYPE)).unwrap_or_default();
        let Some(boundary) = multipart::boundary_of(&content_type) else {
            return Err(bad(
                server,
                format!("expected multipart/mixed, got {content_type:?}"),
            ));
        };
        let url = response.url().clone();
        let mut reader = Reader::new(guarded_body(server, response), &boundary);
        let malformed = |e: BodyError| match e {
            BodyError::Transport(e) => RemoteMediaError::Outbound(e),
            BodyError::Malformed(text) => bad(server, text),
        };
        reader
            .next_part()
            .await
            .map_err(malformed)?
            .ok_or_else(|| bad(server, "no metadata part".into()))?;
        let metadata = reader
            .read_part(MAX_METADATA_BYTES)
            .await
            .map_err(malformed)?;
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&metadata)
            .map_err(|e| bad(server, format!("the metadata part is no JSON object: {e}")))?;
        let headers = reader
            .next_part()
            .await
            .map_err(malformed)?
            .ok_or_else(|| bad(server, "no content part".into()))?;
        if let Some(location) = headers.get("location") {
            let target = url
                .join(location)
                .map_err(|e| bad(server, format!("bad Location {location:?}: {e}")))?;
            let response = self
                .client
                .get_redirected(server, &target, answer_wait)
                .await?;
            return self.plain(server, media_id, response, answer_wait, 1).await;
        }
        let meta = part_meta(&headers);
        let body = futures_util::stream::unfold(reader, |mut reader| async move {
            match reader.chunk().await {
                Ok(Some(chunk)) => Some((Ok(Bytes::from(chunk)), reader)),
                Ok(None) => None,
                Err(e) => Some((Err(e), reader)),
            }
        });
        self.save(server, media_id, meta, Box::pin(body)).await
    }

    /// An answer whose body is the content itself (the legacy endpoint, a redirect's
    /// target), following further redirects.
    async fn plain(
        &self,
        server: &ServerName,
        media_id: &str,
        mut response: reqwest::Response,
        wait: Duration,
        mut hops: usize,
    ) -> Fetched {
        while response.status().is_redirection() {
            let location = header_text(response.headers().get(LOCATION))
                .ok_or_else(|| bad(server, "a redirect without Location".into()))?;
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(bad(server, "too many redirects".into()));
            }
            let target = response
                .url()
                .join(&location)
                .map_err(|e| bad(server, format!("bad Location {location:?}: {e}")))?;
            response = self.client.get_redirected(server, &target, wait).await?;
        }
        if !response.status().is_success() {
            return Err(error_of(server, response).await.into());
        }
        let declared =
            header_text(response.headers().get(CONTENT_LENGTH)).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_bytes) {
            return Err(self.too_large(server));
        }
        let meta = UploadMeta {
            content_type: header_text(response.headers().get(CONTENT_TYPE)),
            filename: header_text(response.headers().get(CONTENT_DISPOSITION))
                .and_then(|v| multipart::disposition_filename(&v)),
        };
        let body = guarded_body(server, response);
        self.save(server, media_id, sanitized(meta), Box::pin(body))
            .await
    }

    fn too_large(&self, server: &ServerName) -> RemoteMediaError {
        RemoteMediaError::TooLarge {
            server: server.to_owned(),
            limit: self.max_bytes,
        }
    }

    /// Streams the content into its file, then records it under (server, media ID).
    async fn save(
        &self,
        server: &ServerName,
        media_id: &str,
        meta: UploadMeta,
        body: Body,
    ) -> Fetched {
        // The file writer only sees error text; the real error is kept here.
        let failure: Arc<Mutex<Option<BodyError>>> = Arc::default();
        let seen = failure.clone();
        let body = body.map(move |chunk| {
            chunk.map_err(|e| {
                let text = e.to_string();
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                text
            })
        });
        let received = match self.files.receive(body, self.max_bytes, None).await {
            Ok(received) => received,
            Err(e) if e.kind == ErrorKind::TooLarge => return Err(self.too_large(server)),
            Err(e) => {
                let cause = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
                return Err(match cause {
                    Some(BodyError::Transport(e)) => RemoteMediaError::Outbound(e),
                    Some(BodyError::Malformed(text)) => bad(server, text),
                    None => RemoteMediaError::Local(e),
                });
            }
        };
        let image = ImageKind::sniff(&received.head);
        let content = MediaContent {
            content_type: served_type(meta.content_type.as_deref().map(str::trim), image),
            size: received.size,
            filename: meta.filename,
            sha256: received.sha256,
            image,
            uploaded_ts: now_ms(),
        };
        let dest = self.files.content_path(&content.sha256);
        let _placing = self.files.lock_placing().await;
        self.files
            .place(received.file, &dest)
            .await
            .map_err(RemoteMediaError::Local)?;
        self.store
            .put_remote_media(server.as_str(), media_id, &content)
            .map_err(|e| RemoteMediaError::Local(e.into()))?;
        Ok(content)
    }
}

fn bad(server: &ServerName, detail: String) -> RemoteMediaError {
    RemoteMediaError::Outbound(OutboundError::BadResponse {
        server: server.to_owned(),
        detail,
    })
}

fn header_text(value: Option<&reqwest::header::HeaderValue>) -> Option<String> {
    value.and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn part_meta(headers: &PartHeaders) -> UploadMeta {
    sanitized(UploadMeta {
        content_type: headers.get("content-type").map(str::to_owned),
        filename: headers
            .get("content-disposition")
            .and_then(multipart::disposition_filename),
    })
}

/// What the remote says about its file, without what we would refuse from an uploader.
fn sanitized(meta: UploadMeta) -> UploadMeta {
    let content_type = meta.content_type.filter(|ct| {
        check_meta(&UploadMeta {
            content_type: Some(ct.clone()),
            filename: None,
        })
        .is_ok()
    });
    let filename = meta.filename.filter(|name| {
        check_meta(&UploadMeta {
            content_type: None,
            filename: Some(name.clone()),
        })
        .is_ok()
    });
    UploadMeta {
        content_type,
        filename,
    }
}

/// A response body with a limit on how long it may stall.
fn guarded_body(server: &ServerName, response: reqwest::Response) -> Body {
    let server = server.to_owned();
    let chunks = Box::pin(response.bytes_stream());
    Box::pin(futures_util::stream::unfold(
        (chunks, server),
        |(mut chunks, server)| async move {
            let item = match tokio::time::timeout(BODY_IDLE, chunks.next()).await {
                Err(_) => Err(BodyError::Transport(OutboundError::Timeout {
                    server: server.clone(),
                })),
                Ok(None) => return None,
                Ok(Some(Ok(bytes))) => Ok(bytes),
                Ok(Some(Err(e))) => Err(BodyError::Transport(body_error(&server, &e))),
            };
            Some((item, (chunks, server)))
        },
    ))
}

/// A server name as a path segment: IPv6 literals' brackets percent-encoded.
fn path_segment(server: &str) -> String {
    server.replace('[', "%5B").replace(']', "%5D")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> OwnedServerName {
        "remote.example".try_into().unwrap()
    }

    #[test]
    fn remote_failures_become_the_matrix_errors_synapse_gives() {
        let remote = |status, code: &str| {
            Error::from(RemoteMediaError::Outbound(OutboundError::Remote {
                server: server(),
                status,
                errcode: Some(code.into()),
                retry_after: None,
                error: None,
                room_version: None,
            }))
        };
        let e = remote(404, "M_NOT_FOUND");
        assert_eq!((e.status().as_u16(), e.errcode()), (404, "M_NOT_FOUND"));
        let e = remote(504, "M_NOT_YET_UPLOADED");
        assert_eq!(
            (e.status().as_u16(), e.errcode()),
            (504, "M_NOT_YET_UPLOADED")
        );
        let e = remote(500, "M_UNKNOWN");
        assert_eq!((e.status().as_u16(), e.errcode()), (502, "M_UNKNOWN"));
        let e = Error::from(RemoteMediaError::TooLarge {
            server: server(),
            limit: 10,
        });
        assert_eq!((e.status().as_u16(), e.errcode()), (502, "M_TOO_LARGE"));
        let e = Error::from(RemoteMediaError::Outbound(OutboundError::Timeout {
            server: server(),
        }));
        assert_eq!((e.status().as_u16(), e.errcode()), (504, "M_UNKNOWN"));
    }

    #[test]
    fn remote_metadata_we_would_refuse_from_an_uploader_is_dropped() {
        let meta = sanitized(UploadMeta {
            content_type: Some("text/plain\u{7f}".into()),
            filename: Some("a\nb".into()),
        });
        assert!(meta.content_type.is_none() && meta.filename.is_none());
        assert_eq!(path_segment("[::1]:8448"), "%5B::1%5D:8448");
    }
}
