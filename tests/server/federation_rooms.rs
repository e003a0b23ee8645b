//! Rooms shared by two real Hearth servers over signed HTTPS: joins, messages both ways,
//! typing, receipts, invites, kicks, an outage, and an event that fails authorisation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::federation_support::{TestRemote, federating_server_with_env};
use crate::harness::TestServer;
use crate::room_support::{
    User, create_room, enc, get_state, membership, membership_of, read_receipt, send_text,
    start_typing, user,
};

/// Retries come within a few seconds in tests.
const FAST_RETRY: &[(&str, &str)] = &[("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "2")];

pub(crate) fn two_servers() -> (TestServer, TestServer) {
    let env = [FAST_RETRY[0], ("RUST_LOG", "info")];
    (
        federating_server_with_env(&env),
        federating_server_with_env(&env),
    )
}

/// Polls until `check` gives a value, or fails after `limit`.
#[track_caller]
pub(crate) fn eventually<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The room's message bodies as `user` sees them, oldest first.
pub(crate) fn bodies(server: &TestServer, user: &User, room: &str) -> Vec<String> {
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000",
            enc(room)
        ),
        Some(&user.token),
    );
    if status != 200 {
        return vec![];
    }
    let mut out: Vec<String> = body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    out.reverse();
    out
}

#[track_caller]
fn sees_message(server: &TestServer, user: &User, room: &str, text: &str) {
    eventually(
        Duration::from_secs(20),
        &format!("{text:?} to arrive"),
        || {
            bodies(server, user, room)
                .iter()
                .any(|b| b == text)
                .then_some(())
        },
    );
}

pub(crate) fn join_via(server: &TestServer, user: &User, target: &str, via: &str) -> (u16, Value) {
    server.post(
        &format!("/_matrix/client/v3/join/{}?via={}", enc(target), enc(via)),
        Some(&user.token),
        &json!({}),
    )
}

/// Alice's public room on `a` (v12, no server name in its ID), with Bob of `b` joined by ID.
pub(crate) fn shared_room(a: &TestServer, b: &TestServer) -> (User, User, String) {
    let alice = user(a, "alice");
    let bob = user(b, "bob");
    let room = create_room(
        a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12"}),
    );
    let (status, body) = join_via(b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    (alice, bob, room)
}

#[test]
fn a_user_joins_a_room_of_another_server_by_alias_and_they_talk_both_ways() {
    let (a, b) = two_servers();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_alias_name": "lobby", "room_version": "11"}),
    );
    let alias = format!("#lobby:{}", a.server_name());
    let (status, body) = b.post(
        &format!("/_matrix/client/v3/join/{}", enc(&alias)),
        Some(&bob.token),
        &json!({}),
    );
    let (mut a, mut b) = (a, b);
    if status != 200 {
        panic!(
            "join by alias: {status} {body}\nB: {}\nA: {}",
            b.stop_and_logs(),
            a.stop_and_logs()
        );
    }
    assert_eq!(body["room_id"], room);

    // Both servers hold Bob's join; Bob's server has the room's state.
    assert_eq!(
        membership_of(&b, &bob, &room, &bob.id).as_deref(),
        Some("join")
    );
    let (status, create) = get_state(&b, &bob, &room, "m.room.create", "");
    if status != 200 {
        panic!("create on B: {status} {create}\nB: {}", b.stop_and_logs());
    }
    eventually(Duration::from_secs(10), "the join on A", || {
        (membership_of(&a, &alice, &room, &bob.id).as_deref() == Some("join")).then_some(())
    });

    send_text(&a, &alice, &room, "t1", "hello from A");
    sees_message(&b, &bob, &room, "hello from A");
    send_text(&b, &bob, &room, "t1", "hello from B");
    sees_message(&a, &alice, &room, "hello from B");

    // An edit, a reaction and a redaction cross too.
    let original = send_text(&a, &alice, &room, "t2", "tpyo");
    let (status, _) = a.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/t3",
            enc(&room)
        ),
        Some(&alice.token),
        &json!({
            "msgtype": "m.text", "body": "* typo",
            "m.new_content": {"msgtype": "m.text", "body": "typo"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        }),
    );
    assert_eq!(status, 200);
    let (status, _) = b.send(
        "PUT",
        &format!("/_matrix/client/v3/rooms/{}/send/m.reaction/t4", enc(&room)),
        Some(&bob.token),
        &json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": original, "key": "👍"}}),
    );
    assert_eq!(status, 200);
    eventually(Duration::from_secs(20), "the reaction on A", || {
        let (status, body) = a.get(
            &format!(
                "/_matrix/client/v1/rooms/{}/relations/{}/m.annotation",
                enc(&room),
                enc(&original)
            ),
            Some(&alice.token),
        );
        (status == 200 && body["chunk"].as_array().is_some_and(|c| !c.is_empty())).then_some(())
    });
    sees_message(&b, &bob, &room, "* typo");
    let (status, body) = a.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/t5",
            enc(&room),
            enc(&original)
        ),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(20), "the redaction on B", || {
        let (status, body) = b.get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&original)
            ),
            Some(&bob.token),
        );
        (status == 200 && body["content"] == json!({})).then_some(())
    });
}

