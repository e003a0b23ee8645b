//! The real `hearthctl` binary against a real server: every command, its effect as
//! users see it through the client API, and each error case.

use std::path::PathBuf;

use serde_json::json;

use crate::admin_support::{Run, admin, hearthctl, run, run_with_stdin, start};
use crate::harness::{ClosedPort, PASSWORD, TestServer, assert_error, token};
use crate::room_support::{
    User, create_room, enc, get_event, get_state, invite, join, joined_rooms, membership,
    membership_of, put_state, read_receipt, send_text, start_typing, user,
};

/// `hearthctl` pointed at a server with a token in a file.
pub(crate) struct Ctl {
    server: String,
    token_file: PathBuf,
    home: tempfile::TempDir,
}

impl Ctl {
    pub(crate) fn new(server: &TestServer, token: &str) -> Self {
        let home = tempfile::tempdir().unwrap();
        let token_file = home.path().join("token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        Self {
            server: server.url(""),
            token_file,
            home,
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = hearthctl(self.home.path());
        command
            .arg("--server")
            .arg(&self.server)
            .arg("--token-file")
            .arg(&self.token_file)
            .args(args);
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        run(self.command(args))
    }

    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.run(&all).ok().json()
    }

    /// The actions in the audit log, newest first.
    pub(crate) fn audit_actions(&self) -> Vec<String> {
        let log = self.json(&["audit", "list"]);
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[test]
fn the_first_admin_is_made_offline_and_refused_while_the_server_runs() {
    let mut server = TestServer::start();
    let home = tempfile::tempdir().unwrap();
    let data = server.data_dir().to_owned();
    let server_name = server.server_name();
    let offline = |name: &str| {
        let mut command = hearthctl(home.path());
        command
            .arg("--data")
            .arg(&data)
            .args(["--server-name", &server_name])
            .args(["user", "create", name, "--admin", "--password-stdin"]);
        run_with_stdin(command, &format!("{PASSWORD}\n"))
    };
    offline("root").fails_with("in use by a running hearth");
    assert!(server.terminate().success());
    let created = offline("root").ok();
    assert!(
        created
            .stdout
            .contains(&format!("@root:{}", server.server_name())),
        "{}",
        created.stdout
    );
    offline("root").fails_with("already exists");
    server.restart();
    let (status, body) = server.login("root", PASSWORD);
    assert_eq!(status, 200, "{body}");
    let ctl = Ctl::new(&server, &token(&body));
    let users = ctl.json(&["user", "list"]);
    assert_eq!(users["users"][0]["admin"], true, "{users}");
    let log = ctl.json(&["audit", "list"]);
    assert_eq!(log["entries"][0]["action"], "user.create");
    assert_eq!(log["entries"][0]["admin"], serde_json::Value::Null);
}

#[test]
fn users_are_managed_with_hearthctl() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let ctl = Ctl::new(&server, &root.token);

    let table = ctl.run(&["user", "list"]).ok().stdout;
    assert!(table.starts_with("USER"), "{table}");
    assert!(table.contains(&bob.id), "{table}");
    let listed = ctl.json(&["user", "list", "--name", "bo"]);
    assert_eq!(listed["total"], 1);
    let shown = ctl.json(&["user", "show", "bob"]);
    assert_eq!(shown["user"]["name"], bob.id);
    assert_eq!(shown["joined_rooms"], json!([room]));
    assert_eq!(shown["devices"][0]["device_id"], bob.device);

    // create, then make admin and revoke it again
    ctl.run(&["user", "create", "carol", "--password", PASSWORD])
        .ok();
    let carol = token(&server.login("carol", PASSWORD).1);
    ctl.run(&["user", "make-admin", "carol"]).ok();
    assert_eq!(server.get("/_synapse/admin/v2/users", Some(&carol)).0, 200);
    ctl.run(&["user", "revoke-admin", "carol"]).ok();
    assert_error(
        server.get("/_synapse/admin/v2/users", Some(&carol)),
        403,
        "M_FORBIDDEN",
    );
    ctl.run(&["user", "create", "carol", "--password", PASSWORD])
        .fails_with("already exists");

    // lock and unlock
    ctl.run(&["user", "lock", "bob"]).ok();
    assert_error(
        server.get("/_matrix/client/v3/account/whoami", Some(&bob.token)),
        401,
        "M_USER_LOCKED",
    );
    ctl.run(&["user", "unlock", "bob"]).ok();
    assert_eq!(
        server
            .get("/_matrix/client/v3/account/whoami", Some(&bob.token))
            .0,
        200
    );

    // suspend and unsuspend
    ctl.run(&["user", "suspend", &bob.id]).ok();
    assert_error(
        server.send(
            "PUT",
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/s1",
                enc(&room)
            ),
            Some(&bob.token),
            &json!({ "msgtype": "m.text", "body": "hi" }),
        ),
        403,
        "M_USER_SUSPENDED",
    );
    ctl.run(&["user", "unsuspend", &bob.id]).ok();
    send_text(&server, &bob, &room, "s2", "hi again");

