//! GIF search through a fake Giphy: a local HTTP server answering in Giphy's documented
//! format, with real GIFs behind its image URLs.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use image::{Rgba, RgbaImage};
use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error, token};

const KEY: &str = "testkey";

/// A request the fake Giphy received: its path and decoded query.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: Vec<(String, String)>,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct FakeGiphy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    preview: Vec<u8>,
    original: Vec<u8>,
}

fn gif(width: u32, height: u32, frames: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut bytes);
        for i in 0..frames {
            let frame = RgbaImage::from_pixel(width, height, Rgba([40 * i as u8, 90, 200, 255]));
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    bytes
}

fn giphy_gif(base: &str, id: &str, title: &str) -> Value {
    let rendition = |name: &str, w: u32, h: u32| {
        json!({
            "url": format!("{base}/media/{id}/{name}.gif"),
            "width": w.to_string(),
            "height": h.to_string(),
            "size": "1234",
        })
    };
    json!({
        "type": "gif",
        "id": id,
        "url": format!("https://giphy.com/gifs/{id}"),
        "title": title,
        "rating": "g",
        "images": {
            "fixed_width_small": rendition("100w", 20, 10),
            "fixed_width": rendition("200w", 20, 10),
            "original": rendition("giphy", 40, 30),
        },
    })
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

impl FakeGiphy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let preview = gif(20, 10, 2);
        let original = gif(40, 30, 3);
        let (seen2, preview2, original2) = (seen.clone(), preview.clone(), original.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, preview, original) =
                    (seen2.clone(), preview2.clone(), original2.clone());
                std::thread::spawn(move || serve(stream, port, &seen, &preview, &original));
            }
        });
        Self {
            port,
            seen,
            preview,
            original,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn hearth(&self) -> TestServer {
        // The stand-in's files are on loopback, which the default denylist refuses.
        self.hearth_with_denylist("[]")
    }

    fn hearth_with_denylist(&self, denylist: &str) -> TestServer {
        TestServer::start_with_env(&[
            ("HEARTH_GIFS__GIPHY_API_KEY", KEY),
            ("HEARTH_GIFS__GIPHY_BASE_URL", &self.base()),
            ("HEARTH_FEDERATION__IP_RANGE_DENYLIST", denylist),
        ])
    }
}

fn serve(
    mut stream: TcpStream,
    port: u16,
    seen: &Mutex<Vec<Seen>>,
    preview: &[u8],
    original: &[u8],
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let request = Seen {
        path: path.to_owned(),
        query,
    };
    seen.lock().unwrap().push(request.clone());
    let base = format!("http://127.0.0.1:{port}");
    let json_type = "application/json";
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "gifs", "search"] => {
            if request.param("q") == Some("fail") {
                let body = br#"{"meta":{"status":500,"msg":"Internal Server Error"}}"#;
                return respond(&mut stream, "500 Internal Server Error", json_type, body);
            }
            let offset: u64 = request.param("offset").unwrap_or("0").parse().unwrap();
            let body = json!({
                "data": [
                    giphy_gif(&base, "catDance1", "Cat Dance GIF"),
                    giphy_gif(&base, "catJump2", "Cat Jump GIF"),
                ],
                "pagination": { "total_count": 3, "count": 2, "offset": offset },
                "meta": { "status": 200, "msg": "OK", "response_id": "abc" },
            });
            respond(
                &mut stream,
                "200 OK",
                json_type,
                body.to_string().as_bytes(),
            );
        }
        ["v1", "gifs", "broken"] => {
            respond(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                b"down",
            );
        }
        ["v1", "gifs", "missing"] => {
            let body = br#"{"meta":{"status":404,"msg":"Not Found"}}"#;
            respond(&mut stream, "404 Not Found", json_type, body);
        }
        ["v1", "gifs", id] => {
            let body = json!({
                "data": giphy_gif(&base, id, "Cat Dance GIF"),
                "meta": { "status": 200, "msg": "OK" },
            });
            respond(
                &mut stream,
                "200 OK",
                json_type,
                body.to_string().as_bytes(),
            );
        }
        ["media", _, "100w.gif"] => respond(&mut stream, "200 OK", "image/gif", preview),
        ["media", _, "giphy.gif"] => respond(&mut stream, "200 OK", "image/gif", original),
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"no"),
    }
}

fn user(server: &TestServer, name: &str) -> String {
    token(&server.register(name))
}

