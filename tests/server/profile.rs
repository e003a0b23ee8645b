//! Profiles: display name, avatar and custom fields, their limits, who may change them,
//! and the member events that carry a new name into every joined room.

use hearth::store::Store;
use serde_json::{Value, json};

use crate::harness::{PASSWORD, TestServer, assert_error};
use crate::room_support::*;
use crate::sync::{next_batch, sync, timeline};

pub fn profile_path(user_id: &str, field: Option<&str>) -> String {
    match field {
        Some(field) => format!("/_matrix/client/v3/profile/{}/{}", enc(user_id), enc(field)),
        None => format!("/_matrix/client/v3/profile/{}", enc(user_id)),
    }
}

pub fn try_set_field(server: &TestServer, user: &User, field: &str, value: Value) -> (u16, Value) {
    server.send(
        "PUT",
        &profile_path(&user.id, Some(field)),
        Some(&user.token),
        &json!({ field: value }),
    )
}

#[track_caller]
pub fn set_field(server: &TestServer, user: &User, field: &str, value: Value) {
    let (status, body) = try_set_field(server, user, field, value);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}));
}

#[track_caller]
pub fn profile_of(server: &TestServer, user_id: &str) -> Value {
    let (status, body) = server.get(&profile_path(user_id, None), None);
    assert_eq!(status, 200, "{body}");
    body
}

/// Deactivates the account through the password stage of user-interactive auth.
#[track_caller]
pub fn deactivate(server: &TestServer, user: &User) {
    let path = "/_matrix/client/v3/account/deactivate";
    let (status, challenge) = server.post(path, Some(&user.token), &json!({}));
    assert_eq!(status, 401, "{challenge}");
    let auth = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user.id },
        "password": PASSWORD,
        "session": challenge["session"],
    });
    let (status, body) = server.post(path, Some(&user.token), &json!({ "auth": auth }));
    assert_eq!(status, 200, "{body}");
}

/// The user's member event content in the room, as its state has it.
#[track_caller]
fn member_content(server: &TestServer, viewer: &User, room: &str, user_id: &str) -> Value {
    let (status, body) = get_state(server, viewer, room, "m.room.member", user_id);
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn fields_are_set_read_and_deleted_and_survive_kill_9() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    // A new user is called by their localpart, as in Synapse.
    assert_eq!(
        profile_of(&server, &alice.id),
        json!({ "displayname": "alice" })
    );

    let avatar = format!("mxc://{}/AvatarMedia_1-x", server.server_name());
    set_field(&server, &alice, "displayname", json!("Alice Liddell"));
    set_field(&server, &alice, "avatar_url", json!(avatar));
    set_field(&server, &alice, "m.tz", json!("Europe/London"));
    let pronouns = json!({ "en": { "subject": "she", "object": "her" } });
    set_field(&server, &alice, "us.cloke.pronouns", pronouns.clone());
    let (status, body) = server.get(
        &profile_path(&alice.id, Some("displayname")),
        Some(&alice.token),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "displayname": "Alice Liddell" }));
    let (status, body) = server.get(&profile_path(&alice.id, Some("us.cloke.pronouns")), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "us.cloke.pronouns": pronouns }));

    server.kill_9();
    server.restart();
    let expected = json!({
        "displayname": "Alice Liddell",
        "avatar_url": avatar,
        "m.tz": "Europe/London",
        "us.cloke.pronouns": pronouns,
    });
    assert_eq!(profile_of(&server, &alice.id), expected);

    let delete = |field: &str| {
        server.send(
            "DELETE",
            &profile_path(&alice.id, Some(field)),
            Some(&alice.token),
            &json!({}),
        )
    };
    assert_eq!(delete("m.tz"), (200, json!({})));
    // Deleting what is not there succeeds too, as the spec says.
    assert_eq!(delete("m.tz"), (200, json!({})));
    assert_error(
        server.get(&profile_path(&alice.id, Some("m.tz")), None),
        404,
        "M_NOT_FOUND",
    );
    assert_eq!(delete("avatar_url"), (200, json!({})));
    // An empty display name clears it, as in Synapse.
    set_field(&server, &alice, "displayname", json!(""));
    assert_eq!(
        profile_of(&server, &alice.id),
        json!({ "us.cloke.pronouns": pronouns })
    );
    assert_error(
        server.get(&profile_path(&alice.id, Some("displayname")), None),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn only_the_user_may_change_their_profile() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    for method in ["PUT", "DELETE"] {
        assert_error(
            server.send(
                method,
                &profile_path(&bob.id, Some("displayname")),
                Some(&alice.token),
                &json!({ "displayname": "Bob is a fool" }),
            ),
            403,
            "M_FORBIDDEN",
        );
        assert_error(
            server.send(
                method,
                &profile_path(&bob.id, Some("displayname")),
                None,
                &json!({ "displayname": "anonymous" }),
            ),
            401,
            "M_MISSING_TOKEN",
        );
    }
    assert_eq!(
        profile_of(&server, &bob.id),
        json!({ "displayname": "bob" })
    );
    let (status, caps) = server.get("/_matrix/client/v3/capabilities", Some(&alice.token));
    assert_eq!(status, 200, "{caps}");
    for capability in ["m.set_displayname", "m.set_avatar_url", "m.profile_fields"] {
        assert_eq!(caps["capabilities"][capability]["enabled"], true, "{caps}");
    }
}

