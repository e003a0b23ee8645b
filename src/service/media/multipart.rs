//! `multipart/mixed` (RFC 2046) both ways, as the federation media endpoints use it: a
//! JSON metadata part, then the content part. Writing ([`Envelope`]) wraps a streamed
//! file; reading ([`Reader`]) streams a part's body in bounded memory, never holding
//! more than one network chunk plus a delimiter.

use futures_util::{Stream, StreamExt};

/// The most header bytes one part may have.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What goes around the content part of an answer: `head` before the bytes, `tail` after.
pub struct Envelope {
    pub content_type: String,
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

impl Envelope {
    /// An empty JSON metadata part, then the content part's headers. `headers` must be
    /// valid header text (the caller's own values).
    pub fn new(boundary: &str, headers: &[(&str, &str)]) -> Self {
        let mut head = format!(
            "--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\n"
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        Self {
            content_type: format!("multipart/mixed; boundary={boundary}"),
            head: head.into_bytes(),
            tail: format!("\r\n--{boundary}--\r\n").into_bytes(),
        }
    }
}

/// The `boundary` parameter of a `multipart/mixed` content type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let essence = params.next()?.trim();
    if !essence.eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        // RFC 2046: 1 to 70 characters.
        (!value.is_empty() && value.len() <= 70).then(|| value.to_owned())
    })
}

/// A part's headers, names in lowercase.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PartHeaders(Vec<(String, String)>);

