//! Federated media: one Hearth server downloads (and thumbnails) media uploaded on
//! another, serves it again from its cache while the other is down, and refuses what it
//! must; the federation media endpoints answer only signed requests. Remotes made by the
//! test (`TestRemote`) stand for servers that answer otherwise: only the legacy
//! endpoint, a redirect, a file over the limit, a slow answer shared by several clients.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use image::{ImageFormat, Rgb, RgbImage};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::federation_support::{
    Signing, TestRemote, federating_server, federating_server_with_env,
};
use crate::harness::{TestServer, assert_error};
use crate::media::assert_safe_headers_of;
use crate::room_support::{User, enc, user};

struct Fetched {
    status: u16,
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
        let body = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&self.body) }));
        (self.status, body)
    }
}

fn fetch(server: &TestServer, path: &str, token: &str) -> Fetched {
    let response = server
        .client
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .unwrap();
    Fetched {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().unwrap().to_vec(),
    }
}

#[track_caller]
fn upload(server: &TestServer, who: &User, content_type: &str, name: &str, body: &[u8]) -> String {
    let response = server
        .client
        .post(server.url(&format!("/_matrix/media/v3/upload?filename={}", enc(name))))
        .bearer_auth(&who.token)
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().unwrap();
    answer["content_uri"].as_str().unwrap().to_owned()
}

/// `mxc://server/id` → (server, id).
fn split_mxc(mxc: &str) -> (String, String) {
    let (server, id) = mxc.strip_prefix("mxc://").unwrap().split_once('/').unwrap();
    (server.to_owned(), id.to_owned())
}

fn download(server: &TestServer, who: &User, origin: &str, media_id: &str, query: &str) -> Fetched {
    fetch(
        server,
        &format!(
            "/_matrix/client/v1/media/download/{}/{media_id}?{query}",
            enc(origin)
        ),
        &who.token,
    )
}

