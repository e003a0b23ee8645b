//! The content repository: uploads, downloads, thumbnails, reservations and limits.

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;

use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{TestServer, assert_error, into_json};
use crate::room_support::{User, enc, user};

const UPLOAD: &str = "/_matrix/media/v3/upload";
const CREATE: &str = "/_matrix/media/v1/create";
pub const CSP: &str = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

pub(crate) struct Fetched {
    pub(crate) status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    fn json(&self) -> (u16, Value) {
        (self.status, serde_json::from_slice(&self.body).unwrap())
    }
}

fn send_bytes(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server.client.request(method, server.url(path)).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    into_json(request.send().unwrap())
}

#[track_caller]
pub(crate) fn upload(server: &TestServer, who: &User, content_type: &str, body: &[u8]) -> String {
    let (status, answer) = send_bytes(
        server,
        "POST",
        UPLOAD,
        Some(&who.token),
        Some(content_type),
        body.to_vec(),
    );
    assert_eq!(status, 200, "{answer}");
    answer["content_uri"].as_str().unwrap().to_owned()
}

/// `mxc://server/id` → `server/id`, path-encoded.
fn mxc_path(mxc: &str) -> String {
    let (server, id) = mxc.strip_prefix("mxc://").unwrap().split_once('/').unwrap();
    format!("{}/{}", enc(server), enc(id))
}

fn fetch(server: &TestServer, path: &str, token: Option<&str>) -> Fetched {
    let mut request = server.client.get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    Fetched {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().unwrap().to_vec(),
    }
}

fn download(server: &TestServer, who: &User, mxc: &str) -> Fetched {
    fetch(
        server,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(mxc)),
        Some(&who.token),
    )
}

pub(crate) fn thumbnail(server: &TestServer, who: &User, mxc: &str, query: &str) -> Fetched {
    fetch(
        server,
        &format!(
            "/_matrix/client/v1/media/thumbnail/{}?{query}",
            mxc_path(mxc)
        ),
        Some(&who.token),
    )
}

/// The safety headers every media response carries (its own and other servers' media).
#[track_caller]
pub fn assert_safe_headers_of(headers: &reqwest::header::HeaderMap) {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("content-security-policy").as_deref(), Some(CSP));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(
        header("cross-origin-resource-policy").as_deref(),
        Some("cross-origin")
    );
}

#[track_caller]
fn assert_safe_headers(fetched: &Fetched) {
    assert_safe_headers_of(&fetched.headers);
}

/// Deterministic bytes that do not compress and have no pattern an off-by-one would hide.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let ramp = |v: u32, len: u32| (v * 255 / (len - 1).max(1)) as u8;
    let img = RgbImage::from_fn(width, height, |x, y| {
        Rgb([ramp(x, width), ramp(y, height), 90])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, 40, (y % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn decoded(fetched: &Fetched) -> (ImageFormat, u32, u32) {
    let format = image::guess_format(&fetched.body).unwrap();
    let img = image::load_from_memory(&fetched.body).unwrap();
    (format, img.width(), img.height())
}

/// Sends a request by hand, for uploads that reqwest would not send the way we need.
fn raw_request(server: &TestServer, head: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    // The server closes the connection after refusing an unread body.
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap())
}

pub(crate) fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_large_upload_round_trips_byte_for_byte() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let bytes = noise(6 * 1024 * 1024 + 123);
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let (status, answer) = send_bytes(
        &server,
        "POST",
        &format!("{UPLOAD}?filename=data%20dump.bin"),
        Some(&alice.token),
        Some("application/octet-stream"),
        bytes.clone(),
    );
    assert_eq!(status, 200, "{answer}");
    let mxc = answer["content_uri"].as_str().unwrap();
    assert!(
        mxc.starts_with(&format!("mxc://{}/", server.server_name())),
        "{mxc}"
    );

    // Any local user may read it.
    let fetched = download(&server, &bob, mxc);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body.len(), bytes.len());
    assert!(fetched.body == bytes, "the bytes differ");
    assert_eq!(hex::encode(Sha256::digest(&fetched.body)), sha256);
    assert_eq!(fetched.header("content-type"), "application/octet-stream");
    assert_eq!(fetched.header("content-length"), bytes.len().to_string());
    assert_eq!(
        fetched.header("content-disposition"),
        "attachment; filename=\"data dump.bin\""
    );
    assert!(fetched.header("cache-control").contains("private"));
    assert_safe_headers(&fetched);

    // Stored once under its hash, even when uploaded twice; no temporary file left over.
    let again = upload(&server, &bob, "application/octet-stream", &bytes);
    assert_ne!(again, mxc);
    assert_eq!(download(&server, &alice, &again).body.len(), bytes.len());
    let media = server.data_dir().join("media");
    let content = files_under(&media.join("content"));
    assert_eq!(content.len(), 1, "{content:?}");
    assert!(content[0].ends_with(format!("{}/{}/{sha256}", &sha256[..2], &sha256[2..4])));
    assert!(files_under(&media.join("tmp")).is_empty());
}