    // reset password (logs out), log out everywhere
    let mut reset = ctl.command(&["user", "reset-password", "bob", "--password-stdin"]);
    reset.env("UNUSED", "1");
    run_with_stdin(reset, "another password\n").ok();
    assert_error(
        server.get("/_matrix/client/v3/account/whoami", Some(&bob.token)),
        401,
        "M_UNKNOWN_TOKEN",
    );
    let bob_again = token(&server.login("bob", "another password").1);
    let out = ctl.json(&["user", "logout", "bob"]);
    assert_eq!(out["devices_logged_out"], 1);
    assert_error(
        server.get("/_matrix/client/v3/account/whoami", Some(&bob_again)),
        401,
        "M_UNKNOWN_TOKEN",
    );

    // deactivate: cannot log in, left the room
    ctl.run(&["user", "deactivate", "bob", "--erase"]).ok();
    assert_error(
        server.login("bob", "another password"),
        403,
        "M_USER_DEACTIVATED",
    );
    let (_, members) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
        Some(&alice.token),
    );
    assert!(members["joined"].get(&bob.id).is_none(), "{members}");

    // every action is in the audit log
    let log = ctl.json(&["audit", "list", "--target", &bob.id]);
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user.deactivate",
            "user.logout",
            "user.reset_password",
            "user.unsuspend",
            "user.suspend",
            "user.unlock",
            "user.lock",
        ]
    );
    let audit_table = ctl
        .run(&["audit", "list", "--action", "user.make_admin"])
        .ok()
        .stdout;
    assert!(audit_table.contains(&root.id), "{audit_table}");
}

/// The IDs of the last events of a room as a member sees them.
fn seen_event_ids(server: &TestServer, viewer: &User, room: &str) -> Vec<String> {
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            enc(room)
        ),
        Some(&viewer.token),
    );
    assert_eq!(status, 200, "{body}");
    body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_shadow_banned_user_is_answered_but_reaches_nobody() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "name": "Before" }),
    );
    join(&server, &bob, &room);
    let ctl = Ctl::new(&server, &root.token);

    let line = ctl.run(&["user", "shadow-ban", "alice"]).ok().stdout;
    assert!(line.contains("shadow-banned"), "{line}");
    let shown = ctl.json(&["user", "show", "alice"]);
    assert_eq!(shown["user"]["shadow_banned"], true);

    // a message: an event ID, the same one when retried, but nobody sees it
    let hidden = send_text(&server, &alice, &room, "t1", "nobody hears this");
    assert!(hidden.starts_with('$'), "{hidden}");
    assert_eq!(
        send_text(&server, &alice, &room, "t1", "nobody hears this"),
        hidden
    );
    assert!(!seen_event_ids(&server, &bob, &room).contains(&hidden));
    assert!(!seen_event_ids(&server, &alice, &room).contains(&hidden));
    assert_eq!(get_event(&server, &bob, &room, &hidden).0, 404);

    // a state change: answered with an event ID, the state stays
    let (status, body) = put_state(
        &server,
        &alice,
        &room,
        "m.room.name",
        "",
        &json!({ "name": "After" }),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["event_id"].as_str().unwrap().starts_with('$'),
        "{body}"
    );
    assert_eq!(
        get_state(&server, &bob, &room, "m.room.name", "").1["name"],
        "Before"
    );

    // an invite: answered, never sent
    invite(&server, &alice, &room, &carol);
    assert_eq!(membership_of(&server, &bob, &room, &carol.id), None);

    // typing and a public receipt: answered, not shown to others
    let real = send_text(&server, &bob, &room, "b1", "hello");
    start_typing(&server, &alice, &room, 30000);
    read_receipt(&server, &alice, &room, &real);
    let (status, sync) = server.get("/_matrix/client/v3/sync", Some(&bob.token));
    assert_eq!(status, 200, "{sync}");
    let ephemeral = sync["rooms"]["join"][&room]["ephemeral"].to_string();
    assert!(!ephemeral.contains(&alice.id), "{ephemeral}");

    // lifted: alice is heard again
    ctl.run(&["user", "unshadow-ban", "alice"]).ok();
    assert_eq!(
        ctl.json(&["user", "show", "alice"])["user"]["shadow_banned"],
        false
    );
    let heard = send_text(&server, &alice, &room, "t2", "heard now");
    assert!(seen_event_ids(&server, &bob, &room).contains(&heard));
    invite(&server, &alice, &room, &carol);
    assert_eq!(
        membership_of(&server, &bob, &room, &carol.id).as_deref(),
        Some("invite")
    );

    let log = ctl.json(&["audit", "list", "--target", &alice.id]);
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.unshadow_ban", "user.shadow_ban"]);
}

