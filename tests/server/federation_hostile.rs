//! Hostile servers: a server written by the test (its own ed25519 key published over
//! TLS, events signed by hand) sends state it cannot back with valid auth events, events
//! with bad signatures or altered content, oversized transactions and events, and more
//! requests than it is allowed. The room's state on the Hearth server does not change;
//! bad events are rejected, dropped or redacted as the spec says; limits answer with
//! Matrix errors.

use serde_json::{Value, json};

use crate::federation_forks::state_of;
use crate::federation_support::{TestRemote, federating_server_with_env};
use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, get_event, put_state, user};

/// The event ID of the current `(type, state_key)` state event.
pub(crate) fn state_id(server: &TestServer, user: &User, room: &str, t: &str, k: &str) -> String {
    state_of(server, user, room)
        .into_iter()
        .find(|(ty, sk, _)| ty == t && sk == k)
        .map(|(_, _, id)| id)
        .unwrap_or_else(|| panic!("no {t}/{k} in the room"))
}

fn latest_event(server: &TestServer, user: &User, room: &str) -> String {
    let (_, messages) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1",
            enc(room)
        ),
        Some(&user.token),
    );
    messages["chunk"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Sends `pdus` in one transaction and returns the answer for each, in order.
pub(crate) fn push(
    remote: &TestRemote,
    server: &TestServer,
    txn: &str,
    pdus: &[Value],
) -> Vec<Value> {
    let body = json!({"origin": remote.server_name(), "origin_server_ts": 1, "pdus": pdus});
    let (status, answer) = remote.request(
        server,
        "PUT",
        &format!("/_matrix/federation/v1/send/{txn}"),
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
    let results = answer["pdus"].as_object().unwrap();
    pdus.iter()
        .map(|pdu| {
            let id = event_id_of(pdu);
            results.get(&id).cloned().unwrap_or(Value::Null)
        })
        .collect()
}

/// The reference hash of a v12 event, computed as the spec says.
pub(crate) fn event_id_of(pdu: &Value) -> String {
    let object: ruma::CanonicalJsonObject = serde_json::from_value(pdu.clone()).unwrap();
    let rules = ruma::RoomVersionId::V12.rules().unwrap();
    ruma::signatures::reference_hash(&object, &rules)
        .map(|hash| format!("${hash}"))
        .unwrap()
}

struct Forger<'a> {
    remote: &'a TestRemote,
    room: String,
    depth: u64,
}

impl Forger<'_> {
    fn user(&self, name: &str) -> String {
        format!("@{name}:{}", self.remote.server_name())
    }

    /// A v12 event by `sender`, hashed and signed by the remote.
    fn event(
        &mut self,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Value,
        prev: &[&str],
        auth: &[&str],
    ) -> Value {
        self.depth += 1;
        let mut event = json!({
            "room_id": self.room,
            "sender": sender,
            "type": event_type,
            "content": content,
            "prev_events": prev,
            "auth_events": auth,
            "depth": self.depth,
            "origin_server_ts": 1_700_000_000_000u64 + self.depth,
        });
        if let Some(k) = state_key {
            event["state_key"] = json!(k);
        }
        self.remote.sign_event(&mut event, "12");
        event
    }
}

fn is_error(result: &Value) -> bool {
    result["error"].is_string()
}