#[test]
fn uploads_over_the_limit_are_refused() {
    let server = TestServer::start_with_env(&[("HEARTH_MEDIA__MAX_UPLOAD_BYTES", "65536")]);
    let alice = user(&server, "alice");
    let (status, config) = server.get("/_matrix/client/v1/media/config", Some(&alice.token));
    assert_eq!(status, 200);
    assert_eq!(config["m.upload.size"], 65536);

    // Refused from the declared length alone, before any of the body is sent.
    let head = format!(
        "POST {UPLOAD} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n",
        alice.token
    );
    assert_error(raw_request(&server, &head, b""), 413, "M_TOO_LARGE");

    // Without a length, refused once the streamed body passes the limit.
    let head = format!(
        "POST {UPLOAD} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        alice.token, 65537
    );
    assert_error(
        raw_request(&server, &head, &noise(65537)),
        413,
        "M_TOO_LARGE",
    );
    assert!(files_under(&server.data_dir().join("media/tmp")).is_empty());
    assert!(files_under(&server.data_dir().join("media/content")).is_empty());

    // Exactly the limit is fine.
    let mxc = upload(&server, &alice, "application/octet-stream", &noise(65536));
    assert_eq!(download(&server, &alice, &mxc).body, noise(65536));
}

#[test]
fn thumbnails_are_made_at_the_listed_sizes_and_never_enlarged() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let original = png(1000, 500);
    let mxc = upload(&server, &alice, "image/png", &original);

    let scaled = thumbnail(&server, &alice, &mxc, "width=300&height=200&method=scale");
    assert_eq!(scaled.status, 200);
    assert_eq!(decoded(&scaled), (ImageFormat::Png, 320, 160));
    assert_eq!(scaled.header("content-type"), "image/png");
    assert_eq!(
        scaled.header("content-disposition"),
        "inline; filename=\"thumbnail.png\""
    );
    assert_safe_headers(&scaled);
    // Served from the cache the second time: the same bytes.
    let again = thumbnail(&server, &alice, &mxc, "width=300&height=200&method=scale");
    assert_eq!(again.body, scaled.body);

    let cropped = thumbnail(&server, &alice, &mxc, "width=90&height=90&method=crop");
    assert_eq!(decoded(&cropped), (ImageFormat::Png, 96, 96));
    let small = thumbnail(&server, &alice, &mxc, "width=32&height=32&method=crop");
    assert_eq!(decoded(&small), (ImageFormat::Png, 32, 32));
    // Cut from the middle, not squashed: the red ramp runs 0..255 across the full width,
    // so the middle half spans about 64..191.
    let img = image::load_from_memory(&small.body).unwrap().to_rgb8();
    let (left, centre) = (img.get_pixel(0, 16)[0], img.get_pixel(16, 16)[0]);
    assert!((56..=74).contains(&left), "{left}");
    assert!((118..=137).contains(&centre), "{centre}");
    let default_method = thumbnail(&server, &alice, &mxc, "width=640&height=300");
    assert_eq!(decoded(&default_method), (ImageFormat::Png, 640, 320));

    // Larger than every listed size: only the original is large enough.
    let huge = thumbnail(&server, &alice, &mxc, "width=900&height=450");
    assert_eq!(huge.body, original);

    // A small image is returned as it is rather than enlarged.
    let tiny = png(20, 10);
    let tiny_mxc = upload(&server, &alice, "image/png", &tiny);
    let answer = thumbnail(&server, &alice, &tiny_mxc, "width=32&height=32&method=crop");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, tiny);

    // JPEG photos stay JPEG.
    let photo = upload(&server, &alice, "image/jpeg", &jpeg(1200, 900));
    let answer = thumbnail(&server, &alice, &photo, "width=600&height=450&method=scale");
    assert_eq!(answer.header("content-type"), "image/jpeg");
    assert_eq!(decoded(&answer), (ImageFormat::Jpeg, 640, 480));
}

