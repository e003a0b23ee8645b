//! The rule differences of room versions 3–9 against the later versions: one test per
//! difference, each checking both sides of the version where the rule changes.

use serde_json::{Value, json};

use super::hashes::{add_content_hash, event_id, reference_hash};
use super::power_levels::{integer_levels_content, level_value};
use super::signing::NewPdu;
use super::test_support::Fixture;
use super::types::{JOIN_RULES, MEMBER, POWER_LEVELS};
use super::{Pdu, PowerLevels, RoomPowers, RoomVersion, auth_types_for_event, redact};

const ALICE: &str = "@alice:a";
const BOB: &str = "@bob:b";
const CAROL: &str = "@carol:c";

fn room(v: RoomVersion) -> Fixture {
    let mut fx = Fixture::new(v, ALICE);
    fx.join(ALICE);
    fx.power_levels(ALICE, json!({}), json!({}));
    fx.send(ALICE, JOIN_RULES, Some(""), json!({"join_rule": "public"}));
    fx.join(BOB);
    fx
}

fn versions(filter: impl Fn(RoomVersion) -> bool) -> Vec<RoomVersion> {
    RoomVersion::ALL
        .into_iter()
        .filter(|v| filter(*v))
        .collect()
}

#[test]
fn every_version_parses_and_has_its_rules() {
    for (text, v) in [
        ("3", RoomVersion::V3),
        ("4", RoomVersion::V4),
        ("5", RoomVersion::V5),
        ("6", RoomVersion::V6),
        ("7", RoomVersion::V7),
        ("8", RoomVersion::V8),
        ("9", RoomVersion::V9),
    ] {
        assert_eq!(text.parse::<RoomVersion>().unwrap(), v);
        assert_eq!(v.as_str(), text);
        assert!(v.create_requires_creator_field());
        assert!(!v.redacts_in_content());
        assert!(!v.integer_only_power_levels());
        assert_eq!(v.enforces_key_validity(), v >= RoomVersion::V5);
        assert_eq!(v.strict_canonical_json(), v >= RoomVersion::V6);
        assert_eq!(v.has_aliases_auth_rule(), v <= RoomVersion::V5);
        assert_eq!(v.supports_knocking(), v >= RoomVersion::V7);
        assert_eq!(v.supports_restricted_join(), v >= RoomVersion::V8);
        assert!(!v.supports_knock_restricted());
        assert_eq!(v.event_id_standard_base64(), v == RoomVersion::V3);
    }
    assert!(RoomVersion::V10.integer_only_power_levels());
    assert!(RoomVersion::V10.supports_knock_restricted());
}

/// v3 event IDs are standard base64 (`+`, `/`); v4 on use the URL-safe alphabet.
#[test]
fn v3_event_ids_use_standard_base64() {
    // Find an event whose reference hash has a `+` or `/` in standard base64.
    let mut found = false;
    for i in 0..200 {
        let mut ev = json!({
            "room_id": "!r:x", "sender": "@a:x", "type": "m.room.message",
            "content": {}, "prev_events": [], "auth_events": [], "depth": i,
            "origin_server_ts": 1,
        });
        add_content_hash(&mut ev).unwrap();
        let v3 = event_id(&ev, RoomVersion::V3).unwrap();
        let v4 = event_id(&ev, RoomVersion::V4).unwrap();
        assert_eq!(
            reference_hash(&ev, RoomVersion::V3).unwrap(),
            reference_hash(&ev, RoomVersion::V4).unwrap()
        );
        assert!(!v4.as_str().contains(['+', '/']));
        if v3.as_str().contains(['+', '/']) {
            let url_safe = v3.as_str().replace('+', "-").replace('/', "_");
            assert_eq!(url_safe, v4.as_str());
            // A PDU of v3 keeps its standard-base64 ID.
            assert_eq!(Pdu::from_json(ev, RoomVersion::V3).unwrap().event_id(), &v3);
            found = true;
            break;
        }
        assert_eq!(v3, v4);
    }
    assert!(found);
}