#[test]
fn bad_profile_requests_get_matrix_errors() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let put = |field: &str, body: Value| {
        server.send(
            "PUT",
            &profile_path(&alice.id, Some(field)),
            Some(&alice.token),
            &body,
        )
    };
    assert_error(
        put("Not A Key", json!({ "Not A Key": 1 })),
        400,
        "M_INVALID_PARAM",
    );
    let long = format!("org.example.{}", "k".repeat(250));
    assert_error(put(&long, json!({ &long: 1 })), 400, "M_KEY_TOO_LARGE");
    assert_error(
        server.get(&profile_path(&alice.id, Some(&long)), None),
        400,
        "M_KEY_TOO_LARGE",
    );
    assert_error(
        put("displayname", json!({ "avatar_url": "x" })),
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        put("displayname", json!({ "displayname": null })),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        put("displayname", json!({ "displayname": 7 })),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        put("displayname", json!({ "displayname": "x".repeat(300) })),
        400,
        "M_INVALID_PARAM",
    );
    for bad in [
        "https://example.org/me.png",
        "mxc://example.org/",
        "mxc://no/such/path",
    ] {
        assert_error(
            put("avatar_url", json!({ "avatar_url": bad })),
            400,
            "M_INVALID_PARAM",
        );
    }
    assert_error(
        send_raw(
            &server,
            "PUT",
            &profile_path(&alice.id, Some("displayname")),
            &alice.token,
            "{not json",
        ),
        400,
        "M_NOT_JSON",
    );
    // Nothing of the above was stored.
    assert_eq!(
        profile_of(&server, &alice.id),
        json!({ "displayname": "alice" })
    );

    let stranger = format!("@nobody:{}", server.server_name());
    assert_error(
        server.get(&profile_path(&stranger, None), None),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get(&profile_path(&stranger, Some("displayname")), None),
        404,
        "M_NOT_FOUND",
    );
    // Users of other servers are asked of their server (see federation.rs); one that
    // may not be contacted (loopback, under the default denylist) is a 502.
    assert_error(
        server.get(&profile_path("@someone:127.0.0.1:9", None), None),
        502,
        "M_UNKNOWN",
    );
    assert_error(
        server.get(&profile_path("not-a-user-id", None), None),
        400,
        "M_INVALID_PARAM",
    );
    // Reading needs no token, but one that is sent must be valid.
    assert_error(
        server.get(&profile_path(&alice.id, None), Some("not-a-token")),
        401,
        "M_UNKNOWN_TOKEN",
    );
}

#[test]
fn the_whole_profile_stays_under_64_kib() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    set_field(
        &server,
        &alice,
        "org.example.big",
        json!("a".repeat(40_000)),
    );
    assert_error(
        try_set_field(
            &server,
            &alice,
            "org.example.more",
            json!("b".repeat(30_000)),
        ),
        400,
        "M_PROFILE_TOO_LARGE",
    );
    assert_error(
        server.get(&profile_path(&alice.id, Some("org.example.more")), None),
        404,
        "M_NOT_FOUND",
    );
    // Replacing a field counts its new size, not both.
    set_field(
        &server,
        &alice,
        "org.example.big",
        json!("c".repeat(60_000)),
    );
    assert_error(
        try_set_field(
            &server,
            &alice,
            "org.example.big",
            json!("d".repeat(70_000)),
        ),
        400,
        "M_PROFILE_TOO_LARGE",
    );
    let profile = profile_of(&server, &alice.id);
    assert_eq!(profile["org.example.big"], json!("c".repeat(60_000)));
}

