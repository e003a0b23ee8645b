//! The rest of the admin operations with the real `hearthctl`: redaction (one event, a
//! user's events in bulk, surviving a restart), server notices, statistics, federation
//! destinations and purging cached remote media; each checked as users see it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::admin_cli::{Ctl, download_status};
use crate::admin_support::{SECRET, admin, start};
use crate::federation_rooms::{bodies, eventually, shared_room};
use crate::federation_support::{federating_server_with_env, test_ca};
use crate::harness::TestServer;
use crate::media::{files_under, upload};
use crate::room_support::{
    User, create_room, enc, get_event, get_state, join, room_history, send_text, set_power, user,
};

const WAIT: Duration = Duration::from_secs(30);

/// Who redacted the event, as `viewer` sees it; `None` while it is not redacted.
fn redacted_by(server: &TestServer, viewer: &User, room: &str, event_id: &str) -> Option<String> {
    let (status, event) = get_event(server, viewer, room, event_id);
    assert_eq!(status, 200, "{event}");
    let because = &event["unsigned"]["redacted_because"];
    if because.is_null() {
        assert!(event["content"]["body"].is_string(), "{event}");
        return None;
    }
    assert_eq!(event["content"], json!({}), "{event}");
    Some(because["sender"].as_str().unwrap().to_owned())
}

fn origin_ts(server: &TestServer, viewer: &User, room: &str, event_id: &str) -> u64 {
    let (status, event) = get_event(server, viewer, room, event_id);
    assert_eq!(status, 200, "{event}");
    event["origin_server_ts"].as_u64().unwrap()
}

/// Polls a bulk redaction until it is no longer active; answers its status.
fn wait_for_redaction(server: &TestServer, admin: &User, redact_id: &str) -> Value {
    eventually(WAIT, "the redaction to complete", || {
        let (status, body) = server.get(
            &format!("/_synapse/admin/v1/user/redact_status/{redact_id}"),
            Some(&admin.token),
        );
        assert_eq!(status, 200, "{body}");
        (body["status"] != "active").then_some(body)
    })
}

