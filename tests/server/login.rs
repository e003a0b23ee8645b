use std::time::Duration;

use serde_json::json;

use crate::harness::{PASSWORD, TestServer, assert_error, token};
use crate::media::files_under;

const LOGIN: &str = "/_matrix/client/v3/login";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";

#[test]
fn password_login_accepts_every_user_identifier_form() {
    let server = TestServer::start();
    server.register("dora");
    let full = format!("@dora:{}", server.server_name());
    for body in [
        json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "dora" }, "password": PASSWORD }),
        json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": full }, "password": PASSWORD }),
        json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "DORA" }, "password": PASSWORD }),
        json!({ "type": "m.login.password", "user": "dora", "password": PASSWORD }),
    ] {
        let (status, response) = server.post(LOGIN, None, &body);
        assert_eq!(status, 200, "{body} -> {response}");
        assert_eq!(response["user_id"], full);
        assert_eq!(
            server.get(WHOAMI, Some(&token(&response))).1["user_id"],
            full
        );
    }
    let (_, flows) = server.get(LOGIN, None);
    assert!(
        flows["flows"]
            .as_array()
            .unwrap()
            .contains(&json!({ "type": "m.login.password" }))
    );
}

#[test]
fn logging_in_to_a_known_device_replaces_its_token() {
    let server = TestServer::start();
    server.register("eve");
    let login = |device: &str| {
        server.post(
            LOGIN,
            None,
            &json!({ "type": "m.login.password", "user": "eve", "password": PASSWORD, "device_id": device }),
        )
    };
    let first = token(&login("LAPTOP").1);
    let second = token(&login("LAPTOP").1);
    assert_ne!(first, second);
    assert_error(server.get(WHOAMI, Some(&first)), 401, "M_UNKNOWN_TOKEN");
    assert_eq!(server.get(WHOAMI, Some(&second)).1["device_id"], "LAPTOP");
}

#[test]
fn wrong_credentials_are_forbidden_and_then_rate_limited() {
    let server = TestServer::start_with_env(&[("HEARTH_LOGIN__FAILURES_BURST", "3")]);
    server.register("frank");
    for wrong in ["not the password", "still wrong", "wrong again"] {
        assert_error(server.login("frank", wrong), 403, "M_FORBIDDEN");
    }
    // The user's allowance is used up: even the right password waits.
    let body = assert_error(server.login("frank", PASSWORD), 429, "M_LIMIT_EXCEEDED");
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0, "{body}");
    // So is this address's, whichever user it tries next.
    assert_error(server.login("nobody", PASSWORD), 429, "M_LIMIT_EXCEEDED");
}

