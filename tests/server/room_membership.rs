//! Joining, leaving, inviting, kicking, banning, and what members and former members can read.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;

const VERSIONS: [&str; 3] = ["10", "11", "12"];

#[test]
fn invite_then_join_then_leave() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    for version in VERSIONS {
        let room = create_room(&server, &alice, json!({ "room_version": version }));
        // Uninvited, bob cannot join the private room, and is told why.
        let body = assert_error(
            membership(&server, &bob, &room, "join", json!({})),
            403,
            "M_FORBIDDEN",
        );
        assert!(body["error"].as_str().unwrap().len() > 10, "{body}");
        assert_eq!(membership_of(&server, &alice, &room, &bob.id), None);

        invite(&server, &alice, &room, &bob);
        assert_eq!(
            membership_of(&server, &alice, &room, &bob.id).as_deref(),
            Some("invite")
        );
        join(&server, &bob, &room);
        assert_eq!(
            membership_of(&server, &alice, &room, &bob.id).as_deref(),
            Some("join")
        );
        assert!(joined_rooms(&server, &bob).contains(&room));
        // Joining again is harmless.
        join(&server, &bob, &room);

        let (status, body) = membership(&server, &bob, &room, "leave", json!({ "reason": "bye" }));
        assert_eq!((status, body), (200, json!({})));
        let left = state_event(&server, &alice, &room, "m.room.member", &bob.id);
        assert_eq!(left["content"]["membership"], "leave");
        assert_eq!(left["content"]["reason"], "bye");
        assert_eq!(left["sender"], bob.id.as_str());
        assert!(!joined_rooms(&server, &bob).contains(&room));
        // Having left a private room, bob needs a new invite.
        assert_error(
            membership(&server, &bob, &room, "join", json!({})),
            403,
            "M_FORBIDDEN",
        );
    }
}

#[test]
fn join_through_the_id_or_alias_endpoint() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/join/{}", enc(&room)),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!((status, &body["room_id"]), (200, &json!(room)), "{body}");
    assert!(joined_rooms(&server, &bob).contains(&room));
    let missing = format!("!nothere:{}", server.server_name());
    assert_error(
        server.post(
            &format!("/_matrix/client/v3/join/{}", enc(&missing)),
            Some(&bob.token),
            &json!({}),
        ),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn invites_need_a_joined_inviter_and_an_existing_local_invitee() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let eve = user(&server, "eve");
    let room = create_room(&server, &alice, json!({}));
    // Eve is not in the room, so cannot invite.
    assert_error(
        membership(&server, &eve, &room, "invite", json!({ "user_id": bob.id })),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        membership(
            &server,
            &alice,
            &room,
            "invite",
            json!({ "user_id": "@bob:elsewhere.example" }),
        ),
        // The invitee's server must sign the invite; this one cannot be reached.
        502,
        "M_UNKNOWN",
    );
    let nobody = format!("@nobody:{}", server.server_name());
    assert_error(
        membership(
            &server,
            &alice,
            &room,
            "invite",
            json!({ "user_id": nobody }),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        membership(
            &server,
            &alice,
            &room,
            "invite",
            json!({ "user_id": "garbage" }),
        ),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        membership(&server, &alice, &room, "invite", json!({})),
        400,
        "M_BAD_JSON",
    );
    assert_eq!(membership_of(&server, &alice, &room, &bob.id), None);
}

#[test]
fn bans_stop_rejoining_until_unbanned() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    for version in VERSIONS {
        let room = create_room(
            &server,
            &alice,
            json!({ "preset": "public_chat", "room_version": version }),
        );
        join(&server, &bob, &room);
        let (status, body) = membership(
            &server,
            &alice,
            &room,
            "ban",
            json!({ "user_id": bob.id, "reason": "spam" }),
        );
        assert_eq!(status, 200, "{body}");
        let ban = state_event(&server, &alice, &room, "m.room.member", &bob.id);
        assert_eq!(ban["content"]["membership"], "ban");
        assert_eq!(ban["content"]["reason"], "spam");
        assert!(!joined_rooms(&server, &bob).contains(&room));
        let body = assert_error(
            membership(&server, &bob, &room, "join", json!({})),
            403,
            "M_FORBIDDEN",
        );
        assert!(body["error"].as_str().unwrap().contains("ban"), "{body}");
        assert_error(
            try_send(&server, &bob, &room, "t", &json!({ "body": "x" })),
            403,
            "M_FORBIDDEN",
        );

        let (status, body) = membership(
            &server,
            &alice,
            &room,
            "unban",
            json!({ "user_id": bob.id }),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            membership_of(&server, &alice, &room, &bob.id).as_deref(),
            Some("leave")
        );
        join(&server, &bob, &room);
        // Unbanning someone who is not banned is refused rather than kicking them.
        assert_error(
            membership(
                &server,
                &alice,
                &room,
                "unban",
                json!({ "user_id": bob.id }),
            ),
            403,
            "M_FORBIDDEN",
        );
        assert_eq!(
            membership_of(&server, &alice, &room, &bob.id).as_deref(),
            Some("join")
        );
    }
}