fn thumbnail(server: &TestServer, who: &User, mxc: &str, query: &str) -> Fetched {
    let (origin, id) = split_mxc(mxc);
    fetch(
        server,
        &format!(
            "/_matrix/client/v1/media/thumbnail/{}/{id}?{query}",
            enc(&origin)
        ),
        &who.token,
    )
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn noise(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect()
}

#[test]
fn media_uploaded_on_one_server_is_downloaded_and_thumbnailed_on_another_then_served_from_cache() {
    let mut a = federating_server();
    let mut b = federating_server();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");

    let text = noise(100_000);
    let mxc = upload(&b, &bob, "application/pdf", "Ça va.pdf", &text);
    let (origin, id) = split_mxc(&mxc);
    assert_eq!(origin, b.server_name());

    let fetched = download(&a, &alice, &origin, &id, "");
    assert_eq!(
        fetched.status,
        200,
        "{:?}\nA: {}",
        fetched.json(),
        a.stop_and_logs()
    );
    assert_eq!(fetched.body, text);
    assert_eq!(fetched.header("content-type"), "application/pdf");
    assert_eq!(
        fetched.header("content-disposition"),
        "attachment; filename*=UTF-8''%C3%87a%20va.pdf"
    );

    let image = png(640, 480);
    let picture = upload(&b, &bob, "image/png", "cat.png", &image);
    let thumb = thumbnail(&a, &alice, &picture, "width=96&height=96&method=crop");
    assert_eq!(thumb.status, 200, "{:?}", thumb.json());
    assert_eq!(thumb.header("content-type"), "image/png");
    let decoded = image::load_from_memory(&thumb.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (96, 96));

    b.terminate();
    // Served from A's cache: B is not there to ask.
    let again = download(&a, &alice, &origin, &id, "");
    assert_eq!(again.status, 200, "{:?}", again.json());
    assert_eq!(again.body, text);
    assert_eq!(again.header("content-type"), "application/pdf");
    let (_, picture_id) = split_mxc(&picture);
    let named = fetch(
        &a,
        &format!(
            "/_matrix/client/v1/media/download/{}/{picture_id}/renamed.png",
            enc(&origin)
        ),
        &alice.token,
    );
    assert_eq!(named.status, 200);
    assert_eq!(named.body, image);
    assert_eq!(
        named.header("content-disposition"),
        "inline; filename=\"renamed.png\""
    );
    // Another size, made from the cached original.
    let other = thumbnail(&a, &alice, &picture, "width=320&height=240&method=scale");
    assert_eq!(other.status, 200, "{:?}", other.json());
    let decoded = image::load_from_memory(&other.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (320, 240));

    // Media B never had, with B down: the fetch fails as a gateway error.
    let (status, body) = download(&a, &alice, &origin, "neverUploaded", "").json();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errcode"], "M_UNKNOWN");
}

/// Hostile files uploaded on B and fetched through A get the safety headers A gives its
/// own media: a sandboxing CSP, `nosniff`, and `attachment` for anything a browser would
/// run (HTML, SVG, and HTML claimed to be a PNG, served as what its bytes are).
#[test]
fn hostile_html_and_svg_from_another_server_are_served_with_the_safety_headers() {
    let a = federating_server();
    let b = federating_server();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let html: &[u8] = b"<html><body><script>parent.__xss(document.domain)</script></body></html>";
    let svg: &[u8] =
        b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(document.domain)\">\
        <script>alert(1)</script><rect width=\"10\" height=\"10\"/></svg>";
    for (content_type, name, body, served_as) in [
        ("text/html", "page.html", html, "text/html"),
        ("image/svg+xml", "picture.svg", svg, "image/svg+xml"),
        ("image/png", "fake.png", html, "application/octet-stream"),
    ] {
        let mxc = upload(&b, &bob, content_type, name, body);
        let (origin, id) = split_mxc(&mxc);
        let fetched = download(&a, &alice, &origin, &id, "");
        assert_eq!(fetched.status, 200, "{name}: {:?}", fetched.json());
        assert_eq!(fetched.body, body, "{name}");
        assert_eq!(fetched.header("content-type"), served_as, "{name}");
        let disposition = fetched.header("content-disposition");
        assert!(
            disposition.starts_with("attachment"),
            "{name}: {disposition}"
        );
        assert_safe_headers_of(&fetched.headers);
        // The same from the cache, asked again.
        let again = download(&a, &alice, &origin, &id, "");
        assert_eq!(again.status, 200, "{name}");
        assert!(
            again
                .header("content-disposition")
                .starts_with("attachment")
        );
        assert_safe_headers_of(&again.headers);
        // No thumbnail is made of them; whatever the answer, it has the headers too.
        let thumb = thumbnail(&a, &alice, &mxc, "width=32&height=32&method=scale");
        assert_ne!(thumb.status, 200, "{name}: a thumbnail of a hostile file");
        assert_safe_headers_of(&thumb.headers);
    }
    // A thumbnail A makes of B's picture carries them as well.
    let picture = upload(&b, &bob, "image/png", "cat.png", &png(64, 64));
    let thumb = thumbnail(&a, &alice, &picture, "width=32&height=32&method=crop");
    assert_eq!(thumb.status, 200, "{:?}", thumb.json());
    assert_eq!(thumb.header("content-type"), "image/png");
    assert_safe_headers_of(&thumb.headers);
}

#[test]
fn the_federation_media_endpoints_answer_signed_requests_with_multipart_and_only_own_media() {
    let a = federating_server();
    let b = federating_server();
    let remote = TestRemote::start();
    let bob = user(&b, "bob");
    let alice = user(&a, "alice");
    let mxc = upload(&b, &bob, "text/plain", "hello.txt", b"hello, federation");
    let (_, id) = split_mxc(&mxc);
    let path = format!("/_matrix/federation/v1/media/download/{id}");

    assert_error(
        remote.request_with(&b, "GET", &path, None, Signing::Unsigned),
        401,
        "M_UNAUTHORIZED",
    );
    assert_error(
        remote.request_with(
            &b,
            "GET",
            &format!("/_matrix/federation/v1/media/thumbnail/{id}?width=32&height=32"),
            None,
            Signing::Unsigned,
        ),
        401,
        "M_UNAUTHORIZED",
    );

    // Signed: the raw multipart answer, read as the spec lays it out.
    let response = b
        .client
        .get(b.url(&path))
        .header(
            "Authorization",
            remote.authorization("GET", &path, &b.server_name(), None),
        )
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"))
        .to_owned();
    let body = response.text().unwrap();
    let expected = format!(
        "--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Disposition: inline; filename=\"hello.txt\"\r\n\r\nhello, federation\r\n--{boundary}--\r\n"
    );
    assert_eq!(body, expected);

    // A thumbnail, signed: the same multipart form around a PNG of the listed size.
    let picture = upload(&b, &bob, "image/png", "big.png", &png(800, 600));
    let (_, picture_id) = split_mxc(&picture);
    let thumb_path = format!(
        "/_matrix/federation/v1/media/thumbnail/{picture_id}?width=100&height=100&method=crop"
    );
    let response = b
        .client
        .get(b.url(&thumb_path))
        .header(
            "Authorization",
            remote.authorization("GET", &thumb_path, &b.server_name(), None),
        )
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"))
        .to_owned();
    let body = response.bytes().unwrap().to_vec();
    let head = format!(
        "--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=\"thumbnail.png\"\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    assert!(
        body.starts_with(head.as_bytes()),
        "{}",
        String::from_utf8_lossy(&body[..200])
    );
    assert!(body.ends_with(tail.as_bytes()));
    let image = image::load_from_memory(&body[head.len()..body.len() - tail.len()]).unwrap();
    assert_eq!((image.width(), image.height()), (320, 240));
    let (status, body) = remote.request(
        &b,
        "GET",
        &format!("/_matrix/federation/v1/media/thumbnail/{picture_id}?width=0&height=100"),
        None,
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_INVALID_PARAM")),
        "{body}"
    );

    // A's copy of B's media is B's to serve, not A's.
    assert_eq!(download(&a, &alice, &b.server_name(), &id, "").status, 200);
    assert_error(remote.request(&a, "GET", &path, None), 404, "M_NOT_FOUND");
    assert_error(
        remote.request(
            &b,
            "GET",
            "/_matrix/federation/v1/media/download/unknownMedia",
            None,
        ),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn the_legacy_endpoints_fetch_remote_media_too_when_they_are_on() {
    let a = federating_server_with_env(&[("HEARTH_MEDIA__LEGACY_UNAUTHENTICATED", "true")]);
    let b = federating_server();
    let bob = user(&b, "bob");
    let mxc = upload(&b, &bob, "text/plain", "legacy.txt", b"legacy path");
    let (origin, id) = split_mxc(&mxc);
    let legacy = |query: &str| {
        let path = format!("/_matrix/media/v3/download/{}/{id}?{query}", enc(&origin));
        let response = a.client.get(a.url(&path)).send().unwrap();
        (
            response.status().as_u16(),
            response.bytes().unwrap().to_vec(),
        )
    };
    assert_eq!(legacy(""), (200, b"legacy path".to_vec()));
    assert_eq!(
        legacy("allow_remote=false"),
        (200, b"legacy path".to_vec()),
        "cached by now"
    );
}

#[test]
fn allow_remote_false_and_a_file_over_the_limit_are_refused() {
    let a = federating_server_with_env(&[("HEARTH_MEDIA__MAX_UPLOAD_BYTES", "20000")]);
    let b = federating_server();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let small = upload(
        &b,
        &bob,
        "application/octet-stream",
        "small.bin",
        &noise(1000),
    );
    let large = upload(
        &b,
        &bob,
        "application/octet-stream",
        "large.bin",
        &noise(50_000),
    );
    let (origin, small_id) = split_mxc(&small);
    let (_, large_id) = split_mxc(&large);

    let (status, body) = download(&a, &alice, &origin, &small_id, "allow_remote=false").json();
    assert_eq!(
        (status, body["errcode"].as_str()),
        (404, Some("M_NOT_FOUND")),
        "{body}"
    );
    let (status, body) =
        thumbnail(&a, &alice, &small, "width=32&height=32&allow_remote=false").json();
    assert_eq!(
        (status, body["errcode"].as_str()),
        (404, Some("M_NOT_FOUND")),
        "{body}"
    );
    // Nothing was fetched for it: with allow_remote left on, the fetch happens now, and
    // then allow_remote=false gets the cached copy (as in Synapse).
    assert_eq!(download(&a, &alice, &origin, &small_id, "").status, 200);
    let cached = download(&a, &alice, &origin, &small_id, "allow_remote=false");
    assert_eq!(cached.status, 200);
    assert_eq!(cached.body, noise(1000));

    let (status, body) = download(&a, &alice, &origin, &large_id, "").json();
    assert_eq!(
        (status, body["errcode"].as_str()),
        (502, Some("M_TOO_LARGE")),
        "{body}"
    );

    let (status, body) = download(&a, &alice, &origin, "noSuchMedia", "").json();
    assert_eq!(
        (status, body["errcode"].as_str()),
        (404, Some("M_NOT_FOUND")),
        "{body}"
    );
}

/// A multipart answer as the spec lays it out, with `part` as the second part (headers,
/// blank line, bytes).
fn multipart(part: &[u8]) -> Response {
    let mut body = b"--abc\r\nContent-Type: application/json\r\n\r\n{}\r\n--abc\r\n".to_vec();
    body.extend_from_slice(part);
    body.extend_from_slice(b"\r\n--abc--\r\n");
    (
        [(header::CONTENT_TYPE, "multipart/mixed; boundary=abc")],
        body,
    )
        .into_response()
}

fn unrecognized() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "errcode": "M_UNRECOGNIZED", "error": "Unrecognized request" })),
    )
        .into_response()
}

