//! Pushers: `/pushers`, `/pushers/set`, and delivery to a push gateway (a stand-in HTTP
//! server in the test process) in the push gateway API's format.

use serde_json::{Value, json};

use crate::harness::{ClosedPort, PASSWORD, TestServer, assert_error, token};
use crate::push_gateway_support::{Answer, Gateway, url_on};
use crate::room_support::{
    User, alice_and_bob_in_a_room, create_room, enc, join, read_receipt, send_text,
    thread_read_receipt, try_send, user,
};

const SET: &str = "/_matrix/client/v3/pushers/set";

/// The stand-in gateways listen on loopback, which `federation.ip_range_denylist`
/// (applied to push gateways too) refuses by default.
fn start_allowing_loopback() -> TestServer {
    TestServer::start_with_env(&[("HEARTH_FEDERATION__IP_RANGE_DENYLIST", "[]")])
}

fn pusher(url: &str, pushkey: &str, format: Option<&str>) -> Value {
    let mut data = json!({"url": url, "extra": "kept"});
    if let Some(format) = format {
        data["format"] = json!(format);
    }
    json!({
        "kind": "http",
        "app_id": "org.example.app",
        "pushkey": pushkey,
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "profile_tag": "tag1",
        "lang": "en",
        "data": data,
    })
}

#[track_caller]
fn set(server: &TestServer, user: &User, body: &Value) {
    let (status, answer) = server.post(SET, Some(&user.token), body);
    assert_eq!(status, 200, "{answer}");
}

fn pushers(server: &TestServer, user: &User) -> Vec<Value> {
    let (status, body) = server.get("/_matrix/client/v3/pushers", Some(&user.token));
    assert_eq!(status, 200, "{body}");
    body["pushers"].as_array().unwrap().clone()
}

/// Waits (up to a minute) until the condition holds.
#[track_caller]
fn eventually(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn pushers_are_set_listed_validated_replaced_and_removed() {
    let mut server = start_allowing_loopback();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    assert_error(
        server.get("/_matrix/client/v3/pushers", None),
        401,
        "M_MISSING_TOKEN",
    );
    // Nothing answers there: this test is about the pushers, not their deliveries.
    let closed = ClosedPort::new();
    let url = url_on(closed.port);
    set(
        &server,
        &alice,
        &pusher(&url, "key1", Some("event_id_only")),
    );
    let listed = pushers(&server, &alice);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0],
        json!({
            "kind": "http",
            "app_id": "org.example.app",
            "pushkey": "key1",
            "app_display_name": "Example",
            "device_display_name": "Phone",
            "profile_tag": "tag1",
            "lang": "en",
            "data": {"url": url, "extra": "kept", "format": "event_id_only"},
        })
    );
    assert!(pushers(&server, &bob).is_empty());

    // Validation.
    let mut bad = pusher("https://push.example.org/notify", "k", None);
    assert_error(
        server.post(SET, Some(&alice.token), &bad),
        400,
        "M_INVALID_PARAM",
    );
    bad["data"] = json!({});
    assert_error(
        server.post(SET, Some(&alice.token), &bad),
        400,
        "M_MISSING_PARAM",
    );
    bad["data"] = json!({"url": url, "format": 1});
    assert_error(
        server.post(SET, Some(&alice.token), &bad),
        400,
        "M_INVALID_PARAM",
    );
    let mut no_kind = pusher(&url, "k", None);
    no_kind.as_object_mut().unwrap().remove("kind");
    assert_error(
        server.post(SET, Some(&alice.token), &no_kind),
        400,
        "M_MISSING_PARAM",
    );
    let mut no_lang = pusher(&url, "k", None);
    no_lang.as_object_mut().unwrap().remove("lang");
    assert_error(
        server.post(SET, Some(&alice.token), &no_lang),
        400,
        "M_MISSING_PARAM",
    );
    let mut email = pusher(&url, "k", None);
    email["kind"] = json!("email");
    assert_error(
        server.post(SET, Some(&alice.token), &email),
        400,
        "M_INVALID_PARAM",
    );
    let long_key = pusher(&url, &"k".repeat(513), None);
    assert_error(
        server.post(SET, Some(&alice.token), &long_key),
        400,
        "M_INVALID_PARAM",
    );
    let mut long_app = pusher(&url, "k", None);
    long_app["app_id"] = json!("a".repeat(65));
    assert_error(
        server.post(SET, Some(&alice.token), &long_app),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.post(
            SET,
            Some(&alice.token),
            &json!({"kind": "http", "app_id": 3}),
        ),
        400,
        "M_BAD_JSON",
    );
    assert_eq!(pushers(&server, &alice).len(), 1);

    // Setting it again replaces it; with `append` another user may share the pushkey,
    // without it the pushkey moves to the user setting it.
    let mut changed = pusher(&url, "key1", None);
    changed["device_display_name"] = json!("Tablet");
    set(&server, &alice, &changed);
    let listed = pushers(&server, &alice);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["device_display_name"], "Tablet");
    let mut shared = pusher(&url, "key1", None);
    shared["append"] = json!(true);
    set(&server, &bob, &shared);
    assert_eq!(pushers(&server, &alice).len(), 1);
    assert_eq!(pushers(&server, &bob).len(), 1);
    set(&server, &bob, &pusher(&url, "key1", None));
    assert!(pushers(&server, &alice).is_empty());
    assert_eq!(pushers(&server, &bob).len(), 1);

    // Pushers survive a crash.
    set(&server, &alice, &pusher(&url, "key2", None));
    server.kill_9();
    server.restart();
    assert_eq!(pushers(&server, &alice).len(), 1);

    // `kind: null` removes one.
    let mut remove = pusher(&url, "key2", None);
    remove["kind"] = Value::Null;
    set(&server, &alice, &remove);
    assert!(pushers(&server, &alice).is_empty());
    assert_eq!(pushers(&server, &bob).len(), 1);
}

