//! The listener serves HTTPS with a configured certificate, and refuses to start with a
//! certificate or key it cannot use.

use std::process::{Command, Stdio};

use serde_json::json;

use crate::federation_support::{TestRemote, federating_server, test_ca, tls_client};
use crate::harness::{StartOptions, TestServer, token};

#[test]
fn a_server_with_a_certificate_answers_the_client_api_over_https() {
    let server = TestServer::start_with(StartOptions {
        env: Vec::new(),
        tls: Some(test_ca().issue()),
    });
    assert!(server.url("/").starts_with("https://"));
    let (status, body) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200, "{body}");
    let alice = token(&server.register("alice"));
    let (status, body) = server.get("/_matrix/client/v3/account/whoami", Some(&alice));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], format!("@alice:{}", server.server_name()));
    // The well-known base URL follows the scheme.
    let (_, body) = server.get("/.well-known/matrix/client", None);
    assert_eq!(
        body["m.homeserver"]["base_url"],
        format!("https://{}", server.server_name())
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::blocking::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/_matrix/client/versions",
            server.port
        ))
        .send();
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

#[test]
fn a_tls_server_stops_cleanly_and_comes_back_with_its_data() {
    let mut server = federating_server();
    let body = server.register("bob");
    let bob = token(&body);
    let (status, _) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/profile/@bob:{}/displayname",
            server.server_name()
        ),
        Some(&bob),
        &json!({ "displayname": "Bob" }),
    );
    assert_eq!(status, 200);
    assert!(server.terminate().success());
    server.restart();
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v3/profile/@bob:{}/displayname",
            server.server_name()
        ),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["displayname"], "Bob");
}

/// Runs the binary with the given TLS files and returns its exit status and stderr.
fn start_failure(cert: &std::path::Path, key: &std::path::Path) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn unusable_certificates_and_keys_stop_the_server_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem) = test_ca().issue_pem();
    let (_, other_key_pem) = test_ca().issue_pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let other_key = dir.path().join("other-key.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    std::fs::write(&other_key, other_key_pem).unwrap();
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");

    let (ok, err) = start_failure(&missing, &key);
    assert!(!ok);
    assert!(err.contains("cannot read the TLS certificate"), "{err}");
    assert!(err.contains("missing.pem"), "{err}");

    let (ok, err) = start_failure(&cert, &missing);
    assert!(!ok);
    assert!(err.contains("cannot read the TLS private key"), "{err}");

    let (ok, err) = start_failure(&garbage, &key);
    assert!(!ok);
    assert!(err.contains("holds no PEM certificate"), "{err}");

    let (ok, err) = start_failure(&cert, &garbage);
    assert!(!ok);
    assert!(err.contains("holds no PEM private key"), "{err}");

    let (ok, err) = start_failure(&cert, &other_key);
    assert!(!ok);
    assert!(err.contains("does not belong to the certificate"), "{err}");

    // Only one of the two is a configuration error.
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("must be set together"), "{err}");
}

#[test]
fn the_test_remote_publishes_its_key_over_tls_and_signs_with_it() {
    let remote = TestRemote::start();
    let keys = tls_client()
        .get(format!(
            "https://localhost:{}/_matrix/key/v2/server",
            remote.port
        ))
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    assert_eq!(keys["server_name"], remote.server_name());
    assert_eq!(
        keys["verify_keys"][remote.key_id()]["key"],
        remote.public_key_base64()
    );
    let mut map = ruma::signatures::PublicKeyMap::new();
    map.insert(
        remote.server_name(),
        [(
            remote.key_id().to_owned(),
            ruma::serde::Base64::parse(remote.public_key_base64()).unwrap(),
        )]
        .into(),
    );
    let object: ruma::CanonicalJsonObject = serde_json::from_value(keys).unwrap();
    ruma::signatures::verify_json(&map, &object).unwrap();

    let mut signed = json!({ "hello": "world" });
    remote.sign_json(&mut signed);
    let object: ruma::CanonicalJsonObject = serde_json::from_value(signed).unwrap();
    ruma::signatures::verify_json(&map, &object).unwrap();
    let mut event = json!({
        "room_id": "!room:example.org",
        "sender": format!("@bob:{}", remote.server_name()),
        "type": "m.room.message",
        "content": { "body": "hi", "msgtype": "m.text" },
        "prev_events": [],
        "auth_events": [],
        "depth": 1,
        "origin_server_ts": 1,
    });
    remote.sign_event(&mut event, "11");
    let object: ruma::CanonicalJsonObject = serde_json::from_value(event).unwrap();
    let rules = ruma::RoomVersionId::V11.rules().unwrap();
    assert_eq!(
        ruma::signatures::verify_event(&map, &object, &rules).unwrap(),
        ruma::signatures::Verified::All
    );
    let header = remote.authorization("GET", "/x", "dest.example", None);
    assert!(header.starts_with(&format!(
        "X-Matrix origin=\"{}\",destination=\"dest.example\",key=\"{}\",sig=\"",
        remote.server_name(),
        remote.key_id()
    )));
}
