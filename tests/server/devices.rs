use serde_json::json;

use crate::harness::{PASSWORD, TestServer, assert_error, token};

#[test]
fn devices_are_listed_renamed_and_deleted() {
    let server = TestServer::start();
    let here = token(&server.register("olga"));
    let (_, tablet) = server.post(
        "/_matrix/client/v3/login",
        None,
        &json!({ "type": "m.login.password", "user": "olga", "password": PASSWORD,
                 "device_id": "TABLET", "initial_device_display_name": "Tablet" }),
    );
    let tablet_token = token(&tablet);
    server.get("/_matrix/client/v3/account/whoami", Some(&tablet_token));

    let (status, list) = server.get("/_matrix/client/v3/devices", Some(&here));
    assert_eq!(status, 200);
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);

    let (status, one) = server.get("/_matrix/client/v3/devices/TABLET", Some(&here));
    assert_eq!(status, 200);
    assert_eq!(one["display_name"], "Tablet");
    assert_eq!(one["last_seen_ip"], "127.0.0.1");
    assert!(one["last_seen_ts"].as_u64().unwrap() > 0);

    let (status, _) = server.send(
        "PUT",
        "/_matrix/client/v3/devices/TABLET",
        Some(&here),
        &json!({ "display_name": "Kitchen tablet" }),
    );
    assert_eq!(status, 200);
    assert_eq!(
        server
            .get("/_matrix/client/v3/devices/TABLET", Some(&here))
            .1["display_name"],
        "Kitchen tablet"
    );
    assert_error(
        server.get("/_matrix/client/v3/devices/NOPE", Some(&here)),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.send(
            "PUT",
            "/_matrix/client/v3/devices/NOPE",
            Some(&here),
            &json!({ "display_name": "x" }),
        ),
        404,
        "M_NOT_FOUND",
    );

    let (status, challenge) = server.send(
        "DELETE",
        "/_matrix/client/v3/devices/TABLET",
        Some(&here),
        &json!({}),
    );
    assert_eq!(status, 401);
    let session = challenge["session"].as_str().unwrap();
    let (status, _) = server.send(
        "DELETE",
        "/_matrix/client/v3/devices/TABLET",
        Some(&here),
        &json!({ "auth": { "type": "m.login.password", "user": "olga", "password": PASSWORD, "session": session } }),
    );
    assert_eq!(status, 200);
    assert_error(
        server.get("/_matrix/client/v3/account/whoami", Some(&tablet_token)),
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_eq!(
        server.get("/_matrix/client/v3/devices", Some(&here)).1["devices"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn delete_devices_removes_several_at_once() {
    let server = TestServer::start();
    let here = token(&server.register("pia"));
    let a = server.login("pia", PASSWORD).1;
    let b = server.login("pia", PASSWORD).1;
    let ids = json!([a["device_id"], b["device_id"], "NOT_A_DEVICE"]);
    let (status, challenge) = server.post(
        "/_matrix/client/v3/delete_devices",
        Some(&here),
        &json!({ "devices": ids }),
    );
    assert_eq!(status, 401);
    let (status, _) = server.post(
        "/_matrix/client/v3/delete_devices",
        Some(&here),
        &json!({ "devices": ids, "auth": { "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": "pia" }, "password": PASSWORD,
            "session": challenge["session"] } }),
    );
    assert_eq!(status, 200);
    for gone in [&a, &b] {
        assert_error(
            server.get("/_matrix/client/v3/account/whoami", Some(&token(gone))),
            401,
            "M_UNKNOWN_TOKEN",
        );
    }
    assert_eq!(
        server
            .get("/_matrix/client/v3/account/whoami", Some(&here))
            .0,
        200
    );
    // The other user's devices are out of reach.
    let other = token(&server.register("quinn"));
    let (_, list) = server.get("/_matrix/client/v3/devices", Some(&other));
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    assert_error(
        server.get(
            &format!(
                "/_matrix/client/v3/devices/{}",
                list["devices"][0]["device_id"].as_str().unwrap()
            ),
            Some(&here),
        ),
        404,
        "M_NOT_FOUND",
    );
}

/// A user-interactive auth session is bound to the device it was started for, as
/// Synapse binds it (SyTest: "The operation must be consistent through an interactive
/// authentication session"): completing it on another device's path is refused.
#[test]
fn an_auth_session_cannot_delete_another_device() {
    let server = TestServer::start();
    let here = token(&server.register("rhea"));
    for device in ["FIRST", "SECOND"] {
        server.post(
            "/_matrix/client/v3/login",
            None,
            &json!({ "type": "m.login.password", "user": "rhea", "password": PASSWORD,
                     "device_id": device }),
        );
    }
    let (status, challenge) = server.send(
        "DELETE",
        "/_matrix/client/v3/devices/FIRST",
        Some(&here),
        &json!({}),
    );
    assert_eq!(status, 401);
    let auth = json!({ "type": "m.login.password", "password": PASSWORD,
        "identifier": { "type": "m.id.user", "user": "rhea" },
        "session": challenge["session"] });
    assert_error(
        server.send(
            "DELETE",
            "/_matrix/client/v3/devices/SECOND",
            Some(&here),
            &json!({ "auth": auth }),
        ),
        403,
        "M_FORBIDDEN",
    );
    assert_eq!(
        server
            .get("/_matrix/client/v3/devices/SECOND", Some(&here))
            .0,
        200
    );
    // Another user's password is refused outright too, with the device left alone.
    server.register("sven");
    let mut sven = auth.clone();
    sven["identifier"]["user"] = json!("sven");
    assert_error(
        server.send(
            "DELETE",
            "/_matrix/client/v3/devices/FIRST",
            Some(&here),
            &json!({ "auth": sven }),
        ),
        403,
        "M_FORBIDDEN",
    );
    let (status, _) = server.send(
        "DELETE",
        "/_matrix/client/v3/devices/FIRST",
        Some(&here),
        &json!({ "auth": auth }),
    );
    assert_eq!(status, 200);
}