/// v1–v5 auth rule 4: `m.room.aliases` is allowed if and only if its state key is the
/// sender's server, whatever the sender's membership or power; v6 removed the rule.
#[test]
fn aliases_rule_until_v5() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let own = fx.build(CAROL, "m.room.aliases", Some("c"), json!({"aliases": []}));
        let other = fx.build(BOB, "m.room.aliases", Some("c"), json!({"aliases": []}));
        if v.has_aliases_auth_rule() {
            // Carol is not even in the room.
            fx.assert_allowed(&own);
            fx.assert_rejected(&other, "state_key \"c\" is not the sender's server b");
        } else {
            fx.assert_rejected(&own, "sender @carol:c is not joined");
            // Bob is joined but lacks the state default (50).
            fx.assert_rejected(&other, "sender lacks power to send m.room.aliases");
        }
    }
}

/// v1–v9: power levels may be strings holding integers (spec: "`m.room.power_levels` events
/// accept values as strings"); v1–v5 also floats, truncated.
#[test]
fn stringy_and_floaty_level_values() {
    for (text, expected) in [
        ("100", Some(100)),
        ("000100", Some(100)),
        ("+100", Some(100)),
        ("-100", Some(-100)),
        (" 100 ", Some(100)),
        (" 00100 ", Some(100)),
        (" +100 ", Some(100)),
        (" -100 ", Some(-100)),
        ("", None),
        ("1.5", None),
        ("+-1", None),
        ("1 0", None),
        ("ten", None),
        ("99999999999999999999", None),
    ] {
        for v in [RoomVersion::V3, RoomVersion::V9] {
            assert_eq!(level_value(v, &json!(text)), expected, "{text:?} in v{v}");
        }
        assert_eq!(level_value(RoomVersion::V10, &json!(text)), None);
    }
    let floats: Value = serde_json::from_str("[50.57, 5.114698E4, -0.5]").unwrap();
    let floats = floats.as_array().unwrap();
    for v in [RoomVersion::V3, RoomVersion::V4, RoomVersion::V5] {
        assert_eq!(level_value(v, &floats[0]), Some(50));
        assert_eq!(level_value(v, &floats[1]), Some(51146));
        assert_eq!(level_value(v, &floats[2]), Some(0));
    }
    for v in [RoomVersion::V6, RoomVersion::V9, RoomVersion::V12] {
        assert_eq!(level_value(v, &floats[0]), None);
    }
    for v in RoomVersion::ALL {
        assert_eq!(level_value(v, &json!(7)), Some(7));
        assert_eq!(level_value(v, &json!(true)), None);
    }
}

/// The spec's example of a power levels event with string values, as a v9 room reads it.
#[test]
fn spec_example_of_string_power_levels() {
    let content = json!({
        "ban": "50",
        "events": {"m.room.power_levels": "100"},
        "events_default": "0",
        "state_default": "50",
        "users": {"@example:localhost": "100"},
        "users_default": "0"
    });
    let content = content.as_object().unwrap();
    let levels = PowerLevels::from_content_in(RoomVersion::V9, content).unwrap();
    assert_eq!(levels.ban, 50);
    assert_eq!(levels.events["m.room.power_levels"], 100);
    assert_eq!(levels.users.values().copied().collect::<Vec<_>>(), [100]);
    assert!(PowerLevels::from_content_in(RoomVersion::V10, content).is_err());
    // Carried into an upgraded room, the levels become integers.
    let upgraded = integer_levels_content(RoomVersion::V9, content).unwrap();
    assert_eq!(upgraded["ban"], json!(50));
    assert_eq!(upgraded["users"]["@example:localhost"], json!(100));
    assert_eq!(
        PowerLevels::from_content(&upgraded).unwrap(),
        PowerLevels::from_content_in(RoomVersion::V9, content).unwrap()
    );
}

