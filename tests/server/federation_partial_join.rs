//! Partial-state ("faster") joins, the resident server's side: `send_join` with
//! `omit_members=true` answers with the state minus membership events (but the heroes'
//! when the room has no name), an auth chain that still backs every event it sends, and
//! the servers in the room.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::federation_support::{TestRemote, federating_server};
use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, join, put_state, user};

/// The reference hash of a v12 event.
fn event_id_of(pdu: &Value) -> String {
    let object: ruma::CanonicalJsonObject = serde_json::from_value(pdu.clone()).unwrap();
    let rules = ruma::RoomVersionId::V12.rules().unwrap();
    ruma::signatures::reference_hash(&object, &rules)
        .map(|hash| format!("${hash}"))
        .unwrap()
}

/// `make_join` then `send_join` (v2) for a user of `remote`, with `query` on the
/// `send_join`; returns the answer.
pub(crate) fn remote_join(
    remote: &TestRemote,
    a: &TestServer,
    room: &str,
    local: &str,
    query: &str,
) -> Value {
    let user_id = format!("@{local}:{}", remote.server_name());
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=12",
        enc(room),
        enc(&user_id)
    );
    let (status, body) = remote.request(a, "GET", &path, None);
    assert_eq!(status, 200, "{body}");
    let mut event = body["event"].clone();
    remote.sign_event(&mut event, "12");
    let event_id = event_id_of(&event);
    let path = format!(
        "/_matrix/federation/v2/send_join/{}/{}{query}",
        enc(room),
        enc(&event_id)
    );
    let (status, body) = remote.request(a, "PUT", &path, Some(&event));
    assert_eq!(status, 200, "{body}");
    body
}

fn member_keys(state: &Value) -> HashSet<String> {
    state
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap().to_owned())
        .collect()
}

/// Every auth event of every event sent is among the events sent (or is the create
/// event, which v12 events name only implicitly).
fn assert_backed(answer: &Value) {
    let sent: Vec<&Value> = answer["state"]
        .as_array()
        .unwrap()
        .iter()
        .chain(answer["auth_chain"].as_array().unwrap())
        .collect();
    let ids: HashSet<String> = sent.iter().map(|e| event_id_of(e)).collect();
    for event in &sent {
        for auth in event["auth_events"].as_array().unwrap() {
            assert!(
                ids.contains(auth.as_str().unwrap()),
                "{} names auth event {auth}, which the answer lacks",
                event["type"]
            );
        }
    }
}

fn room_with_members(a: &TestServer, count: usize, body: Value) -> (User, String) {
    let alice = user(a, "alice");
    let room = create_room(a, &alice, body);
    for i in 0..count {
        let member = user(a, &format!("member{i}"));
        join(a, &member, &room);
    }
    (alice, room)
}

#[test]
fn send_join_with_omit_members_leaves_out_memberships_but_the_heroes() {
    let a = federating_server();
    let remote = TestRemote::start();
    // No name: the heroes' memberships stay.
    let (alice, room) = room_with_members(
        &a,
        8,
        json!({"preset": "public_chat", "room_version": "12"}),
    );

    let full = remote_join(&remote, &a, &room, "full", "");
    assert_eq!(full["members_omitted"], false);
    assert_eq!(member_keys(&full["state"]).len(), 9, "{}", full["state"]);
    assert_backed(&full);

    let partial = remote_join(&remote, &a, &room, "partial", "?omit_members=true");
    assert_eq!(partial["members_omitted"], true);
    let members = member_keys(&partial["state"]);
    // Five heroes, joined ones, and not the joiner (whose earlier join by `full` is one
    // of the ten members now).
    assert_eq!(members.len(), 5, "{members:?}");
    assert!(!members.iter().any(|m| m.starts_with("@partial:")));
    let types: HashSet<&str> = partial["state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for wanted in [
        "m.room.create",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
    ] {
        assert!(types.contains(wanted), "{wanted} missing from {types:?}");
    }
    assert_backed(&partial);
    // Nothing twice: what the state carries is not repeated in the auth chain.
    let state_ids: HashSet<String> = partial["state"]
        .as_array()
        .unwrap()
        .iter()
        .map(event_id_of)
        .collect();
    assert!(
        partial["auth_chain"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !state_ids.contains(&event_id_of(e)))
    );
    let servers: Vec<&str> = partial["servers_in_room"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(servers.contains(&a.server_name().as_str()), "{servers:?}");
    assert!(
        servers.contains(&remote.server_name().as_str()),
        "{servers:?}"
    );

    // With a name, no membership at all is needed for the room's summary.
    put_state(
        &a,
        &alice,
        &room,
        "m.room.name",
        "",
        &json!({"name": "named"}),
    );
    let named = remote_join(&remote, &a, &room, "named", "?omit_members=true");
    assert_eq!(named["members_omitted"], true);
    assert!(
        member_keys(&named["state"]).is_empty(),
        "{}",
        named["state"]
    );
    assert_backed(&named);
}
