//! End-to-end encryption across two real Hearth servers: to-device messages both ways,
//! key queries and one-time key claims forwarded to the user's server, device-list
//! changes reaching the other server's syncs, and the federation key endpoints.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2ee_support::{
    DeviceKey, changed, claim, device_keys, keyed_device, next_batch, query, send_to_device, sync,
    upload,
};
use crate::federation_support::{TestRemote, federating_server_with_env};
use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, user};

/// Polls until `check` gives a value, or fails after `limit`.
#[track_caller]
fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn two_servers_sharing_a_room() -> (TestServer, TestServer, User, User) {
    let env = [("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "2")];
    let a = federating_server_with_env(&env);
    let b = federating_server_with_env(&env);
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12"}),
    );
    let (status, body) = b.post(
        &format!(
            "/_matrix/client/v3/join/{}?via={}",
            enc(&room),
            enc(&a.server_name())
        ),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    (a, b, alice, bob)
}

/// Syncs from `since` until `found` picks something out of a response.
fn sync_until<T>(
    server: &TestServer,
    user: &User,
    since: &str,
    what: &str,
    mut found: impl FnMut(&Value) -> Option<T>,
) -> T {
    let mut since = since.to_owned();
    eventually(Duration::from_secs(20), what, || {
        let body = sync(server, user, Some(&since), 1000);
        let result = found(&body);
        since = next_batch(&body);
        result
    })
}

fn texts(body: &Value) -> Option<Vec<String>> {
    let texts: Vec<String> = body["to_device"]["events"]
        .as_array()?
        .iter()
        .filter_map(|e| e["content"]["text"].as_str().map(str::to_owned))
        .collect();
    (!texts.is_empty()).then_some(texts)
}

#[test]
fn keys_to_device_messages_and_device_lists_cross_between_servers() {
    let (a, b, alice, bob) = two_servers_sharing_a_room();
    let alice_key = keyed_device(&a, &alice, 2);
    keyed_device(&b, &bob, 1);

    // Bob's server asks Alice's for her keys.
    let body = query(&b, &bob, json!({"device_keys": {alice.id.clone(): []}}));
    assert_eq!(
        body["device_keys"][&alice.id][&alice.device]["keys"][format!("ed25519:{}", alice.device)],
        alice_key.public(),
        "{body}"
    );
    assert_eq!(body["failures"], json!({}));

    // One-time keys claimed over federation, each once, then none left.
    let request =
        json!({"one_time_keys": {alice.id.clone(): {alice.device.clone(): "signed_curve25519"}}});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = claim(&b, &bob, request.clone());
        if let Some(keys) = body["one_time_keys"][&alice.id][&alice.device].as_object() {
            ids.extend(keys.keys().cloned());
        }
    }
    assert_eq!(ids, ["signed_curve25519:A0", "signed_curve25519:A1"]);

    // Alice's to-device message reaches Bob's device on the other server, and back.
    let bob_since = next_batch(&sync(&b, &bob, None, 0));
    let alice_since = next_batch(&sync(&a, &alice, None, 0));
    let (status, _) = send_to_device(
        &a,
        &alice,
        "m.test",
        "fed1",
        json!({ bob.id.clone(): { bob.device.clone(): {"text": "hi bob"} } }),
    );
    assert_eq!(status, 200);
    let got = sync_until(&b, &bob, &bob_since, "Alice's to-device message", texts);
    assert_eq!(got, ["hi bob"]);
    let (status, _) = send_to_device(
        &b,
        &bob,
        "m.test",
        "fed2",
        json!({ alice.id.clone(): { "*": {"text": "hi alice"} } }),
    );
    assert_eq!(status, 200);
    let got = sync_until(&a, &alice, &alice_since, "Bob's to-device message", texts);
    assert_eq!(got, ["hi alice"]);

    // Alice's new keys reach Bob's sync as a device-list change.
    let bob_since = next_batch(&sync(&b, &bob, None, 0));
    let new_key = DeviceKey::new(&alice.device);
    upload(
        &a,
        &alice,
        json!({"device_keys": device_keys(&alice, &new_key)}),
    );
    sync_until(&b, &bob, &bob_since, "Alice's device-list change", |body| {
        changed(body).contains(&alice.id).then_some(())
    });
    let body = query(&b, &bob, json!({"device_keys": {alice.id.clone(): []}}));
    assert_eq!(
        body["device_keys"][&alice.id][&alice.device]["keys"][format!("ed25519:{}", alice.device)],
        new_key.public()
    );
}

#[test]
fn to_device_messages_for_a_server_that_is_down_survive_a_restart_of_the_sender() {
    let (mut a, mut b, alice, bob) = two_servers_sharing_a_room();
    let bob_since = next_batch(&sync(&b, &bob, None, 0));
    // Bob's server is down: the message waits in Alice's server's queue, which then
    // dies without any shutdown code running.
    b.kill_9();
    let (status, body) = send_to_device(
        &a,
        &alice,
        "m.test",
        "while-down",
        json!({ bob.id.clone(): { bob.device.clone(): {"text": "while you were away"} } }),
    );
    assert_eq!(status, 200, "{body}");
    a.kill_9();
    b.restart();
    a.restart();
    let mut since = bob_since.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let body = sync(&b, &bob, Some(&since), 1000);
        since = next_batch(&body);
        if let Some(got) = texts(&body) {
            break got;
        }
        if Instant::now() > deadline {
            panic!(
                "the queued message did not arrive\nA: {}\nB: {}",
                a.stop_and_logs(),
                b.stop_and_logs()
            );
        }
    };
    assert_eq!(got, ["while you were away"]);
    // Sent once: after it, only the next message arrives.
    let (status, _) = send_to_device(
        &a,
        &alice,
        "m.test",
        "after",
        json!({ bob.id.clone(): { bob.device.clone(): {"text": "and now"} } }),
    );
    assert_eq!(status, 200);
    let got = sync_until(&b, &bob, &since, "the second to-device message", texts);
    assert_eq!(got, ["and now"]);
}