/// A v3–v9 room with string power levels authorises by their integer values, including the
/// power level change rules (10.6–10.10) comparing old string values with new integers.
#[test]
fn string_power_levels_are_enforced_by_value() {
    for v in versions(|v| !v.integer_only_power_levels()) {
        let mut fx = room(v);
        fx.send(
            ALICE,
            POWER_LEVELS,
            Some(""),
            json!({"users": {ALICE: "100", BOB: " 50 "}, "state_default": "+50", "kick": "50"}),
        );
        let powers = RoomPowers::new(v, fx.create(), fx.state_event(POWER_LEVELS, "")).unwrap();
        assert_eq!(powers.user_power(BOB.try_into().unwrap()).to_string(), "50");
        let ok = fx.build(BOB, "m.room.topic", Some(""), json!({"topic": "t"}));
        fx.assert_allowed(&ok);
        // Bob (50) may not raise the kick level above his own, written as a string or not.
        let bad = fx.build(
            BOB,
            POWER_LEVELS,
            Some(""),
            json!({"users": {ALICE: 100, BOB: 50}, "state_default": 50, "kick": "51"}),
        );
        fx.assert_rejected(&bad, "cannot set kick to 51");
        // Rewriting "50" as 50 changes nothing, so it is allowed.
        let ok = fx.build(
            BOB,
            POWER_LEVELS,
            Some(""),
            json!({"users": {ALICE: 100, BOB: 50}, "state_default": 50, "kick": 50}),
        );
        fx.assert_allowed(&ok);
        // Bob may not change Alice's level (100, written "100").
        let bad = fx.build(
            BOB,
            POWER_LEVELS,
            Some(""),
            json!({"users": {ALICE: 40, BOB: 50}, "state_default": 50, "kick": 50}),
        );
        fx.assert_rejected(&bad, "cannot change the power level of @alice:a");
        // Top-level values that are not integers in any form are rejected.
        let bad = fx.build(
            ALICE,
            POWER_LEVELS,
            Some(""),
            json!({"users": {ALICE: 100}, "ban": "lots"}),
        );
        fx.assert_rejected(&bad, "power levels ban is not an integer");
    }
}

/// `knock` membership and join rule exist from v7 on.
#[test]
fn knocking_from_v7() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        fx.send(ALICE, JOIN_RULES, Some(""), json!({"join_rule": "knock"}));
        let knock = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "knock"}));
        if v.supports_knocking() {
            fx.assert_allowed(&knock);
        } else {
            fx.assert_rejected(&knock, "unknown membership \"knock\"");
        }
        fx.member(ALICE, CAROL, "invite");
        let join = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "join"}));
        if v.supports_knocking() {
            fx.assert_allowed(&join);
        } else {
            // Before v7 a `knock` join rule is unknown and lets no one join, invited or not.
            fx.assert_rejected(
                &join,
                "join rule \"knock\" does not allow joining in room version",
            );
        }
    }
}

/// The `restricted` join rule and `join_authorised_via_users_server` exist from v8 on.
#[test]
fn restricted_joins_from_v8() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        fx.send(
            ALICE,
            JOIN_RULES,
            Some(""),
            json!({"join_rule": "restricted"}),
        );
        let content = json!({"membership": "join", "join_authorised_via_users_server": ALICE});
        let types = auth_types_for_event(
            v,
            MEMBER,
            CAROL.try_into().unwrap(),
            Some(CAROL),
            content.as_object().unwrap(),
        );
        let names_via = types.contains(&(MEMBER.to_owned(), ALICE.to_owned()));
        assert_eq!(names_via, v.supports_restricted_join(), "v{v}");
        let join = fx.build(CAROL, MEMBER, Some(CAROL), content);
        if v.supports_restricted_join() {
            // Not signed by Alice's server (rule 4.2 of v8).
            fx.assert_rejected(&join, "not signed by the authorising server a");
        } else {
            fx.assert_rejected(&join, "join rule \"restricted\" does not allow joining");
        }
    }
}