impl PartHeaders {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn parse(text: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(text).map_err(|_| "part headers are not UTF-8")?;
        let mut headers = Vec::new();
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("malformed part header {line:?}"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        Ok(Self(headers))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: the close marker `--` or a new part.
    Delimiter,
    Body,
    Done,
}

/// Reads a `multipart` body part by part.
pub struct Reader<S> {
    stream: S,
    /// `\r\n--boundary`; the buffer starts with `\r\n` so the first delimiter matches too.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
}

/// Where `needle` first occurs in `haystack`: candidates found by their first byte (a
/// fast scan), then compared whole.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(offset) = haystack.get(from..)?.iter().position(|b| b == first) {
        let at = from + offset;
        // A candidate running past the end: no later one can fit either.
        let candidate = haystack.get(at + 1..at + needle.len())?;
        if candidate == rest {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

impl<S, B, E> Reader<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: From<String>,
{
    pub fn new(stream: S, boundary: &str) -> Self {
        Self {
            stream,
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            buf: b"\r\n".to_vec(),
            state: State::Preamble,
        }
    }

    /// Reads one more chunk into the buffer; false at the end of the stream.
    async fn fill(&mut self) -> Result<bool, E> {
        match self.stream.next().await {
            Some(chunk) => {
                self.buf.extend_from_slice(chunk?.as_ref());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn fill_or(&mut self, what: &str) -> Result<(), E> {
        if self.fill().await? {
            Ok(())
        } else {
            Err(E::from(format!("the multipart body ends {what}")))
        }
    }

    /// Moves to the next part and returns its headers; `None` after the last one. What is
    /// left of the current part's body is skipped.
    pub async fn next_part(&mut self) -> Result<Option<PartHeaders>, E> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Body => while self.chunk().await?.is_some() {},
                State::Preamble => match find(&self.buf, &self.delimiter) {
                    Some(at) => {
                        self.buf.drain(..at + self.delimiter.len());
                        self.state = State::Delimiter;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        let cut = self.buf.len().saturating_sub(keep);
                        self.buf.drain(..cut);
                        self.fill_or("before its first boundary").await?;
                    }
                },
                State::Delimiter => {
                    if self.buf.len() < 2 {
                        self.fill_or("after a boundary").await?;
                        continue;
                    }
                    if self.buf.starts_with(b"--") {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    return self.headers().await.map(Some);
                }
            }
        }
    }

    /// The rest of a delimiter line (transport padding, CRLF), then the headers.
    async fn headers(&mut self) -> Result<PartHeaders, E> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let padding = &self.buf[..end];
                if !padding.iter().all(|b| *b == b' ' || *b == b'\t') {
                    return Err(E::from("garbage after a multipart boundary".to_owned()));
                }
                self.buf.drain(..end + 2);
                break;
            }
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(E::from("a multipart boundary line is too long".to_owned()));
            }
            self.fill_or("inside a boundary line").await?;
        }
        loop {
            if self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
                self.state = State::Body;
                return Ok(PartHeaders::default());
            }
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let headers = PartHeaders::parse(&self.buf[..end]).map_err(E::from)?;
                self.buf.drain(..end + 4);
                self.state = State::Body;
                return Ok(headers);
            }
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(E::from("multipart part headers are too long".to_owned()));
            }
            self.fill_or("inside part headers").await?;
        }
    }

    /// The next bytes of the current part's body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, E> {
        if self.state != State::Body {
            return Ok(None);
        }
        loop {
            if let Some(at) = find(&self.buf, &self.delimiter) {
                if at > 0 {
                    return Ok(Some(self.buf.drain(..at).collect()));
                }
                self.buf.drain(..self.delimiter.len());
                self.state = State::Delimiter;
                return Ok(None);
            }
            // Bytes that cannot be the start of a delimiter are the part's for sure.
            let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
            if safe > 0 {
                return Ok(Some(self.buf.drain(..safe).collect()));
            }
            self.fill_or("inside a part").await?;
        }
    }

    /// The whole current part's body, refused past `limit` bytes.
    pub async fn read_part(&mut self, limit: usize) -> Result<Vec<u8>, E> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if body.len() + chunk.len() > limit {
                return Err(E::from(format!("a part is larger than {limit} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The file name a `Content-Disposition` value gives: `filename*` (RFC 8187, UTF-8) over
/// `filename`, as RFC 6266 asks.
pub fn disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for (name, raw) in disposition_params(value) {
        match name.to_ascii_lowercase().as_str() {
            "filename*" => {
                let (charset, rest) = raw.split_once('\'')?;
                let (_language, encoded) = rest.split_once('\'')?;
                if charset.eq_ignore_ascii_case("utf-8") {
                    extended = percent_decode(encoded);
                }
            }
            "filename" => plain = Some(raw),
            _ => {}
        }
    }
    extended.or(plain).filter(|n| !n.is_empty())
}

/// `name=value` parameters after the disposition type, quoted strings unquoted.
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = match value.split_once(';') {
        Some((_, rest)) => rest,
        None => return params,
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        let Some((name, after)) = rest.split_once('=') else {
            return params;
        };
        let name = name.trim().to_owned();
        let after = after.trim_start();
        if let Some(quoted) = after.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            text.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => text.push(c),
                }
            }
            params.push((name, text));
            rest = &quoted[end..];
        } else {
            let (token, next) = after.split_once(';').unwrap_or((after, ""));
            params.push((name, token.trim().to_owned()));
            rest = next;
        }
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Chunk = Result<Vec<u8>, String>;

    /// Reads every part of `body` cut into `size`-byte chunks.
    fn parts(
        body: &[u8],
        boundary: &str,
        size: usize,
    ) -> Result<Vec<(PartHeaders, Vec<u8>)>, String> {
        let chunks: Vec<Chunk> = body.chunks(size).map(|c| Ok(c.to_vec())).collect();
        let mut reader = Reader::new(futures_util::stream::iter(chunks), boundary);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let mut out = Vec::new();
                while let Some(headers) = reader.next_part().await? {
                    out.push((headers, reader.read_part(1 << 20).await?));
                }
                Ok(out)
            })
    }

    #[test]
    fn what_the_envelope_writes_reads_back_whatever_the_chunking() {
        let content: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let envelope = Envelope::new(
            "xYzZY",
            &[
                ("Content-Type", "image/png"),
                ("Content-Disposition", "inline"),
            ],
        );
        assert_eq!(
            boundary_of(&envelope.content_type).as_deref(),
            Some("xYzZY")
        );
        let body = [envelope.head, content.clone(), envelope.tail].concat();
        for size in [1, 2, 3, 7, 64, 4096, 100_000] {
            let read = parts(&body, "xYzZY", size).unwrap();
            assert_eq!(read.len(), 2, "chunks of {size}");
            assert_eq!(read[0].0.get("content-type"), Some("application/json"));
            assert_eq!(read[0].1, b"{}");
            assert_eq!(read[1].0.get("Content-Type"), Some("image/png"));
            assert_eq!(read[1].1, content, "chunks of {size}");
        }
    }

    #[test]
    fn a_preamble_padding_and_a_location_part_are_understood() {
        let body = b"ignored preamble\r\n--b1  \r\nContent-Type: application/json\r\n\r\n{}\r\n--b1\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--b1--";
        let read = parts(body, "b1", 5).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].0.get("location"), Some("https://cdn.example/x"));
        assert!(read[1].1.is_empty());
    }

    #[test]
    fn a_truncated_body_is_an_error() {
        let body =
            b"--b1\r\nContent-Type: application/json\r\n\r\n{}\r\n--b1\r\n\r\nhalf of the cont";
        assert!(parts(body, "b1", 4).is_err());
        assert!(parts(b"no boundary at all", "b1", 4).is_err());
    }

    #[test]
    fn find_gives_the_first_whole_occurrence() {
        assert_eq!(find(b"ab\r\n-\r\n--x", b"\r\n--x"), Some(5));
        assert_eq!(find(b"\r\n--", b"\r\n--x"), None);
        assert_eq!(find(b"", b"\r\n"), None);
        assert_eq!(find(b"\r\n", b"\r\n"), Some(0));
    }

    #[test]
    fn boundaries_come_only_from_multipart_mixed() {
        assert_eq!(
            boundary_of("multipart/mixed; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(
            boundary_of("Multipart/Mixed;boundary=x").as_deref(),
            Some("x")
        );
        assert_eq!(boundary_of("multipart/form-data; boundary=x"), None);
        assert_eq!(boundary_of("multipart/mixed"), None);
    }

    #[test]
    fn file_names_come_from_either_disposition_form() {
        assert_eq!(
            disposition_filename("inline; filename=\"War \\\"and\\\" Peace.pdf\"").as_deref(),
            Some("War \"and\" Peace.pdf")
        );
        assert_eq!(
            disposition_filename("attachment; filename=plain.txt").as_deref(),
            Some("plain.txt")
        );
        assert_eq!(
            disposition_filename("inline; filename=\"fallback\"; filename*=UTF-8''%C3%A7a.txt")
                .as_deref(),
            Some("ça.txt")
        );
        assert_eq!(disposition_filename("inline"), None);
    }
}
