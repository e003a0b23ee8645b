//! `--pushers`: a push gateway in the bench process that answers every
//! `POST /_matrix/push/v1/notify` at once with `{"rejected":[]}` and counts them, so that the
//! server's pusher work (one notify per notifying event and pusher, and the badge updates
//! after reads) is part of the measured load without a slow gateway holding it back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The largest request body read; a notification is a few KiB at most.
const MAX_BODY: usize = 1 << 20;

pub struct Gateway {
    pub url: String,
    notifies: Arc<AtomicU64>,
}

impl Gateway {
    /// Listens on a free loopback port; runs until the process ends.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the push gateway")?;
        let port = listener.local_addr()?.port();
        let notifies = Arc::new(AtomicU64::new(0));
        let counter = notifies.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, counter.clone()));
            }
        });
        Ok(Self {
            url: format!("http://127.0.0.1:{port}/_matrix/push/v1/notify"),
            notifies,
        })
    }

    /// Notify requests answered so far.
    pub fn notifies(&self) -> u64 {
        self.notifies.load(Ordering::Relaxed)
    }
}

/// Answers the requests of one keep-alive connection until it closes or sends something
/// this gateway does not read (chunked bodies, oversized ones).
async fn serve(stream: TcpStream, notifies: Arc<AtomicU64>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        let mut length = 0usize;
        let mut request_line = true;
        let mut is_notify = false;
        loop {
            line.clear();
            match read.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = line.trim_end();
            if request_line {
                is_notify = header.starts_with("POST /_matrix/push/v1/notify ");
                request_line = false;
                continue;
            }
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(usize::MAX);
            } else if lower.starts_with("transfer-encoding:") {
                return;
            }
        }
        if length > MAX_BODY {
            return;
        }
        body.resize(length, 0);
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        let answer: &[u8] = if is_notify {
            notifies.fetch_add(1, Ordering::Relaxed);
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"rejected\":[]}"
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        };
        if write.write_all(answer).await.is_err() {
            return;
        }
    }
}