#[test]
fn a_moderator_kicks_and_bans_but_not_an_admin() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let mo = user(&server, "mo");
    let bob = user(&server, "bob");
    let carl = user(&server, "carl");
    for version in VERSIONS {
        let room = create_room(
            &server,
            &alice,
            json!({ "preset": "public_chat", "room_version": version }),
        );
        for u in [&mo, &bob, &carl] {
            join(&server, u, &room);
        }
        set_power(&server, &alice, &room, &mo.id, 50);

        let (status, body) = membership(
            &server,
            &mo,
            &room,
            "kick",
            json!({ "user_id": bob.id, "reason": "calm down" }),
        );
        assert_eq!(status, 200, "{body}");
        let kick = state_event(&server, &alice, &room, "m.room.member", &bob.id);
        assert_eq!(kick["content"]["membership"], "leave");
        assert_eq!(kick["sender"], mo.id.as_str());
        assert_eq!(kick["content"]["reason"], "calm down");
        // A kick is not a ban: bob may come back to the public room.
        join(&server, &bob, &room);

        let (status, body) = membership(&server, &mo, &room, "ban", json!({ "user_id": carl.id }));
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            membership_of(&server, &alice, &room, &carl.id).as_deref(),
            Some("ban")
        );

        // The moderator has less power than the admin (or creator, in v12).
        for action in ["kick", "ban"] {
            let body = assert_error(
                membership(&server, &mo, &room, action, json!({ "user_id": alice.id })),
                403,
                "M_FORBIDDEN",
            );
            assert!(!body["error"].as_str().unwrap().is_empty());
        }
        assert_eq!(
            membership_of(&server, &alice, &room, &alice.id).as_deref(),
            Some("join")
        );
        // Nor can a moderator make themselves admin.
        let (_, mut levels) = get_state(&server, &mo, &room, "m.room.power_levels", "");
        levels["users"][&mo.id] = json!(100);
        assert_error(
            put_state(&server, &mo, &room, "m.room.power_levels", "", &levels),
            403,
            "M_FORBIDDEN",
        );
    }
}

#[test]
fn users_without_power_cannot_moderate() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carl = user(&server, "carl");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    join(&server, &carl, &room);
    for action in ["kick", "ban"] {
        let body = assert_error(
            membership(&server, &bob, &room, action, json!({ "user_id": carl.id })),
            403,
            "M_FORBIDDEN",
        );
        let reason = body["error"].as_str().unwrap();
        assert!(
            reason.contains("power") || reason.contains("level"),
            "{reason}"
        );
    }
    assert_eq!(
        membership_of(&server, &alice, &room, &carl.id).as_deref(),
        Some("join")
    );
    // Changing power levels or the name needs power too.
    let (_, mut levels) = get_state(&server, &bob, &room, "m.room.power_levels", "");
    levels["users"][&bob.id] = json!(50);
    let body = assert_error(
        put_state(&server, &bob, &room, "m.room.power_levels", "", &levels),
        403,
        "M_FORBIDDEN",
    );
    assert!(!body["error"].as_str().unwrap().is_empty());
    assert_error(
        put_state(
            &server,
            &bob,
            &room,
            "m.room.name",
            "",
            &json!({ "name": "bob's" }),
        ),
        403,
        "M_FORBIDDEN",
    );
    // Unbanning needs power as well.
    let (status, _) = membership(&server, &alice, &room, "ban", json!({ "user_id": carl.id }));
    assert_eq!(status, 200);
    assert_error(
        membership(&server, &bob, &room, "unban", json!({ "user_id": carl.id })),
        403,
        "M_FORBIDDEN",
    );
    assert_eq!(
        membership_of(&server, &alice, &room, &carl.id).as_deref(),
        Some("ban")
    );
}