#[test]
fn an_animation_is_thumbnailed_as_a_still_unless_animation_is_welcome() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let frame = RgbaImage::from_pixel(20, 20, Rgba([200, 10, 10, 255]));
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        for _ in 0..2 {
            encoder
                .encode_frame(image::Frame::new(frame.clone()))
                .unwrap();
        }
    }
    let mxc = upload(&server, &alice, "image/gif", &gif);
    let still = thumbnail(&server, &alice, &mxc, "width=32&height=32&method=crop");
    assert_eq!(still.status, 200);
    assert_eq!(decoded(&still), (ImageFormat::Png, 20, 20));
    let moving = thumbnail(
        &server,
        &alice,
        &mxc,
        "width=32&height=32&method=crop&animated=true",
    );
    assert_eq!(moving.header("content-type"), "image/gif");
    assert_eq!(moving.body, gif);
}

#[test]
fn bad_thumbnail_requests_get_clear_errors() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let mxc = upload(&server, &alice, "image/png", &png(64, 64));
    let error = |query: &str| thumbnail(&server, &alice, &mxc, query).json();
    assert_error(error("height=32"), 400, "M_MISSING_PARAM");
    assert_error(error("width=-1&height=32"), 400, "M_INVALID_PARAM");
    assert_error(error("width=abc&height=32"), 400, "M_INVALID_PARAM");
    assert_error(
        error("width=32&height=32&method=zoom"),
        400,
        "M_INVALID_PARAM",
    );

    // Only real raster images are thumbnailed, whatever the claim.
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
    for (content_type, body) in [
        ("image/svg+xml", &svg[..]),
        ("text/plain", b"just text"),
        ("image/png", b"not a png at all"),
    ] {
        let mxc = upload(&server, &alice, content_type, body);
        assert_error(
            thumbnail(&server, &alice, &mxc, "width=32&height=32").json(),
            400,
            "M_UNKNOWN",
        );
    }

    // A valid PNG header that claims an enormous image is not decoded.
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let mxc = upload(&server, &alice, "image/png", &bomb);
    assert_error(
        thumbnail(&server, &alice, &mxc, "width=32&height=32").json(),
        413,
        "M_TOO_LARGE",
    );
}

/// PNG chunk checksum (CRC-32/ISO-HDLC).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn html_and_svg_are_served_as_attachments_and_safe_types_inline() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for (content_type, body, disposition) in [
        ("text/html", &b"<script>alert(1)</script>"[..], "attachment"),
        (
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            "attachment",
        ),
        ("text/plain; charset=utf-8", b"hello", "inline"),
        ("application/pdf", b"%PDF-1.4", "attachment"),
    ] {
        let mxc = upload(&server, &alice, content_type, body);
        let fetched = download(&server, &alice, &mxc);
        assert_eq!(fetched.status, 200);
        assert_eq!(fetched.header("content-type"), content_type);
        assert_eq!(fetched.header("content-disposition"), disposition);
        assert_safe_headers(&fetched);
        assert_eq!(fetched.body, body);
    }
}

#[test]
fn a_claimed_image_type_the_bytes_contradict_is_served_as_octet_stream() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let mxc = upload(&server, &alice, "image/png", b"<html>surprise</html>");
    let fetched = download(&server, &alice, &mxc);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.header("content-type"), "application/octet-stream");
    assert_eq!(fetched.header("content-disposition"), "attachment");
    // A real image under the wrong image type is served as what it is.
    let mxc = upload(&server, &alice, "image/png", &jpeg(8, 8));
    assert_eq!(
        download(&server, &alice, &mxc).header("content-type"),
        "image/jpeg"
    );
}