#[test]
fn the_gateway_gets_one_notify_per_notifying_event_and_a_badge_after_a_read() {
    let server = start_allowing_loopback();
    let gateway = Gateway::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let (status, _) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room)),
        Some(&alice.token),
        &json!({"name": "Garden"}),
    );
    assert_eq!(status, 200);
    // A format other than `event_id_only` (SyTest's "Can fetch a user's pushers" sets
    // "id_event_only") is kept as given and gets the full notification, as in Synapse.
    set(
        &server,
        &bob,
        &pusher(&gateway.url(), "full-key", Some("id_event_only")),
    );
    let listed = pushers(&server, &bob);
    assert_eq!(listed[0]["data"]["format"], "id_event_only", "{listed:?}");
    set(
        &server,
        &bob,
        &pusher(&gateway.url(), "short-key", Some("event_id_only")),
    );

    let hello = send_text(&server, &alice, &room, "t1", "hello bob");
    let received = gateway.wait_for(2);
    let full = received
        .iter()
        .find(|n| n["notification"]["devices"][0]["pushkey"] == "full-key")
        .unwrap();
    let n = &full["notification"];
    assert_eq!(n["event_id"], hello.as_str());
    assert_eq!(n["room_id"], room.as_str());
    assert_eq!(n["type"], "m.room.message");
    assert_eq!(n["sender"], alice.id.as_str());
    assert_eq!(n["sender_display_name"], "alice");
    assert_eq!(n["room_name"], "Garden");
    assert_eq!(
        n["content"],
        json!({"msgtype": "m.text", "body": "hello bob"})
    );
    assert_eq!(n["counts"], json!({"unread": 1}));
    // A two-person room: the one-to-one rule, with a sound, which makes it urgent.
    assert_eq!(n["prio"], "high");
    let device = &n["devices"][0];
    assert_eq!(device["app_id"], "org.example.app");
    assert_eq!(
        device["data"],
        json!({"extra": "kept", "format": "id_event_only"})
    );
    assert_eq!(device["tweaks"], json!({"sound": "default"}));
    assert!(device["pushkey_ts"].as_u64().unwrap() > 1_600_000_000);
    assert!(device["pushkey_ts"].as_u64().unwrap() < 100_000_000_000);

    let short = received
        .iter()
        .find(|n| n["notification"]["devices"][0]["pushkey"] == "short-key")
        .unwrap();
    let n = short["notification"].as_object().unwrap();
    let mut keys: Vec<&str> = n.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["counts", "devices", "event_id", "prio", "room_id"]);
    assert_eq!(
        short["notification"]["devices"][0]["data"],
        json!({"extra": "kept", "format": "event_id_only"})
    );

    // Events that do not notify (a notice, Bob's own message) push nothing; the next
    // message does, with the count up and a highlight for a mention.
    let notice = json!({"msgtype": "m.notice", "body": "beep"});
    assert_eq!(try_send(&server, &alice, &room, "t2", &notice).0, 200);
    send_text(&server, &bob, &room, "t3", "my own");
    let mention =
        json!({"msgtype": "m.text", "body": "bob!", "m.mentions": {"user_ids": [bob.id]}});
    let (status, sent) = try_send(&server, &alice, &room, "t4", &mention);
    assert_eq!(status, 200);
    let received = gateway.wait_for(4);
    let last: Vec<&Value> = received[2..].iter().collect();
    for n in &last {
        assert_eq!(n["notification"]["event_id"], sent["event_id"]);
        assert_eq!(n["notification"]["counts"], json!({"unread": 2}));
        assert_eq!(n["notification"]["prio"], "high");
        assert_eq!(
            n["notification"]["devices"][0]["tweaks"],
            json!({"sound": "default", "highlight": true})
        );
    }

    // Bob reads on some device: each gateway gets the count alone, now zero.
    read_receipt(&server, &bob, &room, sent["event_id"].as_str().unwrap());
    let received = gateway.wait_for(6);
    for badge in &received[4..6] {
        let n = badge["notification"].as_object().unwrap();
        let mut keys: Vec<&str> = n.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["counts", "devices"], "{badge}");
        assert_eq!(badge["notification"]["counts"], json!({"unread": 0}));
    }
    // Exactly one notify per notifying event (and one badge per read), per pusher:
    // another round trip shows nothing more arrived meanwhile.
    let last_event = send_text(&server, &alice, &room, "t5", "bye");
    let received = gateway.wait_for(8);
    assert_eq!(received.len(), 8, "{received:?}");
    assert!(
        received[6..]
            .iter()
            .all(|n| n["notification"]["event_id"] == last_event.as_str())
    );
}

