//! Device keys, one-time and fallback keys, device lists and cross-signing on one server.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::e2ee_support::{
    DeviceKey, changed, claim, device_keys, keyed_device, left, next_batch, one_time_keys, query,
    sync, upload,
};
use crate::harness::{PASSWORD, TestServer, assert_error, token};
use crate::room_support::{User, alice_and_bob_in_a_room, join, user};

fn otk_counts(server: &TestServer, user: &User) -> Value {
    sync(server, user, None, 0)["device_one_time_keys_count"].clone()
}

#[test]
fn uploaded_device_keys_are_queried_by_others_with_the_device_name() {
    let server = TestServer::start();
    let (alice, bob, _room) = alice_and_bob_in_a_room(&server);
    let key = DeviceKey::new(&alice.device);
    let answer = upload(
        &server,
        &alice,
        json!({
            "device_keys": device_keys(&alice, &key),
            "one_time_keys": one_time_keys(&alice, &key, "A", 3),
        }),
    );
    assert_eq!(answer["one_time_key_counts"]["signed_curve25519"], 3);

    let body = query(
        &server,
        &bob,
        json!({"device_keys": {alice.id.clone(): []}}),
    );
    let keys = &body["device_keys"][&alice.id][&alice.device];
    assert_eq!(
        keys["keys"][format!("ed25519:{}", alice.device)],
        key.public()
    );
    assert!(keys["signatures"][&alice.id].is_object(), "{body}");
    assert!(body["failures"].as_object().unwrap().is_empty());
    // Asking for one device, or an unknown one.
    let body = query(
        &server,
        &bob,
        json!({"device_keys": {alice.id.clone(): ["NOSUCH"]}}),
    );
    assert_eq!(body["device_keys"][&alice.id], json!({}));
    assert_eq!(otk_counts(&server, &alice)["signed_curve25519"], 3);
}

#[test]
fn device_keys_for_another_device_or_without_signatures_are_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let key = DeviceKey::new(&alice.device);
    // Bob uploading Alice's keys.
    let response = server.post(
        "/_matrix/client/v3/keys/upload",
        Some(&bob.token),
        &json!({"device_keys": device_keys(&alice, &key)}),
    );
    assert_error(response, 400, "M_INVALID_PARAM");
    // Without the signatures field the spec requires.
    let mut keys = device_keys(&alice, &key);
    keys.as_object_mut().unwrap().remove("signatures");
    let response = server.post(
        "/_matrix/client/v3/keys/upload",
        Some(&alice.token),
        &json!({"device_keys": keys}),
    );
    assert_error(response, 400, "M_BAD_JSON");
    // A one-time key ID without an algorithm, and a changed one-time key.
    let response = server.post(
        "/_matrix/client/v3/keys/upload",
        Some(&alice.token),
        &json!({"one_time_keys": {"nocolon": "abc"}}),
    );
    assert_error(response, 400, "M_INVALID_PARAM");
    upload(
        &server,
        &alice,
        json!({"one_time_keys": {"signed_curve25519:X": {"key": "k1"}}}),
    );
    let response = server.post(
        "/_matrix/client/v3/keys/upload",
        Some(&alice.token),
        &json!({"one_time_keys": {"signed_curve25519:X": {"key": "k2"}}}),
    );
    assert_error(response, 400, "M_INVALID_PARAM");
    // Nothing stored for the refused uploads.
    let body = query(
        &server,
        &bob,
        json!({"device_keys": {alice.id.clone(): []}}),
    );
    assert_eq!(body["device_keys"][&alice.id], json!({}));
    // Without a token.
    let response = server.post("/_matrix/client/v3/keys/upload", None, &json!({}));
    assert_error(response, 401, "M_MISSING_TOKEN");
}

