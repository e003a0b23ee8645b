//! The bundled web client: served from `web_client_dir` with long-lived caching for
//! hashed assets, a strict CSP, SPA routes, and nothing outside that directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use crate::harness::{TestServer, assert_error};

const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
img-src 'self' blob: data:; connect-src 'self' ws: wss:; object-src 'none'; \
frame-ancestors 'none'; base-uri 'none'";

const INDEX: &str = "<!doctype html><title>Hearth test client</title><script type=module src=/assets/index-Ab12_x.js></script>";
const SCRIPT: &str = "console.log('hashed asset')";
/// The smallest valid WebAssembly module: magic number and version.
const WASM: &[u8] = b"\0asm\x01\0\0\0";
/// Stands in for the build's gzipped copy: only its being served as-is matters here.
const WASM_GZ: &[u8] = b"\x1f\x8b pretend gzip";
const SECRET: &str = "the secret outside dist";

/// A fake build next to a file that must never be served, plus a symlink to it.
fn fake_build(root: &Path) -> String {
    let dist = root.join("dist");
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), INDEX).unwrap();
    std::fs::write(dist.join("assets/index-Ab12_x.js"), SCRIPT).unwrap();
    std::fs::write(dist.join("assets/crypto-Cd34_y.wasm"), WASM).unwrap();
    std::fs::write(dist.join("assets/crypto-Cd34_y.wasm.gz"), WASM_GZ).unwrap();
    std::fs::write(dist.join("favicon.svg"), "<svg/>").unwrap();
    std::fs::write(dist.join(".env"), SECRET).unwrap();
    std::fs::write(root.join("secret.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), dist.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), dist.join("assets/leak.js")).unwrap();
    dist.to_str().unwrap().to_owned()
}

fn get(server: &TestServer, path: &str) -> reqwest::blocking::Response {
    server.client.get(server.url(path)).send().unwrap()
}

fn header<'a>(response: &'a reqwest::blocking::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Sends the request line exactly as written: HTTP libraries would normalise `..`.
fn raw_get(server: &TestServer, target: &str) -> String {
    String::from_utf8_lossy(&raw_get_with(server, target, "")).into_owned()
}

/// The raw answer to a GET with extra header lines (each ending in CRLF), undecoded.
fn raw_get_with(server: &TestServer, target: &str, headers: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    answer
}

/// The head of a raw answer, lower-cased, and its body.
fn split_answer(answer: &[u8]) -> (String, Vec<u8>) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    (
        String::from_utf8_lossy(&answer[..end]).to_lowercase(),
        answer[end + 4..].to_vec(),
    )
}

