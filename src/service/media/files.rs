//! The media files on disk: `<data>/media/content/ab/cd/<sha256>` for uploads,
//! `<data>/media/thumbnails/ab/cd/<sha256>-<method>-<W>x<H>` for thumbnails, and
//! `<data>/media/tmp/` for files being written. A file only ever appears under its final
//! name by a rename of a complete temporary file, so a file that exists is whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, ErrorKind, Result};
use crate::service::random_string;

/// Enough leading bytes to recognise every image format we thumbnail.
const HEAD_BYTES: usize = 64;

pub struct MediaFiles {
    root: PathBuf,
    /// fsync files and directories before an upload is acknowledged (`sync_writes`).
    sync: bool,
    /// Held while a file is placed and its record written, and while a deletion decides
    /// which files no record points at, so neither sees the other half done.
    placing: tokio::sync::Mutex<()>,
}

/// A file under `tmp/`, removed when dropped unless it was moved into place.
pub struct TempFile {
    path: PathBuf,
    placed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl TempFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An upload received in full into a temporary file.
pub struct Received {
    pub file: TempFile,
    pub sha256: String,
    pub size: u64,
    pub head: Vec<u8>,
}

fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("Cannot upload files larger than {limit} bytes"),
    )
}

impl MediaFiles {
    /// Creates the directories and removes temporary files a crash left behind.
    pub fn open(data: &Path, sync: bool) -> std::io::Result<Self> {
        let root = data.join("media");
        for dir in ["content", "thumbnails", "tmp"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(Self {
            root,
            sync,
            placing: tokio::sync::Mutex::new(()),
        })
    }

    fn sharded(&self, area: &str, sha256: &str, name: &str) -> PathBuf {
        // Two levels of 256 directories keep any one directory small.
        self.root
            .join(area)
            .join(&sha256[0..2])
            .join(&sha256[2..4])
            .join(name)
    }

    /// `sha256` is always our own lowercase hex digest, never text from a request.
    pub fn content_path(&self, sha256: &str) -> PathBuf {
        self.sharded("content", sha256, sha256)
    }

    pub fn thumbnail_path(&self, sha256: &str, method: &str, width: u32, height: u32) -> PathBuf {
        self.sharded(
            "thumbnails",
            sha256,
            &format!("{sha256}-{method}-{width}x{height}"),
        )
    }

    pub fn temp(&self) -> TempFile {
        TempFile {
            path: self.root.join("tmp").join(random_string(24)),
            placed: false,
        }
    }

    /// Streams a request body into a temporary file, hashing as it goes and refusing it
    /// as soon as it passes `limit` bytes, so no upload is ever held in memory. With
    /// `idle`, a body that sends nothing for that long is refused too (`408`): a client
    /// that stalls would otherwise hold its connection and its half-written file for good.
    pub async fn receive<S, B, E>(
        &self,
        body: S,
        limit: u64,
        idle: Option<Duration>,
    ) -> Result<Received>
    where
        S: Stream<Item = std::result::Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let temp = self.temp();
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp.path())
            .await
            .map_err(Error::internal)?;
        let mut writer = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(HEAD_BYTES);
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        loop {
            let next = match idle {
                Some(idle) => tokio::time::timeout(idle, body.next())
                    .await
                    .map_err(|_| stalled(idle))?,
                None => body.next().await,
            };
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| {
                Error::new(
                    ErrorKind::Unknown,
                    format!("The upload was interrupted: {e}"),
                )
            })?;
            let chunk = chunk.as_ref();
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large(limit));
            }
            if head.len() < HEAD_BYTES {
                let take = (HEAD_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(chunk);
            writer.write_all(chunk).await.map_err(Error::internal)?;
        }
        writer.flush().await.map_err(Error::internal)?;
        let file = writer.into_inner();
        if self.sync {
            file.sync_all().await.map_err(Error::internal)?;
        }
        Ok(Received {
            file: temp,
            sha256: hex::encode(hasher.finalize()),
            size,
            head,
        })
    }

    /// Moves a complete temporary file to `dest`. When `dest` already exists it holds the
    /// same bytes (names are content hashes), so the temporary file is simply dropped.
    pub async fn place(&self, mut temp: TempFile, dest: &Path) -> Result<()> {
        if tokio::fs::try_exists(dest).await.map_err(Error::internal)? {
            return Ok(());
        }
        let dir = dest
            .parent()
            .ok_or_else(|| Error::internal("media path without a parent"))?;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(Error::internal)?;
        tokio::fs::rename(temp.path(), dest)
            .await
            .map_err(Error::internal)?;
        temp.placed = true;
        if self.sync {
            // The rename is durable only once the directory entry is on disk.
            let dir = tokio::fs::File::open(dir).await.map_err(Error::internal)?;
            dir.sync_all().await.map_err(Error::internal)?;
        }
        Ok(())
    }

    /// Taken around placing a file and writing the record that points at it, and by
    /// media deletion.
    pub async fn lock_placing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.placing.lock().await
    }

    /// Whether files written outside [`MediaFiles::receive`] (thumbnails) must be fsynced.
    pub fn sync_enabled(&self) -> bool {
        self.sync
    }
}

fn stalled(idle: Duration) -> Error {
    Error::new(
        ErrorKind::RequestTimeout,
        format!(
            "The upload sent nothing for {} seconds and was dropped",
            idle.as_secs()
        ),
    )
}