#[test]
fn one_time_keys_are_claimed_once_then_the_fallback_key() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let key = keyed_device(&server, &alice, 2);
    let mut fallback = json!({"key": "fallback-key", "fallback": true});
    key.sign(&alice.id, &mut fallback);
    upload(
        &server,
        &alice,
        json!({"fallback_keys": {"signed_curve25519:F1": fallback}}),
    );
    let initial = sync(&server, &alice, None, 0);
    assert_eq!(
        initial["device_unused_fallback_key_types"],
        json!(["signed_curve25519"])
    );

    let request =
        json!({"one_time_keys": {alice.id.clone(): {alice.device.clone(): "signed_curve25519"}}});
    let mut ids = Vec::new();
    for _ in 0..4 {
        let body = claim(&server, &bob, request.clone());
        let keys = body["one_time_keys"][&alice.id][&alice.device]
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(keys.len(), 1, "{body}");
        ids.push(keys.keys().next().unwrap().clone());
    }
    assert_eq!(
        ids,
        [
            "signed_curve25519:A0",
            "signed_curve25519:A1",
            "signed_curve25519:F1",
            "signed_curve25519:F1"
        ]
    );
    let body = sync(&server, &alice, Some(&next_batch(&initial)), 0);
    assert_eq!(body["device_one_time_keys_count"]["signed_curve25519"], 0);
    assert_eq!(body["device_unused_fallback_key_types"], json!([]));
    // A new fallback key is unused again.
    let mut fallback = json!({"key": "fallback-key-2", "fallback": true});
    key.sign(&alice.id, &mut fallback);
    upload(
        &server,
        &alice,
        json!({"fallback_keys": {"signed_curve25519:F2": fallback}}),
    );
    let body = sync(&server, &alice, None, 0);
    assert_eq!(
        body["device_unused_fallback_key_types"],
        json!(["signed_curve25519"])
    );
}

/// The count a sync shows follows each claim and upload, when the counts were read just
/// before (kept in memory) and when they were not.
#[test]
fn the_one_time_key_count_follows_claims_and_uploads() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let key = keyed_device(&server, &alice, 3);
    let count = || otk_counts(&server, &alice)["signed_curve25519"].clone();
    let claim_one = || {
        let request = json!({"one_time_keys": {alice.id.clone(): {alice.device.clone(): "signed_curve25519"}}});
        claim(&server, &bob, request)
    };
    assert_eq!(count(), 3);
    claim_one();
    assert_eq!(count(), 2);
    // Two claims with no sync between them.
    claim_one();
    claim_one();
    assert_eq!(count(), 0);
    upload(
        &server,
        &alice,
        json!({"one_time_keys": one_time_keys(&alice, &key, "B", 2)}),
    );
    assert_eq!(count(), 2);
    let body = claim_one();
    assert!(
        body["one_time_keys"][&alice.id][&alice.device]
            .get("signed_curve25519:B0")
            .is_some(),
        "{body}"
    );
    assert_eq!(count(), 1);
    claim_one();
    assert_eq!(count(), 0);
    // Nothing left and no fallback key: the claim finds nothing and the count stays.
    let body = claim_one();
    assert_eq!(body["one_time_keys"], json!({}), "{body}");
    assert_eq!(count(), 0);
}

#[test]
fn concurrent_claims_never_get_the_same_one_time_key() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    keyed_device(&server, &alice, 20);
    let claimers: Vec<User> = (0..8).map(|i| user(&server, &format!("c{i}"))).collect();
    let request =
        json!({"one_time_keys": {alice.id.clone(): {alice.device.clone(): "signed_curve25519"}}});
    let claimed: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = claimers
            .iter()
            .map(|claimer| {
                let (server, request, alice) = (&server, &request, &alice);
                scope.spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..3 {
                        let body = claim(server, claimer, request.clone());
                        if let Some(keys) =
                            body["one_time_keys"][&alice.id][&alice.device].as_object()
                        {
                            got.extend(keys.keys().cloned());
                        }
                    }
                    got
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(claimed.len(), 20, "{claimed:?}");
    assert_eq!(unique.len(), 20, "a key was given out twice: {claimed:?}");
}

#[test]
fn device_lists_show_key_changes_joins_and_leaves_of_shared_rooms() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let carol = user(&server, "carol");
    let dave = user(&server, "dave");
    let first = sync(&server, &bob, None, 0);
    let since = next_batch(&first);
    keyed_device(&server, &alice, 1);
    keyed_device(&server, &dave, 1);
    let body = sync(&server, &bob, Some(&since), 0);
    assert_eq!(
        changed(&body),
        std::slice::from_ref(&alice.id),
        "{}",
        body["device_lists"]
    );
    let (status, changes) = server.get(
        &format!(
            "/_matrix/client/v3/keys/changes?from={}&to={}",
            crate::room_support::enc(&since),
            crate::room_support::enc(&next_batch(&body))
        ),
        Some(&bob.token),
    );
    assert_eq!(status, 200, "{changes}");
    assert_eq!(changes["changed"], json!([alice.id]));

    // Carol joining the shared room is a change; her leaving is a leave.
    let since = next_batch(&body);
    join(&server, &carol, &room);
    let body = sync(&server, &bob, Some(&since), 0);
    assert!(
        changed(&body).contains(&carol.id),
        "{}",
        body["device_lists"]
    );
    let since = next_batch(&body);
    let (status, _) = server.post(
        &format!(
            "/_matrix/client/v3/rooms/{}/leave",
            crate::room_support::enc(&room)
        ),
        Some(&carol.token),
        &json!({}),
    );
    assert_eq!(status, 200);
    let body = sync(&server, &bob, Some(&since), 0);
    assert_eq!(
        left(&body),
        std::slice::from_ref(&carol.id),
        "{}",
        body["device_lists"]
    );

    // A long-polling sync wakes for a key change.
    let since = next_batch(&body);
    let body = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| sync(&server, &bob, Some(&since), 20_000));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let other = DeviceKey::new(&alice.device);
        upload(
            &server,
            &alice,
            json!({"device_keys": device_keys(&alice, &other)}),
        );
        waiter.join().unwrap()
    });
    assert_eq!(changed(&body), std::slice::from_ref(&alice.id));
}