#[test]
fn typing_receipts_and_presence_cross_between_servers() {
    let (a, b) = two_servers();
    let (alice, bob, room) = shared_room(&a, &b);
    let event = send_text(&a, &alice, &room, "t1", "read me");
    sees_message(&b, &bob, &room, "read me");

    start_typing(&b, &bob, &room, 20000);
    read_receipt(&b, &bob, &room, &event);
    let (status, body) = b.send(
        "PUT",
        &format!("/_matrix/client/v3/presence/{}/status", enc(&bob.id)),
        Some(&bob.token),
        &json!({"presence": "online", "status_msg": "on B"}),
    );
    assert_eq!(status, 200, "{body}");

    let mut saw_typing = false;
    let mut saw_receipt = false;
    let mut since: Option<String> = None;
    eventually(
        Duration::from_secs(20),
        "typing and the receipt on A",
        || {
            let path = match &since {
                Some(s) => format!("/_matrix/client/v3/sync?timeout=500&since={s}"),
                None => "/_matrix/client/v3/sync".to_owned(),
            };
            let (status, body) = a.get(&path, Some(&alice.token));
            assert_eq!(status, 200, "{body}");
            since = body["next_batch"].as_str().map(str::to_owned);
            let ephemeral = &body["rooms"]["join"][&room]["ephemeral"]["events"];
            for e in ephemeral.as_array().into_iter().flatten() {
                if e["type"] == "m.typing"
                    && e["content"]["user_ids"]
                        .as_array()
                        .is_some_and(|u| u.contains(&json!(bob.id)))
                {
                    saw_typing = true;
                }
                if e["type"] == "m.receipt" && e["content"][&event]["m.read"][&bob.id].is_object() {
                    saw_receipt = true;
                }
            }
            (saw_typing && saw_receipt).then_some(())
        },
    );
    eventually(Duration::from_secs(20), "Bob's presence on A", || {
        let (status, body) = a.get(
            &format!("/_matrix/client/v3/presence/{}/status", enc(&bob.id)),
            Some(&alice.token),
        );
        (status == 200 && body["status_msg"] == "on B").then_some(())
    });

    // And from A to B.
    start_typing(&a, &alice, &room, 20000);
    eventually(Duration::from_secs(20), "Alice typing on B", || {
        let (_, body) = b.get("/_matrix/client/v3/sync?timeout=500", Some(&bob.token));
        let ephemeral = &body["rooms"]["join"][&room]["ephemeral"]["events"];
        ephemeral
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| {
                e["type"] == "m.typing"
                    && e["content"]["user_ids"]
                        .as_array()
                        .is_some_and(|u| u.contains(&json!(alice.id)))
            })
            .then_some(())
    });
}