#[test]
fn membership_changes_in_unknown_rooms_are_not_found() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let missing = format!("!nothere:{}", server.server_name());
    for (action, body) in [
        ("join", json!({})),
        ("leave", json!({})),
        ("invite", json!({ "user_id": bob.id })),
        ("kick", json!({ "user_id": bob.id })),
        ("ban", json!({ "user_id": bob.id })),
        ("unban", json!({ "user_id": bob.id })),
    ] {
        assert_error(
            membership(&server, &alice, &missing, action, body),
            404,
            "M_NOT_FOUND",
        );
    }
    // Leaving a room one was never in is refused.
    let room = create_room(&server, &alice, json!({}));
    assert_error(
        membership(&server, &bob, &room, "leave", json!({})),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn members_and_joined_members() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carl = user(&server, "carl");
    let dora = user(&server, "dora");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    join(&server, &carl, &room);
    let (status, _) = membership(&server, &carl, &room, "leave", json!({}));
    assert_eq!(status, 200);
    invite(&server, &alice, &room, &dora);

    let members = |query: &str| -> Vec<(String, String)> {
        let (status, body) = server.get(
            &format!("/_matrix/client/v3/rooms/{}/members{query}", enc(&room)),
            Some(&bob.token),
        );
        assert_eq!(status, 200, "{body}");
        let mut out: Vec<(String, String)> = body["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["type"], "m.room.member");
                (
                    e["state_key"].as_str().unwrap().to_owned(),
                    e["content"]["membership"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let pair = |u: &User, m: &str| (u.id.clone(), m.to_owned());
    let mut everyone = vec![
        pair(&alice, "join"),
        pair(&bob, "join"),
        pair(&carl, "leave"),
        pair(&dora, "invite"),
    ];
    everyone.sort();
    assert_eq!(members(""), everyone);
    assert_eq!(
        members("?membership=join"),
        vec![pair(&alice, "join"), pair(&bob, "join")]
    );
    assert_eq!(members("?not_membership=join").len(), 2);
    assert_eq!(members("?membership=invite"), vec![pair(&dora, "invite")]);

    let (status, joined) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
        Some(&bob.token),
    );
    assert_eq!(status, 200, "{joined}");
    let mut ids: Vec<&String> = joined["joined"].as_object().unwrap().keys().collect();
    ids.sort();
    assert_eq!(ids, vec![&alice.id, &bob.id]);
    // The invitee and the former member may not list joined members.
    for outsider in [&dora, &carl] {
        assert_error(
            server.get(
                &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
                Some(&outsider.token),
            ),
            403,
            "M_FORBIDDEN",
        );
    }
    assert_eq!(joined_rooms(&server, &alice), vec![room.clone()]);
    assert_eq!(joined_rooms(&server, &bob), vec![room.clone()]);
    assert!(joined_rooms(&server, &carl).is_empty());
    assert!(joined_rooms(&server, &dora).is_empty());
}

#[test]
fn events_are_readable_by_members_only() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let eve = user(&server, "eve");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let other_room = create_room(&server, &alice, json!({}));
    join(&server, &bob, &room);
    let message = send_text(&server, &alice, &room, "m1", "for members");
    let (status, event) = get_event(&server, &bob, &room, &message);
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["content"]["body"], "for members");
    assert!(event["unsigned"].get("transaction_id").is_none());
    // Non-members learn nothing, not even whether the event exists.
    assert_error(
        get_event(&server, &eve, &room, &message),
        404,
        "M_NOT_FOUND",
    );
    let unknown = "$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_error(get_event(&server, &bob, &room, unknown), 404, "M_NOT_FOUND");
    // An event of one room is not found through another room's path.
    let elsewhere = send_text(&server, &alice, &other_room, "m2", "private");
    assert_error(
        get_event(&server, &bob, &room, &elsewhere),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        get_event(&server, &bob, &other_room, &elsewhere),
        404,
        "M_NOT_FOUND",
    );
    // An invitee cannot read yet.
    invite(&server, &alice, &other_room, &eve);
    assert_error(
        get_event(&server, &eve, &other_room, &elsewhere),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn former_members_read_up_to_their_departure() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carl = user(&server, "carl");
    for (version, how) in [("10", "leave"), ("11", "kick"), ("12", "ban")] {
        let room = create_room(
            &server,
            &alice,
            json!({ "preset": "public_chat", "room_version": version }),
        );
        join(&server, &bob, &room);
        let before = send_text(&server, &alice, &room, &format!("b{version}"), "before");
        let (status, _) = put_state(
            &server,
            &alice,
            &room,
            "m.room.topic",
            "",
            &json!({ "topic": "old" }),
        );
        assert_eq!(status, 200);
        let (status, body) = match how {
            "leave" => membership(&server, &bob, &room, "leave", json!({})),
            action => membership(&server, &alice, &room, action, json!({ "user_id": bob.id })),
        };
        assert_eq!(status, 200, "{body}");
        let after = send_text(&server, &alice, &room, &format!("a{version}"), "after");
        let (status, _) = put_state(
            &server,
            &alice,
            &room,
            "m.room.topic",
            "",
            &json!({ "topic": "new" }),
        );
        assert_eq!(status, 200);
        join(&server, &carl, &room);

        let (status, event) = get_event(&server, &bob, &room, &before);
        assert_eq!(status, 200, "{how}: {event}");
        assert_eq!(event["content"]["body"], "before");
        assert_error(get_event(&server, &bob, &room, &after), 404, "M_NOT_FOUND");
        // Bob's own departure is the last thing he sees.
        let departure = state_event(&server, &bob, &room, "m.room.member", &bob.id);
        assert_ne!(departure["content"]["membership"], "join");
        let (status, event): (u16, Value) = get_event(
            &server,
            &bob,
            &room,
            departure["event_id"].as_str().unwrap(),
        );
        assert_eq!(status, 200, "{event}");
        // State reads show the room as it was when he left.
        let (_, topic) = get_state(&server, &bob, &room, "m.room.topic", "");
        assert_eq!(topic["topic"], "old", "{how}");
        assert_eq!(membership_of(&server, &bob, &room, &carl.id), None, "{how}");
        let (status, members) = server.get(
            &format!("/_matrix/client/v3/rooms/{}/members", enc(&room)),
            Some(&bob.token),
        );
        assert_eq!(status, 200, "{members}");
        assert!(
            !members["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["state_key"] == carl.id.as_str()),
            "{members}"
        );
    }
}

#[test]
fn a_rejected_invite_gives_no_view_of_the_room() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({}));
    let secret = send_text(&server, &alice, &room, "s", "secret");
    invite(&server, &alice, &room, &bob);
    let (status, _) = membership(&server, &bob, &room, "leave", json!({}));
    assert_eq!(status, 200);
    assert_error(get_event(&server, &bob, &room, &secret), 404, "M_NOT_FOUND");
    assert_error(
        server.get(
            &format!("/_matrix/client/v3/rooms/{}/state", enc(&room)),
            Some(&bob.token),
        ),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn a_join_carries_the_clients_extra_content_but_not_the_servers_keys() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let (status, body) = membership(
        &server,
        &bob,
        &room,
        "join",
        json!({
            "reason": "hello",
            "foo": "bar",
            "membership": "leave",
            "displayname": "Not Bob",
            "join_authorised_via_users_server": alice.id,
        }),
    );
    assert_eq!(status, 200, "{body}");
    let content = get_state(&server, &alice, &room, "m.room.member", &bob.id).1;
    assert_eq!(content["foo"], "bar", "{content}");
    assert_eq!(content["reason"], "hello");
    assert_eq!(content["membership"], "join");
    assert_ne!(content["displayname"], "Not Bob");
    assert!(
        content.get("join_authorised_via_users_server").is_none(),
        "{content}"
    );
}
