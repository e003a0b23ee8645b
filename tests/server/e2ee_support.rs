//! Shared steps of the encryption tests: devices with real Ed25519 keys that sign what
//! they upload, and syncs.

#![allow(dead_code)]

use ruma::CanonicalJsonObject;
use ruma::signatures::Ed25519KeyPair;
use serde_json::{Value, json};

use crate::harness::{PASSWORD, TestServer, token};
use crate::room_support::{User, enc};

/// A device's Ed25519 identity key, named after the device as clients name it.
pub struct DeviceKey {
    pair: Ed25519KeyPair,
}

impl DeviceKey {
    pub fn new(device_id: &str) -> Self {
        let document = Ed25519KeyPair::generate();
        Self {
            pair: Ed25519KeyPair::from_der(&document, device_id.to_owned()).unwrap(),
        }
    }

    /// A cross-signing key: its key ID is its own public key.
    pub fn cross_signing() -> Self {
        let document = Ed25519KeyPair::generate();
        let probe = Ed25519KeyPair::from_der(&document, "probe".to_owned()).unwrap();
        let public =
            ruma::serde::Base64::<ruma::serde::base64::Standard>::new(probe.public_key().to_vec())
                .encode();
        Self {
            pair: Ed25519KeyPair::from_der(&document, public).unwrap(),
        }
    }

    pub fn public(&self) -> String {
        ruma::serde::Base64::<ruma::serde::base64::Standard>::new(self.pair.public_key().to_vec())
            .encode()
    }

    pub fn sign(&self, user_id: &str, value: &mut Value) {
        let mut object: CanonicalJsonObject = serde_json::from_value(value.clone()).unwrap();
        ruma::signatures::sign_json(user_id, &self.pair, &mut object).unwrap();
        *value = serde_json::to_value(object).unwrap();
    }
}

/// The device's keys, signed by the device.
pub fn device_keys(user: &User, key: &DeviceKey) -> Value {
    let mut keys = json!({
        "user_id": user.id,
        "device_id": user.device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("curve25519:{}", user.device): format!("curve-{}", user.device),
            format!("ed25519:{}", user.device): key.public(),
        },
    });
    key.sign(&user.id, &mut keys);
    keys
}

/// `n` signed one-time keys with IDs `{prefix}{i}`.
pub fn one_time_keys(user: &User, key: &DeviceKey, prefix: &str, n: usize) -> Value {
    let mut keys = serde_json::Map::new();
    for i in 0..n {
        let mut k = json!({ "key": format!("otk-{prefix}{i}") });
        key.sign(&user.id, &mut k);
        keys.insert(format!("signed_curve25519:{prefix}{i}"), k);
    }
    Value::Object(keys)
}

#[track_caller]
pub fn upload(server: &TestServer, user: &User, body: Value) -> Value {
    let (status, answer) = server.post("/_matrix/client/v3/keys/upload", Some(&user.token), &body);
    assert_eq!(status, 200, "{answer}");
    answer
}

/// A device with keys and `otks` one-time keys uploaded.
pub fn keyed_device(server: &TestServer, user: &User, otks: usize) -> DeviceKey {
    let key = DeviceKey::new(&user.device);
    upload(
        server,
        user,
        json!({
            "device_keys": device_keys(user, &key),
            "one_time_keys": one_time_keys(user, &key, "A", otks),
        }),
    );
    key
}

#[track_caller]
pub fn sync(server: &TestServer, user: &User, since: Option<&str>, timeout_ms: u64) -> Value {
    let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
    if let Some(since) = since {
        path.push_str(&format!("&since={}", enc(since)));
    }
    let (status, body) = server.get(&path, Some(&user.token));
    assert_eq!(status, 200, "{body}");
    body
}

pub fn next_batch(body: &Value) -> String {
    body["next_batch"].as_str().unwrap().to_owned()
}

pub fn changed(body: &Value) -> Vec<String> {
    list(&body["device_lists"]["changed"])
}

pub fn left(body: &Value) -> Vec<String> {
    list(&body["device_lists"]["left"])
}

pub fn list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
pub fn query(server: &TestServer, user: &User, body: Value) -> Value {
    let (status, answer) = server.post("/_matrix/client/v3/keys/query", Some(&user.token), &body);
    assert_eq!(status, 200, "{answer}");
    answer
}

#[track_caller]
pub fn claim(server: &TestServer, user: &User, body: Value) -> Value {
    let (status, answer) = server.post("/_matrix/client/v3/keys/claim", Some(&user.token), &body);
    assert_eq!(status, 200, "{answer}");
    answer
}

pub fn send_to_device(
    server: &TestServer,
    user: &User,
    event_type: &str,
    txn: &str,
    messages: Value,
) -> (u16, Value) {
    server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/sendToDevice/{}/{}",
            enc(event_type),
            enc(txn)
        ),
        Some(&user.token),
        &json!({ "messages": messages }),
    )
}

/// Sends `text` from `from` to `to`'s device `device` as a to-device message.
pub fn send_text_to_device(
    server: &TestServer,
    from: &User,
    event_type: &str,
    txn: &str,
    to: &User,
    device: &str,
    text: &str,
) {
    let (status, body) = send_to_device(
        server,
        from,
        event_type,
        txn,
        json!({ to.id.clone(): { device: {"text": text} } }),
    );
    assert_eq!(status, 200, "{body}");
}

/// The status of Bob's long-poll `request` when the server stops during a hold: a
/// to-device message for his other device `BOBTWO` wakes the poll (with nothing of its
/// own to give), and the server stops within the hold's second (the server runs with
/// `limits.to_device_hold_ms` at 1000). The poll asks for 120 s and the harness client
/// gives up after 30 s: only an answer at shutdown comes back with a status.
pub fn status_when_stopped_during_a_hold(
    server: &mut TestServer,
    alice: &User,
    bob: &User,
    request: reqwest::blocking::RequestBuilder,
) -> Option<u16> {
    let waiting = std::thread::spawn(move || request.send().map(|r| r.status().as_u16()));
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_text_to_device(
        server,
        alice,
        "m.test",
        "other-device",
        bob,
        "BOBTWO",
        "not for this device",
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(server.terminate().success());
    waiting.join().unwrap().ok()
}

/// `name` logged in (password [`PASSWORD`]) as another device, `id`.
pub fn second_device(server: &TestServer, name: &str, id: &str) -> User {
    let (status, login) = server.post(
        "/_matrix/client/v3/login",
        None,
        &json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": PASSWORD,
            "device_id": id,
        }),
    );
    assert_eq!(status, 200, "{login}");
    User {
        id: login["user_id"].as_str().unwrap().to_owned(),
        token: token(&login),
        device: id.to_owned(),
    }
}
