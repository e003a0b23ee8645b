use serde_json::json;

use crate::harness::{PASSWORD, TestServer, assert_error, token};

const WHOAMI: &str = "/_matrix/client/v3/account/whoami";
const PASSWORD_PATH: &str = "/_matrix/client/v3/account/password";

fn password_auth(user: &str, password: &str, session: &str) -> serde_json::Value {
    json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user },
        "password": password,
        "session": session,
    })
}

#[test]
fn whoami_and_capabilities_need_a_token() {
    let server = TestServer::start();
    let access = token(&server.register("kim"));
    let (status, me) = server.get(WHOAMI, Some(&access));
    assert_eq!(status, 200);
    assert_eq!(me["user_id"], format!("@kim:{}", server.server_name()));
    assert_eq!(me["is_guest"], false);
    let (status, caps) = server.get("/_matrix/client/v3/capabilities", Some(&access));
    assert_eq!(status, 200);
    assert_eq!(caps["capabilities"]["m.change_password"]["enabled"], true);
    assert_error(
        server.get("/_matrix/client/v3/capabilities", None),
        401,
        "M_MISSING_TOKEN",
    );
}

#[test]
fn password_change_asks_for_the_old_password_and_logs_out_other_devices() {
    let server = TestServer::start();
    let here = token(&server.register("lee"));
    let elsewhere = token(&server.login("lee", PASSWORD).1);
    let new_password = "a brand new password";

    let (status, challenge) = server.post(
        PASSWORD_PATH,
        Some(&here),
        &json!({ "new_password": new_password }),
    );
    assert_eq!(status, 401);
    assert_eq!(
        challenge["flows"],
        json!([{ "stages": ["m.login.password"] }])
    );
    let session = challenge["session"].as_str().unwrap();

    let (status, failed) = server.post(
        PASSWORD_PATH,
        Some(&here),
        &json!({ "new_password": new_password, "auth": password_auth("lee", "wrong", session) }),
    );
    assert_eq!(
        (status, failed["errcode"].as_str()),
        (401, Some("M_FORBIDDEN"))
    );
    assert_eq!(failed["session"], session);

    let (status, _) = server.post(
        PASSWORD_PATH,
        Some(&here),
        &json!({ "new_password": new_password, "auth": password_auth("lee", PASSWORD, session) }),
    );
    assert_eq!(status, 200);
    assert_eq!(server.get(WHOAMI, Some(&here)).0, 200);
    assert_error(server.get(WHOAMI, Some(&elsewhere)), 401, "M_UNKNOWN_TOKEN");
    assert_error(server.login("lee", PASSWORD), 403, "M_FORBIDDEN");
    assert_eq!(server.login("lee", new_password).0, 200);
}

#[test]
fn password_change_can_keep_other_devices_and_checks_the_new_password() {
    let server = TestServer::start();
    let here = token(&server.register("max"));
    let elsewhere = token(&server.login("max", PASSWORD).1);
    assert_error(
        server.post(
            PASSWORD_PATH,
            Some(&here),
            &json!({ "new_password": "short" }),
        ),
        400,
        "M_WEAK_PASSWORD",
    );
    let (_, challenge) = server.post(
        PASSWORD_PATH,
        Some(&here),
        &json!({ "new_password": "another good one" }),
    );
    let session = challenge["session"].as_str().unwrap();
    // Another user's password does not authorise this user's change: refused outright,
    // as Synapse does, and the session stays usable.
    server.register("mallory");
    let (status, body) = server.post(
        PASSWORD_PATH,
        Some(&here),
        &json!({ "new_password": "another good one", "logout_devices": false,
                 "auth": password_auth("mallory", PASSWORD, session) }),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (403, Some("M_FORBIDDEN"))
    );
    let (status, _) = server.post(
        PASSWORD_PATH,
        Some(&here),
        &json!({ "new_password": "another good one", "logout_devices": false,
                 "auth": password_auth("max", PASSWORD, session) }),
    );
    assert_eq!(status, 200);
    assert_eq!(server.get(WHOAMI, Some(&elsewhere)).0, 200);
}

#[test]
fn deactivation_ends_every_session_and_keeps_the_name_taken() {
    let server = TestServer::start();
    let here = token(&server.register("ned"));
    let other = token(&server.login("ned", PASSWORD).1);
    let path = "/_matrix/client/v3/account/deactivate";
    let (status, challenge) = server.post(path, Some(&here), &json!({}));
    assert_eq!(status, 401);
    let session = challenge["session"].as_str().unwrap();
    let (status, body) = server.post(
        path,
        Some(&here),
        &json!({ "auth": password_auth("ned", PASSWORD, session) }),
    );
    assert_eq!(status, 200, "{body}");
    // Nothing was bound at an identity server: the spec asks for `success` then.
    assert_eq!(body["id_server_unbind_result"], "success");
    assert_error(server.get(WHOAMI, Some(&here)), 401, "M_UNKNOWN_TOKEN");
    assert_error(server.get(WHOAMI, Some(&other)), 401, "M_UNKNOWN_TOKEN");
    assert_error(server.login("ned", PASSWORD), 403, "M_USER_DEACTIVATED");
    assert_error(
        server.get("/_matrix/client/v3/register/available?username=ned", None),
        400,
        "M_USER_IN_USE",
    );
}

#[test]
fn an_erased_users_messages_are_redacted_for_those_who_joined_later() {
    let mut server = TestServer::start();
    let carl = crate::room_support::user(&server, "carl");
    let member = crate::room_support::user(&server, "member");
    let joiner = crate::room_support::user(&server, "joiner");
    let room = crate::room_support::create_room(
        &server,
        &carl,
        json!({ "preset": "public_chat", "name": "Erasure" }),
    );
    crate::room_support::join(&server, &member, &room);
    let message = crate::room_support::send_text(&server, &carl, &room, "t1", "body1");
    crate::room_support::join(&server, &joiner, &room);
    let read = |server: &TestServer, reader: &crate::room_support::User| {
        let (status, event) = crate::room_support::get_event(server, reader, &room, &message);
        assert_eq!(status, 200, "{event}");
        event["content"].clone()
    };
    assert_eq!(read(&server, &joiner)["body"], "body1");

    let path = "/_matrix/client/v3/account/deactivate";
    let (_, challenge) = server.post(path, Some(&carl.token), &json!({ "erase": true }));
    let session = challenge["session"].as_str().unwrap();
    let (status, body) = server.post(
        path,
        Some(&carl.token),
        &json!({ "erase": true, "auth": password_auth("carl", PASSWORD, session) }),
    );
    assert_eq!(status, 200, "{body}");
    // The member who was there keeps what they saw; the later joiner gets it redacted,
    // also after a restart.
    assert_eq!(read(&server, &member)["body"], "body1");
    assert_eq!(read(&server, &joiner), json!({}));
    server.restart();
    let member = crate::room_support::User {
        token: token(&server.login("member", PASSWORD).1),
        ..member
    };
    let joiner = crate::room_support::User {
        token: token(&server.login("joiner", PASSWORD).1),
        ..joiner
    };
    assert_eq!(read(&server, &member)["body"], "body1");
    assert_eq!(read(&server, &joiner), json!({}));
}