#[test]
fn forged_state_changes_nothing_and_bad_events_are_dropped_or_redacted() {
    let a = federating_server_with_env(&[]);
    let remote = TestRemote::start();
    let alice = user(&a, "alice");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12", "topic": "kept"}),
    );
    let pl = state_id(&a, &alice, &room, "m.room.power_levels", "");
    let rules = state_id(&a, &alice, &room, "m.room.join_rules", "");
    let mut forger = Forger {
        remote: &remote,
        room: room.clone(),
        depth: 100,
    };
    let eve = forger.user("eve");

    // Eve joins the public room the ordinary way: that is allowed.
    let latest = latest_event(&a, &alice, &room);
    let join = forger.event(
        &eve,
        "m.room.member",
        Some(&eve),
        json!({"membership": "join"}),
        &[&latest],
        &[&rules, &pl],
    );
    let join_id = event_id_of(&join);
    let results = push(&remote, &a, "join", &[join]);
    assert_eq!(results[0], json!({}), "{results:?}");
    let before = state_of(&a, &alice, &room);

    // 1. Eve, with no power, gives herself power: rejected.
    let power = forger.event(
        &eve,
        "m.room.power_levels",
        Some(""),
        json!({"users": {eve.clone(): 100}, "state_default": 0, "events_default": 0}),
        &[&join_id],
        &[&pl, &join_id],
    );
    let power_id = event_id_of(&power);
    // 2. A topic authorised only by that forged power level: rejected with it.
    let topic = forger.event(
        &eve,
        "m.room.topic",
        Some(""),
        json!({"topic": "forged"}),
        &[&power_id],
        &[&power_id, &join_id],
    );
    // 3. A topic citing auth events that do not exist anywhere: never accepted.
    let invented = "$inventedinventedinventedinventedinvented12";
    let ghost_topic = forger.event(
        &eve,
        "m.room.topic",
        Some(""),
        json!({"topic": "ghost"}),
        &[&join_id],
        &[invented, &join_id],
    );
    let results = push(&remote, &a, "forged", &[power, topic, ghost_topic]);
    // The first two are processed and rejected (`{}`, as Synapse); the third cannot be.
    assert_eq!(results[0], json!({}), "{results:?}");
    assert_eq!(results[1], json!({}), "{results:?}");
    assert!(is_error(&results[2]), "{results:?}");
    assert_eq!(state_of(&a, &alice, &room), before);
    assert_eq!(get_event(&a, &alice, &room, &power_id).0, 404);

    // 4. A join the join rules do not allow.
    let (status, body) = put_state(
        &a,
        &alice,
        &room,
        "m.room.join_rules",
        "",
        &json!({"join_rule": "invite"}),
    );
    assert_eq!(status, 200, "{body}");
    let rules = body["event_id"].as_str().unwrap().to_owned();
    let before = state_of(&a, &alice, &room);
    let frank = forger.user("frank");
    let latest = latest_event(&a, &alice, &room);
    let sneaky = forger.event(
        &frank,
        "m.room.member",
        Some(&frank),
        json!({"membership": "join"}),
        &[&latest],
        &[&rules, &pl],
    );
    let results = push(&remote, &a, "sneaky", &[sneaky]);
    assert_eq!(results[0], json!({}), "rejected: {results:?}");
    assert_eq!(state_of(&a, &alice, &room), before);

    // 5. A bad signature: the event is dropped, not stored at all.
    let mut tampered = forger.event(
        &eve,
        "m.room.message",
        None,
        json!({"msgtype": "m.text", "body": "signed"}),
        &[&latest],
        &[&pl, &join_id],
    );
    tampered["depth"] = json!(5);
    let tampered_id = event_id_of(&tampered);
    let results = push(&remote, &a, "badsig", &[tampered]);
    assert!(is_error(&results[0]), "{results:?}");
    assert_eq!(get_event(&a, &alice, &room, &tampered_id).0, 404);

    // 6. Content that does not match its hash: kept, redacted.
    let mut altered = forger.event(
        &eve,
        "m.room.message",
        None,
        json!({"msgtype": "m.text", "body": "original"}),
        &[&latest],
        &[&pl, &join_id],
    );
    altered["content"]["body"] = json!("altered");
    let altered_id = event_id_of(&altered);
    let results = push(&remote, &a, "altered", &[altered]);
    assert_eq!(results[0], json!({}), "{results:?}");
    let (status, event) = get_event(&a, &alice, &room, &altered_id);
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["content"], json!({}), "{event}");
    assert_eq!(state_of(&a, &alice, &room), before);
}

