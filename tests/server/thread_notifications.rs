//! Unread counts per thread: threaded read receipts (unthreaded, `main`, a thread root)
//! and `/sync`'s `unread_thread_notifications` when the room timeline filter asks for it
//! (Client-Server API §Receipts → Threaded read receipts, §Receiving notifications).

use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::room_support::{
    User, alice_and_bob_in_a_room, enc, join, read_receipt, send_text, thread_read_receipt,
    try_send, user,
};
use crate::sync_ws::{connect, next_frame};

fn send(server: &TestServer, user: &User, room: &str, txn: &str, content: Value) -> String {
    let (status, body) = try_send(server, user, room, txn, &content);
    assert_eq!(status, 200, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

/// A reply in the thread of `root`, mentioning `mention` when given.
fn in_thread(
    server: &TestServer,
    user: &User,
    room: &str,
    txn: &str,
    root: &str,
    mention: Option<&User>,
) -> String {
    let mut content = json!({
        "msgtype": "m.text",
        "body": txn,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": true,
            "m.in_reply_to": {"event_id": root},
        },
    });
    if let Some(user) = mention {
        content["m.mentions"] = json!({"user_ids": [user.id]});
    }
    send(server, user, room, txn, content)
}

/// A read receipt: unthreaded without `thread`, else with that `thread_id`.
#[track_caller]
fn receipt(server: &TestServer, user: &User, room: &str, event_id: &str, thread: Option<&str>) {
    match thread {
        Some(thread) => thread_read_receipt(server, user, room, event_id, thread),
        None => read_receipt(server, user, room, event_id),
    }
}

/// `(notification_count, highlight_count)`.
type Pair = (u64, u64);

fn pair(counts: &Value) -> Pair {
    (
        counts["notification_count"].as_u64().unwrap(),
        counts["highlight_count"].as_u64().unwrap(),
    )
}

/// The room's counts in an initial `/sync` without the filter flag.
fn total(server: &TestServer, user: &User, room: &str) -> (u64, u64) {
    let (status, body) = server.get("/_matrix/client/v3/sync", Some(&user.token));
    assert_eq!(status, 200, "{body}");
    let joined = &body["rooms"]["join"][room];
    assert!(
        joined.get("unread_thread_notifications").is_none(),
        "only when the filter asks: {joined}"
    );
    pair(&joined["unread_notifications"])
}

/// The room's counts in an initial `/sync` with `unread_thread_notifications: true`: the
/// main timeline's, and each thread's (sorted by root).
fn per_thread(server: &TestServer, user: &User, room: &str) -> (Pair, Vec<(String, Pair)>) {
    let filter = json!({"room": {"timeline": {"unread_thread_notifications": true}}});
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v3/sync?filter={}",
            enc(&filter.to_string())
        ),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    let joined = &body["rooms"]["join"][room];
    let mut threads: Vec<(String, Pair)> = match joined.get("unread_thread_notifications") {
        None => Vec::new(),
        Some(map) => {
            let map = map.as_object().expect("an object keyed by thread root");
            assert!(!map.is_empty(), "left out when no thread has unread ones");
            map.iter()
                .map(|(root, c)| (root.clone(), pair(c)))
                .collect()
        }
    };
    threads.sort();
    (pair(&joined["unread_notifications"]), threads)
}

/// Whether `/notifications` marks each of these events read.
fn read_flags(server: &TestServer, user: &User, events: &[&str]) -> Vec<bool> {
    let (status, body) = server.get("/_matrix/client/v3/notifications", Some(&user.token));
    assert_eq!(status, 200, "{body}");
    let listed = body["notifications"].as_array().unwrap();
    events
        .iter()
        .map(|id| {
            let n = listed
                .iter()
                .find(|n| n["event"]["event_id"] == *id)
                .unwrap_or_else(|| panic!("{id} listed: {body}"));
            n["read"].as_bool().unwrap()
        })
        .collect()
}