/// `knock_restricted` exists from v10 on: in v8/v9 it is an unknown join rule.
#[test]
fn knock_restricted_from_v10() {
    for v in versions(|v| v.supports_restricted_join()) {
        let mut fx = room(v);
        fx.send(
            ALICE,
            JOIN_RULES,
            Some(""),
            json!({"join_rule": "knock_restricted"}),
        );
        let knock = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "knock"}));
        if v.supports_knock_restricted() {
            fx.assert_allowed(&knock);
        } else {
            fx.assert_rejected(&knock, "does not allow knocking");
        }
    }
}

/// The redaction algorithm of each version (spec: v1, v6, v8, v9 redaction fragments).
#[test]
fn redaction_per_version() {
    let event = |t: &str, content: Value| {
        json!({
            "type": t, "room_id": "!r:x", "sender": "@a:x", "state_key": "", "content": content,
            "hashes": {"sha256": "h"}, "signatures": {}, "depth": 1, "prev_events": [],
            "auth_events": [], "origin": "x", "origin_server_ts": 1, "membership": "join",
            "prev_state": [], "unsigned": {"age": 1}, "extra": 1,
        })
    };
    let aliases = event("m.room.aliases", json!({"aliases": ["#a:x"], "x": 1}));
    let join_rules = event(
        "m.room.join_rules",
        json!({"join_rule": "restricted", "allow": [], "x": 1}),
    );
    let member = event(
        "m.room.member",
        json!({"membership": "join", "join_authorised_via_users_server": "@b:x", "displayname": "A"}),
    );
    for v in versions(|v| v <= RoomVersion::V10) {
        let r = redact(&aliases, v).unwrap();
        assert_eq!(
            r["content"],
            if v <= RoomVersion::V5 {
                json!({"aliases": ["#a:x"]})
            } else {
                json!({})
            }
        );
        // origin, membership and prev_state are kept up to v10.
        assert_eq!(r["origin"], "x");
        assert_eq!(r["membership"], "join");
        assert!(r.get("extra").is_none() && r.get("unsigned").is_none());
        let r = redact(&join_rules, v).unwrap();
        assert_eq!(
            r["content"],
            if v >= RoomVersion::V8 {
                json!({"join_rule": "restricted", "allow": []})
            } else {
                json!({"join_rule": "restricted"})
            }
        );
        let r = redact(&member, v).unwrap();
        assert_eq!(
            r["content"],
            if v >= RoomVersion::V9 {
                json!({"membership": "join", "join_authorised_via_users_server": "@b:x"})
            } else {
                json!({"membership": "join"})
            }
        );
    }
}

/// Before v11 a redaction names its target in a top-level `redacts`.
#[test]
fn redacts_is_top_level_before_v11() {
    for v in RoomVersion::ALL {
        let fx = room(v);
        let target = fx.create().event_id().to_owned();
        let pdu = Fixture::sign(
            v,
            NewPdu {
                room_id: Some(fx.room_id.clone()),
                sender: BOB.try_into().unwrap(),
                event_type: "m.room.redaction".to_owned(),
                state_key: None,
                content: json!({"reason": "r"}),
                prev_events: fx.last.clone(),
                auth_events: vec![],
                depth: 9,
                origin_server_ts: 9,
                redacts: Some(target.clone()),
            },
        );
        assert_eq!(pdu.redacts(v), Some(target.as_str()));
        assert_eq!(pdu.json().get("redacts").is_some(), !v.redacts_in_content());
        assert_eq!(
            pdu.content().contains_key("redacts"),
            v.redacts_in_content()
        );
    }
}