#[test]
fn an_invite_from_one_server_is_accepted_on_the_other_and_a_kick_removes_the_user_on_both() {
    let (a, b) = two_servers();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "private_chat", "name": "Secret"}),
    );
    let (status, body) = membership(&a, &alice, &room, "invite", json!({"user_id": bob.id}));
    assert_eq!(status, 200, "{body}");

    // Bob's server shows the invite with what Alice's server shared of the room.
    let (status, body) = b.get("/_matrix/client/v3/sync", Some(&bob.token));
    assert_eq!(status, 200, "{body}");
    let invite_state = &body["rooms"]["invite"][&room]["invite_state"]["events"];
    assert!(
        invite_state.as_array().is_some_and(|s| s
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Secret")),
        "{body}"
    );

    // Joining through the inviter's server, with no `via` given.
    let (status, body) = b.post(
        &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    send_text(&b, &bob, &room, "t1", "thanks for the invite");
    sees_message(&a, &alice, &room, "thanks for the invite");

    let (status, body) = membership(
        &a,
        &alice,
        &room,
        "kick",
        json!({"user_id": bob.id, "reason": "bye"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        membership_of(&a, &alice, &room, &bob.id).as_deref(),
        Some("leave")
    );
    eventually(Duration::from_secs(20), "the kick on B", || {
        let (status, body) = b.get("/_matrix/client/v3/joined_rooms", Some(&bob.token));
        (status == 200
            && !body["joined_rooms"]
                .as_array()
                .unwrap()
                .contains(&json!(room)))
        .then_some(())
    });
}

#[test]
fn an_invite_can_be_declined_through_the_inviting_server() {
    let (a, b) = two_servers();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = create_room(&a, &alice, json!({"preset": "private_chat"}));
    let (status, body) = membership(&a, &alice, &room, "invite", json!({"user_id": bob.id}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = membership(&b, &bob, &room, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        membership_of(&a, &alice, &room, &bob.id).as_deref(),
        Some("leave")
    );
    let (_, body) = b.get("/_matrix/client/v3/sync", Some(&bob.token));
    assert!(body["rooms"]["invite"].get(&room).is_none(), "{body}");
}

#[test]
fn a_server_that_was_down_gets_every_message_once_and_in_order() {
    let (a, mut b) = two_servers();
    let (alice, bob, room) = shared_room(&a, &b);
    send_text(&a, &alice, &room, "warm", "before the outage");
    sees_message(&b, &bob, &room, "before the outage");

    assert!(b.terminate().success());
    let sent: Vec<String> = (0..100).map(|i| format!("message {i}")).collect();
    for (i, text) in sent.iter().enumerate() {
        send_text(&a, &alice, &room, &format!("m{i}"), text);
    }
    let down_since = Instant::now();
    b.restart();
    let got = eventually(Duration::from_secs(60), "all 100 messages on B", || {
        let got = bodies(&b, &bob, &room);
        (got.len() > sent.len()).then_some(got)
    });
    assert_eq!(&got[1..], &sent[..], "every message once, in order");
    eprintln!("B caught up {:?} after its restart", down_since.elapsed());
}

#[test]
fn an_event_that_fails_authorisation_is_rejected() {
    let a = federating_server_with_env(FAST_RETRY);
    let remote = TestRemote::start();
    let alice = user(&a, "alice");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "11"}),
    );
    let (_, create) = a.get(
        &format!("/_matrix/client/v3/rooms/{}/state", enc(&room)),
        Some(&alice.token),
    );
    let id_of = |t: &str| {
        create
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == t)
            .and_then(|e| e["event_id"].as_str())
            .unwrap()
            .to_owned()
    };
    let (_, messages) = a.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1",
            enc(&room)
        ),
        Some(&alice.token),
    );
    let latest = messages["chunk"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A message from a user who never joined, signed by the user's own server.
    let mut event = json!({
        "room_id": room,
        "sender": format!("@eve:{}", remote.server_name()),
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": "let me in"},
        "prev_events": [latest],
        "auth_events": [id_of("m.room.create"), id_of("m.room.power_levels")],
        "depth": 100,
        "origin_server_ts": 1,
    });
    remote.sign_event(&mut event, "11");
    let txn = json!({
        "origin": remote.server_name(),
        "origin_server_ts": 1,
        "pdus": [event],
    });
    let (status, answer) = remote.request(&a, "PUT", "/_matrix/federation/v1/send/t1", Some(&txn));
    assert_eq!(status, 200, "{answer}");
    let results = answer["pdus"].as_object().unwrap();
    assert_eq!(results.len(), 1, "{answer}");
    let (event_id, result) = results.iter().next().unwrap();
    // Processed (stored as rejected): no error, as Synapse answers.
    assert_eq!(result, &json!({}), "{answer}");
    // Never shown, not even by ID.
    assert!(!bodies(&a, &alice, &room).contains(&"let me in".to_owned()));
    let (status, _) = a.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(&room),
            enc(event_id)
        ),
        Some(&alice.token),
    );
    assert_eq!(status, 404);
    // The same transaction again gets the same answer.
    let (_, again) = remote.request(&a, "PUT", "/_matrix/federation/v1/send/t1", Some(&txn));
    assert_eq!(again, answer);
}

