//! Dehydrated devices (MSC3814): stored with their keys, found by others' key queries and
//! claims, replaced and deleted; their to-device messages fetched in batches and
//! acknowledged; bad uploads refused without losing the device already there.

use serde_json::{Value, json};

use crate::e2ee_support::{DeviceKey, claim, device_keys, one_time_keys, query, send_to_device};
use crate::harness::{TestServer, assert_error};
use crate::room_support::{User, user};

const PATH: &str = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";

fn events_path(device_id: &str) -> String {
    format!("{PATH}/{device_id}/events")
}

/// The dehydrated device `device_id` of `owner`, as a user its keys are signed for.
fn dehydrated(owner: &User, device_id: &str) -> User {
    User {
        id: owner.id.clone(),
        token: owner.token.clone(),
        device: device_id.to_owned(),
    }
}

/// The body a client puts: pickled state, signed device keys marked dehydrated, two
/// one-time keys and a fallback key.
fn upload(owner: &User, device_id: &str) -> Value {
    let device = dehydrated(owner, device_id);
    let key = DeviceKey::new(device_id);
    let mut keys = device_keys(&device, &key);
    keys["dehydrated"] = json!(true);
    key.sign(&owner.id, &mut keys);
    let mut fallback = json!({"key": "fallback-key", "fallback": true});
    key.sign(&owner.id, &mut fallback);
    json!({
        "device_id": device_id,
        "device_data": {"algorithm": "org.matrix.msc3814.v2", "device_pickle": format!("pickle of {device_id}")},
        "initial_device_display_name": "Dehydrated device",
        "device_keys": keys,
        "one_time_keys": one_time_keys(&device, &key, "D", 2),
        "fallback_keys": {"signed_curve25519:F1": fallback},
    })
}

fn put(server: &TestServer, owner: &User, body: &Value) -> (u16, Value) {
    server.send("PUT", PATH, Some(&owner.token), body)
}