#[test]
fn make_room_admin_gives_a_room_back_an_admin() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let ctl = Ctl::new(&server, &root.token);
    let levels = |room: &str| get_state(&server, &alice, room, "m.room.power_levels", "").1;

    // carol is not in the private room: alice (its creator) invites her and raises her
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "private_chat", "room_version": "11" }),
    );
    let before = levels(&room);
    assert_error(
        put_state(&server, &carol, &room, "m.room.power_levels", "", &before),
        403,
        "M_FORBIDDEN",
    );
    let line = ctl.run(&["room", "make-admin", &room, "carol"]).ok().stdout;
    assert!(line.contains("is now an admin"), "{line}");
    assert_eq!(levels(&room)["users"][&carol.id], 100);
    join(&server, &carol, &room);
    let mut changed = levels(&room);
    changed["users"][&bob.id] = json!(50);
    let (status, body) = put_state(&server, &carol, &room, "m.room.power_levels", "", &changed);
    assert_eq!(status, 200, "{body}");

    // a room whose only local member has no power: nobody here can do it
    let other = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "room_version": "11" }),
    );
    join(&server, &bob, &other);
    let (status, body) = membership(&server, &alice, &other, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    ctl.run(&["room", "make-admin", &other, "carol"])
        .fails_with("can change its power levels");
    assert_error(
        server.post(
            &format!("/_synapse/admin/v1/rooms/{}/make_room_admin", enc(&other)),
            Some(&root.token),
            &json!({ "user_id": carol.id }),
        ),
        400,
        "M_INVALID_PARAM",
    );

    let log = ctl.json(&["audit", "list", "--action", "room.make_room_admin"]);
    assert_eq!(log["entries"][0]["target"], room);
    assert_eq!(log["entries"][0]["detail"], carol.id);
    assert_eq!(log["total"], 1);
}