#[test]
fn events_are_redacted_one_by_one_and_in_bulk_with_hearthctl() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let ctl = Ctl::new(&server, &root.token);
    let lobby = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let other = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &lobby);
    join(&server, &bob, &other);
    let first = send_text(&server, &bob, &lobby, "l1", "spam 1");
    let second = send_text(&server, &bob, &lobby, "l2", "spam 2");
    let elsewhere = send_text(&server, &bob, &other, "o1", "spam elsewhere");
    let alices = send_text(&server, &alice, &lobby, "a1", "alice speaks");

    // One event: the admin is in neither room, so the room's creator redacts it.
    let out = ctl
        .run(&["redact", "event", &first, "--reason", "spam"])
        .ok()
        .stdout;
    assert!(out.contains("redacted by $"), "{out}");
    assert_eq!(
        redacted_by(&server, &bob, &lobby, &first),
        Some(alice.id.clone())
    );
    assert_eq!(redacted_by(&server, &bob, &lobby, &second), None);

    // Bob's events in the lobby only: the other room and Alice's message stay.
    let out = ctl
        .run(&[
            "redact", "user", "bob", "--room", &lobby, "--reason", "spam",
        ])
        .ok()
        .stdout;
    assert!(
        out.contains("completed — 2 events redacted, 0 failed"),
        "{out}"
    );
    assert_eq!(
        redacted_by(&server, &alice, &lobby, &second),
        Some(alice.id.clone())
    );
    assert_eq!(redacted_by(&server, &alice, &other, &elsewhere), None);
    assert_eq!(redacted_by(&server, &alice, &lobby, &alices), None);
    // Bob's join was redacted too (his membership stays), but only once.
    let history = room_history(&server, &alice, &lobby, |_| false);
    let redactions: Vec<&Value> = history
        .iter()
        .filter(|e| e["type"] == "m.room.redaction")
        .collect();
    assert_eq!(redactions.len(), 3, "{redactions:?}");

    // Everywhere, since a time: the older message elsewhere stays. The admin, now in
    // the room with power, sends these redactions.
    join(&server, &root, &other);
    set_power(&server, &alice, &other, &root.id, 100);
    std::thread::sleep(Duration::from_millis(5));
    let recent = send_text(&server, &bob, &other, "o2", "recent spam");
    let since = origin_ts(&server, &alice, &other, &recent);
    assert!(origin_ts(&server, &alice, &other, &elsewhere) < since);
    let status = ctl.json(&["redact", "user", "bob", "--since-ts", &since.to_string()]);
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["redacted"], 1, "{status}");
    assert_eq!(
        redacted_by(&server, &alice, &other, &recent),
        Some(root.id.clone())
    );
    assert_eq!(redacted_by(&server, &alice, &other, &elsewhere), None);

    // --limit: only the latest of the user's events per room.
    let older = send_text(&server, &bob, &other, "o3", "older");
    let newest = send_text(&server, &bob, &other, "o4", "newest");
    let status = ctl.json(&["redact", "user", "bob", "--room", &other, "--limit", "1"]);
    assert_eq!(status["redacted"], 1, "{status}");
    assert_eq!(
        redacted_by(&server, &alice, &other, &newest),
        Some(root.id.clone())
    );
    assert_eq!(redacted_by(&server, &alice, &other, &older), None);

    // Refusals: unknown events, rooms and redactions, a limit of 0.
    ctl.run(&["redact", "event", "$nosuchevent"])
        .fails_with("Unknown event");
    ctl.run(&["redact", "user", "bob", "--room", "!nosuchroom:example.org"])
        .fails_with("Unknown room");
    let (status, body) = server.get(
        "/_synapse/admin/v1/user/redact_status/nosuchid",
        Some(&root.token),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (404, Some("M_NOT_FOUND"))
    );
    let (status, body) = server.post(
        &format!("/_synapse/admin/v1/user/{}/redact", enc(&bob.id)),
        Some(&root.token),
        &json!({ "limit": 0 }),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_INVALID_PARAM"))
    );

    let actions = ctl.audit_actions();
    for action in ["event.redact", "user.redact"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not in {actions:?}"
        );
    }
}