struct Fetched {
    status: u16,
    headers: reqwest::header::HeaderMap,
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

#[test]
fn without_a_key_gif_search_is_unrecognized() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let body = assert_error(
        server.get("/_hearth/client/v1/gifs/search?q=cat", Some(&alice)),
        404,
        "M_UNRECOGNIZED",
    );
    assert_eq!(body["error"], "GIF search is not configured on this server");
    assert_error(
        server.get("/_hearth/client/v1/gifs/abc/preview", Some(&alice)),
        404,
        "M_UNRECOGNIZED",
    );
    assert_error(
        server.post(
            "/_hearth/client/v1/gifs/abc/import",
            Some(&alice),
            &json!({}),
        ),
        404,
        "M_UNRECOGNIZED",
    );
}

#[test]
fn every_gif_endpoint_needs_an_access_token() {
    let giphy = FakeGiphy::start();
    let server = giphy.hearth();
    assert_error(
        server.get("/_hearth/client/v1/gifs/search?q=cat", None),
        401,
        "M_MISSING_TOKEN",
    );
    assert_error(
        server.get("/_hearth/client/v1/gifs/catDance1/preview", None),
        401,
        "M_MISSING_TOKEN",
    );
    assert_error(
        server.post("/_hearth/client/v1/gifs/catDance1/import", None, &json!({})),
        401,
        "M_MISSING_TOKEN",
    );
    assert!(giphy.seen().is_empty(), "{:?}", giphy.seen());
}

#[test]
fn search_answers_without_anything_that_leads_to_giphy() {
    let giphy = FakeGiphy::start();
    let server = giphy.hearth();
    let alice = user(&server, "alice");
    let (status, body) = server.get(
        "/_hearth/client/v1/gifs/search?q=cat%20dance&limit=2&offset=0",
        Some(&alice),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "results": [
                { "id": "catDance1", "title": "Cat Dance GIF", "width": 20, "height": 10 },
                { "id": "catJump2", "title": "Cat Jump GIF", "width": 20, "height": 10 },
            ],
            "next_offset": 2,
        })
    );
    let text = body.to_string();
    assert!(!text.contains("giphy") && !text.contains(KEY) && !text.contains("http"));

    let seen = giphy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/v1/gifs/search");
    assert_eq!(seen[0].param("api_key"), Some(KEY));
    assert_eq!(seen[0].param("q"), Some("cat dance"));
    assert_eq!(seen[0].param("limit"), Some("2"));
    assert_eq!(seen[0].param("rating"), Some("g"));

    // The last page has no next_offset; an oversized limit is shortened to 50.
    let (status, body) = server.get(
        "/_hearth/client/v1/gifs/search?q=cat&offset=1&limit=500",
        Some(&alice),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.get("next_offset").is_none(), "{body}");
    let last = giphy.seen().pop().unwrap();
    assert_eq!(last.param("offset"), Some("1"));
    assert_eq!(last.param("limit"), Some("50"));
}

#[test]
fn bad_search_parameters_are_refused_before_giphy_is_asked() {
    let giphy = FakeGiphy::start();
    let server = giphy.hearth();
    let alice = user(&server, "alice");
    let search = |query: &str| {
        server.get(
            &format!("/_hearth/client/v1/gifs/search{query}"),
            Some(&alice),
        )
    };
    assert_error(search(""), 400, "M_MISSING_PARAM");
    assert_error(search("?q=%20"), 400, "M_INVALID_PARAM");
    assert_error(search("?q=cat&limit=0"), 400, "M_INVALID_PARAM");
    assert_error(search("?q=cat&limit=many"), 400, "M_INVALID_PARAM");
    assert_error(search("?q=cat&offset=-1"), 400, "M_INVALID_PARAM");
    assert_error(search("?q=cat&offset=5000"), 400, "M_INVALID_PARAM");
    assert!(giphy.seen().is_empty(), "{:?}", giphy.seen());
}

#[test]
fn a_preview_is_proxied_with_the_media_safety_headers() {
    let giphy = FakeGiphy::start();
    let server = giphy.hearth();
    let alice = user(&server, "alice");
    let preview = fetch(&server, "/_hearth/client/v1/gifs/catDance1/preview", &alice);
    assert_eq!(preview.status, 200);
    assert_eq!(preview.body, giphy.preview);
    assert_eq!(preview.header("content-type"), "image/gif");
    assert_eq!(preview.header("x-content-type-options"), "nosniff");
    assert!(
        preview
            .header("content-security-policy")
            .starts_with("sandbox;")
    );
    assert!(preview.header("content-disposition").starts_with("inline"));
    assert!(preview.header("cache-control").contains("max-age="));
    let seen = giphy.seen();
    assert_eq!(seen[0].path, "/v1/gifs/catDance1");
    assert_eq!(seen[0].param("api_key"), Some(KEY));
    assert_eq!(seen[1].path, "/media/catDance1/100w.gif");
    // The image request goes to the URL Giphy named, without the key.
    assert_eq!(seen[1].param("api_key"), None);
}

