use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::json;

use crate::harness::{TestServer, assert_error, into_json, token};

#[test]
fn unknown_endpoints_and_methods_are_unrecognized() {
    let server = TestServer::start();
    assert_error(
        server.get("/_matrix/client/v3/no_such_thing", None),
        404,
        "M_UNRECOGNIZED",
    );
    assert_error(
        server.get("/_hearth/definitely/not/here", None),
        404,
        "M_UNRECOGNIZED",
    );
    assert_error(
        server.send("DELETE", "/_matrix/client/versions", None, &json!({})),
        405,
        "M_UNRECOGNIZED",
    );
    assert_error(
        server.get("/_matrix/client/v3/logout", None),
        405,
        "M_UNRECOGNIZED",
    );
}

#[test]
fn bodies_that_are_not_json_or_the_wrong_shape_are_told_apart() {
    let server = TestServer::start();
    assert_error(
        server.post_raw("/_matrix/client/v3/login", "{not json"),
        400,
        "M_NOT_JSON",
    );
    assert_error(
        server.post_raw("/_matrix/client/v3/login", "\u{0}\u{1}"),
        400,
        "M_NOT_JSON",
    );
    assert_error(
        server.post_raw("/_matrix/client/v3/login", "[1, 2]"),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        server.post_raw("/_matrix/client/v3/register", r#"{"username": ["a"]}"#),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        server.post_raw("/_matrix/client/v3/register", r#"{"inhibit_login": "yes"}"#),
        400,
        "M_BAD_JSON",
    );
}

#[test]
fn missing_unknown_and_malformed_tokens() {
    let server = TestServer::start();
    let whoami = "/_matrix/client/v3/account/whoami";
    assert_error(server.get(whoami, None), 401, "M_MISSING_TOKEN");
    let body = assert_error(
        server.get(whoami, Some("hat_made_up")),
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_eq!(body["soft_logout"], false);
    let response = server
        .client
        .get(server.url(whoami))
        .header("Authorization", "Basic abc")
        .send()
        .unwrap();
    assert_error(into_json(response), 401, "M_MISSING_TOKEN");
    // The deprecated query parameter still authenticates.
    let access = token(&server.register("rae"));
    let (status, me) = server.get(&format!("{whoami}?access_token={access}"), None);
    assert_eq!(status, 200);
    assert_eq!(me["user_id"], format!("@rae:{}", server.server_name()));
}

#[test]
fn oversized_bodies_are_too_large() {
    let server = TestServer::start_with_env(&[("HEARTH_MAX_REQUEST_BYTES", "4096")]);
    let big = json!({ "username": "x".repeat(10_000) }).to_string();
    assert_error(
        server.post_raw("/_matrix/client/v3/register", &big),
        413,
        "M_TOO_LARGE",
    );
    // Without a Content-Length (chunked) the limit still holds. Raw TCP, so the whole
    // body is written before the answer is read and no write races the 413.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let head = "POST /_matrix/client/v3/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    raw.write_all(head.as_bytes()).unwrap();
    raw.write_all(format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len()).as_bytes())
        .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("M_TOO_LARGE"), "{answer}");
}

#[test]
fn every_response_carries_cors_headers_and_preflight_succeeds() {
    let server = TestServer::start();
    for response in [
        server
            .client
            .get(server.url("/_matrix/client/versions"))
            .send()
            .unwrap(),
        server.client.get(server.url("/nowhere")).send().unwrap(),
        server
            .client
            .request(
                reqwest::Method::OPTIONS,
                server.url("/_matrix/client/v3/login"),
            )
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "POST")
            .send()
            .unwrap(),
    ] {
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(
            headers["access-control-allow-methods"],
            "GET, POST, PUT, DELETE, OPTIONS"
        );
        assert_eq!(
            headers["access-control-allow-headers"],
            "X-Requested-With, Content-Type, Authorization"
        );
        assert!(response.status().as_u16() < 500);
    }
}

#[test]
fn garbage_requests_never_bring_the_server_down() {
    let server = TestServer::start();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let long_path = format!("/_matrix/client/v3/devices/{}", "A".repeat(5000));
    let access = token(&server.register("sam"));
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        ("POST", "/_matrix/client/v3/login".into(), deep.clone().into_bytes()),
        ("POST", "/_matrix/client/v3/register".into(), vec![0xff, 0xfe, 0x00]),
        ("POST", "/_matrix/client/v3/login".into(), br#"{"type": "m.login.password", "identifier": 7}"#.to_vec()),
        ("POST", "/_matrix/client/v3/login".into(), br#"{"type": "m.login.password", "user": "@:::", "password": "x"}"#.to_vec()),
        ("GET", long_path, vec![]),
        ("PUT", "/_matrix/client/v3/devices/%FF%00".into(), b"{}".to_vec()),
        ("POST", "/_matrix/client/v3/delete_devices".into(), br#"{"devices": [1, 2]}"#.to_vec()),
        ("POST", "/_matrix/client/v3/account/password".into(), br#"{"new_password": "abcdefghij", "auth": {"type": "m.login.password", "session": 5}}"#.to_vec()),
        ("GET", "/_matrix/client/v3/register/available?username=%00%00".into(), vec![]),
    ];
    for (method, path, body) in cases {
        let response = server
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                server.url(&path),
            )
            .bearer_auth(&access)
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let (_, json) = into_json(response);
        assert!(
            (400..500).contains(&status),
            "{method} {path}: {status} {json}"
        );
        assert!(
            json["errcode"].as_str().unwrap().starts_with("M_"),
            "{json}"
        );
    }
    // A request line the HTTP parser rejects.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.write_all(b"BLAH /\x01 HTTP/9.9\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink);
    assert_eq!(server.get("/_matrix/client/versions", None).0, 200);
}

#[test]
fn discovery_endpoints_describe_the_server() {
    let server = TestServer::start();
    let (status, versions) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200);
    assert!(
        versions["versions"]
            .as_array()
            .unwrap()
            .contains(&json!("v1.1"))
    );
    let (status, well_known) = server.get("/.well-known/matrix/client", None);
    assert_eq!(status, 200);
    assert_eq!(
        well_known["m.homeserver"]["base_url"],
        format!("http://{}", server.server_name())
    );
    // The web client or, where it is not built, the page saying how to build it.
    let page = server.client.get(server.url("/")).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}