#[test]
fn a_new_name_and_avatar_reach_every_joined_room() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let private = create_room(&server, &alice, json!({ "preset": "private_chat" }));
    let public = create_room(&server, &bob, json!({ "preset": "public_chat" }));
    join(&server, &alice, &public);
    let left = create_room(&server, &bob, json!({ "preset": "public_chat" }));
    join(&server, &alice, &left);
    let (status, body) = membership(&server, &alice, &left, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    // A room-specific key in alice's member event outlives the profile change.
    let mut own = member_content(&server, &alice, &private, &alice.id);
    own["org.example.flair"] = json!("gold");
    let (status, body) = put_state(&server, &alice, &private, "m.room.member", &alice.id, &own);
    assert_eq!(status, 200, "{body}");

    let since = next_batch(&sync(&server, &bob, ""));
    let avatar = format!("mxc://{}/alice_face", server.server_name());
    set_field(&server, &alice, "displayname", json!("Alice L."));
    set_field(&server, &alice, "avatar_url", json!(avatar));

    for room in [&private, &public] {
        let content = member_content(&server, &alice, room, &alice.id);
        assert_eq!(content["membership"], "join", "{content}");
        assert_eq!(content["displayname"], "Alice L.", "{content}");
        assert_eq!(content["avatar_url"], avatar, "{content}");
    }
    assert_eq!(
        member_content(&server, &alice, &private, &alice.id)["org.example.flair"],
        "gold"
    );
    // The room she had left is not rejoined.
    assert_eq!(
        membership_of(&server, &bob, &left, &alice.id).as_deref(),
        Some("leave")
    );
    // Bob sees the change in the timeline of the room they share.
    let body = sync(&server, &bob, &format!("since={since}"));
    let names: Vec<&Value> = timeline(&body, &public)
        .iter()
        .filter(|e| e["type"] == "m.room.member" && e["state_key"] == alice.id.as_str())
        .map(|e| &e["content"]["displayname"])
        .collect();
    assert_eq!(names.last(), Some(&&json!("Alice L.")), "{body}");
    assert!(body["rooms"]["join"].get(&left).is_none(), "{body}");

    // Setting the same name again sends nothing new.
    let since = next_batch(&body);
    set_field(&server, &alice, "displayname", json!("Alice L."));
    let body = sync(&server, &bob, &format!("since={since}&timeout=0"));
    assert!(body["rooms"]["join"].get(&public).is_none(), "{body}");
    // Custom fields stay out of member events.
    set_field(&server, &alice, "m.tz", json!("Europe/Paris"));
    let body = sync(&server, &bob, &format!("since={since}&timeout=0"));
    assert!(body["rooms"]["join"].get(&public).is_none(), "{body}");
}

#[test]
fn joins_and_invites_carry_the_current_profile() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let carol = user(&server, "carol");
    let dave = user(&server, "dave");
    set_field(&server, &alice, "displayname", json!("Alice"));
    set_field(&server, &carol, "displayname", json!("Carol C."));
    let avatar = format!("mxc://{}/carol", server.server_name());
    set_field(&server, &carol, "avatar_url", json!(avatar));
    set_field(&server, &dave, "displayname", json!("Dave"));

    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    assert_eq!(
        member_content(&server, &alice, &room, &alice.id),
        json!({ "membership": "join", "displayname": "Alice" })
    );
    join(&server, &carol, &room);
    assert_eq!(
        member_content(&server, &alice, &room, &carol.id),
        json!({ "membership": "join", "displayname": "Carol C.", "avatar_url": avatar })
    );
    invite(&server, &alice, &room, &dave);
    assert_eq!(
        member_content(&server, &alice, &room, &dave.id),
        json!({ "membership": "invite", "displayname": "Dave" })
    );
    let direct = create_room(
        &server,
        &alice,
        json!({ "preset": "trusted_private_chat", "invite": [dave.id], "is_direct": true }),
    );
    assert_eq!(
        member_content(&server, &alice, &direct, &dave.id),
        json!({ "membership": "invite", "displayname": "Dave", "is_direct": true })
    );
    // Leaving carries no profile.
    let (status, body) = membership(&server, &carol, &room, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        member_content(&server, &alice, &room, &carol.id),
        json!({ "membership": "leave" })
    );
}

#[test]
fn deactivation_erases_the_profile() {
    let mut server = TestServer::start();
    let bob = user(&server, "bob");
    set_field(&server, &bob, "displayname", json!("Bob"));
    set_field(&server, &bob, "org.example.secret", json!("mine"));
    deactivate(&server, &bob);
    assert_error(
        server.get(&profile_path(&bob.id, None), None),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get(&profile_path(&bob.id, Some("org.example.secret")), None),
        404,
        "M_NOT_FOUND",
    );
    // Erased from the store, not only hidden.
    server.kill_9();
    let store = Store::open(&server.data_dir().join("db"), false).unwrap();
    assert!(store.profile(&bob.id).unwrap().is_empty());
}