#[test]
fn unknown_login_types_and_bad_fields_are_refused() {
    let server = TestServer::start();
    assert_error(
        server.post(LOGIN, None, &json!({ "type": "m.login.magic" })),
        400,
        "M_UNKNOWN",
    );
    assert_error(
        server.post(
            LOGIN,
            None,
            &json!({ "type": "m.login.password", "user": "x", "password": 5 }),
        ),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        server.post(
            LOGIN,
            None,
            &json!({ "type": "m.login.password", "password": "x" }),
        ),
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        server.post(
            LOGIN,
            None,
            &json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "@x:elsewhere.example" }, "password": "x" }),
        ),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn logout_and_logout_all_revoke_tokens() {
    let server = TestServer::start();
    let registered = token(&server.register("gina"));
    let second = token(&server.login("gina", PASSWORD).1);
    let third = token(&server.login("gina", PASSWORD).1);

    assert_eq!(
        server
            .post("/_matrix/client/v3/logout", Some(&registered), &json!({}))
            .0,
        200
    );
    let body = assert_error(
        server.get(WHOAMI, Some(&registered)),
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_eq!(body["soft_logout"], false);
    assert_eq!(server.get(WHOAMI, Some(&second)).0, 200);

    assert_eq!(
        server
            .post("/_matrix/client/v3/logout/all", Some(&second), &json!({}))
            .0,
        200
    );
    assert_error(server.get(WHOAMI, Some(&second)), 401, "M_UNKNOWN_TOKEN");
    assert_error(server.get(WHOAMI, Some(&third)), 401, "M_UNKNOWN_TOKEN");
    let (_, devices) = server.get(
        "/_matrix/client/v3/devices",
        Some(&token(&server.login("gina", PASSWORD).1)),
    );
    assert_eq!(devices["devices"].as_array().unwrap().len(), 1);
}

#[test]
fn refresh_tokens_rotate_and_expired_tokens_soft_logout() {
    let server =
        TestServer::start_with_env(&[("HEARTH_LOGIN__REFRESHABLE_TOKEN_LIFETIME_SECS", "2")]);
    server.register("hal");
    let (status, login) = server.post(
        LOGIN,
        None,
        &json!({ "type": "m.login.password", "user": "hal", "password": PASSWORD, "refresh_token": true }),
    );
    assert_eq!(status, 200);
    assert_eq!(login["expires_in_ms"], 2000);
    let refresh1 = login["refresh_token"].as_str().unwrap().to_owned();

    std::thread::sleep(Duration::from_millis(2100));
    let body = assert_error(
        server.get(WHOAMI, Some(&token(&login))),
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_eq!(body["soft_logout"], true);

    let refresh = |r: &str| {
        server.post(
            "/_matrix/client/v3/refresh",
            None,
            &json!({ "refresh_token": r }),
        )
    };
    let (status, first) = refresh(&refresh1);
    assert_eq!(status, 200, "{first}");
    // The client may not have received that answer: the old refresh token still works,
    // and replaces the tokens it handed out before.
    let (status, second) = refresh(&refresh1);
    assert_eq!(status, 200, "{second}");
    assert_error(
        server.get(WHOAMI, Some(&token(&first))),
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        refresh(first["refresh_token"].as_str().unwrap()),
        401,
        "M_UNKNOWN_TOKEN",
    );

    // Using the new access token retires the old refresh token.
    assert_eq!(server.get(WHOAMI, Some(&token(&second))).0, 200);
    assert_error(refresh(&refresh1), 401, "M_UNKNOWN_TOKEN");
    let (status, third) = refresh(second["refresh_token"].as_str().unwrap());
    assert_eq!(status, 200);
    assert_eq!(server.get(WHOAMI, Some(&token(&third))).0, 200);
    assert_error(
        server.post("/_matrix/client/v3/refresh", None, &json!({})),
        400,
        "M_BAD_JSON",
    );
}

fn jwt(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[test]
fn jwt_login_verifies_tokens_and_creates_users_when_configured() {
    let secret = "jwt-test-secret";
    let server = TestServer::start_with_env(&[
        ("HEARTH_JWT__ENABLED", "true"),
        ("HEARTH_JWT__SECRET", secret),
        ("HEARTH_JWT__CREATE_USERS", "true"),
        ("HEARTH_JWT__ISSUER", "https://idp.example"),
    ]);
    let (_, flows) = server.get(LOGIN, None);
    assert!(
        flows["flows"]
            .as_array()
            .unwrap()
            .contains(&json!({ "type": "m.login.jwt" }))
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let login = |token: String| {
        server.post(
            LOGIN,
            None,
            &json!({ "type": "m.login.jwt", "token": token }),
        )
    };

    let good = jwt(
        secret,
        json!({ "sub": "ivy", "iss": "https://idp.example", "exp": now + 60 }),
    );
    let (status, body) = login(good.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], format!("@ivy:{}", server.server_name()));
    // Synapse's login type name works too.
    let (status, _) = server.post(
        LOGIN,
        None,
        &json!({ "type": "org.matrix.login.jwt", "token": good }),
    );
    assert_eq!(status, 200);

    assert_error(
        login(jwt(
            "other-secret",
            json!({ "sub": "ivy", "iss": "https://idp.example" }),
        )),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        login(jwt(
            secret,
            json!({ "sub": "ivy", "iss": "https://idp.example", "exp": now - 3600 }),
        )),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        login(jwt(
            secret,
            json!({ "sub": "ivy", "iss": "https://evil.example" }),
        )),
        403,
        "M_FORBIDDEN",
    );
    assert_error(login("not.a.jwt".into()), 403, "M_FORBIDDEN");
}

#[test]
fn jwt_login_without_user_creation_needs_an_existing_account() {
    let secret = "jwt-test-secret";
    let server = TestServer::start_with_env(&[
        ("HEARTH_JWT__ENABLED", "true"),
        ("HEARTH_JWT__SECRET", secret),
    ]);
    server.register("jack");
    let login = |sub: &str| {
        server.post(
            LOGIN,
            None,
            &json!({ "type": "m.login.jwt", "token": jwt(secret, json!({ "sub": sub })) }),
        )
    };
    assert_eq!(login("jack").0, 200);
    assert_error(login("stranger"), 403, "M_FORBIDDEN");
}

#[test]
fn jwt_login_is_off_by_default() {
    let server = TestServer::start();
    let (_, flows) = server.get(LOGIN, None);
    assert_eq!(flows["flows"], json!([{ "type": "m.login.password" }]));
    assert_error(
        server.post(LOGIN, None, &json!({ "type": "m.login.jwt", "token": "x" })),
        400,
        "M_UNKNOWN",
    );
}

#[test]
fn behind_a_proxy_rate_limits_apply_per_forwarded_address() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_LOGIN__FAILURES_BURST", "2"),
        ("HEARTH_FORWARDED_FOR_HEADER", "true"),
    ]);
    server.register("yan");
    let login_from = |addr: &str, user: &str, password: &str| {
        crate::harness::into_json(
            server
                .client
                .post(server.url(LOGIN))
                .header("X-Forwarded-For", format!("203.0.113.9, {addr}"))
                .json(&json!({ "type": "m.login.password", "user": user, "password": password }))
                .send()
                .unwrap(),
        )
    };
    assert_error(
        login_from("198.51.100.1", "ghost1", "x"),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        login_from("198.51.100.1", "ghost2", "x"),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        login_from("198.51.100.1", "ghost3", "x"),
        429,
        "M_LIMIT_EXCEEDED",
    );
    // Another client behind the same proxy is not locked out by the first one.
    assert_eq!(login_from("198.51.100.2", "yan", PASSWORD).0, 200);
}