#[test]
fn delivery_is_retried_after_the_gateway_was_down() {
    let server = start_allowing_loopback();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    // Nothing listens on the pusher's port yet.
    let port = ClosedPort::new();
    set(&server, &bob, &pusher(&url_on(port.port), "key", None));
    let first = send_text(&server, &alice, &room, "t1", "are you there?");
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Up, but failing once more.
    let gateway = Gateway::start_at(port, [Answer::Status(500)]);
    let received = gateway.wait_for(2);
    assert_eq!(received[0]["notification"]["event_id"], first.as_str());
    assert_eq!(received[1]["notification"]["event_id"], first.as_str());
    // The next one follows it, once.
    let second = send_text(&server, &alice, &room, "t2", "again");
    let received = gateway.wait_for(3);
    assert_eq!(received[2]["notification"]["event_id"], second.as_str());
    assert_eq!(received[2]["notification"]["counts"], json!({"unread": 2}));
}

/// Sets the user's `event_id_only` pusher at a port nothing listens on yet, so every
/// push attempt fails until the test starts its gateway there; returns that port.
fn pusher_at_a_closed_port(server: &TestServer, user: &User) -> ClosedPort {
    let port = ClosedPort::new();
    set(
        server,
        user,
        &pusher(&url_on(port.port), "key", Some("event_id_only")),
    );
    port
}

/// A notification the user has read by the time its push goes (here, while the gateway
/// was down) is not pushed: read in the main timeline or in its thread, each receipt
/// covering only its own; the badge of what is pushed counts the unread ones alone.
#[test]
fn a_notification_read_before_its_push_is_not_pushed() {
    let server = start_allowing_loopback();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    // Nothing listens on the pusher's port until Bob has read: every attempt before
    // fails, and each attempt checks the receipts again.
    let port = pusher_at_a_closed_port(&server, &bob);
    let root = send_text(&server, &alice, &room, "t1", "a thread's root");
    let reply = json!({
        "msgtype": "m.text",
        "body": "in the thread",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    });
    let (status, sent) = try_send(&server, &alice, &room, "t2", &reply);
    assert_eq!(status, 200, "{sent}");
    let in_thread = sent["event_id"].as_str().unwrap().to_owned();
    let after_root = send_text(&server, &alice, &room, "t3", "after the root");
    // Read: the thread, and the main timeline up to the root only.
    thread_read_receipt(&server, &bob, &room, &in_thread, root.as_str());
    thread_read_receipt(&server, &bob, &room, root.as_str(), "main");
    let gateway = Gateway::start_at(port, []);
    // Notifications only, not the badges the reads sent.
    let pushed = || -> Vec<Value> {
        gateway
            .wait_for(0)
            .into_iter()
            .filter(|n| n["notification"].get("event_id").is_some())
            .collect()
    };
    // Pushes go in order: one that should not be pushed would come first.
    eventually(|| !pushed().is_empty());
    let last = send_text(&server, &alice, &room, "t4", "last");
    eventually(|| pushed().len() >= 2);
    let pushed = pushed();
    let ids: Vec<&Value> = pushed
        .iter()
        .map(|n| &n["notification"]["event_id"])
        .collect();
    assert_eq!(ids, [after_root.as_str(), last.as_str()], "{pushed:?}");
    assert_eq!(pushed[0]["notification"]["counts"], json!({"unread": 1}));
    assert_eq!(pushed[1]["notification"]["counts"], json!({"unread": 2}));
}

