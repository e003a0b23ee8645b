//! HTTP/1.1 on a push gateway connection: requests written in one piece (one, or several
//! pipelined), answers read and parsed (`httparse`) one after the other in the calling
//! task. No connection task, no channels, no header maps: a notify request is a few
//! hundred bytes out and `{"rejected":[]}` back, thousands of times a second on a busy
//! server.
//!
//! An answer's body is framed by `Content-Length`, chunked transfer coding, or the end
//! of the connection; what follows an answer in the read buffer is left there for the
//! next one.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The most an answer's head may take.
const MAX_HEAD: usize = 64 * 1024;
/// The most an answer's body may take: a gateway's answer lists rejected pushkeys.
const MAX_BODY: usize = 1 << 20;
const MAX_HEADERS: usize = 64;

/// A connection to a gateway, plain or TLS.
pub(super) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Io {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(stream) => stream.write_all(data).await,
            Io::Tls(stream) => {
                stream.write_all(data).await?;
                stream.flush().await
            }
        }
    }

    /// Appends what arrives to `buf`; 0 at the end of the stream.
    async fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.reserve(4096);
        match self {
            Io::Plain(stream) => stream.read_buf(buf).await,
            Io::Tls(stream) => stream.read_buf(buf).await,
        }
    }
}

/// A gateway's answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why an exchange failed, and whether any of the answer had arrived: a kept-alive
/// connection that fails before that was most likely closed by the gateway meanwhile.
#[derive(Debug)]
pub(super) struct Failed {
    pub answered: bool,
    pub error: String,
}

fn failed(answered: bool, error: impl Into<String>) -> Failed {
    Failed {
        answered,
        error: error.into(),
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// What the head of an answer says.
struct Head {
    status: u16,
    len: usize,
    framing: Framing,
    keep_alive: bool,
}

/// Parses the head at the start of `buf`; `None` while it is incomplete. Informational
/// (1xx) answers are dropped from `buf`.
fn parse_head(buf: &mut Vec<u8>) -> Result<Option<Head>, String> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err("the gateway's answer has an oversized head".to_owned());
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("the gateway's answer is not HTTP/1.1: {e}")),
        };
        let status = response.code.unwrap_or(0);
        if (100..200).contains(&status) {
            buf.drain(..len);
            continue;
        }
        let mut keep_alive = response.version == Some(1);
        let mut framing = Framing::UntilClose;
        for header in response.headers.iter() {
            let value = std::str::from_utf8(header.value).unwrap_or("").trim();
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked is always the last coding when present.
                if value.to_ascii_lowercase().ends_with("chunked") {
                    framing = Framing::Chunked;
                } else {
                    return Err(format!("the gateway's answer has transfer coding {value}"));
                }
            } else if header.name.eq_ignore_ascii_case("content-length") {
                if !matches!(framing, Framing::Chunked) {
                    let length = value
                        .parse()
                        .map_err(|_| format!("the gateway's answer has length {value:?}"))?;
                    framing = Framing::Length(length);
                }
            } else if header.name.eq_ignore_ascii_case("connection")
                && value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("close"))
            {
                keep_alive = false;
            }
        }
        if status == 204 || status == 304 {
            framing = Framing::Length(0);
        }
        if matches!(framing, Framing::UntilClose) {
            keep_alive = false;
        }
        return Ok(Some(Head {
            status,
            len,
            framing,
            keep_alive,
        }));
    }
}