#[test]
fn a_bulk_redaction_killed_part_way_finishes_after_a_restart_exactly_once() {
    let mut server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let sent: Vec<String> = (0..40)
        .map(|i| send_text(&server, &bob, &room, &format!("t{i}"), &format!("spam {i}")))
        .collect();
    let (status, body) = server.post(
        &format!("/_synapse/admin/v1/user/{}/redact", enc(&bob.id)),
        Some(&root.token),
        &json!({ "rooms": [room], "reason": "spam" }),
    );
    // Answered once the request and its intent are written: it must survive the kill.
    assert_eq!(status, 200, "{body}");
    let redact_id = body["redact_id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(u64::from(rand_below(150))));
    server.kill_9();
    server.restart();
    let done = wait_for_redaction(&server, &root, &redact_id);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["failed_redactions"], json!({}), "{done}");
    for event_id in &sent {
        assert_eq!(
            redacted_by(&server, &alice, &room, event_id),
            Some(alice.id.clone())
        );
    }
    // One redaction per message and one for Bob's join, none twice.
    let history = room_history(&server, &alice, &room, |_| false);
    let mut targets: Vec<String> = history
        .iter()
        .filter(|e| e["type"] == "m.room.redaction")
        .map(|e| {
            e["redacts"]
                .as_str()
                .or(e["content"]["redacts"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    let all = targets.len();
    targets.sort();
    targets.dedup();
    assert_eq!((all, targets.len()), (41, 41));
}

fn rand_below(n: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos % n
}

/// The rooms the user is invited to, from an initial sync.
fn invited_rooms(server: &TestServer, who: &User) -> Vec<String> {
    let (status, body) = server.get("/_matrix/client/v3/sync", Some(&who.token));
    assert_eq!(status, 200, "{body}");
    body["rooms"]["invite"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn server_notices_reach_users_in_a_room_they_cannot_write_in() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_REGISTRATION__SHARED_SECRET", SECRET),
        ("HEARTH_SERVER_NOTICES__SYSTEM_MXID_LOCALPART", "notices"),
        ("HEARTH_SERVER_NOTICES__ROOM_NAME", "From the admins"),
    ]);
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let ctl = Ctl::new(&server, &root.token);
    let system = format!("@notices:{}", server.server_name());

    let out = ctl
        .run(&["server", "notice", "alice", "Maintenance at noon"])
        .ok()
        .stdout;
    assert!(out.contains(": sent $"), "{out}");
    let invited = invited_rooms(&server, &alice);
    assert_eq!(invited.len(), 1, "{invited:?}");
    let room = invited[0].clone();
    join(&server, &alice, &room);
    let (status, tags) = server.get(
        &format!(
            "/_matrix/client/v3/user/{}/rooms/{}/tags",
            enc(&alice.id),
            enc(&room)
        ),
        Some(&alice.token),
    );
    assert_eq!(status, 200, "{tags}");
    assert!(tags["tags"].get("m.server_notice").is_some(), "{tags}");
    let (status, name) = get_state(&server, &alice, &room, "m.room.name", "");
    assert_eq!((status, &name["name"]), (200, &json!("From the admins")));
    // Alice reads but cannot write.
    assert_eq!(bodies(&server, &alice, &room), vec!["Maintenance at noon"]);
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/x1",
            enc(&room)
        ),
        Some(&alice.token),
        &json!({ "msgtype": "m.text", "body": "can I?" }),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (403, Some("M_FORBIDDEN"))
    );
    let history = room_history(&server, &alice, &room, |_| false);
    let sender = history
        .iter()
        .find(|e| e["type"] == "m.room.message")
        .map(|e| e["sender"].clone());
    assert_eq!(sender, Some(json!(system)));

    // The next notice goes to the same room; the PUT form is sent once per txn ID.
    let path = "/_synapse/admin/v1/send_server_notice/txn-1";
    let notice = json!({ "user_id": alice.id, "content": { "msgtype": "m.text", "body": "Done" } });
    let (status, first) = server.send("PUT", path, Some(&root.token), &notice);
    assert_eq!(status, 200, "{first}");
    let (status, again) = server.send("PUT", path, Some(&root.token), &notice);
    assert_eq!((status, &again["event_id"]), (200, &first["event_id"]));
    assert_eq!(
        bodies(&server, &alice, &room),
        vec!["Maintenance at noon", "Done"]
    );

    // --all: everyone but the notices account; Bob gets a room of his own.
    let answer = ctl.json(&["server", "notice", "--all", "Welcome"]);
    let reached: Vec<&str> = answer["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user_id"].as_str().unwrap())
        .collect();
    for who in [&root.id, &alice.id, &bob.id] {
        assert!(reached.contains(&who.as_str()), "{who} not in {answer}");
    }
    assert!(!reached.contains(&system.as_str()), "{answer}");
    assert_eq!(bodies(&server, &alice, &room).last().unwrap(), "Welcome");
    let bobs = invited_rooms(&server, &bob);
    assert_eq!(bobs.len(), 1, "{bobs:?}");
    assert_ne!(bobs[0], room);

    // Nobody logs in as the notices account; unknown users get nothing.
    let (status, _) = server.login("notices", "");
    assert_ne!(status, 200);
    ctl.run(&["server", "notice", "nosuchuser", "hi"])
        .fails_with("not found");
    assert!(ctl.audit_actions().iter().any(|a| a == "server.notice"));
}

#[test]
fn server_notices_are_refused_while_not_configured() {
    let server = start();
    let root = admin(&server, "root");
    user(&server, "alice");
    Ctl::new(&server, &root.token)
        .run(&["server", "notice", "alice", "hello"])
        .fails_with("Server notices are not enabled");
}