#[test]
fn a_server_without_the_new_endpoints_is_asked_for_the_legacy_one_with_allow_remote_false() {
    let legacy_queries = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = legacy_queries.clone();
    let routes = Router::new()
        .route(
            "/_matrix/federation/v1/media/download/{id}",
            get(|| async { unrecognized() }),
        )
        .route(
            "/_matrix/media/v3/download/{server}/{id}",
            get(move |uri: axum::http::Uri| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .unwrap()
                        .push(uri.query().unwrap_or("").to_owned());
                    (
                        [
                            (header::CONTENT_TYPE, "text/plain"),
                            (
                                header::CONTENT_DISPOSITION,
                                "attachment; filename=\"old.txt\"",
                            ),
                        ],
                        "from the legacy endpoint",
                    )
                }
            }),
        );
    let remote = TestRemote::start_with_routes(routes);
    let a = federating_server();
    let alice = user(&a, "alice");
    let fetched = download(&a, &alice, &remote.server_name(), "oldMedia", "");
    assert_eq!(fetched.status, 200, "{:?}", fetched.json());
    assert_eq!(fetched.body, b"from the legacy endpoint");
    assert_eq!(fetched.header("content-type"), "text/plain");
    assert_eq!(
        fetched.header("content-disposition"),
        "inline; filename=\"old.txt\""
    );
    let queries = legacy_queries.lock().unwrap().clone();
    assert_eq!(queries.len(), 1);
    assert!(queries[0].contains("allow_remote=false"), "{queries:?}");
}

