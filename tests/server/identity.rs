//! Third-party invites and 3PID bindings through an identity server: the test's own
//! identity server (`identity_support`) signs for real, so a forged, re-keyed or revoked
//! invitation is refused by the checks themselves.

use serde_json::{Value, json};

use axum::Router;
use axum::routing::put;

use crate::federation_support::{TestRemote, federating_server};
use crate::harness::{ClosedPort, TestServer, assert_error};
use crate::identity_support::{ACCESS_TOKEN, IdentityServer, onbind};
use crate::room_support::*;

const EMAIL: &str = "bob@example.org";

fn invite_3pid(server: &TestServer, inviter: &User, room: &str, is: &str) -> (u16, Value) {
    membership(
        server,
        inviter,
        room,
        "invite",
        json!({
            "id_server": is,
            "id_access_token": ACCESS_TOKEN,
            "medium": "email",
            "address": EMAIL,
        }),
    )
}

/// The room's `m.room.third_party_invite` events.
fn third_party_invites(server: &TestServer, user: &User, room: &str) -> Vec<Value> {
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/state", enc(room)),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.third_party_invite")
        .cloned()
        .collect()
}

#[test]
fn inviting_a_bound_3pid_invites_the_user_it_is_bound_to() {
    let server = federating_server();
    let is = IdentityServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    // Known only through a hashed lookup: the test server answers no other kind.
    is.bind_quietly("email", EMAIL, &bob.id);
    let room = create_room(&server, &alice, json!({"preset": "private_chat"}));
    let (status, body) = invite_3pid(&server, &alice, &room, &is.name());
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        membership_of(&server, &alice, &room, &bob.id).as_deref(),
        Some("invite")
    );
    assert!(third_party_invites(&server, &alice, &room).is_empty());

    // createRoom's invite_3pid does the same.
    let (status, body) = try_create_room(
        &server,
        &carol,
        json!({ "invite_3pid": [{
            "id_server": is.name(), "id_access_token": ACCESS_TOKEN,
            "medium": "email", "address": EMAIL,
        }]}),
    );
    assert_eq!(status, 200, "{body}");
    let room = body["room_id"].as_str().unwrap();
    assert_eq!(
        membership_of(&server, &carol, room, &bob.id).as_deref(),
        Some("invite")
    );

    // An invite by 3PID needs the identity server and its token.
    let (status, body) = membership(
        &server,
        &alice,
        room,
        "invite",
        json!({ "medium": "email", "address": EMAIL }),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_MISSING_PARAM"))
    );
}

#[test]
fn an_unbound_3pid_is_invited_once_its_owner_binds_it_even_after_the_inviter_left() {
    let server = federating_server();
    let is = IdentityServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let room = create_room(&server, &alice, json!({"preset": "private_chat"}));
    invite(&server, &alice, &room, &carol);
    join(&server, &carol, &room);
    let (status, body) = invite_3pid(&server, &alice, &room, &is.name());
    assert_eq!(status, 200, "{body}");
    let stored = third_party_invites(&server, &alice, &room);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["sender"], alice.id.as_str());
    assert_eq!(stored[0]["content"]["display_name"], "b...@e...");
    assert!(stored[0]["content"]["public_keys"][0]["public_key"].is_string());
    assert_eq!(membership_of(&server, &alice, &room, &bob.id), None);

    let (status, body) = membership(&server, &alice, &room, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = is.bind(&server, "email", EMAIL, &bob.id);
    assert_eq!(status, 200, "{body}");
    let member = state_event(&server, &carol, &room, "m.room.member", &bob.id);
    assert_eq!(member["content"]["membership"], "invite");
    assert_eq!(member["sender"], alice.id.as_str());
    assert_eq!(
        member["content"]["third_party_invite"]["display_name"],
        "b...@e..."
    );
    assert_eq!(
        member["content"]["third_party_invite"]["signed"]["mxid"],
        bob.id.as_str()
    );
    join(&server, &bob, &room);
    assert_eq!(
        membership_of(&server, &carol, &room, &bob.id).as_deref(),
        Some("join")
    );
}

#[test]
fn a_join_with_the_identity_servers_proof_accepts_a_third_party_invite() {
    let server = federating_server();
    let is = IdentityServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let room = create_room(&server, &alice, json!({"preset": "private_chat"}));
    assert_eq!(invite_3pid(&server, &alice, &room, &is.name()).0, 200);
    let token = third_party_invites(&server, &alice, &room)[0]["state_key"].clone();
    let mut signed = json!({ "mxid": bob.id, "sender": alice.id, "token": token });
    is.sign(&mut signed);
    // Bob's proof does not let Carol in.
    let (status, body) = membership(
        &server,
        &carol,
        &room,
        "join",
        json!({ "third_party_signed": signed }),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (403, Some("M_FORBIDDEN")),
        "{body}"
    );
    let (status, body) = membership(
        &server,
        &bob,
        &room,
        "join",
        json!({ "third_party_signed": signed }),
    );
    assert_eq!(status, 200, "{body}");
    let member = state_event(&server, &alice, &room, "m.room.member", &bob.id);
    assert_eq!(member["content"]["membership"], "join");
    assert_eq!(membership_of(&server, &alice, &room, &carol.id), None);
}

