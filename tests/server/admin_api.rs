//! The admin API over HTTP: the admin check on every endpoint, and each operation's
//! effect as users see it through the client API.

use serde_json::{Value, json};

use crate::admin_support::{admin, start, wait_for_deletion};
use crate::harness::{PASSWORD, TestServer, assert_error, token};
use crate::room_support::{
    User, create_room, enc, get_event, get_state, invite, join, joined_rooms, send_text, try_send,
    user,
};

fn path_for(template: &str, server: &TestServer) -> String {
    template
        .replace(
            "{user_id}",
            &enc(&format!("@nobody:{}", server.server_name())),
        )
        .replace(
            "{room_id}",
            &enc(&format!("!nowhere:{}", server.server_name())),
        )
        .replace("{report_id}", "1")
        .replace("{delete_id}", "nothing")
        .replace("{token}", "nothing")
        .replace("{server_name}", "example.org")
        .replace("{media_id}", "nothing")
        .replace("{redact_id}", "nothing")
        .replace("{event_id}", "$nothing")
        .replace("{txn_id}", "t1")
        .replace("{destination}", "nothing.example")
}

#[test]
fn every_admin_endpoint_refuses_missing_and_non_admin_tokens() {
    let server = start();
    let root = admin(&server, "root");
    let bob = user(&server, "bob");
    let routes = hearth::api::admin::route_table();
    assert!(routes.len() >= 30, "{} routes", routes.len());
    for (method, template) in routes {
        let path = path_for(template, &server);
        let method = method.as_str();
        assert_error(
            server.send(method, &path, None, &json!({})),
            401,
            "M_MISSING_TOKEN",
        );
        assert_error(
            server.send(method, &path, Some(&bob.token), &json!({})),
            403,
            "M_FORBIDDEN",
        );
        // The admin gets past the check: the route exists and answers something else.
        let (status, body) = server.send(method, &path, Some(&root.token), &json!({}));
        assert!(
            !matches!(
                body["errcode"].as_str(),
                Some("M_FORBIDDEN" | "M_MISSING_TOKEN" | "M_UNRECOGNIZED")
            ),
            "{method} {template}: {status} {body}"
        );
    }
}

#[test]
fn a_deactivated_admin_is_no_admin() {
    let server = start();
    let root = admin(&server, "root");
    let other = admin(&server, "other");
    let path = format!("/_synapse/admin/v1/deactivate/{}", enc(&other.id));
    assert_eq!(server.post(&path, Some(&root.token), &json!({})).0, 200);
    // Its tokens are gone with its devices.
    assert_error(
        server.get("/_synapse/admin/v2/users", Some(&other.token)),
        401,
        "M_UNKNOWN_TOKEN",
    );
}