#[test]
fn statistics_count_users_rooms_events_media_and_syncs() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let ctl = Ctl::new(&server, &root.token);
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    upload(&server, &alice, "application/octet-stream", &[1u8; 1000]);
    let (status, body) = server.post(
        &format!("/_synapse/admin/v1/deactivate/{}", enc(&bob.id)),
        Some(&root.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");

    let stats = ctl.json(&["server", "stats"]);
    assert_eq!(stats["users"], 2, "{stats}");
    assert_eq!(stats["deactivated_users"], 1, "{stats}");
    // Root and Alice have used their devices just now; Bob's are gone.
    assert_eq!(stats["daily_active_users"], 2, "{stats}");
    assert_eq!(stats["monthly_active_users"], 2, "{stats}");
    assert_eq!(stats["rooms"], 1, "{stats}");
    assert!(stats["events"].as_u64().unwrap() >= 6, "{stats}");
    assert_eq!(stats["local_media_bytes"], 1000, "{stats}");
    assert_eq!(stats["remote_media_bytes"], 0, "{stats}");
    assert_eq!(stats["sync_connections"], 0, "{stats}");

    // A long poll waiting for news is an open sync connection. Alice long-polls until
    // she sees the message that wakes her.
    let (status, first) = server.get("/_matrix/client/v3/sync", Some(&alice.token));
    assert_eq!(status, 200);
    let mut since = first["next_batch"].as_str().unwrap().to_owned();
    let base = server.url("/_matrix/client/v3/sync?timeout=60000&since=");
    let token = alice.token.clone();
    let watched = room.clone();
    let waiting = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        loop {
            let body: Value = client
                .get(format!("{base}{}", enc(&since)))
                .bearer_auth(&token)
                .timeout(Duration::from_secs(90))
                .send()
                .unwrap()
                .json()
                .unwrap();
            let timeline = &body["rooms"]["join"][&watched]["timeline"]["events"];
            let woken = timeline
                .as_array()
                .is_some_and(|events| events.iter().any(|e| e["content"]["body"] == "wake up"));
            if woken {
                return;
            }
            since = body["next_batch"].as_str().unwrap().to_owned();
        }
    });
    eventually(WAIT, "the long poll to be counted", || {
        (ctl.json(&["server", "stats"])["sync_connections"] == 1).then_some(())
    });
    send_text(&server, &alice, &room, "wake", "wake up");
    waiting.join().unwrap();
    let out = ctl.run(&["server", "stats"]).ok().stdout;
    assert!(out.contains("active today:"), "{out}");
}

/// `hearthctl` against a TLS server, trusting the test CA.
fn tls_ctl(server: &TestServer, admin: &User) -> (Ctl, tempfile::NamedTempFile) {
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &test_ca().cert_pem).unwrap();
    (Ctl::new(server, &admin.token), ca)
}