#[test]
fn a_location_part_is_followed_but_not_to_a_denied_address() {
    let cdn_hits = Arc::new(AtomicUsize::new(0));
    let hits = cdn_hits.clone();
    let port = Arc::new(std::sync::OnceLock::<u16>::new());
    let port_for_routes = port.clone();
    let routes = Router::new()
        .route(
            "/_matrix/federation/v1/media/download/{id}",
            get(
                move |axum::extract::Path(id): axum::extract::Path<String>| {
                    let port = *port_for_routes.get().unwrap();
                    async move {
                        if id == "moved" {
                            // A plain redirect instead of a multipart answer.
                            let to = format!("https://localhost:{port}/cdn/{id}");
                            return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
                        }
                        let host = if id == "denied" {
                            "127.0.0.2"
                        } else {
                            "localhost"
                        };
                        multipart(
                            format!("Location: https://{host}:{port}/cdn/{id}\r\n\r\n").as_bytes(),
                        )
                    }
                },
            ),
        )
        .route(
            "/cdn/{id}",
            get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        [
                            (header::CONTENT_TYPE, "text/plain"),
                            (header::CONTENT_DISPOSITION, "inline; filename=\"note.txt\""),
                        ],
                        b"from the CDN".to_vec(),
                    )
                }
            }),
        );
    let remote = TestRemote::start_with_routes(routes);
    port.set(remote.port).unwrap();
    let a = federating_server_with_env(&[(
        "HEARTH_FEDERATION__IP_RANGE_DENYLIST",
        "[\"127.0.0.2/32\"]",
    )]);
    let alice = user(&a, "alice");

    let fetched = download(&a, &alice, &remote.server_name(), "redirected", "");
    assert_eq!(fetched.status, 200, "{:?}", fetched.json());
    assert_eq!(fetched.body, b"from the CDN");
    assert_eq!(
        fetched.header("content-disposition"),
        "inline; filename=\"note.txt\""
    );
    assert_eq!(cdn_hits.load(Ordering::SeqCst), 1);
    let moved = download(&a, &alice, &remote.server_name(), "moved", "");
    assert_eq!(moved.status, 200, "{:?}", moved.json());
    assert_eq!(moved.body, b"from the CDN");
    assert_eq!(cdn_hits.load(Ordering::SeqCst), 2);

    let (status, body) = download(&a, &alice, &remote.server_name(), "denied", "").json();
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("127.0.0.2"),
        "{body}"
    );
    assert_eq!(
        cdn_hits.load(Ordering::SeqCst),
        2,
        "the denied address was contacted"
    );
}