#[test]
fn another_server_exchanges_a_bound_invitation_for_its_own_user_only() {
    // The invitee's server: it signs the invite Hearth sends it.
    let remote = TestRemote::start_with(|signer| {
        Router::new().route(
            "/_matrix/federation/v2/invite/{room}/{event}",
            put(move |axum::Json(body): axum::Json<Value>| {
                let signer = signer.clone();
                async move {
                    let mut event = body["event"].clone();
                    signer.sign_event(&mut event, "10");
                    axum::Json(json!({ "event": event }))
                }
            }),
        )
    });
    let server = federating_server();
    let is = IdentityServer::start();
    let alice = user(&server, "alice");
    let carol = user(&server, "carol");
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "private_chat", "room_version": "10"}),
    );
    assert_eq!(invite_3pid(&server, &alice, &room, &is.name()).0, 200);
    let token = third_party_invites(&server, &alice, &room)[0]["state_key"].clone();
    let exchange = |invitee: &str| {
        let mut signed = json!({ "mxid": invitee, "token": token });
        is.sign(&mut signed);
        json!({
            "type": "m.room.member",
            "room_id": room,
            "sender": alice.id,
            "state_key": invitee,
            "content": {
                "membership": "invite",
                "third_party_invite": { "display_name": "b...@e...", "signed": signed },
            },
        })
    };
    let path = format!(
        "/_matrix/federation/v1/exchange_third_party_invite/{}",
        enc(&room)
    );
    // Not for another server's user.
    let (status, body) = remote.request(&server, "PUT", &path, Some(&exchange(&carol.id)));
    assert_eq!(
        (status, body["errcode"].as_str()),
        (403, Some("M_FORBIDDEN")),
        "{body}"
    );
    assert_eq!(membership_of(&server, &alice, &room, &carol.id), None);

    let bob = format!("@bob:{}", remote.server_name());
    let (status, body) = remote.request(&server, "PUT", &path, Some(&exchange(&bob)));
    assert_eq!(status, 200, "{body}");
    let member = state_event(&server, &alice, &room, "m.room.member", &bob);
    assert_eq!(member["content"]["membership"], "invite");
    assert_eq!(member["sender"], alice.id.as_str());
    assert_eq!(
        member["content"]["third_party_invite"]["signed"]["mxid"],
        bob.as_str()
    );
}

/// Each refused binding answers an error and leaves the invitee without membership.
#[track_caller]
fn refused(
    server: &TestServer,
    answer: (u16, Value),
    status: u16,
    viewer: &User,
    room: &str,
    invitee: &User,
) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert!(body["errcode"].is_string(), "{body}");
    assert_eq!(membership_of(server, viewer, room, &invitee.id), None);
    let (status, _) = membership(server, invitee, room, "join", json!({}));
    assert_eq!(status, 403);
}

#[test]
fn an_invitation_signed_by_another_key_a_revoked_key_or_an_unreachable_server_is_refused() {
    let server = federating_server();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");

    // Signed by a key the invite event does not list.
    let is = IdentityServer::start();
    let room = create_room(&server, &alice, json!({"preset": "private_chat"}));
    assert_eq!(invite_3pid(&server, &alice, &room, &is.name()).0, 200);
    is.rotate_key();
    let answer = is.bind(&server, "email", EMAIL, &bob.id);
    refused(&server, answer, 403, &alice, &room, &bob);

    // Signed by the listed key, which the identity server no longer vouches for.
    let is = IdentityServer::start();
    let room = create_room(&server, &alice, json!({"preset": "private_chat"}));
    assert_eq!(invite_3pid(&server, &alice, &room, &is.name()).0, 200);
    let body = is.bind_and_sign("email", EMAIL, &bob.id);
    is.rotate_key();
    is.revoke_old_keys();
    refused(&server, onbind(&server, &body), 403, &alice, &room, &bob);

    // The key cannot be checked: the identity server is gone.
    let is = IdentityServer::start();
    let room = create_room(&server, &alice, json!({"preset": "private_chat"}));
    assert_eq!(invite_3pid(&server, &alice, &room, &is.name()).0, 200);
    let body = is.bind_and_sign("email", EMAIL, &bob.id);
    drop(is);
    refused(&server, onbind(&server, &body), 502, &alice, &room, &bob);

    // A forged block names no invitation of the room.
    let forged = json!({"invites": [{
        "medium": "email", "address": EMAIL, "mxid": bob.id, "room_id": room,
        "sender": alice.id, "signed": {"mxid": bob.id, "token": "nope", "signatures": {}},
    }]});
    refused(&server, onbind(&server, &forged), 403, &alice, &room, &bob);
    // Nothing to do is not an error.
    assert_eq!(onbind(&server, &json!({"mxid": bob.id})).0, 200);
}