fn tls_audit_actions(ctl: &Ctl, ca: &str) -> Vec<String> {
    let log = ctl.json(&["--ca-file", ca, "audit", "list"]);
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn federation_destinations_show_their_retry_state_and_are_reset_with_hearthctl() {
    let env = [
        ("HEARTH_REGISTRATION__SHARED_SECRET", SECRET),
        ("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "3600"),
    ];
    let a = federating_server_with_env(&env);
    let mut b = federating_server_with_env(&env);
    let root = admin(&a, "root");
    let (ctl, ca) = tls_ctl(&a, &root);
    let ca = ca.path().to_str().unwrap().to_owned();
    let (alice, bob, room) = shared_room(&a, &b);
    send_text(&a, &alice, &room, "m1", "hello B");
    eventually(WAIT, "the message on B", || {
        bodies(&b, &bob, &room)
            .contains(&"hello B".to_owned())
            .then_some(())
    });
    let dest = b.server_name();
    let show = |ctl: &Ctl| -> Value {
        let all = ctl.json(&["--ca-file", &ca, "server", "destinations"]);
        all["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["destination"] == dest.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{dest} not in {all}"))
    };
    let healthy = show(&ctl);
    assert_eq!(healthy["failure_ts"], Value::Null, "{healthy}");
    assert_eq!(healthy["retry_interval"], 0, "{healthy}");
    assert!(
        healthy["last_successful_stream_ordering"].is_u64(),
        "{healthy}"
    );

    // B goes down: A's attempts fail and it backs off.
    assert!(b.terminate().success());
    send_text(&a, &alice, &room, "m2", "while B is down");
    let failing = eventually(WAIT, "A to back off from B", || {
        let d = show(&ctl);
        (d["retry_interval"].as_u64().unwrap() >= 2000).then_some(d)
    });
    assert!(failing["failure_ts"].is_u64(), "{failing}");
    assert!(failing["retry_last_ts"].as_u64().unwrap() >= failing["failure_ts"].as_u64().unwrap());
    let (status, one) = a.get(
        &format!("/_synapse/admin/v1/federation/destinations/{}", enc(&dest)),
        Some(&root.token),
    );
    assert_eq!((status, &one["destination"]), (200, &json!(dest)));
    let table = ctl
        .run(&["--ca-file", &ca, "server", "destinations"])
        .ok()
        .stdout;
    assert!(table.contains("failing"), "{table}");

    // B is back; a reset forgets the failures and A sends what B missed.
    b.restart();
    ctl.run(&["--ca-file", &ca, "server", "destinations", "--reset", &dest])
        .ok();
    eventually(WAIT, "the missed message on B", || {
        bodies(&b, &bob, &room)
            .contains(&"while B is down".to_owned())
            .then_some(())
    });
    let recovered = eventually(WAIT, "A to record the delivery", || {
        let d = show(&ctl);
        d["failure_ts"].is_null().then_some(d)
    });
    assert!(
        recovered["last_successful_stream_ordering"].as_u64()
            > healthy["last_successful_stream_ordering"].as_u64(),
        "{recovered}"
    );

    ctl.run(&[
        "--ca-file",
        &ca,
        "server",
        "destinations",
        "--reset",
        "nosuch.example",
    ])
    .fails_with("Unknown destination");
    assert!(tls_audit_actions(&ctl, &ca).contains(&"federation.reset_connection".to_owned()));
}

#[test]
fn cached_remote_media_is_purged_with_hearthctl_and_fetched_again() {
    let env = [("HEARTH_REGISTRATION__SHARED_SECRET", SECRET)];
    let a = federating_server_with_env(&env);
    let b = federating_server_with_env(&env);
    let root = admin(&a, "root");
    let (ctl, ca) = tls_ctl(&a, &root);
    let ca = ca.path().to_str().unwrap().to_owned();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let own = upload(&a, &alice, "text/plain", b"alice's own file");
    let remote = upload(&b, &bob, "application/octet-stream", &[9u8; 2048]);
    assert_eq!(download_status(&a, &alice, &remote), 200);
    let content = a.data_dir().join("media").join("content");
    assert_eq!(files_under(&content).len(), 2);
    let stats = ctl.json(&["--ca-file", &ca, "server", "stats"]);
    assert_eq!(stats["remote_media_bytes"], 2048, "{stats}");

    // Fetched after the cutoff: kept.
    let out = ctl
        .run(&[
            "--ca-file",
            &ca,
            "media",
            "purge-remote",
            "--before-ts",
            "1000",
        ])
        .ok()
        .stdout;
    assert!(out.contains("0 cached remote media deleted"), "{out}");
    let cutoff = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1000)
        .to_string();
    let answer = ctl.json(&[
        "--ca-file",
        &ca,
        "media",
        "purge-remote",
        "--before-ts",
        &cutoff,
    ]);
    assert_eq!(answer["deleted"], 1, "{answer}");
    // The cached file went; this server's own media stayed.
    assert_eq!(files_under(&content).len(), 1);
    assert_eq!(download_status(&a, &alice, &own), 200);
    let stats = ctl.json(&["--ca-file", &ca, "server", "stats"]);
    assert_eq!(stats["remote_media_bytes"], 0, "{stats}");
    // Asked for again, it is fetched again.
    assert_eq!(download_status(&a, &alice, &remote), 200);
    assert_eq!(files_under(&content).len(), 2);

    let (status, body) = a.post(
        "/_synapse/admin/v1/purge_media_cache",
        Some(&root.token),
        &json!({}),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_MISSING_PARAM"))
    );
    assert!(tls_audit_actions(&ctl, &ca).contains(&"media.purge_remote".to_owned()));
}