fn device_ids_in_query(server: &TestServer, asker: &User, owner: &User) -> Vec<String> {
    let answer = query(
        server,
        asker,
        json!({"device_keys": {owner.id.clone(): []}}),
    );
    let mut ids: Vec<String> = answer["device_keys"][&owner.id]
        .as_object()
        .map(|devices| devices.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn a_dehydrated_device_is_stored_found_replaced_and_deleted() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let (status, versions) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200);
    assert_eq!(versions["unstable_features"]["org.matrix.msc3814"], true);
    assert_error(server.get(PATH, Some(&alice.token)), 404, "M_NOT_FOUND");

    let (status, body) = put(&server, &alice, &upload(&alice, "DEHY1"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["device_id"], "DEHY1");
    // Answered 200, so it survives a crash.
    server.kill_9();
    server.restart();
    let (status, body) = server.get(PATH, Some(&alice.token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["device_id"], "DEHY1");
    assert_eq!(body["device_data"]["device_pickle"], "pickle of DEHY1");
    assert_eq!(body["device_data"]["algorithm"], "org.matrix.msc3814.v2");

    // Others see it as one of Alice's devices and can claim its keys.
    // (Alice's own device uploaded no keys, so queries do not list it.)
    assert_eq!(device_ids_in_query(&server, &bob, &alice), ["DEHY1"]);
    let answer = query(
        &server,
        &bob,
        json!({"device_keys": {alice.id.clone(): ["DEHY1"]}}),
    );
    assert_eq!(
        answer["device_keys"][&alice.id]["DEHY1"]["dehydrated"],
        true
    );
    let claimed = claim(
        &server,
        &bob,
        json!({"one_time_keys": {alice.id.clone(): {"DEHY1": "signed_curve25519"}}}),
    );
    let key = &claimed["one_time_keys"][&alice.id]["DEHY1"];
    assert!(
        key.as_object()
            .is_some_and(|k| k.keys().any(|id| id.starts_with("signed_curve25519:D"))),
        "{claimed}"
    );
    let (status, devices) = server.get("/_matrix/client/v3/devices", Some(&alice.token));
    assert_eq!(status, 200);
    assert!(
        devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["device_id"] == "DEHY1" && d["display_name"] == "Dehydrated device"),
        "{devices}"
    );

    // A new one replaces it: the old device and its keys are gone.
    let (status, body) = put(&server, &alice, &upload(&alice, "DEHY2"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.get(PATH, Some(&alice.token)).1["device_id"], "DEHY2");
    assert_eq!(device_ids_in_query(&server, &bob, &alice), ["DEHY2"]);
    // Bob has none.
    assert_error(server.get(PATH, Some(&bob.token)), 404, "M_NOT_FOUND");

    let (status, body) = server.send("DELETE", PATH, Some(&alice.token), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["device_id"], "DEHY2");
    assert_error(server.get(PATH, Some(&alice.token)), 404, "M_NOT_FOUND");
    assert_error(
        server.send("DELETE", PATH, Some(&alice.token), &json!({})),
        404,
        "M_NOT_FOUND",
    );
    assert!(device_ids_in_query(&server, &bob, &alice).is_empty());
}

#[test]
fn its_to_device_messages_come_in_batches_until_acknowledged() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let (status, body) = put(&server, &alice, &upload(&alice, "DEHY"));
    assert_eq!(status, 200, "{body}");
    // 100 messages for the device itself, then one for all of Alice's devices.
    for i in 0..100 {
        let (status, body) = send_to_device(
            &server,
            &bob,
            "m.room.encrypted",
            &format!("t{i}"),
            json!({alice.id.clone(): {"DEHY": {"n": i}}}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = send_to_device(
        &server,
        &bob,
        "m.room.encrypted",
        "all",
        json!({alice.id.clone(): {"*": {"n": 100}}}),
    );
    assert_eq!(status, 200, "{body}");

    let fetch = |next_batch: Option<&str>| {
        let body = match next_batch {
            Some(token) => json!({"next_batch": token}),
            None => json!({}),
        };
        let (status, answer) = server.post(&events_path("DEHY"), Some(&alice.token), &body);
        assert_eq!(status, 200, "{answer}");
        let numbers: Vec<u64> = answer["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["sender"], bob.id);
                assert_eq!(e["type"], "m.room.encrypted");
                e["content"]["n"].as_u64().unwrap()
            })
            .collect();
        (numbers, answer["next_batch"].as_str().unwrap().to_owned())
    };
    let (first, token) = fetch(None);
    assert_eq!(first, (0..100).collect::<Vec<_>>());
    // Not acknowledged yet: asked again, the same batch.
    assert_eq!(fetch(None).0, first);
    let (second, token) = fetch(Some(&token));
    assert_eq!(second, [100]);
    let (third, last) = fetch(Some(&token));
    assert!(third.is_empty());
    assert_eq!(last, token);
    // Acknowledged messages are deleted: from the start, nothing is left.
    assert!(fetch(None).0.is_empty());

    // Only the user's current dehydrated device, with this server's tokens.
    assert_error(
        server.post(&events_path(&alice.device), Some(&alice.token), &json!({})),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.post(&events_path("DEHY"), Some(&bob.token), &json!({})),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.post(
            &events_path("DEHY"),
            Some(&alice.token),
            &json!({"next_batch": "x"}),
        ),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn bad_uploads_are_refused_and_keep_the_device_there() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let good = upload(&alice, "DEHY");
    let (status, body) = put(&server, &alice, &good);
    assert_eq!(status, 200, "{body}");

    let mut no_keys = upload(&alice, "OTHER");
    no_keys.as_object_mut().unwrap().remove("device_keys");
    assert_error(put(&server, &alice, &no_keys), 400, "M_MISSING_PARAM");
    let mut no_algorithm = upload(&alice, "OTHER");
    no_algorithm["device_data"] = json!({"device_pickle": "p"});
    assert_error(put(&server, &alice, &no_algorithm), 400, "M_BAD_JSON");
    // Keys of another device than the one named.
    let mut mismatched = upload(&alice, "OTHER");
    mismatched["device_keys"] = good["device_keys"].clone();
    assert_error(put(&server, &alice, &mismatched), 400, "M_INVALID_PARAM");
    // The ID of the device Alice is logged in with.
    let taken = upload(&alice, &alice.device);
    assert_error(put(&server, &alice, &taken), 400, "M_INVALID_PARAM");
    assert_error(
        put(&server, &alice, &json!({"device_id": "X"})),
        400,
        "M_BAD_JSON",
    );

    let (status, body) = server.get(PATH, Some(&alice.token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["device_id"], "DEHY");
    // Alice's own device is untouched.
    let (status, _) = server.get("/_matrix/client/v3/account/whoami", Some(&alice.token));
    assert_eq!(status, 200);
}