#[test]
fn filenames_come_back_in_the_disposition() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let (status, answer) = send_bytes(
        &server,
        "POST",
        &format!("{UPLOAD}?filename={}", enc("résumé \"v2\".txt")),
        Some(&alice.token),
        Some("text/plain"),
        b"cv".to_vec(),
    );
    assert_eq!(status, 200, "{answer}");
    let mxc = answer["content_uri"].as_str().unwrap();
    assert_eq!(
        download(&server, &alice, mxc).header("content-disposition"),
        "inline; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.txt"
    );
    let named = fetch(
        &server,
        &format!(
            "/_matrix/client/v1/media/download/{}/other.txt",
            mxc_path(mxc)
        ),
        Some(&alice.token),
    );
    assert_eq!(
        named.header("content-disposition"),
        "inline; filename=\"other.txt\""
    );
    assert_eq!(named.body, b"cv");

    let (status, answer) = send_bytes(
        &server,
        "POST",
        &format!("{UPLOAD}?filename=a%0Ab"),
        Some(&alice.token),
        Some("text/plain"),
        b"x".to_vec(),
    );
    assert_error((status, answer), 400, "M_INVALID_PARAM");
}

#[test]
fn media_endpoints_need_an_access_token() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let mxc = upload(&server, &alice, "text/plain", b"secret");
    let path = mxc_path(&mxc);
    for url in [
        format!("/_matrix/client/v1/media/download/{path}"),
        format!("/_matrix/client/v1/media/download/{path}/name.txt"),
        format!("/_matrix/client/v1/media/thumbnail/{path}?width=32&height=32"),
        "/_matrix/client/v1/media/config".to_owned(),
        "/_matrix/media/v3/config".to_owned(),
    ] {
        assert_error(fetch(&server, &url, None).json(), 401, "M_MISSING_TOKEN");
    }
    assert_error(
        send_bytes(
            &server,
            "POST",
            UPLOAD,
            None,
            Some("text/plain"),
            b"x".to_vec(),
        ),
        401,
        "M_MISSING_TOKEN",
    );
    assert_error(
        server.post(CREATE, None, &json!({})),
        401,
        "M_MISSING_TOKEN",
    );
    assert_error(
        fetch(
            &server,
            &format!("/_matrix/client/v1/media/download/{path}"),
            Some("not-a-token"),
        )
        .json(),
        401,
        "M_UNKNOWN_TOKEN",
    );
}

#[test]
fn legacy_unauthenticated_downloads_are_frozen_unless_switched_on() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let mxc = upload(&server, &alice, "image/png", &png(64, 64));
    let path = mxc_path(&mxc);
    let legacy = [
        format!("/_matrix/media/v3/download/{path}"),
        format!("/_matrix/media/v3/download/{path}/pic.png"),
        format!("/_matrix/media/v3/thumbnail/{path}?width=32&height=32&method=crop"),
    ];
    for url in &legacy {
        let fetched = fetch(&server, url, None);
        assert_error(fetched.json(), 404, "M_NOT_FOUND");
        // Even with a token: these are the unauthenticated endpoints.
        assert_eq!(fetch(&server, url, Some(&alice.token)).status, 404);
    }
    let (status, config) = server.get("/_matrix/media/v3/config", Some(&alice.token));
    assert_eq!(status, 200);
    assert_eq!(config["m.upload.size"], 50 * 1024 * 1024);

    let server = TestServer::start_with_env(&[("HEARTH_MEDIA__LEGACY_UNAUTHENTICATED", "true")]);
    let alice = user(&server, "alice");
    let original = png(64, 64);
    let mxc = upload(&server, &alice, "image/png", &original);
    let path = mxc_path(&mxc);
    let fetched = fetch(&server, &format!("/_matrix/media/v3/download/{path}"), None);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, original);
    assert_safe_headers(&fetched);
    let named = fetch(
        &server,
        &format!("/_matrix/media/v3/download/{path}/pic.png"),
        None,
    );
    assert_eq!(
        named.header("content-disposition"),
        "inline; filename=\"pic.png\""
    );
    let thumb = fetch(
        &server,
        &format!("/_matrix/media/v3/thumbnail/{path}?width=32&height=32&method=crop"),
        None,
    );
    assert_eq!(decoded(&thumb), (ImageFormat::Png, 32, 32));
}