#[test]
fn deleting_a_device_removes_its_keys_and_is_a_device_list_change() {
    let server = TestServer::start();
    let (alice, bob, _room) = alice_and_bob_in_a_room(&server);
    let (status, login) = server.login("alice", PASSWORD);
    assert_eq!(status, 200);
    let second = User {
        id: alice.id.clone(),
        token: token(&login),
        device: login["device_id"].as_str().unwrap().to_owned(),
    };
    keyed_device(&server, &second, 5);
    let since = next_batch(&sync(&server, &bob, None, 0));
    let (status, body) = server.send(
        "DELETE",
        &format!("/_matrix/client/v3/devices/{}", second.device),
        Some(&alice.token),
        &json!({"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD}}),
    );
    assert_eq!(status, 200, "{body}");
    let body = query(
        &server,
        &bob,
        json!({"device_keys": {alice.id.clone(): []}}),
    );
    assert_eq!(body["device_keys"][&alice.id], json!({}));
    let body = claim(
        &server,
        &bob,
        json!({"one_time_keys": {alice.id.clone(): {second.device.clone(): "signed_curve25519"}}}),
    );
    assert_eq!(body["one_time_keys"], json!({}));
    let body = sync(&server, &bob, Some(&since), 0);
    assert_eq!(changed(&body), std::slice::from_ref(&alice.id));
}

#[test]
fn a_users_new_device_keys_show_in_their_other_devices_sync() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let since = next_batch(&sync(&server, &alice, None, 0));
    let (status, login) = server.login("alice", PASSWORD);
    assert_eq!(status, 200);
    let second = User {
        id: alice.id.clone(),
        token: token(&login),
        device: login["device_id"].as_str().unwrap().to_owned(),
    };
    keyed_device(&server, &second, 1);
    let body = sync(&server, &alice, Some(&since), 0);
    assert_eq!(changed(&body), std::slice::from_ref(&alice.id));
}

#[test]
fn devices_list_unknown_fields_as_null() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let (status, body) = server.get("/_matrix/client/v3/devices", Some(&alice.token));
    assert_eq!(status, 200);
    let device = &body["devices"][0];
    for field in ["display_name", "last_seen_ip", "last_seen_ts"] {
        assert!(device.get(field).is_some(), "{field} missing: {body}");
    }
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/devices/{}", alice.device),
        Some(&alice.token),
    );
    assert_eq!(status, 200);
    assert!(body.get("display_name").is_some(), "{body}");
}