#[test]
fn rooms_and_reports_are_managed_with_hearthctl() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let alias = format!("#lobby:{}", server.server_name());
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "name": "Lobby", "room_alias_name": "lobby" }),
    );
    join(&server, &bob, &room);
    let event = send_text(&server, &alice, &room, "t1", "spam");
    let (status, _) = server.post(
        &format!(
            "/_matrix/client/v3/rooms/{}/report/{}",
            enc(&room),
            enc(&event)
        ),
        Some(&bob.token),
        &json!({ "reason": "spam" }),
    );
    assert_eq!(status, 200);
    let ctl = Ctl::new(&server, &root.token);

    let table = ctl.run(&["room", "list"]).ok().stdout;
    assert!(table.contains("Lobby") && table.contains(&room), "{table}");
    assert_eq!(
        ctl.json(&["room", "list", "--search", "lob"])["total_rooms"],
        1
    );
    assert_eq!(
        ctl.json(&["room", "list", "--search", "nothing"])["total_rooms"],
        0
    );
    let shown = ctl.json(&["room", "show", &alias]);
    assert_eq!(shown["room_id"], room);
    assert_eq!(shown["joined_members"], 2);
    let members = ctl.json(&["room", "members", &room]);
    assert_eq!(members["total"], 2);
    let state = ctl.run(&["room", "state", &alias]).ok().stdout;
    assert!(
        state.contains("m.room.name") && state.contains("Lobby"),
        "{state}"
    );
    ctl.run(&["room", "block", &room]).ok();
    assert_eq!(ctl.json(&["room", "show", &room])["blocked"], true);
    ctl.run(&["room", "unblock", &room]).ok();
    assert_eq!(ctl.json(&["room", "show", &room])["blocked"], false);

    let reports = ctl.json(&["report", "list"]);
    assert_eq!(reports["total"], 1);
    let id = reports["reports"][0]["id"].as_u64().unwrap().to_string();
    let report = ctl.json(&["report", "show", &id]);
    assert_eq!(report["event_id"], event);
    assert_eq!(report["reporter"], bob.id);
    ctl.run(&["report", "resolve", &id]).ok();
    assert_eq!(ctl.json(&["report", "list"])["total"], 0);
    ctl.run(&["report", "show", &id]).fails_with("not found");

    let deleted = ctl.run(&["room", "delete", &room]).ok().stdout;
    assert!(
        deleted.contains("complete") && deleted.contains("2 members removed"),
        "{deleted}"
    );
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
    let log = ctl.json(&["audit", "list"]);
    assert_eq!(log["entries"][0]["action"], "room.delete");
    assert_eq!(log["entries"][0]["target"], room);
    assert_eq!(log["entries"][1]["action"], "report.resolve");
    assert!(
        ctl.run(&["server", "version"])
            .ok()
            .stdout
            .starts_with("Hearth ")
    );
}

#[test]
fn a_room_is_deleted_with_its_members_moved_and_its_history_purged() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "hall", "name": "Hall" }),
    );
    join(&server, &bob, &room);
    let ctl = Ctl::new(&server, &root.token);
    let alias = format!("#hall:{}", server.server_name());
    // A usage error, from clap: not one line, but it names what is missing.
    let usage = ctl.run(&["room", "delete", &alias, "--message", "x"]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    assert!(usage.stderr.contains("--new-room-user"), "{}", usage.stderr);
    let out = ctl
        .run(&[
            "room",
            "delete",
            &alias,
            "--purge",
            "--new-room-user",
            "root",
            "--room-name",
            "Elsewhere",
            "--message",
            "Hall is closed",
        ])
        .ok()
        .stdout;
    assert!(
        out.contains("complete") && out.contains("2 members removed"),
        "{out}"
    );
    let new_room = out
        .lines()
        .find_map(|l| l.strip_prefix("members moved to "))
        .unwrap()
        .to_owned();
    assert_eq!(
        joined_rooms(&server, &alice),
        std::slice::from_ref(&new_room)
    );
    assert_eq!(joined_rooms(&server, &bob), std::slice::from_ref(&new_room));
    let (status, resolved) = server.get(
        &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
        None,
    );
    assert_eq!((status, &resolved["room_id"]), (200, &json!(new_room)));
    let shown = ctl.json(&["room", "show", &new_room]);
    assert_eq!(shown["name"], "Elsewhere");
    let state = ctl.json(&["room", "state", &room]);
    let name = state["state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.name")
        .unwrap();
    assert_eq!(name["content"], json!({}), "purged: {name}");
    let log = ctl.json(&["audit", "list", "--action", "room.delete"]);
    assert_eq!(log["entries"][0]["target"], room);
    assert!(
        log["entries"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("purged=true"),
        "{log}"
    );
}

/// Registers `name` through the client API with a registration token.
fn register_with_token(server: &TestServer, name: &str, token: &str) -> (u16, serde_json::Value) {
    let path = "/_matrix/client/v3/register";
    let (status, challenge) = server.post(path, None, &json!({ "username": name }));
    assert_eq!(status, 401, "{challenge}");
    assert_eq!(
        challenge["flows"],
        json!([{ "stages": ["m.login.registration_token"] }])
    );
    server.post(
        path,
        None,
        &json!({ "username": name, "password": PASSWORD,
                 "auth": { "type": "m.login.registration_token", "token": token,
                           "session": challenge["session"] } }),
    )
}

fn token_valid(server: &TestServer, token: &str) -> bool {
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v1/register/m.login.registration_token/validity?token={}",
            enc(token)
        ),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["valid"].as_bool().unwrap()
}