#[test]
fn absurd_device_ids_are_refused() {
    let server = TestServer::start();
    server.register("zed");
    for device_id in [String::new(), "D".repeat(300)] {
        assert_error(
            server.post(
                LOGIN,
                None,
                &json!({ "type": "m.login.password", "user": "zed", "password": PASSWORD, "device_id": device_id }),
            ),
            400,
            "M_INVALID_PARAM",
        );
    }
}

/// At debug level every request is in the log; the access token (whether sent in the
/// header or in the deprecated query parameter), the refresh token and the password
/// are not.
#[test]
fn tokens_and_passwords_stay_out_of_the_log() {
    let mut server = TestServer::start_with_env(&[("RUST_LOG", "debug")]);
    let registered = server.register("tess");
    let first = token(&registered);
    let (status, body) = server.post(
        LOGIN,
        None,
        &json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": "tess" },
            "password": PASSWORD,
            "refresh_token": true,
        }),
    );
    assert_eq!(status, 200, "{body}");
    let second = token(&body);
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(server.get(WHOAMI, Some(&first)).0, 200);
    let (status, body) = server.get(&format!("{WHOAMI}?access_token={second}"), None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post(
        "/_matrix/client/v3/refresh",
        None,
        &json!({ "refresh_token": refresh }),
    );
    assert_eq!(status, 200, "{body}");
    let logs = server.stop_and_logs();
    // The requests were logged, so the log was looked at where the secrets would be.
    assert!(logs.contains("/_matrix/client/v3/account/whoami"), "{logs}");
    for secret in [first.as_str(), second.as_str(), refresh.as_str(), PASSWORD] {
        assert!(!logs.contains(secret), "{secret:?} is in the log");
    }
    let refreshed = body["access_token"].as_str().unwrap();
    assert!(!logs.contains(refreshed));
}

/// A copy of the data directory gives no usable session: tokens are stored only as
/// hashes. The server is killed before any flush, so everything written is still in
/// RocksDB's uncompressed write-ahead log, where the user's ID is found as it was written.
#[test]
fn the_store_holds_no_usable_token() {
    let mut server = TestServer::start();
    let registered = server.register("tess");
    let (status, body) = server.post(
        LOGIN,
        None,
        &json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": "tess" },
            "password": PASSWORD,
            "refresh_token": true,
        }),
    );
    assert_eq!(status, 200, "{body}");
    let secrets = [
        token(&registered),
        token(&body),
        body["refresh_token"].as_str().unwrap().to_owned(),
    ];
    server.kill_9();
    let stored: Vec<u8> = files_under(server.data_dir())
        .iter()
        .flat_map(|path| std::fs::read(path).unwrap())
        .collect();
    let found = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(found(b"@tess:"), "the scan sees what was written");
    for secret in &secrets {
        assert!(!found(secret.as_bytes()), "{secret} is in the store");
    }
}