#[test]
fn a_streamed_file_without_a_length_is_cut_off_at_the_limit() {
    let routes = Router::new().route(
        "/_matrix/federation/v1/media/download/{id}",
        get(|| async {
            let head = b"--abc\r\nContent-Type: application/json\r\n\r\n{}\r\n--abc\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
            // A chunked answer that would go on for 10 MB.
            let chunks = std::iter::once(head).chain((0..1000).map(|_| vec![7u8; 10_000]));
            let stream = futures_util::stream::iter(chunks.map(Ok::<_, std::io::Error>));
            (
                [(header::CONTENT_TYPE, "multipart/mixed; boundary=abc")],
                Body::from_stream(stream),
            )
        }),
    );
    let remote = TestRemote::start_with_routes(routes);
    let a = federating_server_with_env(&[("HEARTH_MEDIA__MAX_UPLOAD_BYTES", "100000")]);
    let alice = user(&a, "alice");
    let (status, body) = download(&a, &alice, &remote.server_name(), "huge", "").json();
    assert_eq!(
        (status, body["errcode"].as_str()),
        (502, Some("M_TOO_LARGE")),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains("100000"), "{body}");
}

#[test]
fn concurrent_downloads_of_the_same_remote_media_share_one_fetch() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (open, gate) = tokio::sync::watch::channel(false);
    let counter = hits.clone();
    let routes = Router::new().route(
        "/_matrix/federation/v1/media/download/{id}",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                multipart(b"Content-Type: text/plain\r\n\r\nshared")
            }
        }),
    );
    let remote = TestRemote::start_with_routes(routes);
    let a = Arc::new(federating_server());
    let alice = Arc::new(user(&a, "alice"));
    let origin = remote.server_name();
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let (a, alice, origin) = (a.clone(), alice.clone(), origin.clone());
            std::thread::spawn(move || download(&a, &alice, &origin, "sharedMedia", "").body)
        })
        .collect();
    while hits.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give the other requests time to reach A and join the fetch under way. Were they
    // late, they would find the cache and the count would still be one: this can miss
    // a broken join, never fail a working one.
    std::thread::sleep(Duration::from_millis(500));
    open.send_replace(true);
    for client in clients {
        assert_eq!(client.join().unwrap(), b"shared");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn media_not_yet_uploaded_on_its_server_is_passed_on_and_not_cached() {
    let a = federating_server();
    let b = federating_server();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let (status, created) = b.post("/_matrix/media/v1/create", Some(&bob.token), &json!({}));
    assert_eq!(status, 200, "{created}");
    let mxc = created["content_uri"].as_str().unwrap().to_owned();
    let (origin, id) = split_mxc(&mxc);

    // B waits the asked 100 ms for the content, then says so; A passes it on.
    let (status, body) = download(&a, &alice, &origin, &id, "timeout_ms=100").json();
    assert_eq!(
        (status, body["errcode"].as_str()),
        (504, Some("M_NOT_YET_UPLOADED")),
        "{body}"
    );

    let response = b
        .client
        .put(b.url(&format!("/_matrix/media/v3/upload/{}/{id}", enc(&origin))))
        .bearer_auth(&bob.token)
        .header("content-type", "text/plain")
        .body("arrived")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let fetched = download(&a, &alice, &origin, &id, "");
    assert_eq!(
        (fetched.status, fetched.body.as_slice()),
        (200, b"arrived".as_slice())
    );
}
