//! Data directories written by earlier versions (tests/fixtures/data-schema-*.tar.gz,
//! made by tests/fixtures/make-data-dir) open with this one, and a directory of a schema
//! this version does not know is refused with a message saying so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{free_port, listens_on};

const SERVER_NAME: &str = "fixture.hearth.test";

/// Unpacks a fixture archive into a new temporary directory; returns it and `data/`.
fn unpack(name: &str) -> (tempfile::TempDir, PathBuf) {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("run tar");
    assert!(status.success(), "cannot unpack {}", archive.display());
    let data = dir.path().join("data");
    (dir, data)
}

fn hearth(data: &Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .arg("--server-name")
        .arg(SERVER_NAME)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .env("HEARTH_SYNC_WRITES", "false");
    for (key, _) in std::env::vars() {
        if key.starts_with("HEARTH_") && key != "HEARTH_SYNC_WRITES" {
            command.env_remove(key);
        }
    }
    command
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn call(
    client: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if method != "GET" {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// Starts hearth on a fresh copy of the fixture and waits until it answers; returns the
/// copy, the server and its address. Another test's server that took the port first
/// (a free port is free only when chosen) is neither taken for this one (the listening
/// socket must be the child's) nor left to spoil the copy: each try unpacks afresh.
fn start_on_fixture(name: &str) -> (tempfile::TempDir, Running, String) {
    for _ in 0..5 {
        let (dir, data) = unpack(name);
        let port = free_port();
        let mut server = Running(
            hearth(&data, port)
                .stderr(Stdio::piped())
                .spawn()
                .expect("start hearth"),
        );
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if client
                .get(format!("{base}/_matrix/client/versions"))
                .send()
                .is_ok()
                && listens_on(server.0.id(), port)
            {
                return (dir, server, base);
            }
            if let Some(status) = server.0.try_wait().unwrap() {
                let mut text = String::new();
                std::io::Read::read_to_string(server.0.stderr.as_mut().unwrap(), &mut text)
                    .unwrap();
                if text.contains("cannot listen on") {
                    break;
                }
                panic!("hearth refused the old data directory ({status}): {text}");
            }
            assert!(Instant::now() < deadline, "hearth did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    panic!("five ports in a row were taken by others before hearth could bind them");
}

#[test]
fn a_schema_1_data_directory_opens_with_its_accounts_rooms_and_messages() {
    let (_dir, _server, base) = start_on_fixture("data-schema-1.tar.gz");
    let client = reqwest::blocking::Client::new();

    let (status, login) = call(
        &client,
        "POST",
        &format!("{base}/_matrix/client/v3/login"),
        None,
        json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "fixture password" }),
    );
    assert_eq!(status, 200, "{login}");
    let token = login["access_token"].as_str().unwrap();
    let (_, profile) = call(
        &client,
        "GET",
        &format!("{base}/_matrix/client/v3/profile/@alice:{SERVER_NAME}"),
        None,
        Value::Null,
    );
    assert_eq!(profile["displayname"], "Alice");
    let (_, rooms) = call(
        &client,
        "GET",
        &format!("{base}/_matrix/client/v3/joined_rooms"),
        Some(token),
        Value::Null,
    );
    let rooms = rooms["joined_rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    let room = rooms[0].as_str().unwrap().to_owned();
    let (status, page) = call(
        &client,
        "GET",
        &format!("{base}/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50"),
        Some(token),
        Value::Null,
    );
    assert_eq!(status, 200, "{page}");
    let bodies: Vec<&str> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert!(bodies.contains(&"written by schema 1"), "{bodies:?}");
    let (_, name) = call(
        &client,
        "GET",
        &format!("{base}/_matrix/client/v3/rooms/{room}/state/m.room.name/"),
        Some(token),
        Value::Null,
    );
    assert_eq!(name["name"], "Fixture room");
    // And it takes new writes.
    let (status, sent) = call(
        &client,
        "PUT",
        &format!("{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/after-upgrade"),
        Some(token),
        json!({ "msgtype": "m.text", "body": "written after the upgrade" }),
    );
    assert_eq!(status, 200, "{sent}");
}

#[test]
fn a_data_directory_of_an_unknown_schema_is_refused_with_a_clear_message() {
    let (_dir, data) = unpack("data-schema-1.tar.gz");
    {
        let store = hearth::store::Store::open(&data.join("db"), false).unwrap();
        let mut batch = store.batch();
        let newer = hearth::store::SCHEMA_VERSION + 1;
        batch.put_raw(
            hearth::store::Cf::Meta,
            b"schema_version",
            &newer.to_be_bytes(),
        );
        store.write(batch).unwrap();
    }
    let output = hearth(&data, free_port()).output().expect("run hearth");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "holds schema version {}, but this hearth understands version {}",
        hearth::store::SCHEMA_VERSION + 1,
        hearth::store::SCHEMA_VERSION
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
