//! Guest accounts: `register?kind=guest`, the endpoints guests may use, joining only
//! rooms open to guests, leaving them when that ends, and upgrading to a full account.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::{User, create_room, enc, membership_of, put_state, send_text, user};

fn guest_server() -> TestServer {
    TestServer::start_with_env(&[("HEARTH_REGISTRATION__ALLOW_GUEST_ACCESS", "true")])
}

#[track_caller]
fn guest(server: &TestServer) -> User {
    let (status, body) = server.post("/_matrix/client/v3/register?kind=guest", None, &json!({}));
    assert_eq!(status, 200, "{body}");
    User {
        id: body["user_id"].as_str().unwrap().to_owned(),
        token: body["access_token"].as_str().unwrap().to_owned(),
        device: body["device_id"].as_str().unwrap().to_owned(),
    }
}

#[track_caller]
fn set_guest_access(server: &TestServer, admin: &User, room: &str, value: &str) {
    let (status, body) = put_state(
        server,
        admin,
        room,
        "m.room.guest_access",
        "",
        &json!({"guest_access": value}),
    );
    assert_eq!(status, 200, "{body}");
}

fn join_room(server: &TestServer, user: &User, room: &str) -> (u16, Value) {
    server.post(
        &format!("/_matrix/client/v3/rooms/{}/join", enc(room)),
        Some(&user.token),
        &json!({}),
    )
}