/// v1/v2: the sending server chooses the event ID (`$opaque:server`), carries it in the event
/// and signs it; `prev_events`/`auth_events` are `[id, hashes]` pairs.
#[test]
fn v1_and_v2_event_format() {
    for v in [RoomVersion::V1, RoomVersion::V2] {
        let mut fx = room(v);
        let message = fx.send(BOB, "m.room.message", None, json!({"body": "x"}));
        let id = message.event_id().to_owned();
        assert_eq!(id.server_name().map(|s| s.as_str()), Some("b"), "{id}");
        assert_eq!(message.json()["event_id"], id.as_str());
        let prev = &message.json()["prev_events"][0];
        assert!(prev[0].is_string() && prev[1].is_object(), "{prev}");
        assert_eq!(message.prev_events().len(), 1);
        // The ID is part of the reference hash (it is not in v3+).
        let mut moved = message.json().clone();
        moved["event_id"] = json!("$other:b");
        assert_ne!(
            reference_hash(&moved, v).unwrap(),
            reference_hash(message.json(), v).unwrap()
        );
        assert_eq!(event_id(&moved, v).unwrap().as_str(), "$other:b");
        // IDs without a server name, or string references, are not of this format.
        moved["event_id"] = json!("$noserver");
        assert!(event_id(&moved, v).is_err());
        let mut strings = message.json().clone();
        strings["prev_events"] = json!([prev[0].clone()]);
        assert!(Pdu::from_json(strings, v).is_err());
        // And v3+ refuse pairs.
        let mut pairs = message.json().clone();
        pairs.as_object_mut().unwrap().remove("event_id");
        assert!(Pdu::from_json(pairs, RoomVersion::V3).is_err());
    }
}

/// v1/v2 auth rule 11: without the redact level, a server may redact only its own events.
#[test]
fn v1_and_v2_redaction_rule() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let alices = fx.send(ALICE, "m.room.message", None, json!({"body": "a"}));
        let bobs = fx.send(BOB, "m.room.message", None, json!({"body": "b"}));
        let redaction = |fx: &Fixture, target: &Pdu| {
            let mut pdu = NewPdu {
                room_id: Some(fx.room_id.clone()),
                sender: BOB.try_into().unwrap(),
                event_type: "m.room.redaction".to_owned(),
                state_key: None,
                content: json!({}),
                prev_events: fx.last.clone(),
                auth_events: vec![],
                depth: fx.depth + 1,
                origin_server_ts: 5000,
                redacts: Some(target.event_id().to_owned()),
            };
            pdu.auth_events = fx
                .select_auth_events(BOB, "m.room.redaction", None, &pdu.content)
                .into_iter()
                .collect();
            Fixture::sign(v, pdu)
        };
        let own = redaction(&fx, &bobs);
        let others = redaction(&fx, &alices);
        fx.assert_allowed(&own);
        if v.redaction_auth_rule() {
            fx.assert_rejected(&others, "lacks power to redact events of other servers");
        } else {
            // From v3 on, the receiving server checks this before applying the redaction.
            fx.assert_allowed(&others);
        }
    }
}

/// State resolution v1: power levels resolve by ascending depth (the later change applies
/// while it is authorised), other keys take the deepest authorised event.
#[test]
fn state_resolution_v1() {
    let mut fx = room(RoomVersion::V1);
    fx.power_levels(ALICE, json!({BOB: 50}), json!({}));
    let base = fx.state.clone();
    let fork_point = fx.last.clone();
    // Branch 1: Alice demotes Bob, deeper; branch 2: Bob sets the topic.
    let demote = fx.power_levels(ALICE, json!({BOB: 0}), json!({}));
    let branch1 = fx.state.clone();
    fx.state = base.clone();
    fx.last = fork_point;
    let topic = fx.send(BOB, "m.room.topic", Some(""), json!({"topic": "bob's"}));
    let branch2 = fx.state.clone();
    let resolved =
        super::resolve(RoomVersion::V1, &[branch1, branch2], |id| fx.events.get(id)).unwrap();
    let key = |t: &str| (t.to_owned(), String::new());
    assert_eq!(resolved[&key(POWER_LEVELS)], demote.event_id());
    // Bob's topic is not authorised once he is demoted (state default 50): dropped.
    assert!(!resolved.contains_key(&key("m.room.topic")), "{resolved:?}");
    assert_ne!(topic.event_id(), demote.event_id());
    // The unconflicted keys stay.
    assert_eq!(resolved[&key(JOIN_RULES)], base[&key(JOIN_RULES)]);
}