fn list_users(server: &TestServer, admin: &User, query: &str) -> Value {
    let (status, body) = server.get(
        &format!("/_synapse/admin/v2/users{query}"),
        Some(&admin.token),
    );
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn users_are_listed_searched_paged_created_and_made_admin() {
    let server = start();
    let root = admin(&server, "root");
    for name in ["alice", "bob", "carol"] {
        user(&server, name);
    }
    let all = list_users(&server, &root, "");
    assert_eq!(all["total"], 4);
    let names: Vec<&str> = all["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&format!("@root:{}", server.server_name()).as_str()));
    assert_eq!(all["users"][0]["admin"], false);
    let page = list_users(&server, &root, "?from=1&limit=2");
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_token"], "3");
    let last = list_users(&server, &root, "?from=3&limit=2");
    assert!(last.get("next_token").is_none(), "{last}");
    let search = list_users(&server, &root, "?name=aro");
    assert_eq!(search["total"], 1);
    assert_eq!(search["users"][0]["displayname"], "carol");

    // Create through PUT: 201, then the new user logs in.
    let dave = format!("@dave:{}", server.server_name());
    let path = format!("/_synapse/admin/v2/users/{}", enc(&dave));
    let (status, body) = server.send(
        "PUT",
        &path,
        Some(&root.token),
        &json!({ "password": PASSWORD, "displayname": "Dave D" }),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], dave);
    assert_eq!(body["displayname"], "Dave D");
    assert_eq!(server.login("dave", PASSWORD).0, 200);
    // Modify: 200, and make an admin, who can then use the API.
    let (status, body) = server.send("PUT", &path, Some(&root.token), &json!({ "admin": true }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["admin"], true);
    let dave_token = token(&server.login("dave", PASSWORD).1);
    assert_eq!(
        server.get("/_synapse/admin/v2/users", Some(&dave_token)).0,
        200
    );
    let (_, role) = server.get(
        &format!("/_synapse/admin/v1/users/{}/admin", enc(&dave)),
        Some(&root.token),
    );
    assert_eq!(role["admin"], true);
    // Unknown users are 404; other servers' users 400.
    assert_error(
        server.get(
            "/_synapse/admin/v2/users/%40ghost%3Aelsewhere",
            Some(&root.token),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.get(
            &format!(
                "/_synapse/admin/v2/users/{}",
                enc(&format!("@ghost:{}", server.server_name()))
            ),
            Some(&root.token),
        ),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn deactivation_leaves_every_room_and_ends_logins() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let path = format!("/_synapse/admin/v1/deactivate/{}", enc(&bob.id));
    let (status, body) = server.post(&path, Some(&root.token), &json!({ "erase": true }));
    assert_eq!(status, 200, "{body}");
    assert_error(server.login("bob", PASSWORD), 403, "M_USER_DEACTIVATED");
    let (_, members) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
        Some(&alice.token),
    );
    assert!(members["joined"].get(&bob.id).is_none(), "{members}");
    let (_, shown) = server.get(
        &format!("/_synapse/admin/v2/users/{}", enc(&bob.id)),
        Some(&root.token),
    );
    assert_eq!(shown["deactivated"], true);
    assert_eq!(shown["erased"], true);
    // Deactivated users are listed only when asked for.
    assert_eq!(list_users(&server, &root, "")["total"], 2);
    assert_eq!(list_users(&server, &root, "?deactivated=true")["total"], 3);
}

#[test]
fn password_reset_logs_out_and_the_new_password_works() {
    let server = start();
    let root = admin(&server, "root");
    let bob = user(&server, "bob");
    let path = format!("/_synapse/admin/v1/reset_password/{}", enc(&bob.id));
    let (status, body) = server.post(
        &path,
        Some(&root.token),
        &json!({ "new_password": "a brand new password" }),
    );
    assert_eq!(status, 200, "{body}");
    assert_error(
        server.get("/_matrix/client/v3/account/whoami", Some(&bob.token)),
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(server.login("bob", PASSWORD), 403, "M_FORBIDDEN");
    assert_eq!(server.login("bob", "a brand new password").0, 200);
}

fn lock(server: &TestServer, admin: &User, target: &str, locked: bool) -> (u16, Value) {
    server.send(
        "PUT",
        &format!("/_matrix/client/v1/admin/lock/{}", enc(target)),
        Some(&admin.token),
        &json!({ "locked": locked }),
    )
}

#[test]
fn a_locked_user_gets_user_locked_everywhere_but_logout() {
    let server = start();
    let root = admin(&server, "root");
    let bob = user(&server, "bob");
    let (status, body) = lock(&server, &root, &bob.id, true);
    assert_eq!((status, &body), (200, &json!({ "locked": true })));
    let (_, got) = server.get(
        &format!("/_matrix/client/v1/admin/lock/{}", enc(&bob.id)),
        Some(&root.token),
    );
    assert_eq!(got["locked"], true);
    for path in [
        "/_matrix/client/v3/account/whoami",
        "/_matrix/client/v3/sync",
    ] {
        let body = assert_error(server.get(path, Some(&bob.token)), 401, "M_USER_LOCKED");
        assert_eq!(body["soft_logout"], true, "{body}");
    }
    // No new tokens while locked.
    assert_error(server.login("bob", PASSWORD), 401, "M_USER_LOCKED");
    // Unlocked, the same token works again: it was never revoked.
    assert_eq!(lock(&server, &root, &bob.id, false).0, 200);
    assert_eq!(
        server
            .get("/_matrix/client/v3/account/whoami", Some(&bob.token))
            .0,
        200
    );
    // Logging out works while locked.
    assert_eq!(lock(&server, &root, &bob.id, true).0, 200);
    assert_eq!(
        server
            .post("/_matrix/client/v3/logout", Some(&bob.token), &json!({}))
            .0,
        200
    );
    // The spec's refusals: self, other admins, other servers, unknown users.
    assert_error(lock(&server, &root, &root.id, true), 403, "M_FORBIDDEN");
    let other = admin(&server, "other");
    assert_error(lock(&server, &root, &other.id, true), 403, "M_FORBIDDEN");
    assert_error(
        lock(&server, &root, "@x:elsewhere", true),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        lock(
            &server,
            &root,
            &format!("@ghost:{}", server.server_name()),
            true,
        ),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn a_suspended_user_reads_and_leaves_but_cannot_join_send_or_change_profile() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let other_room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let own = send_text(&server, &bob, &room, "t0", "before");
    let alices = send_text(&server, &alice, &room, "t1", "hello");
    let path = format!("/_matrix/client/v1/admin/suspend/{}", enc(&bob.id));
    let (status, body) = server.send(
        "PUT",
        &path,
        Some(&root.token),
        &json!({ "suspended": true }),
    );
    assert_eq!((status, &body), (200, &json!({ "suspended": true })));
    assert_eq!(server.get(&path, Some(&root.token)).1["suspended"], true);

    let send = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/t2",
        enc(&room)
    );
    assert_error(
        server.send(
            "PUT",
            &send,
            Some(&bob.token),
            &json!({ "msgtype": "m.text", "body": "x" }),
        ),
        403,
        "M_USER_SUSPENDED",
    );
    assert_error(
        server.post(
            &format!("/_matrix/client/v3/join/{}", enc(&other_room)),
            Some(&bob.token),
            &json!({}),
        ),
        403,
        "M_USER_SUSPENDED",
    );
    assert_error(
        server.send(
            "PUT",
            &format!("/_matrix/client/v3/profile/{}/displayname", enc(&bob.id)),
            Some(&bob.token),
            &json!({ "displayname": "B" }),
        ),
        403,
        "M_USER_SUSPENDED",
    );
    assert_error(
        server.send(
            "PUT",
            &format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/r1",
                enc(&room),
                enc(&alices)
            ),
            Some(&bob.token),
            &json!({}),
        ),
        403,
        "M_USER_SUSPENDED",
    );
    // Allowed: reading, redacting their own event, leaving.
    assert_eq!(
        server.get("/_matrix/client/v3/sync", Some(&bob.token)).0,
        200
    );
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/r2",
            enc(&room),
            enc(&own)
        ),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    // Unsuspended, joining works again.
    server.send(
        "PUT",
        &path,
        Some(&root.token),
        &json!({ "suspended": false }),
    );
    join(&server, &bob, &other_room);
}

#[test]
fn a_deleted_room_is_gone_for_its_members_and_its_alias() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let alias = format!("#doomed:{}", server.server_name());
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "doomed", "visibility": "public" }),
    );
    join(&server, &bob, &room);
    let (_, rooms) = server.get("/_synapse/admin/v1/rooms", Some(&root.token));
    assert_eq!(rooms["total_rooms"], 1, "{rooms}");
    assert_eq!(rooms["rooms"][0]["joined_members"], 2);
    assert_eq!(rooms["rooms"][0]["canonical_alias"], alias);
    let (_, details) = server.get(
        &format!("/_synapse/admin/v1/rooms/{}", enc(&room)),
        Some(&root.token),
    );
    assert_eq!(details["public"], true, "{details}");
    assert_eq!(details["creator"], alice.id);
    let (_, members) = server.get(
        &format!("/_synapse/admin/v1/rooms/{}/members", enc(&room)),
        Some(&root.token),
    );
    assert_eq!(members["total"], 2);

    let (status, body) = server.send(
        "DELETE",
        &format!("/_synapse/admin/v2/rooms/{}", enc(&room)),
        Some(&root.token),
        &json!({ "block": true }),
    );
    assert_eq!(status, 200, "{body}");
    let delete_id = body["delete_id"].as_str().unwrap().to_owned();
    let status_body = wait_for_deletion(&server, &root, &delete_id);
    assert_eq!(status_body["status"], "complete", "{status_body}");
    let mut kicked: Vec<&str> = status_body["shutdown_room"]["kicked_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    kicked.sort();
    assert_eq!(kicked, [alice.id.as_str(), bob.id.as_str()]);
    let (_, by_room) = server.get(
        &format!("/_synapse/admin/v2/rooms/{}/delete_status", enc(&room)),
        Some(&root.token),
    );
    assert_eq!(by_room["results"][0]["delete_id"], delete_id.as_str());

    assert!(joined_rooms(&server, &alice).is_empty());
    assert!(joined_rooms(&server, &bob).is_empty());
    assert_error(
        server.get(
            &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
            None,
        ),
        404,
        "M_NOT_FOUND",
    );
    let (_, public) = server.get("/_matrix/client/v3/publicRooms", None);
    assert_eq!(public["chunk"], json!([]), "{public}");
    // Nobody here can come back.
    assert_error(
        server.post(
            &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)),
            Some(&bob.token),
            &json!({}),
        ),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn a_deleted_room_moves_its_members_to_a_new_room_and_purges_its_history() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let alias = format!("#moving:{}", server.server_name());
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "moving", "name": "Old place",
                "topic": "secret plans" }),
    );
    join(&server, &bob, &room);
    let message = send_text(&server, &bob, &room, "t1", "the secret word is marmalade");
    // Carol is invited only: she leaves (declines) and is not moved.
    invite(&server, &alice, &room, &carol);

    let (status, body) = server.send(
        "DELETE",
        &format!("/_synapse/admin/v1/rooms/{}", enc(&room)),
        Some(&root.token),
        &json!({ "new_room_user_id": root.id, "room_name": "Moved", "message": "This room was closed." }),
    );
    assert_eq!(status, 200, "{body}");
    let new_room = body["new_room_id"].as_str().unwrap().to_owned();
    assert_eq!(body["kicked_users"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(body["local_aliases"], json!([alias]));

    // Joined members are in the new room, and only there; the invitee is nowhere.
    assert_eq!(
        joined_rooms(&server, &alice),
        std::slice::from_ref(&new_room)
    );
    assert_eq!(joined_rooms(&server, &bob), std::slice::from_ref(&new_room));
    assert!(joined_rooms(&server, &carol).is_empty());
    // The new room has the name and the notice, and the alias points to it.
    let (status, name) = get_state(&server, &alice, &new_room, "m.room.name", "");
    assert_eq!((status, &name["name"]), (200, &json!("Moved")), "{name}");
    let (status, messages) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=20",
            enc(&new_room)
        ),
        Some(&bob.token),
    );
    assert_eq!(status, 200, "{messages}");
    let notices: Vec<&Value> = messages["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .collect();
    assert_eq!(notices.len(), 1, "{messages}");
    assert_eq!(notices[0]["content"]["body"], "This room was closed.");
    assert_eq!(notices[0]["sender"], root.id);
    let (status, resolved) = server.get(
        &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
        None,
    );
    assert_eq!((status, &resolved["room_id"]), (200, &json!(new_room)));
    // Only the new room's creator may speak there.
    let (status, _) = try_send(
        &server,
        &bob,
        &new_room,
        "t2",
        &json!({ "msgtype": "m.text", "body": "hello?" }),
    );
    assert_eq!(status, 403);

    // Purged (the default): the old room's events keep only what the auth rules need.
    let (_, state) = server.get(
        &format!("/_synapse/admin/v1/rooms/{}/state", enc(&room)),
        Some(&root.token),
    );
    let events = state["state"].as_array().unwrap();
    let of_type = |t: &str| events.iter().find(|e| e["type"] == t).unwrap();
    assert_eq!(of_type("m.room.name")["content"], json!({}), "{state}");
    assert_eq!(of_type("m.room.topic")["content"], json!({}), "{state}");
    assert_eq!(
        of_type("m.room.join_rules")["content"]["join_rule"],
        "public"
    );
    let carol_member = events
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == carol.id.as_str())
        .unwrap();
    assert_eq!(carol_member["content"]["membership"], "leave");
    // The message is gone from search, and its content from the store.
    let (status, found) = server.post(
        "/_matrix/client/v3/search",
        Some(&bob.token),
        &json!({ "search_categories": { "room_events": { "search_term": "marmalade" } } }),
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["search_categories"]["room_events"]["count"], 0,
        "{found}"
    );
    let (status, fetched) = get_event(&server, &alice, &room, &message);
    assert!(
        status == 404 || fetched["content"] == json!({}),
        "{status} {fetched}"
    );

    // Asked again, the finished deletion is answered as it was.
    let (status, again) = server.send(
        "DELETE",
        &format!("/_synapse/admin/v1/rooms/{}", enc(&room)),
        Some(&root.token),
        &json!({ "new_room_user_id": root.id }),
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["new_room_id"], new_room.as_str());
    let (_, log) = server.get(
        "/_hearth/admin/v1/audit?action=room.delete",
        Some(&root.token),
    );
    assert_eq!(log["total"], 1, "{log}");
}