#[test]
fn oversized_transactions_and_events_and_too_many_requests_are_refused() {
    let a = federating_server_with_env(&[
        ("HEARTH_FEDERATION__TRANSACTIONS_BURST", "4"),
        ("HEARTH_FEDERATION__TRANSACTIONS_PER_MINUTE", "1"),
        ("HEARTH_FEDERATION__QUERIES_BURST", "3"),
        ("HEARTH_FEDERATION__QUERIES_PER_MINUTE", "1"),
    ]);
    let remote = TestRemote::start();
    let alice = user(&a, "alice");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12"}),
    );
    let pl = state_id(&a, &alice, &room, "m.room.power_levels", "");
    let rules = state_id(&a, &alice, &room, "m.room.join_rules", "");
    let latest = latest_event(&a, &alice, &room);
    let mut forger = Forger {
        remote: &remote,
        room: room.clone(),
        depth: 10,
    };
    let eve = forger.user("eve");
    let before = state_of(&a, &alice, &room);

    // More than 50 PDUs in one transaction.
    let many: Vec<Value> = (0..51)
        .map(|i| {
            forger.event(
                &eve,
                "m.room.message",
                None,
                json!({"body": i}),
                &[&latest],
                &[&pl],
            )
        })
        .collect();
    let body = json!({"origin": remote.server_name(), "origin_server_ts": 1, "pdus": many});
    let (status, answer) =
        remote.request(&a, "PUT", "/_matrix/federation/v1/send/many", Some(&body));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errcode"], "M_BAD_JSON");

    // A join naming 21 prev_events, and one naming 11 auth_events: invalid, dropped.
    let prevs: Vec<String> = (0..21).map(|i| format!("$prev{i:040}")).collect();
    let prev_refs: Vec<&str> = prevs.iter().map(String::as_str).collect();
    let wide = forger.event(
        &eve,
        "m.room.member",
        Some(&eve),
        json!({"membership": "join"}),
        &prev_refs,
        &[&rules, &pl],
    );
    let mut auths: Vec<&str> = prev_refs[..9].to_vec();
    auths.extend([rules.as_str(), pl.as_str()]);
    let deep = forger.event(
        &eve,
        "m.room.member",
        Some(&eve),
        json!({"membership": "join"}),
        &[&latest],
        &auths,
    );
    // A PDU over 65,536 bytes (grown after signing: signing libraries refuse it).
    let mut big = forger.event(
        &eve,
        "m.room.member",
        Some(&eve),
        json!({"membership": "join"}),
        &[&latest],
        &[&rules, &pl],
    );
    big["content"]["displayname"] = json!("x".repeat(70_000));
    let body =
        json!({"origin": remote.server_name(), "origin_server_ts": 1, "pdus": [wide, deep, big]});
    let (status, answer) = remote.request(
        &a,
        "PUT",
        "/_matrix/federation/v1/send/invalid",
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
    // None is stored: the invalid events have no answer or an error.
    for result in answer["pdus"].as_object().unwrap().values() {
        assert!(is_error(result), "{answer}");
    }
    assert_eq!(state_of(&a, &alice, &room), before);

    // Two transactions used; the burst of 4 allows two more, then 429.
    for i in 0..2 {
        let body = json!({"origin": remote.server_name(), "origin_server_ts": 1, "pdus": []});
        let (status, answer) = remote.request(
            &a,
            "PUT",
            &format!("/_matrix/federation/v1/send/empty{i}"),
            Some(&body),
        );
        assert_eq!(status, 200, "{answer}");
    }
    let body = json!({"origin": remote.server_name(), "origin_server_ts": 1, "pdus": []});
    let (status, answer) =
        remote.request(&a, "PUT", "/_matrix/federation/v1/send/over", Some(&body));
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["errcode"], "M_LIMIT_EXCEEDED");
    assert!(answer["retry_after_ms"].as_u64().unwrap() > 0, "{answer}");

    // Queries have their own allowance.
    let query = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        enc(&alice.id)
    );
    for _ in 0..3 {
        let (status, answer) = remote.request(&a, "GET", &query, None);
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = remote.request(&a, "GET", &query, None);
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["errcode"], "M_LIMIT_EXCEEDED");
    // Another server is not held back by this one.
    let other = TestRemote::start();
    let (status, answer) = other.request(&a, "GET", &query, None);
    assert_eq!(status, 200, "{answer}");
}