#[test]
fn guests_are_refused_unless_the_server_allows_them() {
    let server = TestServer::start();
    assert_error(
        server.post("/_matrix/client/v3/register?kind=guest", None, &json!({})),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
}

#[test]
fn a_guest_gets_a_numeric_name_and_only_the_guest_endpoints() {
    let server = guest_server();
    let guest = guest(&server);
    let localpart = guest.id.trim_start_matches('@').split(':').next().unwrap();
    assert!(
        localpart.bytes().all(|b| b.is_ascii_digit()),
        "numeric: {}",
        guest.id
    );
    let (status, body) = server.get("/_matrix/client/v3/account/whoami", Some(&guest.token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_guest"], true);
    assert_eq!(body["user_id"], guest.id.as_str());
    let (status, body) = server.get("/_matrix/client/v3/sync?timeout=0", Some(&guest.token));
    assert_eq!(status, 200, "{body}");

    // What the spec does not list is refused, on v3 and r0 paths alike.
    assert_error(
        server.post(
            "/_matrix/client/v3/createRoom",
            Some(&guest.token),
            &json!({}),
        ),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    assert_error(
        server.get("/_matrix/client/v3/joined_rooms", Some(&guest.token)),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    assert_error(
        server.get("/_matrix/client/r0/initialSync", Some(&guest.token)),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    // The display name, but no other profile field.
    let (status, body) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/profile/{}/displayname", enc(&guest.id)),
        Some(&guest.token),
        &json!({"displayname": "creeper"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_error(
        server.send(
            "PUT",
            &format!("/_matrix/client/v3/profile/{}/avatar_url", enc(&guest.id)),
            Some(&guest.token),
            &json!({"avatar_url": "mxc://x/y"}),
        ),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    // The global event stream is not theirs: only a room preview.
    assert_error(
        server.get("/_matrix/client/v3/events?timeout=0", Some(&guest.token)),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    // Numbers are guests' names: nobody registers one.
    assert_error(
        server.post(
            "/_matrix/client/v3/register",
            None,
            &json!({"username": "12345", "password": "a long password", "auth": {"type": "m.login.dummy"}}),
        ),
        400,
        "M_INVALID_USERNAME",
    );
}

#[test]
fn guests_join_only_rooms_open_to_guests_and_leave_when_that_ends() {
    let server = guest_server();
    let alice = user(&server, "alice");
    let guest = guest(&server);
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    assert_error(
        join_room(&server, &guest, &room),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    // Nor by the state endpoint.
    assert_error(
        put_state(
            &server,
            &guest,
            &room,
            "m.room.member",
            &guest.id,
            &json!({"membership": "join"}),
        ),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );

    set_guest_access(&server, &alice, &room, "can_join");
    let (status, body) = join_room(&server, &guest, &room);
    assert_eq!(status, 200, "{body}");
    let event_id = send_text(&server, &guest, &room, "g1", "sup");
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(&room),
            enc(&event_id)
        ),
        Some(&alice.token),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sender"], guest.id.as_str());

    set_guest_access(&server, &alice, &room, "forbidden");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = membership_of(&server, &alice, &room, &guest.id);
        if now.as_deref() == Some("leave") {
            break;
        }
        assert!(Instant::now() < deadline, "guest still {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Full members stay.
    assert_eq!(
        membership_of(&server, &alice, &room, &alice.id).as_deref(),
        Some("join")
    );
}

#[test]
fn a_guest_previews_world_readable_rooms_only() {
    let server = guest_server();
    let alice = user(&server, "alice");
    let guest = guest(&server);
    let open = create_room(&server, &alice, json!({"preset": "public_chat"}));
    let closed = create_room(&server, &alice, json!({"preset": "public_chat"}));
    let (status, body) = put_state(
        &server,
        &alice,
        &open,
        "m.room.history_visibility",
        "",
        &json!({"history_visibility": "world_readable"}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/initialSync", enc(&open)),
        Some(&guest.token),
    );
    assert_eq!(status, 200, "{body}");
    let from = body["messages"]["end"].as_str().unwrap().to_owned();
    send_text(&server, &alice, &open, "o1", "hello lurkers");
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v3/events?room_id={}&from={from}&timeout=0",
            enc(&open)
        ),
        Some(&guest.token),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["content"]["body"] == "hello lurkers"),
        "{body}"
    );
    assert_error(
        server.get(
            &format!(
                "/_matrix/client/v3/events?room_id={}&timeout=0",
                enc(&closed)
            ),
            Some(&guest.token),
        ),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.get(
            &format!("/_matrix/client/v3/rooms/{}/initialSync", enc(&closed)),
            Some(&guest.token),
        ),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn a_guest_upgrades_to_a_full_account_keeping_its_id() {
    let server = guest_server();
    let alice = user(&server, "alice");
    let first = guest(&server);
    let other = guest(&server);
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    set_guest_access(&server, &alice, &room, "can_join");
    let (status, body) = join_room(&server, &first, &room);
    assert_eq!(status, 200, "{body}");
    let localpart = first.id.trim_start_matches('@').split(':').next().unwrap();

    // Another guest's token cannot take this guest's name.
    assert_error(
        server.post(
            "/_matrix/client/v3/register",
            None,
            &json!({
                "username": localpart,
                "password": "SIR_Arthur_David",
                "guest_access_token": other.token,
                "auth": {"type": "m.login.dummy"},
            }),
        ),
        403,
        "M_FORBIDDEN",
    );
    let (status, body) = server.post(
        "/_matrix/client/v3/register",
        None,
        &json!({
            "username": localpart,
            "password": "SIR_Arthur_David",
            "guest_access_token": first.token,
            "auth": {"type": "m.login.dummy"},
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], first.id.as_str());
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = server.get("/_matrix/client/v3/account/whoami", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_guest"], false);
    // A full account: it may create rooms, and it is still in the guest's room.
    let (status, body) = server.post("/_matrix/client/v3/createRoom", Some(&token), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        membership_of(&server, &alice, &room, &first.id).as_deref(),
        Some("join")
    );
    let (status, body) = server.login(localpart, "SIR_Arthur_David");
    assert_eq!(status, 200, "{body}");
    // Only once.
    assert_error(
        server.post(
            "/_matrix/client/v3/register",
            None,
            &json!({
                "username": localpart,
                "password": "SIR_Arthur_David",
                "guest_access_token": token,
                "auth": {"type": "m.login.dummy"},
            }),
        ),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn every_route_guests_may_use_is_a_real_route() {
    let table = crate::route_walk::route_table();
    for (method, path) in hearth::service::guests::guest_routes() {
        assert!(
            table.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is not a route"
        );
    }
}

#[test]
fn the_admin_api_tells_guests_apart() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_REGISTRATION__ALLOW_GUEST_ACCESS", "true"),
        (
            "HEARTH_REGISTRATION__SHARED_SECRET",
            crate::admin_support::SECRET,
        ),
    ]);
    let admin = crate::admin_support::admin(&server, "root");
    let guest = guest(&server);
    let (status, body) = server.get(
        &format!("/_synapse/admin/v2/users/{}", enc(&guest.id)),
        Some(&admin.token),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_guest"], true);
    let listed = |query: &str| -> Vec<String> {
        let (status, body) = server.get(
            &format!("/_synapse/admin/v2/users{query}"),
            Some(&admin.token),
        );
        assert_eq!(status, 200, "{body}");
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(listed("").contains(&guest.id));
    let without = listed("?guests=false");
    assert!(!without.contains(&guest.id), "{without:?}");
    assert!(without.contains(&admin.id), "{without:?}");
}

#[test]
fn a_guest_joins_another_servers_room_only_while_it_admits_guests() {
    let env = [
        ("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "2"),
        ("HEARTH_REGISTRATION__ALLOW_GUEST_ACCESS", "true"),
    ];
    let a = crate::federation_support::federating_server_with_env(&env);
    let b = crate::federation_support::federating_server_with_env(&env);
    let alice = user(&a, "alice");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12"}),
    );
    let guest = guest(&b);
    // Not admitted: the guest is out again, on both servers.
    assert_error(
        crate::federation_rooms::join_via(&b, &guest, &room, &a.server_name()),
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    crate::federation_rooms::eventually(Duration::from_secs(20), "the guest's leave", || {
        (membership_of(&a, &alice, &room, &guest.id).as_deref() == Some("leave")).then_some(())
    });

    set_guest_access(&a, &alice, &room, "can_join");
    let (status, body) = crate::federation_rooms::join_via(&b, &guest, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    crate::federation_rooms::eventually(Duration::from_secs(20), "the guest's join", || {
        (membership_of(&a, &alice, &room, &guest.id).as_deref() == Some("join")).then_some(())
    });
    // Revoked on the other server: the guest's own server makes it leave.
    set_guest_access(&a, &alice, &room, "forbidden");
    crate::federation_rooms::eventually(Duration::from_secs(30), "the guest to leave", || {
        (membership_of(&a, &alice, &room, &guest.id).as_deref() == Some("leave")).then_some(())
    });
}