/// The queue is the store: a notification recorded before the send's 200 reaches the
/// gateway after a crash (kill -9) that came before any push of it, and the worker then
/// goes on with the notifications written after the restart, each once.
#[test]
fn a_notification_recorded_before_a_crash_is_pushed_after_the_restart() {
    let mut server = start_allowing_loopback();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    // Nothing listens on the pusher's port until after the crash.
    let port = pusher_at_a_closed_port(&server, &bob);
    let before = send_text(&server, &alice, &room, "t1", "before the crash");
    server.kill_9();
    server.restart();
    let gateway = Gateway::start_at(port, []);
    let received = gateway.wait_for(1);
    assert_eq!(received[0]["notification"]["event_id"], before.as_str());
    let after = send_text(&server, &alice, &room, "t2", "after the crash");
    let received = gateway.wait_for(2);
    assert_eq!(received[1]["notification"]["event_id"], after.as_str());
    assert_eq!(received[1]["notification"]["counts"], json!({"unread": 2}));
    // Exactly once each: another round trip shows nothing more arrived meanwhile.
    let last = send_text(&server, &alice, &room, "t3", "last");
    let received = gateway.wait_for(3);
    assert_eq!(received.len(), 3, "{received:?}");
    assert_eq!(received[2]["notification"]["event_id"], last.as_str());
}

#[test]
fn a_rejected_pushkey_removes_its_pusher() {
    let server = start_allowing_loopback();
    let gateway = Gateway::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    set(&server, &bob, &pusher(&gateway.url(), "gone", None));
    set(&server, &bob, &pusher(&gateway.url(), "alive", None));
    gateway.script([
        Answer::Reject(vec!["gone".into()]),
        Answer::Reject(vec!["gone".into()]),
    ]);
    send_text(&server, &alice, &room, "t1", "one");
    gateway.wait_for(2);
    eventually(|| pushers(&server, &bob).len() == 1);
    assert_eq!(pushers(&server, &bob)[0]["pushkey"], "alive");
    let second = send_text(&server, &alice, &room, "t2", "two");
    let received = gateway.wait_for(3);
    assert_eq!(received[2]["notification"]["event_id"], second.as_str());
    assert_eq!(
        received[2]["notification"]["devices"][0]["pushkey"],
        "alive"
    );
}