#[test]
fn an_identity_server_that_cannot_be_reached_is_a_bad_gateway() {
    let server = federating_server();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({"preset": "private_chat"}));
    let closed = ClosedPort::new();
    let gone = format!("localhost:{}", closed.port);
    assert_error(invite_3pid(&server, &alice, &room, &gone), 502, "M_UNKNOWN");
    assert!(third_party_invites(&server, &alice, &room).is_empty());
    // A name that is not a host is the client's mistake.
    assert_error(
        invite_3pid(&server, &alice, &room, "https://id.example.org/?x"),
        400,
        "M_INVALID_PARAM",
    );
}

fn bind_via_homeserver(
    server: &TestServer,
    user: &User,
    is: &IdentityServer,
    address: &str,
) -> (u16, Value) {
    let sid = is.validated_session("email", address);
    server.post(
        "/_matrix/client/unstable/account/3pid/bind",
        Some(&user.token),
        &json!({
            "id_server": is.name(),
            "id_access_token": ACCESS_TOKEN,
            "sid": sid,
            "client_secret": "secret",
        }),
    )
}

#[test]
fn the_homeserver_binds_and_unbinds_where_it_bound_and_at_deactivation() {
    let server = federating_server();
    let is = IdentityServer::start();
    let bob = user(&server, "bob");
    let unbind = |path: &str, body: Value| server.post(path, Some(&bob.token), &body);

    let (status, body) = bind_via_homeserver(&server, &bob, &is, "b1@example.org");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        is.lookup("email", "b1@example.org").as_deref(),
        Some(bob.id.as_str())
    );
    // Without id_server: where this server bound it.
    let (status, body) = unbind(
        "/_matrix/client/v3/account/3pid/unbind",
        json!({"medium": "email", "address": "b1@example.org"}),
    );
    assert_eq!(
        (status, body["id_server_unbind_result"].as_str()),
        (200, Some("success"))
    );
    assert_eq!(is.lookup("email", "b1@example.org"), None);
    // The unbind request is signed by the homeserver.
    let auth = is.unbind_auth();
    assert!(
        auth[0]
            .as_deref()
            .is_some_and(|h| h.starts_with("X-Matrix ")),
        "{auth:?}"
    );
    // Nowhere left to unbind it.
    let (status, body) = unbind(
        "/_matrix/client/v3/account/3pid/unbind",
        json!({"medium": "email", "address": "b1@example.org"}),
    );
    assert_eq!(
        (status, body["id_server_unbind_result"].as_str()),
        (200, Some("no-support"))
    );

    // Removing the address unbinds it too.
    assert_eq!(
        bind_via_homeserver(&server, &bob, &is, "b2@example.org").0,
        200
    );
    let (status, body) = unbind(
        "/_matrix/client/v3/account/3pid/delete",
        json!({"medium": "email", "address": "b2@example.org"}),
    );
    assert_eq!(
        (status, body["id_server_unbind_result"].as_str()),
        (200, Some("success"))
    );
    assert_eq!(is.lookup("email", "b2@example.org"), None);

    // Bound elsewhere, unbound by naming the identity server.
    is.bind_quietly("email", "b3@example.org", &bob.id);
    let (status, body) = unbind(
        "/_matrix/client/v3/account/3pid/delete",
        json!({"medium": "email", "address": "b3@example.org", "id_server": is.name()}),
    );
    assert_eq!(
        (status, body["id_server_unbind_result"].as_str()),
        (200, Some("success"))
    );
    assert_eq!(is.lookup("email", "b3@example.org"), None);

    // The identity server's refusal reaches the client as it is.
    let (status, body) = server.post(
        "/_matrix/client/v3/account/3pid/bind",
        Some(&bob.token),
        &json!({
            "id_server": is.name(), "id_access_token": ACCESS_TOKEN,
            "sid": "unknown", "client_secret": "secret",
        }),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_NO_VALID_SESSION"))
    );

    // Deactivation unbinds what is left.
    assert_eq!(
        bind_via_homeserver(&server, &bob, &is, "b4@example.org").0,
        200
    );
    let path = "/_matrix/client/v3/account/deactivate";
    let (status, challenge) = server.post(path, Some(&bob.token), &json!({}));
    assert_eq!(status, 401);
    let (status, body) = server.post(
        path,
        Some(&bob.token),
        &json!({ "auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "bob"},
            "password": crate::harness::PASSWORD,
            "session": challenge["session"],
        }}),
    );
    assert_eq!(
        (status, body["id_server_unbind_result"].as_str()),
        (200, Some("success")),
        "{body}"
    );
    assert_eq!(is.lookup("email", "b4@example.org"), None);
}
