//! Partial-state ("faster") joins, the joining server's side: a user of B joins a big
//! room of A; B asks `send_join` with `omit_members`, the room is usable at once while B
//! knows few of its members, and B fetches the full state in the background, across a
//! restart, from another server when the first is down, or not at all with the switch off.

use std::time::Duration;

use serde_json::{Value, json};

use crate::federation_rooms::{bodies, eventually, join_via};
use crate::federation_support::federating_server_with_env;
use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, get_state, join, send_text, user};
use crate::sync::{next_batch, sync};

/// Holds a partially joined room partial: its resync starts only after an hour.
const HELD: (&str, &str) = ("HEARTH_FEDERATION__PARTIAL_STATE_RESYNC_DELAY_SECS", "3600");
const DELAY_KEY: &str = "HEARTH_FEDERATION__PARTIAL_STATE_RESYNC_DELAY_SECS";
/// Retries come within a few seconds in tests.
const FAST_RETRY: (&str, &str) = ("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "2");

const MEMBERS: usize = 12;

/// Alice's named public room on `a` with [`MEMBERS`] more local members: a named room's
/// partial state carries no membership at all (no heroes are needed).
fn big_room(a: &TestServer) -> (User, Vec<User>, String) {
    let alice = user(a, "alice");
    let room = create_room(
        a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12", "name": "Big"}),
    );
    let members: Vec<User> = (0..MEMBERS)
        .map(|i| {
            let member = user(a, &format!("member{i}"));
            join(a, &member, &room);
            member
        })
        .collect();
    (alice, members, room)
}

fn joined_members(server: &TestServer, user: &User, room: &str) -> Vec<String> {
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room)),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<String> = body["joined"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    ids.sort();
    ids
}

fn everyone(alice: &User, members: &[User], bob: &User) -> Vec<String> {
    let mut ids: Vec<String> = members
        .iter()
        .chain([alice, bob])
        .map(|u| u.id.clone())
        .collect();
    ids.sort();
    ids
}

fn lazy_filter() -> String {
    enc(r#"{"room":{"state":{"lazy_load_members":true}}}"#)
}

#[track_caller]
fn sees_message(server: &TestServer, user: &User, room: &str, text: &str) {
    eventually(Duration::from_secs(20), &format!("{text:?}"), || {
        bodies(server, user, room)
            .iter()
            .any(|b| b == text)
            .then_some(())
    });
}

#[test]
fn a_partially_joined_room_is_usable_at_once_and_completes_after_a_restart() {
    let a = federating_server_with_env(&[FAST_RETRY]);
    let mut b = federating_server_with_env(&[FAST_RETRY, HELD]);
    let (alice, members, room) = big_room(&a);
    let bob = user(&b, "bob");
    let (status, body) = join_via(&b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");

    // B knows the room's rules but not its members: a full join would know member3.
    let (status, _) = get_state(&b, &bob, &room, "m.room.join_rules", "");
    assert_eq!(status, 200);
    let (status, body) = get_state(&b, &bob, &room, "m.room.member", &members[3].id);
    assert_eq!(
        status, 404,
        "B knows a membership a partial state omits: {body}"
    );

    // Syncs loading every member leave the room out until it is complete; lazy-loading
    // ones show it.
    let full_sync = sync(&b, &bob, "");
    assert!(
        full_sync["rooms"]["join"].get(&room).is_none(),
        "{}",
        full_sync["rooms"]
    );
    let lazy = sync(&b, &bob, &format!("filter={}", lazy_filter()));
    assert!(
        lazy["rooms"]["join"].get(&room).is_some(),
        "{}",
        lazy["rooms"]
    );

    // Bob talks to the room, and the room to Bob, although B cannot check a sender's
    // membership against its own state yet.
    send_text(&b, &bob, &room, "t1", "hello from B");
    sees_message(&a, &alice, &room, "hello from B");
    send_text(&a, &members[0], &room, "t2", "hello from member0");
    sees_message(&b, &bob, &room, "hello from member0");

    // A restart keeps the room partial and resumes its resync, which completes.
    b.set_env(DELAY_KEY, "0");
    b.restart();
    assert_eq!(
        joined_members(&b, &bob, &room),
        everyone(&alice, &members, &bob)
    );
    let (status, body) = get_state(&b, &bob, &room, "m.room.member", &members[3].id);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["membership"], "join");

    // The sync that left the room out now shows it as a new join, with every member in
    // the state before its timeline (one event, so that state is that of the room's
    // completed state groups).
    let one_event = enc(r#"{"room":{"timeline":{"limit":1}}}"#);
    let next = sync(
        &b,
        &bob,
        &format!("since={}&filter={one_event}", next_batch(&full_sync)),
    );
    let state = next["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let timeline = next["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut shown: Vec<String> = state
        .iter()
        .chain(&timeline)
        .filter(|e| e["type"] == "m.room.member" && e["content"]["membership"] == "join")
        .map(|e| e["state_key"].as_str().unwrap().to_owned())
        .collect();
    shown.sort();
    shown.dedup();
    assert_eq!(shown, everyone(&alice, &members, &bob), "{}", next["rooms"]);

    // The room goes on with its completed state: both ways, and the earlier message kept.
    send_text(&a, &members[5], &room, "t3", "after the resync");
    sees_message(&b, &bob, &room, "after the resync");
    send_text(&b, &bob, &room, "t4", "bob again");
    sees_message(&a, &alice, &room, "bob again");
    assert!(bodies(&b, &bob, &room).contains(&"hello from member0".to_owned()));
}

#[test]
fn the_full_state_comes_from_another_server_when_the_first_is_down() {
    let mut a = federating_server_with_env(&[FAST_RETRY]);
    let c = federating_server_with_env(&[FAST_RETRY]);
    let mut b = federating_server_with_env(&[FAST_RETRY, HELD]);
    let (alice, members, room) = big_room(&a);
    // Carol of C is in the room with its full state.
    let carol = user(&c, "carol");
    let (status, body) = join_via(&c, &carol, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    let bob = user(&b, "bob");
    let mut expected = everyone(&alice, &members, &bob);
    expected.push(carol.id.clone());
    expected.sort();
    let (status, body) = join_via(&b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    // C has Bob's join (the state at it is what B asks for) and all members.
    eventually(Duration::from_secs(20), "C to hold Bob's join", || {
        (joined_members(&c, &carol, &room) == expected).then_some(())
    });

    // A goes away; B, restarted to start its resync, finds C in the room.
    a.terminate();
    b.set_env(DELAY_KEY, "0");
    b.restart();
    assert_eq!(joined_members(&b, &bob, &room), expected);
}

#[test]
fn with_partial_state_joins_off_the_whole_state_comes_with_the_join() {
    let a = federating_server_with_env(&[FAST_RETRY]);
    let b = federating_server_with_env(&[
        FAST_RETRY,
        ("HEARTH_FEDERATION__PARTIAL_STATE_JOINS", "false"),
    ]);
    let (alice, members, room) = big_room(&a);
    let bob = user(&b, "bob");
    let (status, body) = join_via(&b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_state(&b, &bob, &room, "m.room.member", &members[3].id);
    assert_eq!(status, 200, "{body}");
    let full_sync: Value = sync(&b, &bob, "");
    assert!(full_sync["rooms"]["join"].get(&room).is_some());
    assert_eq!(
        joined_members(&b, &bob, &room),
        everyone(&alice, &members, &bob)
    );
    send_text(&b, &bob, &room, "t1", "hello from B");
    sees_message(&a, &alice, &room, "hello from B");
}