#[test]
fn a_blocked_room_keeps_its_members_but_takes_no_new_ones() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let path = format!("/_synapse/admin/v1/rooms/{}/block", enc(&room));
    assert_eq!(
        server.get(&path, Some(&root.token)).1,
        json!({ "block": false })
    );
    let (status, body) = server.send("PUT", &path, Some(&root.token), &json!({ "block": true }));
    assert_eq!((status, &body), (200, &json!({ "block": true })));
    assert_eq!(
        server.get(&path, Some(&root.token)).1,
        json!({ "block": true, "user_id": root.id })
    );
    let join_path = format!("/_matrix/client/v3/rooms/{}/join", enc(&room));
    assert_error(
        server.post(&join_path, Some(&carol.token), &json!({})),
        403,
        "M_FORBIDDEN",
    );
    // Members stay and talk.
    send_text(&server, &bob, &room, "b1", "still here");
    let (_, details) = server.get(
        &format!("/_synapse/admin/v1/rooms/{}", enc(&room)),
        Some(&root.token),
    );
    assert_eq!(details["blocked"], true);
    server.send("PUT", &path, Some(&root.token), &json!({ "block": false }));
    join(&server, &carol, &room);
    let (_, log) = server.get("/_hearth/admin/v1/audit", Some(&root.token));
    assert_eq!(log["entries"][0]["action"], "room.unblock");
    assert_eq!(log["entries"][1]["action"], "room.block");
}

