//! Knocking across servers: a user of one server knocks on a room of another
//! (`make_knock`/`send_knock`), sees the knock in sync with what the room shared, is
//! let in by an invite, or withdraws the knock; rooms that take no knocks refuse.

use std::time::Duration;

use serde_json::{Value, json};

use crate::federation_rooms::{eventually, two_servers};
use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, membership, membership_of, send_text, user};

fn knock(server: &TestServer, user: &User, room: &str, via: &str) -> (u16, Value) {
    server.post(
        &format!("/_matrix/client/v3/knock/{}?via={}", enc(room), enc(via)),
        Some(&user.token),
        &json!({"reason": "let me in, please"}),
    )
}

fn sync_rooms(server: &TestServer, user: &User) -> Value {
    let (status, body) = server.get("/_matrix/client/v3/sync?timeout=0", Some(&user.token));
    assert_eq!(status, 200, "{body}");
    body["rooms"].clone()
}

/// Alice's room on `a` that takes knocks.
fn knock_room(a: &TestServer, alice: &User, join_rule: &str) -> String {
    create_room(
        a,
        alice,
        json!({
            "preset": "private_chat",
            "room_version": "11",
            "name": "Knock first",
            "initial_state": [{
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {"join_rule": join_rule},
            }],
        }),
    )
}

#[test]
fn a_knock_from_another_server_is_seen_answered_with_an_invite_and_the_knocker_joins() {
    let (a, b) = two_servers();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = knock_room(&a, &alice, "knock");

    let (status, body) = knock(&b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room_id"], room.as_str());
    // Bob's server shows the knock with what the room shared of itself.
    let rooms = sync_rooms(&b, &bob);
    let shared = rooms["knock"][&room]["knock_state"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no knock section: {rooms}"))
        .clone();
    let name = shared.iter().find(|e| e["type"] == "m.room.name").unwrap();
    assert_eq!(name["content"]["name"], "Knock first");
    // Alice's server has the knock, with its reason.
    assert_eq!(
        membership_of(&a, &alice, &room, &bob.id).as_deref(),
        Some("knock")
    );
    let (_, member) = a.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
            enc(&room),
            enc(&bob.id)
        ),
        Some(&alice.token),
    );
    assert_eq!(member["reason"], "let me in, please");

    // Alice lets Bob in.
    let (status, body) = membership(&a, &alice, &room, "invite", json!({"user_id": bob.id}));
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(20), "the invite on B", || {
        sync_rooms(&b, &bob)["invite"].get(&room).map(|_| ())
    });
    let (status, body) = b.post(
        &format!("/_matrix/client/v3/join/{}", enc(&room)),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    send_text(&a, &alice, &room, "hi", "welcome, bob");
    eventually(Duration::from_secs(20), "Alice's message on B", || {
        let (_, body) = b.get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=5",
                enc(&room)
            ),
            Some(&bob.token),
        );
        body["chunk"]
            .as_array()?
            .iter()
            .any(|e| e["content"]["body"] == "welcome, bob")
            .then_some(())
    });
}

#[test]
fn a_knock_can_be_withdrawn_and_rooms_that_take_no_knocks_refuse() {
    let (a, b) = two_servers();
    let alice = user(&a, "alice");
    let carol = user(&b, "carol");
    let room = knock_room(&a, &alice, "knock");
    let (status, body) = knock(&b, &carol, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");

    // Carol changes her mind: the knock is withdrawn on the room's server too.
    let (status, body) = membership(&b, &carol, &room, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        membership_of(&a, &alice, &room, &carol.id).as_deref(),
        Some("leave")
    );
    assert!(sync_rooms(&b, &carol)["knock"].get(&room).is_none());

    // An invite-only room says no, and nothing is recorded on Carol's server.
    let closed = knock_room(&a, &alice, "invite");
    let (status, body) = knock(&b, &carol, &closed, &a.server_name());
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errcode"], "M_FORBIDDEN");
    assert!(sync_rooms(&b, &carol)["knock"].get(&closed).is_none());
}