#[test]
fn gif_ids_must_be_alphanumeric() {
    let giphy = FakeGiphy::start();
    let server = giphy.hearth();
    let alice = user(&server, "alice");
    for id in ["cat%3Fapi_key%3Dx", "cat-dance", "cat.dance", "cat%2Fdance"] {
        assert_error(
            server.get(
                &format!("/_hearth/client/v1/gifs/{id}/preview"),
                Some(&alice),
            ),
            400,
            "M_INVALID_PARAM",
        );
        assert_error(
            server.post(
                &format!("/_hearth/client/v1/gifs/{id}/import"),
                Some(&alice),
                &json!({}),
            ),
            400,
            "M_INVALID_PARAM",
        );
    }
    assert!(giphy.seen().is_empty(), "{:?}", giphy.seen());
    assert_error(
        server.get("/_hearth/client/v1/gifs/missing/preview", Some(&alice)),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn an_imported_gif_is_served_from_the_media_repository() {
    let giphy = FakeGiphy::start();
    let server = giphy.hearth();
    let alice = user(&server, "alice");
    let (status, body) = server.post(
        "/_hearth/client/v1/gifs/catDance1/import",
        Some(&alice),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["title"], "Cat Dance GIF");
    assert_eq!(
        body["info"],
        json!({ "mimetype": "image/gif", "w": 40, "h": 30, "size": giphy.original.len() })
    );
    let uri = body["content_uri"].as_str().unwrap();
    let rest = uri
        .strip_prefix(&format!("mxc://{}/", server.server_name()))
        .unwrap_or_else(|| panic!("not a local mxc URI: {uri}"));
    assert_eq!(
        giphy.seen().last().unwrap().path,
        "/media/catDance1/giphy.gif"
    );

    let download = fetch(
        &server,
        &format!(
            "/_matrix/client/v1/media/download/{}/{rest}",
            server.server_name()
        ),
        &alice,
    );
    assert_eq!(download.status, 200);
    assert_eq!(download.body, giphy.original);
    assert_eq!(download.header("content-type"), "image/gif");
    assert!(!body.to_string().contains(KEY));
}

#[test]
fn giphy_failures_are_bad_gateway_errors_without_the_key() {
    let giphy = FakeGiphy::start();
    let server = giphy.hearth();
    let alice = user(&server, "alice");
    let body = assert_error(
        server.get("/_hearth/client/v1/gifs/search?q=fail", Some(&alice)),
        502,
        "M_UNKNOWN",
    );
    assert!(body["error"].as_str().unwrap().contains("Giphy"), "{body}");
    assert!(!body.to_string().contains(KEY));
    let body = assert_error(
        server.post(
            "/_hearth/client/v1/gifs/broken/import",
            Some(&alice),
            &json!({}),
        ),
        502,
        "M_UNKNOWN",
    );
    assert!(!body.to_string().contains(KEY));

    // Nobody listening at all.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = TestServer::start_with_env(&[
        ("HEARTH_GIFS__GIPHY_API_KEY", KEY),
        ("HEARTH_GIFS__GIPHY_BASE_URL", &dead),
    ]);
    let alice = user(&server, "alice");
    let body = assert_error(
        server.get("/_hearth/client/v1/gifs/catDance1/preview", Some(&alice)),
        502,
        "M_UNKNOWN",
    );
    assert!(!body.to_string().contains(KEY));
}

/// The configured Giphy address is the operator's choice and is asked as usual; the file
/// URLs in its answers are not, and pass `federation.ip_range_denylist` (by default
/// loopback, where this stand-in serves them): neither a preview nor an import fetches one.
#[test]
fn files_giphy_names_at_denied_addresses_are_not_fetched() {
    let giphy = FakeGiphy::start();
    let server = giphy.hearth_with_denylist("[\"127.0.0.0/8\", \"::1/128\"]");
    let alice = user(&server, "alice");
    let body = assert_error(
        server.get("/_hearth/client/v1/gifs/catDance1/preview", Some(&alice)),
        502,
        "M_UNKNOWN",
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("does not connect to"),
        "{body}"
    );
    assert_error(
        server.post(
            "/_hearth/client/v1/gifs/catDance1/import",
            Some(&alice),
            &json!({}),
        ),
        502,
        "M_UNKNOWN",
    );
    // Giphy's API was asked twice; no file was.
    let seen: Vec<String> = giphy.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, ["/v1/gifs/catDance1", "/v1/gifs/catDance1"]);
}