#[test]
fn reports_are_listed_shown_and_resolved() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let event = send_text(&server, &alice, &room, "t1", "rude");
    let (status, body) = server.post(
        &format!(
            "/_matrix/client/v3/rooms/{}/report/{}",
            enc(&room),
            enc(&event)
        ),
        Some(&bob.token),
        &json!({ "reason": "rude" }),
    );
    assert_eq!(status, 200, "{body}");
    let (_, list) = server.get("/_synapse/admin/v1/event_reports", Some(&root.token));
    assert_eq!(list["total"], 1, "{list}");
    let report = &list["event_reports"][0];
    assert_eq!(report["event_id"], event);
    assert_eq!(report["user_id"], bob.id);
    assert_eq!(report["sender"], alice.id);
    assert_eq!(report["reason"], "rude");
    let id = report["id"].as_u64().unwrap();
    let (_, shown) = server.get(
        &format!("/_synapse/admin/v1/event_reports/{id}"),
        Some(&root.token),
    );
    assert_eq!(shown["event_json"]["content"]["body"], "rude");
    let (status, _) = server.send(
        "DELETE",
        &format!("/_synapse/admin/v1/event_reports/{id}"),
        Some(&root.token),
        &json!({}),
    );
    assert_eq!(status, 200);
    assert_error(
        server.get(
            &format!("/_synapse/admin/v1/event_reports/{id}"),
            Some(&root.token),
        ),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn only_admins_are_offered_account_moderation() {
    let server = start();
    let root = admin(&server, "root");
    let bob = user(&server, "bob");
    let (_, caps) = server.get("/_matrix/client/v3/capabilities", Some(&root.token));
    assert_eq!(
        caps["capabilities"]["m.account_moderation"],
        json!({ "lock": true, "suspend": true })
    );
    let (_, caps) = server.get("/_matrix/client/v3/capabilities", Some(&bob.token));
    assert!(
        caps["capabilities"].get("m.account_moderation").is_none(),
        "{caps}"
    );
}

#[test]
fn whois_shows_each_device_and_the_server_version_is_hearth() {
    let server = start();
    let root = admin(&server, "root");
    let bob = user(&server, "bob");
    // Bob's client names itself: whois shows the user agent of the device's last
    // request with its address and time (as Synapse does, SyTest 48admin).
    let response = server
        .client
        .get(server.url("/_matrix/client/v3/account/whoami"))
        .bearer_auth(&bob.token)
        .header("User-Agent", "BobClient/1.0")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (_, body) = server.get(
        &format!("/_matrix/client/v3/admin/whois/{}", enc(&bob.id)),
        Some(&root.token),
    );
    let connection = &body["devices"][&bob.device]["sessions"][0]["connections"][0];
    assert_eq!(connection["user_agent"], "BobClient/1.0", "{body}");
    assert_eq!(connection["ip"], "127.0.0.1", "{body}");
    assert!(connection["last_seen"].is_u64(), "{body}");
    for prefix in ["/_matrix/client/v3/admin/whois", "/_synapse/admin/v1/whois"] {
        let (status, body) = server.get(&format!("{prefix}/{}", enc(&bob.id)), Some(&root.token));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user_id"], bob.id);
        assert!(body["devices"].get(&bob.device).is_some(), "{body}");
        // A user may look themselves up (as Synapse allows), but nobody else.
        let (status, body) = server.get(&format!("{prefix}/{}", enc(&bob.id)), Some(&bob.token));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user_id"], bob.id);
        let (status, body) = server.get(&format!("{prefix}/{}", enc(&root.id)), Some(&bob.token));
        assert_eq!(
            (status, body["errcode"].as_str()),
            (403, Some("M_FORBIDDEN"))
        );
    }
    let (_, version) = server.get("/_synapse/admin/v1/server_version", Some(&root.token));
    assert!(
        version["server_version"]
            .as_str()
            .unwrap()
            .starts_with("Hearth ")
    );
}

#[test]
fn admin_actions_are_audited_and_the_log_survives_a_restart() {
    let mut server = start();
    let root = admin(&server, "root");
    let bob = user(&server, "bob");
    lock(&server, &root, &bob.id, true);
    lock(&server, &root, &bob.id, false);
    server.restart();
    let root_token = token(&server.login("root", PASSWORD).1);
    let (status, log) = server.get("/_hearth/admin/v1/audit", Some(&root_token));
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["total"], 2, "{log}");
    // Newest first.
    assert_eq!(log["entries"][0]["action"], "user.unlock");
    assert_eq!(log["entries"][1]["action"], "user.lock");
    assert_eq!(log["entries"][1]["admin"], root.id);
    assert_eq!(log["entries"][1]["target"], bob.id);
    assert!(log["entries"][1]["ts"].as_u64().unwrap() > 0);
    let (_, filtered) = server.get(
        "/_hearth/admin/v1/audit?action=user.lock",
        Some(&root_token),
    );
    assert_eq!(filtered["total"], 1);
}

#[test]
fn locking_ends_an_open_sync_socket() {
    use tungstenite::Message;
    let server = start();
    let root = admin(&server, "root");
    let bob = user(&server, "bob");
    let url = format!(
        "ws://127.0.0.1:{}/_matrix/client/unstable/org.hearth.sync/ws?access_token={}",
        server.port, bob.token
    );
    let (mut socket, _) = tungstenite::connect(url).expect("socket opens");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        // Well below the 30 s ping at which the token would be rechecked anyway.
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
    }
    let mut next_frame = || loop {
        match socket.read().expect("a frame arrives") {
            Message::Text(text) => return serde_json::from_str::<Value>(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return json!({ "other": format!("{other:?}") }),
        }
    };
    assert_eq!(next_frame()["type"], "sync");
    assert_eq!(lock(&server, &root, &bob.id, true).0, 200);
    let frame = next_frame();
    assert_eq!(
        (&frame["type"], &frame["errcode"]),
        (&json!("error"), &json!("M_USER_LOCKED")),
        "{frame}"
    );
}