#[test]
fn registration_tokens_are_made_limited_and_revoked_with_hearthctl() {
    let server = TestServer::start_with_env(&[
        (
            "HEARTH_REGISTRATION__SHARED_SECRET",
            crate::admin_support::SECRET,
        ),
        ("HEARTH_REGISTRATION__REQUIRE_TOKEN", "true"),
    ]);
    let root = admin(&server, "root");
    let ctl = Ctl::new(&server, &root.token);
    // Required, and none made yet.
    assert!(!token_valid(&server, "welcome"));
    assert_error(
        register_with_token(&server, "early", "welcome"),
        401,
        "M_FORBIDDEN",
    );

    let made = ctl.json(&["token", "create", "--token", "welcome", "--uses", "1"]);
    assert_eq!(made["token"], "welcome");
    assert_eq!(made["uses_allowed"], 1);
    assert!(token_valid(&server, "welcome"));
    let (status, body) = register_with_token(&server, "newbie", "welcome");
    assert_eq!(status, 200, "{body}");
    // Used up: no second account.
    assert!(!token_valid(&server, "welcome"));
    assert_error(
        register_with_token(&server, "second", "welcome"),
        401,
        "M_FORBIDDEN",
    );
    let shown = ctl.json(&["token", "show", "welcome"]);
    assert_eq!(
        (shown["completed"].as_u64(), shown["uses_allowed"].as_u64()),
        (Some(1), Some(1))
    );
    ctl.run(&["token", "create", "--token", "welcome"])
        .fails_with("Token already in use");

    // One more use.
    ctl.run(&["token", "update", "welcome", "--uses", "2"]).ok();
    let (status, body) = register_with_token(&server, "second", "welcome");
    assert_eq!(status, 200, "{body}");
    assert!(!token_valid(&server, "welcome"));
    ctl.run(&["token", "update", "welcome", "--unlimited-uses"])
        .ok();
    assert!(token_valid(&server, "welcome"));

    // An expiry.
    ctl.run(&["token", "create", "--token", "brief", "--expires-in", "1s"])
        .ok();
    assert!(token_valid(&server, "brief"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!token_valid(&server, "brief"));
    assert_error(
        register_with_token(&server, "late", "brief"),
        401,
        "M_FORBIDDEN",
    );

    // A random one, listed, then revoked.
    let random = ctl.json(&["token", "create", "--length", "20"]);
    let random = random["token"].as_str().unwrap().to_owned();
    assert_eq!(random.len(), 20);
    let valid = ctl.json(&["token", "list", "--valid"]);
    let names: Vec<&str> = valid["registration_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&random.as_str()) && names.contains(&"welcome"),
        "{valid}"
    );
    assert!(!names.contains(&"brief"), "{valid}");
    let table = ctl.run(&["token", "list", "--invalid"]).ok().stdout;
    assert!(
        table.contains("brief") && !table.contains("welcome"),
        "{table}"
    );
    ctl.run(&["token", "revoke", &random]).ok();
    assert!(!token_valid(&server, &random));
    ctl.run(&["token", "show", &random]).fails_with("not found");
    ctl.run(&["token", "revoke", &random])
        .fails_with("not found");

    let log = ctl.json(&["audit", "list", "--action", "registration_token.create"]);
    assert_eq!(log["total"], 3, "{log}");
    let log = ctl.json(&["audit", "list", "--action", "registration_token.update"]);
    assert_eq!(log["total"], 2, "{log}");
    let log = ctl.json(&["audit", "list", "--action", "registration_token.delete"]);
    assert_eq!(log["entries"][0]["target"], random.as_str());
}

pub(crate) fn upload_text(server: &TestServer, who: &User, text: &str) -> String {
    let response = server
        .client
        .post(server.url("/_matrix/media/v3/upload"))
        .bearer_auth(&who.token)
        .header("Content-Type", "text/plain")
        .body(text.to_owned())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().unwrap();
    body["content_uri"].as_str().unwrap().to_owned()
}

/// The status of an authenticated download of the media.
pub(crate) fn download_status(server: &TestServer, who: &User, mxc: &str) -> u16 {
    let path = mxc.strip_prefix("mxc://").unwrap();
    let (origin, id) = path.split_once('/').unwrap();
    server
        .client
        .get(server.url(&format!(
            "/_matrix/client/v1/media/download/{}/{}",
            enc(origin),
            enc(id)
        )))
        .bearer_auth(&who.token)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn media_is_quarantined_by_id_user_and_room_with_hearthctl() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let ctl = Ctl::new(&server, &root.token);
    let single = upload_text(&server, &alice, "one");
    let alices: Vec<String> = (0..2)
        .map(|i| upload_text(&server, &alice, &format!("alice {i}")))
        .collect();
    let in_room = upload_text(&server, &bob, "posted");
    let elsewhere = upload_text(&server, &bob, "kept");
    for mxc in [&single, &in_room, &elsewhere] {
        assert_eq!(download_status(&server, &bob, mxc), 200);
    }

    // By ID, and back.
    ctl.run(&["media", "quarantine", &single]).ok();
    assert_eq!(download_status(&server, &bob, &single), 404);
    ctl.run(&["media", "unquarantine", &single]).ok();
    assert_eq!(download_status(&server, &bob, &single), 200);

    // A room's media: what its events point at, and nothing else of the sender's.
    let room = create_room(&server, &bob, json!({ "preset": "public_chat" }));
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/img",
            enc(&room)
        ),
        Some(&bob.token),
        &json!({ "msgtype": "m.file", "body": "posted.txt", "url": in_room }),
    );
    assert_eq!(status, 200, "{body}");
    let out = ctl
        .run(&["media", "quarantine", "--room", &room])
        .ok()
        .stdout;
    assert!(out.contains("1 media quarantined"), "{out}");
    assert_eq!(download_status(&server, &bob, &in_room), 404);
    assert_eq!(download_status(&server, &bob, &elsewhere), 200);

    // A user's uploads, all of them (the one quarantined before as well).
    let answer = ctl.json(&["media", "quarantine", "--user", "alice"]);
    assert_eq!(answer["num_quarantined"], 3, "{answer}");
    for mxc in alices.iter().chain([&single]) {
        assert_eq!(download_status(&server, &bob, mxc), 404, "{mxc}");
    }
    assert_eq!(download_status(&server, &bob, &elsewhere), 200);

    ctl.run(&["media", "quarantine", "not-an-mxc"])
        .fails_with("not an mxc://");
    ctl.run(&["media", "quarantine", "--room", "!nowhere:example.org"])
        .fails_with("not found");
    let actions = ctl.audit_actions();
    assert_eq!(
        &actions[..4],
        [
            "media.quarantine_user",
            "media.quarantine_room",
            "media.unquarantine",
            "media.quarantine"
        ]
    );
}