#[test]
fn reserved_media_ids_take_one_upload_from_their_creator() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let mallory = user(&server, "mallory");
    let (status, created) = server.post(CREATE, Some(&alice.token), &json!({}));
    assert_eq!(status, 200, "{created}");
    let mxc = created["content_uri"].as_str().unwrap().to_owned();
    let expires = created["unused_expires_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(expires > now + 3_600_000, "{expires} vs {now}");
    let put_path = format!("/_matrix/media/v3/upload/{}", mxc_path(&mxc));

    // Not there yet: a download gives up when its timeout passes.
    assert_error(
        fetch(
            &server,
            &format!(
                "/_matrix/client/v1/media/download/{}?timeout_ms=50",
                mxc_path(&mxc)
            ),
            Some(&alice.token),
        )
        .json(),
        504,
        "M_NOT_YET_UPLOADED",
    );

    assert_error(
        send_bytes(
            &server,
            "PUT",
            &put_path,
            Some(&mallory.token),
            Some("text/plain"),
            b"mine".to_vec(),
        ),
        403,
        "M_FORBIDDEN",
    );

    // A download that waits is answered once the content arrives.
    let waiting = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| download_with_timeout(&server, &mallory, &mxc, 20_000));
        let (status, answer) = send_bytes(
            &server,
            "PUT",
            &format!("{put_path}?filename=late.txt"),
            Some(&alice.token),
            Some("text/plain"),
            b"finally".to_vec(),
        );
        assert_eq!((status, answer), (200, json!({})));
        waiter.join().unwrap()
    });
    assert_eq!(waiting.status, 200);
    assert_eq!(waiting.body, b"finally");
    assert_eq!(
        waiting.header("content-disposition"),
        "inline; filename=\"late.txt\""
    );

    assert_error(
        send_bytes(
            &server,
            "PUT",
            &put_path,
            Some(&alice.token),
            Some("text/plain"),
            b"again".to_vec(),
        ),
        409,
        "M_CANNOT_OVERWRITE_MEDIA",
    );
    assert_eq!(download(&server, &alice, &mxc).body, b"finally");

    // IDs that were never reserved, or belong to another server.
    let uploaded = upload(&server, &alice, "text/plain", b"direct");
    assert_error(
        send_bytes(
            &server,
            "PUT",
            &format!("/_matrix/media/v3/upload/{}", mxc_path(&uploaded)),
            Some(&alice.token),
            Some("text/plain"),
            b"x".to_vec(),
        ),
        409,
        "M_CANNOT_OVERWRITE_MEDIA",
    );
    for path in [
        format!(
            "/_matrix/media/v3/upload/{}/NeverCreated",
            enc(&server.server_name())
        ),
        "/_matrix/media/v3/upload/elsewhere.example/abc".to_owned(),
        format!(
            "/_matrix/media/v3/upload/{}/bad.id",
            enc(&server.server_name())
        ),
    ] {
        assert_error(
            send_bytes(
                &server,
                "PUT",
                &path,
                Some(&alice.token),
                None,
                b"x".to_vec(),
            ),
            404,
            "M_NOT_FOUND",
        );
    }
}

fn download_with_timeout(server: &TestServer, who: &User, mxc: &str, timeout_ms: u64) -> Fetched {
    fetch(
        server,
        &format!(
            "/_matrix/client/v1/media/download/{}?timeout_ms={timeout_ms}",
            mxc_path(mxc)
        ),
        Some(&who.token),
    )
}

