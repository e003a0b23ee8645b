//! Push rules: the `/pushrules` API, and their effect on the unread counts of `/sync`.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::{User, create_room, enc, join, send_text, try_send, user};
use crate::sync::{next_batch, poll, sync};

fn rule_path(kind: &str, rule_id: &str) -> String {
    format!(
        "/_matrix/client/v3/pushrules/global/{kind}/{}",
        enc(rule_id)
    )
}

fn put_rule(server: &TestServer, user: &User, path: &str, body: Value) -> (u16, Value) {
    server.send("PUT", path, Some(&user.token), &body)
}

fn ids(server: &TestServer, user: &User, kind: &str) -> Vec<String> {
    let (status, body) = server.get("/_matrix/client/v3/pushrules/", Some(&user.token));
    assert_eq!(status, 200, "{body}");
    body["global"][kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

const NOTIFY: [&str; 1] = ["notify"];

#[test]
fn predefined_rules_are_listed_and_protected() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let (status, all) = server.get("/_matrix/client/v3/pushrules/", Some(&alice.token));
    assert_eq!(status, 200, "{all}");
    let (status, global) = server.get("/_matrix/client/v3/pushrules/global/", Some(&alice.token));
    assert_eq!(status, 200, "{global}");
    assert_eq!(all["global"], global);
    let master = &global["override"][0];
    assert_eq!(master["rule_id"], ".m.rule.master");
    assert_eq!(master["default"], true);
    assert_eq!(master["enabled"], false);
    assert_eq!(
        ids(&server, &alice, "underride"),
        [
            ".m.rule.call",
            ".m.rule.encrypted_room_one_to_one",
            ".m.rule.room_one_to_one",
            ".m.rule.message",
            ".m.rule.encrypted"
        ]
    );
    let invite = server.get(
        &rule_path("override", ".m.rule.invite_for_me"),
        Some(&alice.token),
    );
    assert_eq!(invite.0, 200, "{}", invite.1);
    assert_eq!(invite.1["conditions"][2]["pattern"], alice.id.as_str());

    assert_error(
        server.send(
            "DELETE",
            &rule_path("override", ".m.rule.master"),
            Some(&alice.token),
            &json!({}),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        put_rule(
            &server,
            &alice,
            &rule_path("override", ".m.rule.master"),
            json!({"actions": []}),
        ),
        400,
        "M_INVALID_PARAM",
    );
    // Predefined rules can be switched on and off and given other actions.
    let enabled = format!("{}/enabled", rule_path("override", ".m.rule.master"));
    assert_eq!(
        put_rule(&server, &alice, &enabled, json!({"enabled": true})).0,
        200
    );
    assert_eq!(
        server.get(&enabled, Some(&alice.token)).1,
        json!({"enabled": true})
    );
    let actions = format!("{}/actions", rule_path("underride", ".m.rule.message"));
    assert_eq!(
        put_rule(&server, &alice, &actions, json!({"actions": []})).0,
        200
    );
    assert_eq!(
        server.get(&actions, Some(&alice.token)).1,
        json!({"actions": []})
    );
    let message = server
        .get(
            &rule_path("underride", ".m.rule.message"),
            Some(&alice.token),
        )
        .1;
    assert_eq!(message["default"], true);
    assert_eq!(ids(&server, &alice, "override")[0], ".m.rule.master");
}

#[test]
fn user_rules_crud_and_ordering() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for id in ["a", "b"] {
        let (status, body) = put_rule(
            &server,
            &alice,
            &rule_path("override", id),
            json!({"actions": NOTIFY, "conditions": [{"kind": "event_match", "key": "type", "pattern": id}]}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let after_a = format!("{}?after=a", rule_path("override", "c"));
    assert_eq!(
        put_rule(&server, &alice, &after_a, json!({"actions": []})).0,
        200
    );
    let before_b = format!("{}?before=b", rule_path("override", "d"));
    assert_eq!(
        put_rule(&server, &alice, &before_b, json!({"actions": []})).0,
        200
    );
    let order = ids(&server, &alice, "override");
    assert_eq!(order[..5], [".m.rule.master", "d", "b", "a", "c"]);
    assert_eq!(order[5], ".m.rule.suppress_notices");

    // Updating keeps the place and the enabled state; before/after moves.
    let enabled = format!("{}/enabled", rule_path("override", "b"));
    assert_eq!(
        put_rule(&server, &alice, &enabled, json!({"enabled": false})).0,
        200
    );
    assert_eq!(
        put_rule(
            &server,
            &alice,
            &rule_path("override", "b"),
            json!({"actions": []})
        )
        .0,
        200
    );
    let b = server
        .get(&rule_path("override", "b"), Some(&alice.token))
        .1;
    assert_eq!(
        b,
        json!({"rule_id": "b", "default": false, "enabled": false, "actions": [], "conditions": []})
    );
    let move_b = format!("{}?after=c", rule_path("override", "b"));
    assert_eq!(
        put_rule(&server, &alice, &move_b, json!({"actions": []})).0,
        200
    );
    assert_eq!(
        ids(&server, &alice, "override")[..5],
        [".m.rule.master", "d", "a", "c", "b"]
    );

    let unknown_anchor = format!("{}?before=nope", rule_path("override", "e"));
    assert_error(
        put_rule(&server, &alice, &unknown_anchor, json!({"actions": []})),
        400,
        "M_UNKNOWN",
    );
    let predefined_anchor = format!(
        "{}?after=.m.rule.suppress_notices",
        rule_path("override", "e")
    );
    assert_error(
        put_rule(&server, &alice, &predefined_anchor, json!({"actions": []})),
        400,
        "M_UNKNOWN",
    );
    assert_eq!(
        server
            .get(&rule_path("override", "e"), Some(&alice.token))
            .0,
        404
    );

    // Each kind's own shape.
    let room = "!room:example.org";
    assert_eq!(
        put_rule(
            &server,
            &alice,
            &rule_path("room", room),
            json!({"actions": []})
        )
        .0,
        200
    );
    let room_rule = server.get(&rule_path("room", room), Some(&alice.token)).1;
    assert_eq!(
        room_rule,
        json!({"rule_id": room, "default": false, "enabled": true, "actions": []})
    );
    // Like Synapse, room and sender rule IDs need not be room or user IDs.
    for (kind, id) in [("room", "not-a-room"), ("sender", "nobody")] {
        let (status, body) = put_rule(
            &server,
            &alice,
            &rule_path(kind, id),
            json!({"actions": []}),
        );
        assert_eq!(status, 200, "{body}");
        server.send(
            "DELETE",
            &rule_path(kind, id),
            Some(&alice.token),
            &json!({}),
        );
    }
    assert_eq!(
        put_rule(
            &server,
            &alice,
            &rule_path("sender", "@bob:example.org"),
            json!({"actions": []})
        )
        .0,
        200
    );
    assert_error(
        put_rule(
            &server,
            &alice,
            &rule_path("content", "cake"),
            json!({"actions": NOTIFY}),
        ),
        400,
        "M_MISSING_PARAM",
    );
    assert_eq!(
        put_rule(
            &server,
            &alice,
            &rule_path("content", "cake"),
            json!({"actions": NOTIFY, "pattern": "cake*lie"})
        )
        .0,
        200
    );
    assert_eq!(
        server
            .get(&rule_path("content", "cake"), Some(&alice.token))
            .1["pattern"],
        "cake*lie"
    );

    // Bad input.
    assert_error(
        put_rule(
            &server,
            &alice,
            &rule_path("override", ".mine"),
            json!({"actions": []}),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        put_rule(
            &server,
            &alice,
            &rule_path("override", "x"),
            json!({"actions": "notify"}),
        ),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        put_rule(
            &server,
            &alice,
            &rule_path("override", "x"),
            json!({"actions": ["shout"]}),
        ),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        put_rule(
            &server,
            &alice,
            &rule_path("override", "x"),
            json!({"actions": [], "conditions": [1]}),
        ),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        put_rule(
            &server,
            &alice,
            &rule_path("sideways", "x"),
            json!({"actions": []}),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        put_rule(&server, &alice, &enabled, json!({"enabled": "yes"})),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        server.get(
            &format!("{}/actions", rule_path("override", "x")),
            Some(&alice.token),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        put_rule(
            &server,
            &alice,
            &format!("{}/enabled", rule_path("override", "x")),
            json!({"enabled": true}),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get(&rule_path("override", "a"), None),
        401,
        "M_MISSING_TOKEN",
    );

    // Delete.
    assert_eq!(
        server
            .send(
                "DELETE",
                &rule_path("override", "a"),
                Some(&alice.token),
                &json!({})
            )
            .0,
        200
    );
    assert_error(
        server.get(&rule_path("override", "a"), Some(&alice.token)),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.send(
            "DELETE",
            &rule_path("override", "a"),
            Some(&alice.token),
            &json!({}),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_eq!(
        ids(&server, &alice, "override")[..4],
        [".m.rule.master", "d", "c", "b"]
    );
}

#[test]
fn rules_are_private_durable_and_synced() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let path = rule_path("override", "mine");
    assert_eq!(
        put_rule(&server, &alice, &path, json!({"actions": []})).0,
        200
    );
    assert_error(server.get(&path, Some(&bob.token)), 404, "M_NOT_FOUND");
    assert!(!ids(&server, &bob, "override").contains(&"mine".to_owned()));

    // Before any change, an initial sync brings the predefined rules.
    let first = sync(&server, &bob, "");
    let predefined = push_rules_event(&first);
    assert_eq!(
        predefined["content"]["global"]["override"][0]["rule_id"],
        ".m.rule.master"
    );
    let since = next_batch(&first);

    let pushed = push_rules_event(&sync(&server, &alice, ""));
    assert_eq!(
        pushed["content"]["global"]["override"][1]["rule_id"],
        "mine"
    );
    // A change wakes the user's syncs with the new rules, once.
    let enabled = format!("{}/enabled", rule_path("override", ".m.rule.master"));
    assert_eq!(
        put_rule(&server, &bob, &enabled, json!({"enabled": true})).0,
        200
    );
    let woken = poll(&server, &bob, &since);
    assert_eq!(
        push_rules_event(&woken)["content"]["global"]["override"][0]["enabled"],
        true
    );
    let quiet = sync(&server, &bob, &format!("since={}", next_batch(&woken)));
    assert!(
        quiet["account_data"]["events"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{quiet}"
    );
    // Clients cannot write the account data directly.
    let direct = format!(
        "/_matrix/client/v3/user/{}/account_data/m.push_rules",
        enc(&alice.id)
    );
    assert_error(
        server.send("PUT", &direct, Some(&alice.token), &json!({})),
        405,
        "M_BAD_JSON",
    );

    server.kill_9();
    server.restart();
    assert_eq!(server.get(&path, Some(&alice.token)).0, 200);
}

fn push_rules_event(sync: &Value) -> Value {
    sync["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .unwrap_or_else(|| panic!("no m.push_rules in {sync}"))
        .clone()
}

fn unread(body: &Value, room: &str) -> (u64, u64) {
    let counts = &body["rooms"]["join"][room]["unread_notifications"];
    (
        counts["notification_count"].as_u64().unwrap(),
        counts["highlight_count"].as_u64().unwrap(),
    )
}

fn mention(user: &User) -> Value {
    json!({"msgtype": "m.text", "body": "look", "m.mentions": {"user_ids": [user.id]}})
}

#[test]
fn muted_and_mentions_only_rooms_count_accordingly() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let rooms: Vec<String> = (0..3)
        .map(|_| create_room(&server, &alice, json!({"preset": "public_chat"})))
        .collect();
    let (muted, normal, mentions_only) = (&rooms[0], &rooms[1], &rooms[2]);
    for (i, room) in rooms.iter().enumerate() {
        join(&server, &bob, room);
        send_text(&server, &alice, room, &format!("plain{i}"), "hello");
    }
    let (status, body) = try_send(&server, &alice, mentions_only, "m1", &mention(&bob));
    assert_eq!(status, 200, "{body}");
    let (status, body) = try_send(&server, &alice, muted, "m2", &mention(&bob));
    assert_eq!(status, 200, "{body}");
    let body = sync(&server, &bob, "");
    assert_eq!(unread(&body, muted), (2, 1));
    assert_eq!(unread(&body, normal), (1, 0));
    assert_eq!(unread(&body, mentions_only), (2, 1));

    // Mute: a user override with no actions, which comes before the mention rules.
    let mute = rule_path("override", "mute");
    let mute_rule = json!({"actions": [], "conditions": [{"kind": "event_match", "key": "room_id", "pattern": muted}]});
    assert_eq!(put_rule(&server, &bob, &mute, mute_rule).0, 200);
    // Mentions only: a room rule with no actions, which the mention overrides beat.
    assert_eq!(
        put_rule(
            &server,
            &bob,
            &rule_path("room", mentions_only),
            json!({"actions": []})
        )
        .0,
        200
    );
    let body = sync(&server, &bob, "");
    assert_eq!(unread(&body, muted), (0, 0));
    assert_eq!(unread(&body, normal), (1, 0));
    assert_eq!(unread(&body, mentions_only), (1, 1));

    // New events follow the rules too.
    let since = next_batch(&body);
    send_text(&server, &alice, muted, "plain-late", "still muted");
    let body = poll(&server, &bob, &since);
    assert_eq!(unread(&body, muted), (0, 0));

    let enabled = format!("{mute}/enabled");
    assert_eq!(
        put_rule(&server, &bob, &enabled, json!({"enabled": false})).0,
        200
    );
    assert_eq!(unread(&sync(&server, &bob, ""), muted), (3, 1));
}

#[test]
fn master_rule_and_room_mentions_use_the_rules_and_power_levels() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    join(&server, &bob, &room);
    let at_room = json!({"msgtype": "m.text", "body": "@room", "m.mentions": {"room": true}});
    // Alice created the room (power 100): her room mention highlights for Bob.
    assert_eq!(try_send(&server, &alice, &room, "a1", &at_room).0, 200);
    // Bob has power 0, below the default `room` notification level of 50.
    assert_eq!(try_send(&server, &bob, &room, "b1", &at_room).0, 200);
    assert_eq!(unread(&sync(&server, &bob, ""), &room), (1, 1));
    assert_eq!(unread(&sync(&server, &alice, ""), &room), (1, 0));

    // Notices are suppressed by default.
    let notice = json!({"msgtype": "m.notice", "body": "beep"});
    assert_eq!(try_send(&server, &alice, &room, "a2", &notice).0, 200);
    assert_eq!(unread(&sync(&server, &bob, ""), &room), (1, 1));

    let master = format!("{}/enabled", rule_path("override", ".m.rule.master"));
    assert_eq!(
        put_rule(&server, &bob, &master, json!({"enabled": true})).0,
        200
    );
    assert_eq!(unread(&sync(&server, &bob, ""), &room), (0, 0));
    // Alice's counts are her own rules' business.
    assert_eq!(unread(&sync(&server, &alice, ""), &room), (1, 0));
    assert_eq!(
        put_rule(&server, &bob, &master, json!({"enabled": false})).0,
        200
    );
    assert_eq!(unread(&sync(&server, &bob, ""), &room), (1, 1));
}