#[test]
fn failures_are_one_line_and_a_non_zero_exit() {
    let server = start();
    let root = admin(&server, "root");
    let bob: User = user(&server, "bob");
    let ctl = Ctl::new(&server, &root.token);
    let ghost = format!("@ghost:{}", server.server_name());
    ctl.run(&["user", "show", &ghost])
        .fails_with("not found (M_NOT_FOUND)");
    ctl.run(&["user", "lock", &ghost]).fails_with("M_NOT_FOUND");
    ctl.run(&[
        "room",
        "show",
        &format!("!nowhere:{}", server.server_name()),
    ])
    .fails_with("Room not found");
    ctl.run(&[
        "room",
        "show",
        &format!("#nowhere:{}", server.server_name()),
    ])
    .fails_with("M_NOT_FOUND");
    ctl.run(&["report", "show", "99"])
        .fails_with("Report not found");

    let non_admin = Ctl::new(&server, &bob.token);
    non_admin
        .run(&["user", "list"])
        .fails_with("refused (M_FORBIDDEN): You are not a server admin");
    let wrong = Ctl::new(&server, "not-a-token");
    wrong
        .run(&["user", "list"])
        .fails_with("did not accept the access token");
    let home = tempfile::tempdir().unwrap();
    let mut no_token = hearthctl(home.path());
    no_token.args(["--server", &server.url(""), "user", "list"]);
    run(no_token).fails_with("no access token");
    let closed = ClosedPort::new();
    let mut nobody_there = hearthctl(home.path());
    nobody_there
        .args(["--server", &format!("http://127.0.0.1:{}", closed.port)])
        .env("HEARTHCTL_TOKEN", &root.token)
        .args(["user", "list"]);
    run(nobody_there).fails_with("cannot reach the server");
    let mut only_offline = hearthctl(home.path());
    only_offline.args(["--data", "/nonexistent", "user", "list"]);
    let usage = run(only_offline).fails_with("--data works only with `user create`");
    assert_eq!(usage.code, 2);
}