#[test]
fn outstanding_reservations_are_limited() {
    let server = TestServer::start_with_env(&[("HEARTH_MEDIA__MAX_PENDING_UPLOADS", "2")]);
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let mut reserved = Vec::new();
    for _ in 0..2 {
        let (status, created) = server.post(CREATE, Some(&alice.token), &json!({}));
        assert_eq!(status, 200, "{created}");
        reserved.push(created["content_uri"].as_str().unwrap().to_owned());
    }
    let refused = assert_error(
        server.post(CREATE, Some(&alice.token), &json!({})),
        429,
        "M_LIMIT_EXCEEDED",
    );
    assert!(refused["retry_after_ms"].as_u64().unwrap() > 0);
    // The limit is per user.
    assert_eq!(server.post(CREATE, Some(&bob.token), &json!({})).0, 200);
    // Filling one frees a place.
    let (status, _) = send_bytes(
        &server,
        "PUT",
        &format!("/_matrix/media/v3/upload/{}", mxc_path(&reserved[0])),
        Some(&alice.token),
        Some("text/plain"),
        b"done".to_vec(),
    );
    assert_eq!(status, 200);
    assert_eq!(server.post(CREATE, Some(&alice.token), &json!({})).0, 200);
}

#[test]
fn unknown_invalid_and_remote_media_are_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let local = enc(&server.server_name());
    let get = |path: &str| {
        fetch(
            &server,
            &format!("/_matrix/client/v1/media/download/{path}"),
            Some(&alice.token),
        )
        .json()
    };
    assert_error(get(&format!("{local}/NoSuchMedia123")), 404, "M_NOT_FOUND");
    assert_error(get(&format!("{local}/bad.id")), 400, "M_INVALID_PARAM");
    assert_error(
        get(&format!("{local}/..%2F..%2Fdb")),
        400,
        "M_INVALID_PARAM",
    );
    // Media of other servers: not with allow_remote=false, and a server that cannot be
    // found is a gateway error (fetching is in `federation_media.rs`).
    assert_error(
        get("matrix.org/abcdef?allow_remote=false"),
        404,
        "M_NOT_FOUND",
    );
    assert_error(get("remote.invalid/abcdef"), 502, "M_UNKNOWN");
    assert_error(
        fetch(
            &server,
            &format!(
                "/_matrix/client/v1/media/thumbnail/{local}/NoSuchMedia123?width=32&height=32"
            ),
            Some(&alice.token),
        )
        .json(),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn media_and_reservations_survive_kill_9() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let original = png(400, 300);
    let mxc = upload(&server, &alice, "image/png", &original);
    let (_, created) = server.post(CREATE, Some(&alice.token), &json!({}));
    let reserved = created["content_uri"].as_str().unwrap().to_owned();
    server.kill_9();
    server.restart();
    let fetched = download(&server, &alice, &mxc);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, original);
    let thumb = thumbnail(&server, &alice, &mxc, "width=96&height=96&method=crop");
    assert_eq!(decoded(&thumb), (ImageFormat::Png, 96, 96));
    let (status, _) = send_bytes(
        &server,
        "PUT",
        &format!("/_matrix/media/v3/upload/{}", mxc_path(&reserved)),
        Some(&alice.token),
        Some("text/plain"),
        b"after restart".to_vec(),
    );
    assert_eq!(status, 200);
    assert_eq!(download(&server, &alice, &reserved).body, b"after restart");
}

#[test]
fn uploads_are_rate_limited_per_user() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_MEDIA__UPLOADS_BURST", "2"),
        ("HEARTH_MEDIA__UPLOADS_PER_MINUTE", "1"),
    ]);
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    upload(&server, &alice, "text/plain", b"one");
    upload(&server, &alice, "text/plain", b"two");
    let refused = assert_error(
        send_bytes(
            &server,
            "POST",
            UPLOAD,
            Some(&alice.token),
            Some("text/plain"),
            b"three".to_vec(),
        ),
        429,
        "M_LIMIT_EXCEEDED",
    );
    assert!(refused["retry_after_ms"].as_u64().unwrap() > 0);
    assert_error(
        server.post(CREATE, Some(&alice.token), &json!({})),
        429,
        "M_LIMIT_EXCEEDED",
    );
    upload(&server, &bob, "text/plain", b"bob's own allowance");
}