/// The pushers of one gateway are sent their requests together (pipelined, see
/// `src/service/pushers/origin.rs`): each still gets exactly its own notifications, in
/// order, with its own badge, and a rejection removes only the pusher it names.
#[test]
fn pushers_sharing_a_gateway_each_get_their_own_notifications_in_order() {
    let server = start_allowing_loopback();
    let gateway = Gateway::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    let names = ["bob", "carol", "dan", "erin", "frank", "gina"];
    let members: Vec<User> = names
        .iter()
        .map(|name| {
            let member = user(&server, name);
            join(&server, &member, &room);
            set(&server, &member, &pusher(&gateway.url(), name, None));
            member
        })
        .collect();
    gateway.reject("dan");
    let events: Vec<String> = (0..4)
        .map(|n| send_text(&server, &alice, &room, &format!("t{n}"), &format!("m{n}")))
        .collect();
    // Four notifications for each pusher but Dan's, which the first rejection removed.
    let received = gateway.wait_for(5 * 4 + 1);
    for (name, member) in names.iter().zip(&members) {
        let own: Vec<&Value> = received
            .iter()
            .map(|n| &n["notification"])
            .filter(|n| n["devices"][0]["pushkey"] == *name)
            .collect();
        if *name == "dan" {
            assert_eq!(own.len(), 1, "{own:?}");
            eventually(|| pushers(&server, member).is_empty());
            continue;
        }
        let ids: Vec<&Value> = own.iter().map(|n| &n["event_id"]).collect();
        assert_eq!(ids, events.iter().collect::<Vec<_>>(), "{name}");
        // The badge is the count as of the newest visible event when the push goes:
        // at least the notification's own place, never falling, all four at the end.
        let badges: Vec<u64> = own
            .iter()
            .map(|n| n["counts"]["unread"].as_u64().unwrap())
            .collect();
        assert!(
            badges.iter().enumerate().all(|(i, b)| *b > i as u64)
                && badges.is_sorted()
                && badges.last() == Some(&4),
            "{name}: {badges:?}"
        );
        assert_eq!(pushers(&server, member).len(), 1);
    }
    // Nothing more arrives: the next event is pushed to the five left, once each.
    let last = send_text(&server, &alice, &room, "t4", "last");
    let received = gateway.wait_for(5 * 5 + 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let received_after = gateway.wait_for(0);
    assert_eq!(received_after.len(), received.len());
    let pushed_last = received
        .iter()
        .filter(|n| n["notification"]["event_id"] == last.as_str())
        .count();
    assert_eq!(pushed_last, 5);
}

/// A gateway's worker ends with its last pusher (`src/service/pushers/origin.rs`): a
/// pusher set at that gateway afterwards starts another, as does one set again at once
/// after the only one was removed, and each is pushed to.
#[test]
fn a_gateway_whose_pushers_all_went_serves_the_next_one() {
    let server = start_allowing_loopback();
    let gateway = Gateway::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let remove = |pushkey: &str| {
        let mut body = pusher(&gateway.url(), pushkey, None);
        body["kind"] = Value::Null;
        set(&server, &bob, &body);
    };
    let pushed = |n: usize, pushkey: &str, event: &str| {
        let received = gateway.wait_for(n);
        assert_eq!(received.len(), n, "{received:?}");
        let notification = &received[n - 1]["notification"];
        assert_eq!(notification["devices"][0]["pushkey"], pushkey);
        assert_eq!(notification["event_id"], event);
    };
    set(&server, &bob, &pusher(&gateway.url(), "first", None));
    let event = send_text(&server, &alice, &room, "t0", "one");
    pushed(1, "first", &event);

    remove("first");
    // Time for the worker to see that it serves nobody and end.
    std::thread::sleep(std::time::Duration::from_millis(300));
    set(&server, &bob, &pusher(&gateway.url(), "second", None));
    let event = send_text(&server, &alice, &room, "t1", "two");
    pushed(2, "second", &event);

    remove("second");
    set(&server, &bob, &pusher(&gateway.url(), "third", None));
    let event = send_text(&server, &alice, &room, "t2", "three");
    pushed(3, "third", &event);
}

#[test]
fn logging_out_removes_the_pushers_the_device_set() {
    let mut server = TestServer::start();
    let phone = user(&server, "phoebe");
    let (status, login) = server.login("phoebe", PASSWORD);
    assert_eq!(status, 200, "{login}");
    let laptop = User {
        id: phone.id.clone(),
        token: token(&login),
        device: login["device_id"].as_str().unwrap().to_owned(),
    };
    let url = "https://push.example.org/_matrix/push/v1/notify";
    set(&server, &phone, &pusher(url, "phone-key", None));
    set(&server, &laptop, &pusher(url, "laptop-key", None));
    let keys = |server: &TestServer, user: &User| -> Vec<String> {
        let mut keys: Vec<String> = pushers(server, user)
            .iter()
            .map(|p| p["pushkey"].as_str().unwrap().to_owned())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&server, &laptop), ["laptop-key", "phone-key"]);

    let (status, body) = server.post("/_matrix/client/v3/logout", Some(&phone.token), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(&server, &laptop), ["laptop-key"]);

    // Deleting a device (as another device of the user would) removes its pushers too;
    // the server restarted in between still knows which device set which pusher.
    server.restart();
    let (status, again) = server.login("phoebe", PASSWORD);
    assert_eq!(status, 200, "{again}");
    let tablet = User {
        id: phone.id.clone(),
        token: token(&again),
        device: again["device_id"].as_str().unwrap().to_owned(),
    };
    let devices = json!([laptop.device]);
    let (status, challenge) = server.post(
        "/_matrix/client/v3/delete_devices",
        Some(&tablet.token),
        &json!({ "devices": devices }),
    );
    assert_eq!(status, 401, "{challenge}");
    let (status, body) = server.post(
        "/_matrix/client/v3/delete_devices",
        Some(&tablet.token),
        &json!({
            "devices": devices,
            "auth": {
                "session": challenge["session"],
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "phoebe"},
                "password": PASSWORD,
            },
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert!(keys(&server, &tablet).is_empty());
}

#[test]
fn a_gateway_at_a_denied_address_is_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let closed = ClosedPort::new();
    for url in [
        url_on(closed.port),
        format!("http://[::1]:{}/_matrix/push/v1/notify", closed.port),
        "http://169.254.169.254/_matrix/push/v1/notify".to_owned(),
        "https://10.0.0.1/_matrix/push/v1/notify".to_owned(),
    ] {
        let (status, body) = server.post(SET, Some(&alice.token), &pusher(&url, "k", None));
        assert_error((status, body), 400, "M_INVALID_PARAM");
    }
    assert!(pushers(&server, &alice).is_empty());
    // A name is looked up when a notification is sent, and refused then if it points at
    // a denied address (src/service/pushers/gateway.rs tests that part).
    let named = format!("http://localhost:{}/_matrix/push/v1/notify", closed.port);
    set(&server, &alice, &pusher(&named, "named", None));
    assert_eq!(pushers(&server, &alice).len(), 1);
}

/// The badge is the user's unread count over all the rooms they are in: reading one room
/// lowers it by that room's count alone, and it stays right across a restart (which
/// empties the counts kept in memory).
#[test]
fn the_badge_counts_every_room_and_follows_reads_across_a_restart() {
    let mut server = start_allowing_loopback();
    let gateway = Gateway::start();
    let (alice, bob, garden) = alice_and_bob_in_a_room(&server);
    let other_room = || {
        let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
        join(&server, &bob, &room);
        room
    };
    let (kitchen, attic) = (other_room(), other_room());
    set(
        &server,
        &bob,
        &pusher(&gateway.url(), "key", Some("event_id_only")),
    );
    let badge = |n: &Value| n["notification"]["counts"]["unread"].as_u64().unwrap();

    // One at a time: a notify counts every notification there is when it is made.
    let mut kitchen_last = String::new();
    for (n, (room, txn)) in [
        (&garden, "g1"),
        (&kitchen, "k1"),
        (&kitchen, "k2"),
        (&attic, "a1"),
    ]
    .into_iter()
    .enumerate()
    {
        let sent = send_text(&server, &alice, room, txn, "hello");
        let received = gateway.wait_for(n + 1);
        assert_eq!(received[n]["notification"]["event_id"], sent.as_str());
        assert_eq!(badge(&received[n]), n as u64 + 1);
        if room == &kitchen {
            kitchen_last = sent;
        }
    }

    // Bob's sync counts each room with the same counts the badge is made of.
    let (status, sync) = server.get("/_matrix/client/v3/sync", Some(&bob.token));
    assert_eq!(status, 200, "{sync}");
    for (room, count) in [(&garden, 1), (&kitchen, 2), (&attic, 1)] {
        assert_eq!(
            sync["rooms"]["join"][room]["unread_notifications"]["notification_count"], count,
            "{room}"
        );
    }

    // Reading the kitchen leaves the garden's and the attic's.
    read_receipt(&server, &bob, &kitchen, &kitchen_last);
    let received = gateway.wait_for(5);
    assert!(received[4]["notification"].get("event_id").is_none());
    assert_eq!(badge(&received[4]), 2);
    let attic_last = send_text(&server, &alice, &attic, "a2", "five");
    let received = gateway.wait_for(6);
    assert_eq!(received[5]["notification"]["event_id"], attic_last.as_str());
    assert_eq!(badge(&received[5]), 3);

    // After a restart the counts come from the store, and then from memory again.
    server.restart();
    let garden_last = send_text(&server, &alice, &garden, "g2", "six");
    let received = gateway.wait_for(7);
    assert_eq!(
        received[6]["notification"]["event_id"],
        garden_last.as_str()
    );
    assert_eq!(badge(&received[6]), 4);
    read_receipt(&server, &bob, &garden, &garden_last);
    let received = gateway.wait_for(8);
    assert_eq!(badge(&received[7]), 2);
    send_text(&server, &alice, &kitchen, "k3", "seven");
    let received = gateway.wait_for(9);
    assert_eq!(badge(&received[8]), 3);
    assert_eq!(received.len(), 9, "{received:?}");
}