#[test]
fn make_join_refuses_a_server_without_the_room_version_and_a_banned_user() {
    let a = federating_server_with_env(FAST_RETRY);
    let remote = TestRemote::start();
    let alice = user(&a, "alice");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "11"}),
    );
    let eve = format!("@eve:{}", remote.server_name());
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}",
        enc(&room),
        enc(&eve)
    );
    let (status, body) = remote.request(&a, "GET", &format!("{path}?ver=10"), None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errcode"], "M_INCOMPATIBLE_ROOM_VERSION");
    assert_eq!(body["room_version"], "11");
    let (status, body) = remote.request(&a, "GET", &format!("{path}?ver=11"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event"]["content"]["membership"], "join");
    // A user of another server may not be asked for.
    let other = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=11",
        enc(&room),
        enc("@mallory:elsewhere.test")
    );
    let (status, _) = remote.request(&a, "GET", &other, None);
    assert_eq!(status, 403);
    let (status, body) = membership(&a, &alice, &room, "ban", json!({"user_id": eve}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = remote.request(&a, "GET", &format!("{path}?ver=11"), None);
    assert_eq!(status, 403, "{body}");
}

#[test]
fn a_transaction_larger_than_a_client_request_is_accepted_and_an_oversized_one_refused() {
    let a = federating_server_with_env(FAST_RETRY);
    let remote = TestRemote::start();
    // 100 EDUs of 15 KiB: 1.5 MiB, over the 1 MiB clients may send.
    let filler = "x".repeat(15 * 1024);
    let edus: Vec<Value> = (0..100)
        .map(|_| json!({"edu_type": "org.example.filler", "content": {"filler": filler}}))
        .collect();
    let txn =
        json!({"origin": remote.server_name(), "origin_server_ts": 1, "pdus": [], "edus": edus});
    let (status, body) = remote.request(&a, "PUT", "/_matrix/federation/v1/send/big", Some(&txn));
    assert_eq!(status, 200, "{body}");
    // More than the spec's 100 EDUs is refused.
    let mut too_many = txn.clone();
    too_many["edus"] = json!(
        (0..101)
            .map(|_| json!({"edu_type": "x", "content": {}}))
            .collect::<Vec<_>>()
    );
    let (status, body) = remote.request(
        &a,
        "PUT",
        "/_matrix/federation/v1/send/many",
        Some(&too_many),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errcode"], "M_BAD_JSON");
}

/// The reference hash of an event of `room_version`.
pub(crate) fn reference_id(pdu: &Value, room_version: &str) -> String {
    let object: ruma::CanonicalJsonObject = serde_json::from_value(pdu.clone()).unwrap();
    let rules = ruma::RoomVersionId::try_from(room_version)
        .unwrap()
        .rules()
        .unwrap();
    ruma::signatures::reference_hash(&object, &rules)
        .map(|hash| format!("${hash}"))
        .unwrap()
}

/// `make_*` for `user_id`, signed by `remote`; returns the event and its ID.
pub(crate) fn signed_template(
    remote: &TestRemote,
    a: &TestServer,
    kind: &str,
    room: &str,
    user_id: &str,
) -> (Value, String) {
    let path = format!(
        "/_matrix/federation/v1/make_{kind}/{}/{}?ver=11",
        enc(room),
        enc(user_id)
    );
    let (status, body) = remote.request(a, "GET", &path, None);
    assert_eq!(status, 200, "{body}");
    let mut event = body["event"].clone();
    remote.sign_event(&mut event, "11");
    let event_id = reference_id(&event, "11");
    (event, event_id)
}

#[test]
fn v1_join_and_leave_answer_arrays_backfill_stays_in_the_room_and_empty_rooms_refuse() {
    let a = federating_server_with_env(FAST_RETRY);
    let remote = TestRemote::start();
    let alice = user(&a, "alice");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "11"}),
    );
    let eve = format!("@eve:{}", remote.server_name());

    let (join, join_id) = signed_template(&remote, &a, "join", &room, &eve);
    let path = format!(
        "/_matrix/federation/v1/send_join/{}/{}",
        enc(&room),
        enc(&join_id)
    );
    let (status, body) = remote.request(&a, "PUT", &path, Some(&join));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0], 200, "{body}");
    let state = body[1]["state"].as_array().expect("state");
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == alice.id.as_str()),
        "{body}"
    );
    assert!(body[1]["auth_chain"].is_array(), "{body}");

    // Backfill from events that are not the room's gives nothing (not a 404), as Synapse:
    // an unknown event, and one of another room.
    let other_room = create_room(&a, &alice, json!({"preset": "public_chat"}));
    let other_event = send_text(&a, &alice, &other_room, "t1", "elsewhere");
    for v in [
        "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        other_event.as_str(),
    ] {
        let path = format!(
            "/_matrix/federation/v1/backfill/{}?v={}&limit=10",
            enc(&room),
            enc(v)
        );
        let (status, body) = remote.request(&a, "GET", &path, None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["pdus"], json!([]), "{body}");
    }

    let (leave, leave_id) = signed_template(&remote, &a, "leave", &room, &eve);
    let path = format!(
        "/_matrix/federation/v1/send_leave/{}/{}",
        enc(&room),
        enc(&leave_id)
    );
    let (status, body) = remote.request(&a, "PUT", &path, Some(&leave));
    assert_eq!((status, body), (200, json!([200, {}])));

    // Once its last user has left, this server no longer offers joins to the room.
    let (status, body) = membership(&a, &alice, &room, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=11",
        enc(&room),
        enc(&eve)
    );
    let (status, body) = remote.request(&a, "GET", &path, None);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["errcode"], "M_NOT_FOUND");
}
