use serde_json::json;

use crate::harness::{PASSWORD, TestServer, assert_error, token};

const REGISTER: &str = "/_matrix/client/v3/register";

#[test]
fn registration_runs_the_dummy_stage_then_logs_in() {
    let server = TestServer::start();
    let (status, challenge) = server.post(
        REGISTER,
        None,
        &json!({ "username": "alice", "password": PASSWORD }),
    );
    assert_eq!(status, 401, "{challenge}");
    assert_eq!(challenge["flows"], json!([{ "stages": ["m.login.dummy"] }]));
    let session = challenge["session"].as_str().unwrap();

    let (status, body) = server.post(
        REGISTER,
        None,
        &json!({
            "username": "alice",
            "password": PASSWORD,
            "device_id": "PHONE",
            "initial_device_display_name": "Alice's phone",
            "auth": { "type": "m.login.dummy", "session": session },
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], format!("@alice:{}", server.server_name()));
    assert_eq!(body["device_id"], "PHONE");
    let (status, whoami) = server.get("/_matrix/client/v3/account/whoami", Some(&token(&body)));
    assert_eq!(status, 200);
    assert_eq!(whoami["user_id"], body["user_id"]);
    assert_eq!(whoami["device_id"], "PHONE");

    let (_, devices) = server.get("/_matrix/client/v3/devices", Some(&token(&body)));
    assert_eq!(devices["devices"][0]["display_name"], "Alice's phone");
}

/// A finished session cannot register a second account: repeating it answers with the
/// account it created (as Synapse does), whatever the new request names.
#[test]
fn a_session_cannot_be_completed_twice() {
    let server = TestServer::start();
    let (_, challenge) = server.post(REGISTER, None, &json!({}));
    let session = challenge["session"].as_str().unwrap().to_owned();
    let auth = json!({ "type": "m.login.dummy", "session": session });
    let first = server.post(
        REGISTER,
        None,
        &json!({ "username": "one", "password": PASSWORD, "auth": auth }),
    );
    assert_eq!(first.0, 200);
    let (status, second) = server.post(
        REGISTER,
        None,
        &json!({ "username": "two", "password": PASSWORD, "auth": auth }),
    );
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["user_id"], first.1["user_id"]);
    assert_eq!(server.login("two", PASSWORD).0, 403);
}

#[test]
fn inhibit_login_registers_without_a_session_and_refresh_tokens_are_offered() {
    let server = TestServer::start();
    let (status, body) = server.post(
        REGISTER,
        None,
        &json!({
            "username": "quiet", "password": PASSWORD, "inhibit_login": true,
            "auth": { "type": "m.login.dummy" },
        }),
    );
    assert_eq!(status, 200);
    assert_eq!(body["user_id"], format!("@quiet:{}", server.server_name()));
    assert!(body.get("access_token").is_none(), "{body}");

    let (status, body) = server.post(
        REGISTER,
        None,
        &json!({
            "username": "fresh", "password": PASSWORD, "refresh_token": true,
            "auth": { "type": "m.login.dummy" },
        }),
    );
    assert_eq!(status, 200);
    assert!(body["refresh_token"].as_str().unwrap().len() > 20);
    assert!(body["expires_in_ms"].as_u64().unwrap() > 0);
}