/// The chunked body from `buf[at..]`: `Some((body, end))` once complete (trailers
/// included), `None` while more is needed.
fn dechunk(buf: &[u8], mut at: usize) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    loop {
        let (consumed, size) = match httparse::parse_chunk_size(&buf[at..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("the gateway's answer has a bad chunk size".to_owned()),
        };
        at += consumed;
        if size == 0 {
            // Trailer lines, then an empty line.
            loop {
                let rest = &buf[at..];
                let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > MAX_BODY || body.len() + size > MAX_BODY {
            return Err("the gateway's answer is too large".to_owned());
        }
        if buf.len() < at.saturating_add(size).saturating_add(2) {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("the gateway's answer has a bad chunk".to_owned());
        }
        at += size + 2;
    }
}

/// Writes requests (heads and bodies, one or several pipelined) in one piece.
pub(super) async fn write(io: &mut Io, requests: &[u8]) -> Result<(), Failed> {
    io.write_all(requests)
        .await
        .map_err(|e| failed(false, format!("cannot write to the gateway: {e}")))
}

/// Reads the next answer from the start of `buf` (reading more from `io` as needed) and
/// removes it from `buf`, leaving what follows it: the start of the next answer to a
/// pipelined request. The flag: whether the gateway keeps the connection open after it.
pub(super) async fn read_answer(io: &mut Io, buf: &mut Vec<u8>) -> Result<(Answer, bool), Failed> {
    let head = loop {
        if !buf.is_empty()
            && let Some(head) = parse_head(buf).map_err(|e| failed(true, e))?
        {
            break head;
        }
        read_more(io, buf).await?;
    };
    let (body, end) = match head.framing {
        Framing::Length(length) => {
            if length > MAX_BODY {
                return Err(failed(true, "the gateway's answer is too large"));
            }
            while buf.len() < head.len + length {
                read_more(io, buf).await?;
            }
            (buf[head.len..head.len + length].to_vec(), head.len + length)
        }
        Framing::Chunked => loop {
            if let Some(done) = dechunk(buf, head.len).map_err(|e| failed(true, e))? {
                break done;
            }
            if buf.len() > head.len + 2 * MAX_BODY {
                return Err(failed(true, "the gateway's answer is too large"));
            }
            read_more(io, buf).await?;
        },
        Framing::UntilClose => loop {
            if buf.len() > head.len + MAX_BODY {
                return Err(failed(true, "the gateway's answer is too large"));
            }
            let read = io
                .read(buf)
                .await
                .map_err(|e| failed(true, format!("cannot read from the gateway: {e}")))?;
            if read == 0 {
                break (buf[head.len..].to_vec(), buf.len());
            }
        },
    };
    buf.drain(..end);
    Ok((
        Answer {
            status: head.status,
            body,
        },
        head.keep_alive,
    ))
}

/// Reads more of the answer; its end before the answer is complete is an error.
async fn read_more(io: &mut Io, buf: &mut Vec<u8>) -> Result<(), Failed> {
    let answered = !buf.is_empty();
    match io.read(buf).await {
        Ok(0) => Err(failed(
            answered,
            "the gateway closed the connection before its answer ended",
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(failed(
            answered,
            format!("cannot read from the gateway: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &[u8]) -> Result<Option<Head>, String> {
        parse_head(&mut text.to_vec())
    }

    #[test]
    fn heads_say_how_the_body_ends_and_whether_the_connection_stays() {
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.len, h.keep_alive), (200, 39, true));
        assert!(matches!(h.framing, Framing::Length(15)));
        let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::Chunked));
        let h = head(
            b"HTTP/1.1 500 Oops\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.status, h.keep_alive), (500, false));
        // HTTP/1.0, and a body that ends with the connection: not kept.
        let h = head(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(matches!(h.framing, Framing::UntilClose) && !h.keep_alive);
        // A 100 Continue before the answer is skipped; an incomplete head waits.
        let mut buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".to_vec();
        let h = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(h.status, 204);
        assert!(matches!(h.framing, Framing::Length(0)));
        assert!(head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        assert!(head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_are_joined_once_complete() {
        let text = b"5;ext=1\r\n{\"rej\r\na\r\nected\":[]}\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let (body, end) = dechunk(text, 0).unwrap().unwrap();
        assert_eq!(body, b"{\"rejected\":[]}");
        assert_eq!(end, text.len());
        for cut in 0..text.len() {
            assert_eq!(dechunk(&text[..cut], 0).unwrap(), None, "cut at {cut}");
        }
        assert!(dechunk(b"zz\r\n", 0).is_err());
        assert!(dechunk(b"2\r\nabc\r\n", 0).is_err());
    }
}