#[test]
fn login_keeps_an_admin_token_for_later_commands() {
    let server = start();
    admin(&server, "root");
    user(&server, "bob");
    let home = tempfile::tempdir().unwrap();
    let ctl = |args: &[&str]| {
        let mut command = hearthctl(home.path());
        command.args(args);
        command
    };
    let login = |name: &str| {
        run_with_stdin(
            ctl(&[
                "--server",
                &server.url(""),
                "login",
                "--user",
                name,
                "--password-stdin",
            ]),
            &format!("{PASSWORD}\n"),
        )
    };
    login("bob").fails_with("is not a server admin");
    let logged_in = login("root").ok();
    assert!(
        logged_in.stdout.contains("Logged in"),
        "{}",
        logged_in.stdout
    );
    let session = home.path().join("hearthctl/session.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&session).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    // No --server and no token given: both come from the session.
    let users = run(ctl(&["--json", "user", "list"])).ok().json();
    assert_eq!(users["total"], 2);
    // HEARTHCTL_TOKEN wins over the session.
    let mut env_token = ctl(&["user", "list"]);
    env_token.env("HEARTHCTL_TOKEN", "not-a-token");
    run(env_token).fails_with("did not accept the access token");
    run(ctl(&["logout"])).ok();
    assert!(!session.exists());
    run(ctl(&["user", "list"])).fails_with("no access token");
}

#[test]
fn completions_are_printed_for_shells() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let mut command = hearthctl(home.path());
        command.args(["completions", shell]);
        let out = run(command).ok();
        assert!(
            out.stdout.contains("reset-password"),
            "{shell}: {}",
            out.stdout
        );
    }
}

#[test]
fn a_users_own_rate_is_set_shown_and_removed_with_hearthctl() {
    let server = start();
    let root = admin(&server, "root");
    let bot = user(&server, "bot");
    let ctl = Ctl::new(&server, &root.token);

    let line = ctl.run(&["user", "ratelimit", "bot"]).ok().stdout;
    assert!(line.contains("the server's limits"), "{line}");
    let line = ctl
        .run(&[
            "user",
            "ratelimit",
            "bot",
            "--per-second",
            "5",
            "--burst",
            "20",
        ])
        .ok()
        .stdout;
    assert!(line.contains("5 requests a second, burst 20"), "{line}");
    let shown = ctl.json(&["user", "ratelimit", &bot.id]);
    assert_eq!(shown["messages_per_second"], 5, "{shown}");
    assert_eq!(shown["burst_count"], 20, "{shown}");
    let line = ctl
        .run(&["user", "ratelimit", "bot", "--unlimited"])
        .ok()
        .stdout;
    assert!(line.contains("not rate-limited"), "{line}");
    let refused = ctl.run(&["user", "ratelimit", "bot", "--per-second", "5"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(refused.stderr.contains("--burst"), "{}", refused.stderr);
    let line = ctl
        .run(&["user", "ratelimit", "bot", "--remove"])
        .ok()
        .stdout;
    assert!(line.contains("the server's limits"), "{line}");
    let (status, body) = server.get(
        &format!(
            "/_synapse/admin/v1/users/{}/override_ratelimit",
            crate::room_support::enc(&bot.id)
        ),
        Some(&root.token),
    );
    assert_eq!((status, body), (200, json!({})));
    let actions = ctl.audit_actions();
    assert_eq!(
        &actions[..3],
        [
            "user.ratelimit_override_removed",
            "user.ratelimit_override",
            "user.ratelimit_override"
        ]
    );
}