#[test]
fn bad_registrations_get_the_spec_errors() {
    let server = TestServer::start();
    server.register("taken");
    let reg = |body: serde_json::Value| server.post(REGISTER, None, &body);
    assert_error(
        reg(
            json!({ "username": "taken", "password": PASSWORD, "auth": { "type": "m.login.dummy" } }),
        ),
        400,
        "M_USER_IN_USE",
    );
    assert_error(
        reg(json!({ "username": "Not Valid", "password": PASSWORD })),
        400,
        "M_INVALID_USERNAME",
    );
    assert_error(
        reg(json!({ "username": "shortpw", "password": "abc" })),
        400,
        "M_WEAK_PASSWORD",
    );
    assert_error(
        reg(json!({ "username": "nopw", "auth": { "type": "m.login.dummy" } })),
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        reg(json!({ "username": 42, "password": PASSWORD })),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        server.post(&format!("{REGISTER}?kind=guest"), None, &json!({})),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    // The name stays free after the failures above.
    let (status, body) = server.get(
        "/_matrix/client/v3/register/available?username=shortpw",
        None,
    );
    assert_eq!((status, body["available"].as_bool()), (200, Some(true)));
}

#[test]
fn availability_reports_taken_and_invalid_names() {
    let server = TestServer::start();
    server.register("bob");
    let available = |name: &str| {
        server.get(
            &format!("/_matrix/client/v3/register/available?username={name}"),
            None,
        )
    };
    assert_eq!(available("carol").1["available"], true);
    assert_error(available("bob"), 400, "M_USER_IN_USE");
    assert_error(available("B%20B"), 400, "M_INVALID_USERNAME");
    assert_error(
        server.get("/_matrix/client/v3/register/available", None),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn registration_can_be_turned_off() {
    let server = TestServer::start_with_env(&[("HEARTH_REGISTRATION__ENABLED", "false")]);
    assert_error(
        server.post(
            REGISTER,
            None,
            &json!({ "username": "x", "password": PASSWORD, "auth": { "type": "m.login.dummy" } }),
        ),
        403,
        "M_FORBIDDEN",
    );
    // Nothing can be registered, so nobody is told which names are taken.
    assert_error(
        server.get("/_matrix/client/v3/register/available?username=x", None),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn registration_tokens_gate_registration() {
    let server = TestServer::start_with_env(&[("HEARTH_REGISTRATION__TOKENS", "[\"sesame\"]")]);
    let (status, challenge) = server.post(REGISTER, None, &json!({ "username": "tok" }));
    assert_eq!(status, 401);
    assert_eq!(
        challenge["flows"],
        json!([{ "stages": ["m.login.registration_token"] }])
    );
    let session = challenge["session"].as_str().unwrap();
    // A dummy stage is not enough here.
    let (status, body) = server.post(
        REGISTER,
        None,
        &json!({ "username": "tok", "password": PASSWORD,
                 "auth": { "type": "m.login.dummy", "session": session } }),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (401, Some("M_UNRECOGNIZED"))
    );
    let (status, body) = server.post(
        REGISTER,
        None,
        &json!({ "username": "tok", "password": PASSWORD,
                 "auth": { "type": "m.login.registration_token", "token": "wrong", "session": session } }),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (401, Some("M_FORBIDDEN"))
    );
    let (status, body) = server.post(
        REGISTER,
        None,
        &json!({ "username": "tok", "password": PASSWORD,
                 "auth": { "type": "m.login.registration_token", "token": "sesame", "session": session } }),
    );
    assert_eq!(status, 200, "{body}");

    let validity = "/_matrix/client/v1/register/m.login.registration_token/validity";
    assert_eq!(
        server.get(&format!("{validity}?token=sesame"), None).1["valid"],
        true
    );
    assert_eq!(
        server.get(&format!("{validity}?token=nope"), None).1["valid"],
        false
    );
}

#[test]
fn shared_secret_registration_matches_synapse() {
    let secret = "s3cret-for-tests";
    let server = TestServer::start_with_env(&[
        ("HEARTH_REGISTRATION__SHARED_SECRET", secret),
        ("HEARTH_REGISTRATION__ENABLED", "false"),
    ]);
    let path = "/_synapse/admin/v1/register";
    let nonce = server.get(path, None).1["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong_mac = hearth::service::shared_secret::mac("other", &nonce, "admin1", PASSWORD, true);
    assert_error(
        server.post(
            path,
            None,
            &json!({ "nonce": nonce, "username": "admin1", "password": PASSWORD, "admin": true, "mac": wrong_mac }),
        ),
        403,
        "M_FORBIDDEN",
    );
    // The nonce was used up by the failed attempt.
    let mac = hearth::service::shared_secret::mac(secret, &nonce, "admin1", PASSWORD, true);
    assert_error(
        server.post(
            path,
            None,
            &json!({ "nonce": nonce, "username": "admin1", "password": PASSWORD, "admin": true, "mac": mac }),
        ),
        400,
        "M_INVALID_PARAM",
    );
    let nonce = server.get(path, None).1["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let mac = hearth::service::shared_secret::mac(secret, &nonce, "admin1", PASSWORD, true);
    let (status, body) = server.post(
        path,
        None,
        &json!({ "nonce": nonce, "username": "admin1", "password": PASSWORD, "admin": true, "mac": mac }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.login("admin1", PASSWORD).0, 200);
}

#[test]
fn shared_secret_registration_is_off_without_a_secret() {
    let server = TestServer::start();
    assert_error(
        server.get("/_synapse/admin/v1/register", None),
        403,
        "M_FORBIDDEN",
    );
}