#[test]
fn threaded_receipts_read_their_own_thread_and_counts_split_by_thread() {
    let mut server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let root_a = send_text(&server, &alice, &room, "root-a", "thread A");
    let root_b = send_text(&server, &alice, &room, "root-b", "thread B");
    let a1 = in_thread(&server, &alice, &room, "a1", &root_a, None);
    let a2 = in_thread(&server, &alice, &room, "a2", &root_a, Some(&bob));
    let b1 = in_thread(&server, &alice, &room, "b1", &root_b, None);
    let main = send_text(&server, &alice, &room, "main", "on the main timeline");
    let sorted = |mut threads: Vec<(String, Pair)>| {
        threads.sort();
        threads
    };

    // Without the flag: everything together. With it: the main timeline (the two
    // roots and the message) apart from each thread.
    assert_eq!(total(&server, &bob, &room), (6, 1));
    assert_eq!(
        per_thread(&server, &bob, &room),
        (
            (3, 0),
            sorted(vec![(root_a.clone(), (2, 1)), (root_b.clone(), (1, 0))])
        )
    );

    // A receipt in thread A reads thread A only.
    receipt(&server, &bob, &room, &a2, Some(&root_a));
    assert_eq!(total(&server, &bob, &room), (4, 0));
    assert_eq!(
        per_thread(&server, &bob, &room),
        ((3, 0), vec![(root_b.clone(), (1, 0))])
    );
    assert_eq!(
        read_flags(&server, &bob, &[&a1, &a2, &b1, &root_a]),
        [true, true, false, false]
    );

    // A `main` receipt on the newest event reads the main timeline, not thread B.
    receipt(&server, &bob, &room, &main, Some("main"));
    assert_eq!(total(&server, &bob, &room), (1, 0));
    assert_eq!(
        per_thread(&server, &bob, &room),
        ((0, 0), vec![(root_b.clone(), (1, 0))])
    );
    assert_eq!(
        read_flags(&server, &bob, &[&b1, &root_a, &root_b, &main]),
        [false, true, true, true]
    );

    // The counts come from the store after a restart, each receipt still in force.
    server.restart();
    assert_eq!(
        per_thread(&server, &bob, &room),
        ((0, 0), vec![(root_b.clone(), (1, 0))])
    );
    assert_eq!(total(&server, &bob, &room), (1, 0));

    // An unthreaded receipt reads every thread up to its event: here b1, so the newer
    // main message and the newer reply in thread B stay unread.
    let main2 = send_text(&server, &alice, &room, "main2", "later");
    let b2 = in_thread(&server, &alice, &room, "b2", &root_b, Some(&bob));
    assert_eq!(
        per_thread(&server, &bob, &room),
        ((1, 0), vec![(root_b.clone(), (2, 1))])
    );
    receipt(&server, &bob, &room, &b1, None);
    assert_eq!(
        per_thread(&server, &bob, &room),
        ((1, 0), vec![(root_b.clone(), (1, 1))])
    );
    assert_eq!(total(&server, &bob, &room), (2, 1));
    // On the newest event it reads everything.
    receipt(&server, &bob, &room, &b2, None);
    assert_eq!(per_thread(&server, &bob, &room), ((0, 0), vec![]));
    assert_eq!(total(&server, &bob, &room), (0, 0));
    assert_eq!(read_flags(&server, &bob, &[&main2, &b2]), [true, true]);
}

/// A member whose outcome differs from the room's shared one (a mention) has records of
/// their own; these keep their thread in the store too.
#[test]
fn a_members_own_records_count_in_their_thread_across_a_restart() {
    let mut server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let carol = user(&server, "carol");
    let dave = user(&server, "dave");
    join(&server, &carol, &room);
    join(&server, &dave, &room);
    let root = send_text(&server, &alice, &room, "root", "a thread");
    // Bob and Dave share the room's record; Carol, mentioned, has her own.
    let reply = in_thread(&server, &alice, &room, "reply", &root, Some(&carol));
    let expected = ((1, 0), vec![(root.clone(), (1, 1))]);
    assert_eq!(per_thread(&server, &carol, &room), expected);
    assert_eq!(
        per_thread(&server, &bob, &room),
        ((1, 0), vec![(root.clone(), (1, 0))])
    );
    server.kill_9();
    server.restart();
    assert_eq!(per_thread(&server, &carol, &room), expected);
    assert_eq!(total(&server, &carol, &room), (2, 1));
    receipt(&server, &carol, &room, &reply, Some(&root));
    assert_eq!(per_thread(&server, &carol, &room), ((1, 0), vec![]));
    assert_eq!(
        per_thread(&server, &dave, &room),
        ((1, 0), vec![(root.clone(), (1, 0))])
    );
}

/// The sync WebSocket shares `/sync`'s answer: the thread's counts arrive with the reply.
#[test]
fn the_sync_socket_splits_counts_by_thread_when_the_filter_asks() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let root = send_text(&server, &alice, &room, "root", "a thread");
    let filter = json!({"room": {"timeline": {"unread_thread_notifications": true}}});
    let mut socket = connect(
        &server,
        &bob,
        &format!("filter={}", enc(&filter.to_string())),
    );
    let first = next_frame(&mut socket);
    assert_eq!(first["type"], "sync", "{first}");
    let joined = &first["body"]["rooms"]["join"][&room];
    assert_eq!(pair(&joined["unread_notifications"]), (1, 0), "{joined}");
    assert!(
        joined.get("unread_thread_notifications").is_none(),
        "{joined}"
    );

    let reply = in_thread(&server, &alice, &room, "reply", &root, Some(&bob));
    let joined = loop {
        let frame = next_frame(&mut socket);
        let joined = &frame["body"]["rooms"]["join"][&room];
        let events = joined["timeline"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if events.iter().any(|e| e["event_id"] == reply.as_str()) {
            break joined.clone();
        }
    };
    assert_eq!(pair(&joined["unread_notifications"]), (1, 0), "{joined}");
    assert_eq!(
        pair(&joined["unread_thread_notifications"][&root]),
        (1, 1),
        "{joined}"
    );
}

/// An event relating to an event in a thread by another relation is in that thread too
/// (one hop, as Synapse); one relating to the root is on the main timeline.
#[test]
fn an_event_relating_to_a_thread_event_counts_in_that_thread() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let root = send_text(&server, &alice, &room, "root", "a thread");
    let reply = in_thread(&server, &alice, &room, "reply", &root, None);
    let reference = |txn: &str, to: &str| {
        send(
            &server,
            &alice,
            &room,
            txn,
            json!({"msgtype": "m.text", "body": txn,
                   "m.relates_to": {"rel_type": "m.reference", "event_id": to}}),
        )
    };
    reference("to-reply", &reply);
    reference("to-root", &root);
    assert_eq!(
        per_thread(&server, &bob, &room),
        ((2, 0), vec![(root.clone(), (2, 0))])
    );
}