#[test]
fn cross_signing_keys_need_the_password_to_replace_and_signatures_are_checked() {
    let server = TestServer::start();
    let (alice, bob, _room) = alice_and_bob_in_a_room(&server);
    let device = keyed_device(&server, &alice, 0);
    let master = DeviceKey::cross_signing();
    let self_signing = DeviceKey::cross_signing();
    let cross_key = |key: &DeviceKey, usage: &str, signer: Option<&DeviceKey>| {
        let mut value = json!({
            "user_id": alice.id,
            "usage": [usage],
            "keys": { format!("ed25519:{}", key.public()): key.public() },
        });
        if let Some(signer) = signer {
            signer.sign(&alice.id, &mut value);
        }
        value
    };
    let master_key = cross_key(&master, "master", None);
    let ss_key = cross_key(&self_signing, "self_signing", Some(&master));
    // The first upload needs no UIA.
    let (status, body) = server.post(
        "/_matrix/client/v3/keys/device_signing/upload",
        Some(&alice.token),
        &json!({"master_key": master_key, "self_signing_key": ss_key}),
    );
    assert_eq!(status, 200, "{body}");
    let body = query(
        &server,
        &bob,
        json!({"device_keys": {alice.id.clone(): []}}),
    );
    assert_eq!(body["master_keys"][&alice.id]["usage"], json!(["master"]));
    assert_eq!(
        body["self_signing_keys"][&alice.id]["usage"],
        json!(["self_signing"])
    );
    // Replacing them does.
    let other = DeviceKey::cross_signing();
    let (status, body) = server.post(
        "/_matrix/client/v3/keys/device_signing/upload",
        Some(&alice.token),
        &json!({"master_key": cross_key(&other, "master", None)}),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body["session"].is_string());

    // Alice's self-signing key signs her device; a forged signature is refused.
    let mut signed = device_keys(&alice, &device);
    self_signing.sign(&alice.id, &mut signed);
    let mut forged = device_keys(&alice, &device);
    DeviceKey::cross_signing().sign(&alice.id, &mut forged);
    forged["signatures"][&alice.id]
        .as_object_mut()
        .unwrap()
        .retain(|id, _| id != &format!("ed25519:{}", alice.device));
    let (status, body) = server.post(
        "/_matrix/client/v3/keys/signatures/upload",
        Some(&alice.token),
        &json!({alice.id.clone(): {alice.device.clone(): forged}}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["failures"][&alice.id][&alice.device].is_object(),
        "{body}"
    );
    let (status, body) = server.post(
        "/_matrix/client/v3/keys/signatures/upload",
        Some(&alice.token),
        &json!({alice.id.clone(): {alice.device.clone(): signed}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["failures"], json!({}));
    let body = query(
        &server,
        &bob,
        json!({"device_keys": {alice.id.clone(): []}}),
    );
    let sigs = &body["device_keys"][&alice.id][&alice.device]["signatures"][&alice.id];
    assert!(
        sigs.get(format!("ed25519:{}", self_signing.public()))
            .is_some(),
        "{body}"
    );
}

/// SyTest's "Local device key changes appear in v2 /sync" and "Changing master key
/// notifies local users" upload device keys that their device did not sign (empty
/// `signatures`, a key not named after the device, a signature made for another device):
/// as Synapse, the server stores them (clients verify what they fetch). `/keys/query`
/// always answers `unsigned`, with the device's name only when it has one.
#[test]
fn device_keys_are_stored_without_checking_the_devices_own_signature() {
    let server = TestServer::start();
    let (alice, bob, _room) = alice_and_bob_in_a_room(&server);
    // A device logged in without a display name; Alice's first one gets a name.
    let (status, login) = server.login("alice", PASSWORD);
    assert_eq!(status, 200);
    let nameless = User {
        id: alice.id.clone(),
        token: token(&login),
        device: login["device_id"].as_str().unwrap().to_owned(),
    };
    let (status, _) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/devices/{}", alice.device),
        Some(&alice.token),
        &json!({"display_name": "Laptop"}),
    );
    assert_eq!(status, 200);
    let since = next_batch(&sync(&server, &bob, None, 0));
    let unsigned = json!({
        "user_id": nameless.id,
        "device_id": nameless.device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {"ed25519:test": "c3op6BJi8aUnDGA541Q6TbTPmbiy1GqGv-zzXDQM9Us"},
        "signatures": {},
    });
    upload(&server, &nameless, json!({"device_keys": unsigned}));
    // A real Ed25519 key whose signature does not verify.
    let mut wrong = device_keys(&alice, &DeviceKey::new(&alice.device));
    wrong["keys"][format!("ed25519:{}", alice.device)] =
        json!(DeviceKey::new(&alice.device).public());
    upload(&server, &alice, json!({"device_keys": wrong}));

    let body = sync(&server, &bob, Some(&since), 0);
    assert_eq!(changed(&body), std::slice::from_ref(&alice.id));
    let body = query(
        &server,
        &bob,
        json!({"device_keys": {alice.id.clone(): []}}),
    );
    let devices = &body["device_keys"][&alice.id];
    let stored = &devices[&nameless.device];
    assert_eq!(stored["keys"], unsigned["keys"], "{body}");
    assert_eq!(stored["signatures"], json!({}));
    assert_eq!(stored["unsigned"], json!({}), "{body}");
    let named = &devices[&alice.device];
    assert_eq!(named["keys"], wrong["keys"], "{body}");
    assert_eq!(
        named["unsigned"],
        json!({"device_display_name": "Laptop"}),
        "{body}"
    );
}

/// A user-signing key is seen only by its owner: replacing it alone is a device-list
/// change for the owner's own devices and nobody else (SyTest's "Changing user-signing
/// key notifies local users"), and its signature of another user's master key is shown
/// to the signer only.
#[test]
fn a_user_signing_key_and_its_signatures_are_seen_by_its_owner_only() {
    let server = TestServer::start();
    let (alice, bob, _room) = alice_and_bob_in_a_room(&server);
    let cross_key = |user: &User, key: &DeviceKey, usage: &str, signer: Option<&DeviceKey>| {
        let mut value = json!({
            "user_id": user.id,
            "usage": [usage],
            "keys": { format!("ed25519:{}", key.public()): key.public() },
        });
        if let Some(signer) = signer {
            signer.sign(&user.id, &mut value);
        }
        value
    };
    let upload_signing = |user: &User, body: Value| {
        let mut body = body;
        body["auth"] = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.id},
            "password": PASSWORD,
        });
        let (status, answer) = server.post(
            "/_matrix/client/v3/keys/device_signing/upload",
            Some(&user.token),
            &body,
        );
        assert_eq!(status, 200, "{answer}");
    };
    let alice_master = DeviceKey::cross_signing();
    upload_signing(
        &alice,
        json!({"master_key": cross_key(&alice, &alice_master, "master", None)}),
    );
    let bob_master = DeviceKey::cross_signing();
    let bob_master_key = cross_key(&bob, &bob_master, "master", None);
    upload_signing(&bob, json!({"master_key": bob_master_key}));
    let alice_since = next_batch(&sync(&server, &alice, None, 0));
    let bob_since = next_batch(&sync(&server, &bob, None, 0));

    let user_signing = DeviceKey::cross_signing();
    upload_signing(
        &alice,
        json!({"user_signing_key": cross_key(&alice, &user_signing, "user_signing", Some(&alice_master))}),
    );
    // Bob changes something of his own afterwards, so his sync has news either way.
    keyed_device(&server, &bob, 0);
    let body = sync(&server, &bob, Some(&bob_since), 0);
    assert_eq!(changed(&body), std::slice::from_ref(&bob.id), "{body}");
    let body = sync(&server, &alice, Some(&alice_since), 0);
    assert!(changed(&body).contains(&alice.id), "{body}");
    let body = query(
        &server,
        &bob,
        json!({"device_keys": {alice.id.clone(): []}}),
    );
    assert!(body["user_signing_keys"].get(&alice.id).is_none(), "{body}");

    // Alice signs Bob's master key with her user-signing key.
    let mut signed = bob_master_key.clone();
    user_signing.sign(&alice.id, &mut signed);
    let (status, answer) = server.post(
        "/_matrix/client/v3/keys/signatures/upload",
        Some(&alice.token),
        &json!({bob.id.clone(): {bob_master.public(): signed}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["failures"], json!({}));
    let signature_id = format!("ed25519:{}", user_signing.public());
    let seen_by = |viewer: &User| {
        let body = query(
            &server,
            viewer,
            json!({"device_keys": {bob.id.clone(): []}}),
        );
        body["master_keys"][&bob.id]["signatures"].clone()
    };
    assert!(
        seen_by(&alice)[&alice.id].get(&signature_id).is_some(),
        "{}",
        seen_by(&alice)
    );
    assert!(seen_by(&bob).get(&alice.id).is_none(), "{}", seen_by(&bob));
}
