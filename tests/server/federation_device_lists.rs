//! Another server's user's device list as Hearth keeps it, fed by a test-made remote
//! server: `m.device_list_update` EDUs that continue the kept list are applied without
//! asking the remote, a gap in `prev_id` (or no list at all) makes Hearth fetch the
//! whole list from `/user/devices`, deletions and `m.signing_key_update` apply, local
//! users see each change in `/sync`, and while the remote is down the kept list is
//! answered without a failure.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::e2ee_support::{changed, next_batch, query, sync};
use crate::federation_rooms::{eventually, signed_template};
use crate::federation_support::{TestRemote, federating_server_with_env};
use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, user};

/// What the remote answers at `/user/devices`, how often it was asked, whether it is
/// "down" (answers 503), and whether answers wait for the test to let them go.
#[derive(Clone)]
struct Devices {
    answer: Arc<Mutex<Value>>,
    asked: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Default for Devices {
    fn default() -> Self {
        Self {
            answer: Arc::default(),
            asked: Arc::default(),
            down: Arc::default(),
            held: Arc::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

impl Devices {
    fn set(&self, answer: Value) {
        *self.answer.lock().unwrap() = answer;
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

fn remote_serving(devices: &Devices) -> TestRemote {
    let devices = devices.clone();
    TestRemote::start_with_routes(Router::new().route(
        "/_matrix/federation/v1/user/devices/{user_id}",
        get(move || {
            let devices = devices.clone();
            async move {
                devices.asked.fetch_add(1, Ordering::SeqCst);
                if devices.held.load(Ordering::SeqCst) {
                    devices.gate.acquire().await.unwrap().forget();
                }
                if devices.down.load(Ordering::SeqCst) {
                    let body = json!({"errcode": "M_UNKNOWN", "error": "down"});
                    return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body));
                }
                let answer = devices.answer.lock().unwrap().clone();
                (StatusCode::OK, axum::Json(answer))
            }
        }),
    ))
}

fn device(id: &str, key: &str) -> Value {
    json!({"device_id": id, "keys": {"algorithms": ["m.olm.v1.curve25519-aes-sha2"], "keys": {format!("ed25519:{id}"): key}}})
}

/// Sends one EDU from the remote in a transaction of its own.
fn send_edu(remote: &TestRemote, server: &TestServer, txn: &str, edu_type: &str, content: Value) {
    let body = json!({
        "origin": remote.server_name(),
        "origin_server_ts": 1,
        "pdus": [],
        "edus": [{"edu_type": edu_type, "content": content}],
    });
    let path = format!("/_matrix/federation/v1/send/{txn}");
    let (status, answer) = remote.request(server, "PUT", &path, Some(&body));
    assert_eq!(status, 200, "{answer}");
}

/// Syncs from `since` until `user_id` is among the changed device lists; the new token.
fn sync_until_changed(server: &TestServer, user: &User, since: &str, user_id: &str) -> String {
    let mut since = since.to_owned();
    eventually(Duration::from_secs(20), "a device-list change", || {
        let body = sync(server, user, Some(&since), 1000);
        since = next_batch(&body);
        changed(&body)
            .iter()
            .any(|u| u == user_id)
            .then(|| since.clone())
    })
}

fn devices_of(body: &Value, user_id: &str) -> Vec<String> {
    let mut ids: Vec<String> = body["device_keys"][user_id]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Hearth with Alice, a remote serving `devices`, and the remote's Eve joined to Alice's
/// room.
fn alice_and_remote_eve(devices: &Devices) -> (TestServer, TestRemote, User, String) {
    let a = federating_server_with_env(&[("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "2")]);
    let remote = remote_serving(devices);
    let alice = user(&a, "alice");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "11"}),
    );
    let eve = format!("@eve:{}", remote.server_name());
    let (join, join_id) = signed_template(&remote, &a, "join", &room, &eve);
    let path = format!(
        "/_matrix/federation/v2/send_join/{}/{}",
        enc(&room),
        enc(&join_id)
    );
    let (status, body) = remote.request(&a, "PUT", &path, Some(&join));
    assert_eq!(status, 200, "{body}");
    (a, remote, alice, eve)
}

/// An `m.device_list_update` of `user_id` with `extra` fields.
fn update(user_id: &str, stream_id: u64, prev: &[u64], device_id: &str, extra: Value) -> Value {
    let mut content = json!({
        "user_id": user_id, "device_id": device_id, "stream_id": stream_id, "prev_id": prev,
    });
    content
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    content
}

#[test]
fn a_remote_users_list_follows_its_updates_and_is_fetched_again_after_a_gap() {
    let devices = Devices::default();
    let (a, remote, alice, eve) = alice_and_remote_eve(&devices);
    let since = next_batch(&sync(&a, &alice, None, 0));
    let ask = || query(&a, &alice, json!({"device_keys": {eve.clone(): []}}));
    let update = |stream_id, prev: &[u64], device_id: &str, extra| {
        update(&eve, stream_id, prev, device_id, extra)
    };

    // Nothing kept: the first update makes Hearth fetch the whole list.
    devices.set(json!({"user_id": eve, "stream_id": 1, "devices": [device("D1", "k1")]}));
    send_edu(
        &remote,
        &a,
        "t1",
        "m.device_list_update",
        update(1, &[], "D1", device("D1", "k1")),
    );
    let since = sync_until_changed(&a, &alice, &since, &eve);
    assert_eq!(devices.asked(), 1);
    let body = ask();
    assert_eq!(body["device_keys"][&eve]["D1"]["keys"]["ed25519:D1"], "k1");
    assert_eq!(body["failures"], json!({}), "{body}");

    // The next update continues it: applied as it comes, the remote not asked again.
    let mut renamed = device("D1", "k1b");
    renamed["device_display_name"] = json!("renamed");
    send_edu(
        &remote,
        &a,
        "t2",
        "m.device_list_update",
        update(2, &[1], "D1", renamed),
    );
    let since = sync_until_changed(&a, &alice, &since, &eve);
    let body = ask();
    assert_eq!(
        body["device_keys"][&eve]["D1"]["unsigned"]["device_display_name"],
        "renamed"
    );
    assert_eq!(body["device_keys"][&eve]["D1"]["keys"]["ed25519:D1"], "k1b");
    assert_eq!(devices.asked(), 1);

    // An update after one Hearth never got (3): the whole list is fetched again.
    devices.set(json!({"user_id": eve, "stream_id": 4, "devices": [device("D1", "k1b"), device("D2", "k2")]}));
    send_edu(
        &remote,
        &a,
        "t3",
        "m.device_list_update",
        update(4, &[3], "D2", device("D2", "k2")),
    );
    let since = sync_until_changed(&a, &alice, &since, &eve);
    assert_eq!(devices.asked(), 2);
    assert_eq!(devices_of(&ask(), &eve), ["D1", "D2"]);

    // A deletion and new cross-signing keys apply without asking.
    send_edu(
        &remote,
        &a,
        "t4",
        "m.device_list_update",
        update(5, &[4], "D2", json!({"deleted": true})),
    );
    let since = sync_until_changed(&a, &alice, &since, &eve);
    assert_eq!(devices_of(&ask(), &eve), ["D1"]);
    let master = json!({"user_id": eve, "usage": ["master"], "keys": {"ed25519:M": "M"}});
    send_edu(
        &remote,
        &a,
        "t5",
        "m.signing_key_update",
        json!({"user_id": eve, "master_key": master}),
    );
    sync_until_changed(&a, &alice, &since, &eve);
    let kept = ask();
    assert_eq!(kept["master_keys"][&eve], master);
    assert_eq!(devices.asked(), 2);

    // The remote goes down and an update is missed: the fetch fails, and what was kept
    // is still answered, without a failure.
    devices.down.store(true, Ordering::SeqCst);
    send_edu(
        &remote,
        &a,
        "t6",
        "m.device_list_update",
        update(7, &[6], "D3", device("D3", "k3")),
    );
    eventually(Duration::from_secs(20), "the failed fetch", || {
        (devices.asked() >= 3).then_some(())
    });
    let body = ask();
    assert_eq!(body["failures"], json!({}), "{body}");
    assert_eq!(body["device_keys"], kept["device_keys"]);
    assert_eq!(body["master_keys"], kept["master_keys"]);

    // Back up: the list marked stale is fetched again at the next query.
    devices.set(json!({"user_id": eve, "stream_id": 7, "devices": [device("D1", "k1b"), device("D3", "k3")]}));
    devices.down.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(20), "the list fetched again", || {
        (devices_of(&ask(), &eve) == ["D1", "D3"]).then_some(())
    });
}

/// The "mid-resync kill": Hearth dies while the remote has not answered a resync;
/// after the restart it answers the list it had, consistent, and the next update (whose
/// `prev_id` it does not know) makes it fetch the list again.
#[test]
fn a_server_killed_in_the_middle_of_a_resync_keeps_a_consistent_list() {
    let devices = Devices::default();
    let (mut a, remote, alice, eve) = alice_and_remote_eve(&devices);
    let since = next_batch(&sync(&a, &alice, None, 0));
    devices.set(json!({"user_id": eve, "stream_id": 1, "devices": [device("D1", "k1")]}));
    send_edu(
        &remote,
        &a,
        "t1",
        "m.device_list_update",
        update(&eve, 1, &[], "D1", device("D1", "k1")),
    );
    sync_until_changed(&a, &alice, &since, &eve);
    assert_eq!(devices.asked(), 1);

    // An update after a missed one: Hearth asks, the remote holds its answer, and Hearth
    // is killed meanwhile.
    devices.held.store(true, Ordering::SeqCst);
    devices.set(json!({"user_id": eve, "stream_id": 3, "devices": [device("D1", "k1"), device("D2", "k2")]}));
    send_edu(
        &remote,
        &a,
        "t2",
        "m.device_list_update",
        update(&eve, 3, &[2], "D2", device("D2", "k2")),
    );
    eventually(Duration::from_secs(20), "the resync request", || {
        (devices.asked() >= 2).then_some(())
    });
    a.kill_9();
    devices.held.store(false, Ordering::SeqCst);
    devices.gate.add_permits(1);
    a.restart();

    let ask = || query(&a, &alice, json!({"device_keys": {eve.clone(): []}}));
    let body = ask();
    assert_eq!(devices_of(&body, &eve), ["D1"], "{body}");
    assert_eq!(body["device_keys"][&eve]["D1"]["keys"]["ed25519:D1"], "k1");
    assert_eq!(body["failures"], json!({}), "{body}");

    // The next update names 3, which Hearth never applied: it fetches the list again.
    devices.set(json!({"user_id": eve, "stream_id": 4, "devices": [device("D1", "k1"), device("D2", "k2"), device("D3", "k3")]}));
    send_edu(
        &remote,
        &a,
        "t3",
        "m.device_list_update",
        update(&eve, 4, &[3], "D3", device("D3", "k3")),
    );
    eventually(Duration::from_secs(20), "the list fetched again", || {
        (devices_of(&ask(), &eve) == ["D1", "D2", "D3"]).then_some(())
    });
}