#[test]
fn index_and_assets_are_served_with_caching_and_a_strict_csp() {
    let dir = tempfile::tempdir().unwrap();
    let dist = fake_build(dir.path());
    let server = TestServer::start_with_env(&[("HEARTH_WEB_CLIENT_DIR", &dist)]);

    let index = get(&server, "/");
    assert_eq!(index.status(), 200);
    assert_eq!(header(&index, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&index, "cache-control"), "no-cache");
    assert_eq!(header(&index, "content-security-policy"), CSP);
    assert_eq!(header(&index, "x-content-type-options"), "nosniff");
    assert_eq!(index.text().unwrap(), INDEX);

    let asset = get(&server, "/assets/index-Ab12_x.js");
    assert_eq!(asset.status(), 200);
    assert_eq!(
        header(&asset, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&asset, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&asset, "x-content-type-options"), "nosniff");
    assert_eq!(asset.text().unwrap(), SCRIPT);

    // The encryption module: browsers compile it while it streams only as application/wasm.
    let wasm = get(&server, "/assets/crypto-Cd34_y.wasm");
    assert_eq!(wasm.status(), 200);
    assert_eq!(header(&wasm, "content-type"), "application/wasm");
    assert_eq!(
        header(&wasm, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(wasm.bytes().unwrap().as_ref(), WASM);

    // Browsers that take gzip get the build's gzipped copy, labelled as such.
    let (head, body) = split_answer(&raw_get_with(
        &server,
        "/assets/crypto-Cd34_y.wasm",
        "Accept-Encoding: gzip, deflate, br\r\n",
    ));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("\r\ncontent-encoding: gzip"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/wasm"),
        "{head}"
    );
    assert!(head.contains("\r\nvary: accept-encoding"), "{head}");
    assert_eq!(body, WASM_GZ);
    // Others, and those refusing gzip, get the file as it is.
    for accept in [
        "",
        "Accept-Encoding: br\r\n",
        "Accept-Encoding: gzip;q=0\r\n",
    ] {
        let (head, body) =
            split_answer(&raw_get_with(&server, "/assets/crypto-Cd34_y.wasm", accept));
        assert!(!head.contains("content-encoding"), "{accept}: {head}");
        assert!(
            head.contains("\r\nvary: accept-encoding"),
            "{accept}: {head}"
        );
        assert_eq!(body, WASM, "{accept}");
    }

    // Files at the top of dist are not hashed, so browsers must revalidate them.
    let icon = get(&server, "/favicon.svg");
    assert_eq!(icon.status(), 200);
    assert_eq!(header(&icon, "content-type"), "image/svg+xml");
    assert_eq!(header(&icon, "cache-control"), "no-cache");
}

#[test]
fn client_routes_get_the_app_but_api_paths_and_missing_assets_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let dist = fake_build(dir.path());
    let server = TestServer::start_with_env(&[("HEARTH_WEB_CLIENT_DIR", &dist)]);

    for route in [
        "/login",
        "/room/",
        "/room/!abc:example.org",
        "/room/%23alias%3Aexample.org",
        "/a/b/c",
    ] {
        let page = get(&server, route);
        assert_eq!(page.status(), 200, "{route}");
        assert_eq!(header(&page, "cache-control"), "no-cache", "{route}");
        assert_eq!(header(&page, "content-security-policy"), CSP, "{route}");
        assert_eq!(page.text().unwrap(), INDEX, "{route}");
    }

    // A missing hashed file is a 404, not HTML the browser would try to run.
    let missing = get(&server, "/assets/index-gone.js");
    assert_eq!(missing.status(), 404);
    assert_eq!(header(&missing, "x-content-type-options"), "nosniff");

    assert_error(
        server.get("/_matrix/client/v3/no_such_thing", None),
        404,
        "M_UNRECOGNIZED",
    );
    assert_error(server.get("/_hearth/nothing", None), 404, "M_UNRECOGNIZED");
    assert_error(server.get("/_synapse/nothing", None), 404, "M_UNRECOGNIZED");
    assert_error(
        server.get("/.well-known/nothing", None),
        404,
        "M_UNRECOGNIZED",
    );
    // Only GET and HEAD reach the app.
    assert_error(
        server.send("POST", "/login", None, &serde_json::json!({})),
        404,
        "M_UNRECOGNIZED",
    );
}

#[test]
fn nothing_outside_the_directory_or_hidden_inside_it_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let dist = fake_build(dir.path());
    let server = TestServer::start_with_env(&[("HEARTH_WEB_CLIENT_DIR", &dist)]);

    for target in [
        "/../secret.txt",
        "/../../../../etc/passwd",
        "/assets/../../secret.txt",
        "/assets/../../../../../etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/..\\secret.txt",
        "//etc/passwd",
        "/leak.txt",
        "/assets/leak.js",
        "/.env",
    ] {
        let answer = raw_get(&server, target);
        assert!(answer.starts_with("HTTP/1.1 "), "{target}: {answer}");
        assert!(!answer.contains(SECRET), "{target} leaked: {answer}");
        assert!(!answer.contains("root:x:"), "{target} leaked: {answer}");
    }
    // Through a symlink inside assets/ is still outside: a 404, not the app.
    assert!(raw_get(&server, "/assets/leak.js").starts_with("HTTP/1.1 404"));
}

#[test]
fn a_server_without_a_built_client_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("never-built");
    let server =
        TestServer::start_with_env(&[("HEARTH_WEB_CLIENT_DIR", missing.to_str().unwrap())]);

    for route in ["/", "/login"] {
        let page = get(&server, route);
        assert_eq!(page.status(), 200, "{route}");
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&page, "x-content-type-options"), "nosniff");
        let csp = header(&page, "content-security-policy").to_owned();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(!csp.contains("script-src"), "{csp}");
        let text = page.text().unwrap();
        assert!(text.contains("npm run build"), "{text}");
        assert!(text.contains("web_client_dir"), "{text}");
    }
    assert_eq!(get(&server, "/assets/index-Ab12_x.js").status(), 404);
    // The Matrix API is unaffected.
    assert_eq!(get(&server, "/_matrix/client/versions").status(), 200);
}