#[test]
fn an_unreachable_server_is_a_failure_and_the_others_answer() {
    let env = [("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "2")];
    let a = federating_server_with_env(&env);
    let alice = user(&a, "alice");
    keyed_device(&a, &alice, 1);
    let nowhere = "@ghost:localhost:1";
    let body = query(
        &a,
        &alice,
        json!({"device_keys": {alice.id.clone(): [], nowhere: []}, "timeout": 5000}),
    );
    assert!(
        body["device_keys"][&alice.id][&alice.device].is_object(),
        "{body}"
    );
    assert!(body["failures"]["localhost:1"].is_object(), "{body}");
    let body = claim(
        &a,
        &alice,
        json!({"one_time_keys": {nowhere: {"DEV": "signed_curve25519"}}, "timeout": 5000}),
    );
    assert!(body["failures"]["localhost:1"].is_object(), "{body}");
}

#[test]
fn the_federation_key_endpoints_serve_local_users_only() {
    let a = crate::federation_support::federating_server();
    let remote = TestRemote::start();
    let alice = user(&a, "alice");
    let key = keyed_device(&a, &alice, 1);
    let (status, body) = remote.request(
        &a,
        "GET",
        &format!("/_matrix/federation/v1/user/devices/{}", enc(&alice.id)),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["stream_id"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(
        body["devices"][0]["keys"]["keys"][format!("ed25519:{}", alice.device)],
        key.public()
    );
    let (status, body) = remote.request(
        &a,
        "POST",
        "/_matrix/federation/v1/user/keys/query",
        Some(&json!({"device_keys": {alice.id.clone(): []}})),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["device_keys"][&alice.id][&alice.device].is_object());
    let claim_body =
        json!({"one_time_keys": {alice.id.clone(): {alice.device.clone(): "signed_curve25519"}}});
    let (status, body) = remote.request(
        &a,
        "POST",
        "/_matrix/federation/v1/user/keys/claim",
        Some(&claim_body),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["one_time_keys"][&alice.id][&alice.device]["signed_curve25519:A0"].is_object(),
        "{body}"
    );
    let (status, body) = remote.request(
        &a,
        "POST",
        "/_matrix/federation/v1/user/keys/query",
        Some(&json!({"device_keys": {"@someone:elsewhere.example": []}})),
    );
    assert_eq!(status, 400, "{body}");
    // A to-device EDU claiming a sender of another server is refused.
    let bob_since = next_batch(&sync(&a, &alice, None, 0));
    let txn = json!({
        "origin": remote.server_name(),
        "origin_server_ts": 1,
        "pdus": [],
        "edus": [{"edu_type": "m.direct_to_device", "content": {
            "sender": "@mallory:elsewhere.example",
            "type": "m.test",
            "message_id": "m1",
            "messages": {alice.id.clone(): {alice.device.clone(): {"text": "forged"}}},
        }}, {"edu_type": "m.direct_to_device", "content": {
            "sender": format!("@carol:{}", remote.server_name()),
            "type": "m.test",
            "message_id": "m2",
            "messages": {alice.id.clone(): {alice.device.clone(): {"text": "genuine"}}},
        }}],
    });
    let (status, body) = remote.request(&a, "PUT", "/_matrix/federation/v1/send/t1", Some(&txn));
    assert_eq!(status, 200, "{body}");
    let body = sync(&a, &alice, Some(&bob_since), 0);
    assert_eq!(texts(&body).unwrap_or_default(), ["genuine"]);
}

/// Alice's cross-signing keys: a master key and a self-signing key signed by it.
fn upload_cross_signing(server: &TestServer, alice: &User) -> (DeviceKey, DeviceKey) {
    let master = DeviceKey::cross_signing();
    let self_signing = DeviceKey::cross_signing();
    let key = |key: &DeviceKey, usage: &str| {
        json!({
            "user_id": alice.id,
            "usage": [usage],
            "keys": { format!("ed25519:{}", key.public()): key.public() },
        })
    };
    let mut ss_key = key(&self_signing, "self_signing");
    master.sign(&alice.id, &mut ss_key);
    let (status, body) = server.post(
        "/_matrix/client/v3/keys/device_signing/upload",
        Some(&alice.token),
        &json!({"master_key": key(&master, "master"), "self_signing_key": ss_key}),
    );
    assert_eq!(status, 200, "{body}");
    (master, self_signing)
}

#[test]
fn device_list_changes_are_kept_by_the_other_server_and_answered_while_the_first_is_down() {
    let (mut a, b, alice, bob) = two_servers_sharing_a_room();
    keyed_device(&a, &alice, 0);
    // Bob's server fetches Alice's list once and keeps it.
    let body = query(&b, &bob, json!({"device_keys": {alice.id.clone(): []}}));
    assert!(
        body["device_keys"][&alice.id][&alice.device].is_object(),
        "{body}"
    );

    // Alice signs in on a phone with keys, names it, and sets up cross-signing: each
    // change reaches Bob's server as an EDU, and his sync.
    let bob_since = next_batch(&sync(&b, &bob, None, 0));
    let (status, login) = a.login("alice", crate::harness::PASSWORD);
    assert_eq!(status, 200, "{login}");
    let phone = User {
        id: alice.id.clone(),
        token: login["access_token"].as_str().unwrap().to_owned(),
        device: login["device_id"].as_str().unwrap().to_owned(),
    };
    let phone_key = keyed_device(&a, &phone, 0);
    let (status, body) = a.send(
        "PUT",
        &format!("/_matrix/client/v3/devices/{}", enc(&phone.device)),
        Some(&phone.token),
        &json!({"display_name": "Alice's phone"}),
    );
    assert_eq!(status, 200, "{body}");
    let (master, _) = upload_cross_signing(&a, &alice);
    let bob_since = sync_until(&b, &bob, &bob_since, "Alice's changes", |body| {
        changed(body).contains(&alice.id).then(|| next_batch(body))
    });
    let expected = |body: &Value| {
        body["device_keys"][&alice.id][&phone.device]["unsigned"]["device_display_name"]
            == "Alice's phone"
            && body["master_keys"][&alice.id]["keys"][format!("ed25519:{}", master.public())]
                == master.public()
    };
    let body = eventually(Duration::from_secs(20), "Alice's phone and keys", || {
        let body = query(&b, &bob, json!({"device_keys": {alice.id.clone(): []}}));
        expected(&body).then_some(body)
    });
    assert_eq!(
        body["device_keys"][&alice.id][&phone.device]["keys"][format!("ed25519:{}", phone.device)],
        phone_key.public()
    );

    // The phone is signed out: gone from Bob's answer too.
    let (status, body) = a.post("/_matrix/client/v3/logout", Some(&phone.token), &json!({}));
    assert_eq!(status, 200, "{body}");
    sync_until(&b, &bob, &bob_since, "the phone's removal", |body| {
        changed(body).contains(&alice.id).then_some(())
    });
    let body = eventually(Duration::from_secs(20), "the phone gone", || {
        let body = query(&b, &bob, json!({"device_keys": {alice.id.clone(): []}}));
        body["device_keys"][&alice.id]
            .get(&phone.device)
            .is_none()
            .then_some(body)
    });
    assert!(body["device_keys"][&alice.id][&alice.device].is_object());

    // With Alice's server down, Bob's server answers from what it kept, without failure.
    a.kill_9();
    let down = query(
        &b,
        &bob,
        json!({"device_keys": {alice.id.clone(): []}, "timeout": 2000}),
    );
    assert_eq!(down["failures"], json!({}), "{down}");
    assert_eq!(down["device_keys"], body["device_keys"]);
    assert_eq!(down["master_keys"], body["master_keys"]);
}
