//! One accepting and one rejecting test per authorisation rule (room v12 numbering), run for
//! every supported version unless the rule is version-specific.

use serde_json::{Value, json};

use super::test_support::{Fixture, key_for};
use super::types::{CREATE, JOIN_RULES, MEMBER, POWER_LEVELS, THIRD_PARTY_INVITE};
use super::{
    EventError, Pdu, RoomVersion, auth_check, auth_types_for_event, hash_and_sign_event, sign_json,
};

const ALICE: &str = "@alice:a";
const BOB: &str = "@bob:b";
const CAROL: &str = "@carol:c";
const MOD: &str = "@mod:m";

/// alice creates and joins, gives mod 50, makes the room public; mod and bob join.
fn room(v: RoomVersion) -> Fixture {
    let mut fx = Fixture::new(v, ALICE);
    fx.join(ALICE);
    fx.power_levels(ALICE, json!({MOD: 50}), json!({}));
    fx.send(ALICE, JOIN_RULES, Some(""), json!({"join_rule": "public"}));
    fx.join(MOD);
    fx.join(BOB);
    fx
}

fn set_join_rule(fx: &mut Fixture, rule: &str) {
    set_join_rule_by(fx, ALICE, rule);
}

fn set_join_rule_by(fx: &mut Fixture, sender: &str, rule: &str) {
    fx.send(sender, JOIN_RULES, Some(""), json!({"join_rule": rule}));
}

fn resign(v: RoomVersion, mut json: Value, server: &str) -> Pdu {
    json.as_object_mut().unwrap().remove("signatures");
    hash_and_sign_event(&mut json, &key_for(server), v).unwrap();
    Pdu::from_json(json, v).unwrap()
}

fn cosign(v: RoomVersion, pdu: &Pdu, server: &str) -> Pdu {
    let mut json = pdu.json().clone();
    hash_and_sign_event(&mut json, &key_for(server), v).unwrap();
    Pdu::from_json(json, v).unwrap()
}

fn create_json(v: RoomVersion, content: Value) -> Value {
    let fx = Fixture::with_create_content(v, ALICE, content);
    fx.create().json().clone()
}

fn check_alone(v: RoomVersion, pdu: &Pdu) -> Result<(), EventError> {
    auth_check(v, pdu, |_, _| None)
}

#[track_caller]
fn assert_reason(r: Result<(), EventError>, needle: &str) {
    match r {
        Err(EventError::Unauthorized(reason)) => {
            assert!(
                reason.contains(needle),
                "reason {reason:?} does not contain {needle:?}"
            )
        }
        other => panic!("expected rejection containing {needle:?}, got {other:?}"),
    }
}

// ---- Signatures ----------------------------------------------------------------------------

#[test]
fn rule_0_rejected_when_not_signed_by_sender_server() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(BOB, "m.room.message", None, json!({"body": "hi"}));
        fx.assert_allowed(&ok);
        let mut json = ok.json().clone();
        json["signatures"] = json!({});
        let unsigned = Pdu::from_json(json, v).unwrap();
        fx.assert_rejected(&unsigned, "not signed by the sender's server b");
        let other = resign(v, ok.json().clone(), "c");
        fx.assert_rejected(&other, "not signed by the sender's server b");
    }
}

// ---- Rule 1: m.room.create -----------------------------------------------------------------

#[test]
fn rule_1_5_create_allowed() {
    for v in RoomVersion::ALL {
        let fx = Fixture::new(v, ALICE);
        check_alone(v, fx.create()).unwrap();
    }
}

#[test]
fn rule_1_1_create_rejected_with_prev_events() {
    for v in RoomVersion::ALL {
        let mut json = create_json(v, json!({"creator": ALICE, "room_version": v.as_str()}));
        json["prev_events"] = crate::event::pdu::reference_list(v, &["$somewhere:a"]);
        assert_reason(
            check_alone(v, &resign(v, json, "a")),
            "must not have prev_events",
        );
    }
}

#[test]
fn rule_1_2_v12_create_rejected_with_room_id() {
    let mut json = create_json(RoomVersion::V12, json!({"room_version": "12"}));
    json["room_id"] = json!("!abc:a");
    assert_reason(
        check_alone(RoomVersion::V12, &resign(RoomVersion::V12, json, "a")),
        "must not have a room_id",
    );
}

#[test]
fn rule_1_2_v10_v11_create_rejected_when_room_id_domain_differs() {
    for v in [RoomVersion::V10, RoomVersion::V11] {
        let good = create_json(v, json!({"creator": ALICE, "room_version": v.as_str()}));
        check_alone(v, &Pdu::from_json(good.clone(), v).unwrap()).unwrap();
        let mut bad = good.clone();
        bad["room_id"] = json!("!room:elsewhere");
        assert_reason(
            check_alone(v, &resign(v, bad, "a")),
            "does not have the sender's server name",
        );
        let mut missing = good;
        missing.as_object_mut().unwrap().remove("room_id");
        assert_reason(check_alone(v, &resign(v, missing, "a")), "has no room_id");
    }
}

#[test]
fn rule_1_3_create_rejected_with_unknown_room_version() {
    for v in RoomVersion::ALL {
        let ok = create_json(v, json!({"creator": ALICE, "room_version": "9"}));
        check_alone(v, &Pdu::from_json(ok, v).unwrap()).unwrap();
        let bad = create_json(v, json!({"creator": ALICE, "room_version": "13"}));
        assert_reason(
            check_alone(v, &Pdu::from_json(bad, v).unwrap()),
            "unrecognised room_version",
        );
        let bad = create_json(v, json!({"creator": ALICE, "room_version": 12}));
        assert_reason(
            check_alone(v, &Pdu::from_json(bad, v).unwrap()),
            "unrecognised room_version",
        );
    }
}

#[test]
fn rule_1_4_v10_create_rejected_without_creator() {
    let bad = create_json(RoomVersion::V10, json!({"room_version": "10"}));
    assert_reason(
        check_alone(
            RoomVersion::V10,
            &Pdu::from_json(bad.clone(), RoomVersion::V10).unwrap(),
        ),
        "no creator",
    );
    // v11 and v12 do not need `creator`.
    for v in [RoomVersion::V11, RoomVersion::V12] {
        let ok = create_json(v, json!({"room_version": v.as_str()}));
        check_alone(v, &Pdu::from_json(ok, v).unwrap()).unwrap();
    }
}

#[test]
fn rule_1_4_v12_additional_creators_must_be_user_ids() {
    let v = RoomVersion::V12;
    let ok = create_json(
        v,
        json!({"room_version": "12", "additional_creators": [BOB, CAROL]}),
    );
    check_alone(v, &Pdu::from_json(ok, v).unwrap()).unwrap();
    for bad in [json!("@bob:b"), json!([BOB, "not-a-user"]), json!([1])] {
        let j = create_json(v, json!({"room_version": "12", "additional_creators": bad}));
        assert_reason(
            check_alone(v, &Pdu::from_json(j, v).unwrap()),
            "additional_creators",
        );
    }
    // Before v12 the field is not validated.
    let j = create_json(RoomVersion::V11, json!({"additional_creators": "junk"}));
    check_alone(
        RoomVersion::V11,
        &Pdu::from_json(j, RoomVersion::V11).unwrap(),
    )
    .unwrap();
}

// ---- Rule 2 (v12): room ID is the create event's ID ----------------------------------------

#[test]
fn rule_2_v12_rejected_when_room_id_is_not_the_create_event_id() {
    let mut fx = room(RoomVersion::V12);
    let ok = fx.build(BOB, "m.room.message", None, json!({"body": "hi"}));
    fx.assert_allowed(&ok);
    fx.check_against_auth_events(&ok).unwrap();
    let real = fx.room_id.clone();
    fx.room_id = "!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        .try_into()
        .unwrap();
    let bad = fx.build(BOB, "m.room.message", None, json!({"body": "hi"}));
    fx.room_id = real;
    fx.assert_rejected(&bad, "is not the ID of the room's create event");
}

#[test]
fn rule_2_v12_rejected_when_create_event_was_rejected() {
    let mut fx = room(RoomVersion::V12);
    let ok = fx.build(BOB, "m.room.message", None, json!({"body": "hi"}));
    let mut create = fx.create().clone();
    create.set_rejected(true);
    let auth: Vec<&Pdu> = ok.auth_events().iter().map(|id| fx.get(id)).collect();
    assert_reason(
        super::check_event_auth(RoomVersion::V12, &ok, &auth, Some(&create)),
        "was rejected",
    );
}

// ---- Rule 3: the auth events themselves ----------------------------------------------------

#[test]
fn rule_3_1_rejected_with_duplicate_auth_events() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let old_pl = fx.state[&(POWER_LEVELS.to_owned(), String::new())].clone();
        fx.power_levels(ALICE, json!({MOD: 60}), json!({}));
        let ok = fx.build(BOB, "m.room.message", None, json!({}));
        fx.check_against_auth_events(&ok).unwrap();
        let mut auth = ok.auth_events().to_vec();
        auth.push(old_pl);
        let prev = fx.last.clone();
        let bad = fx.build_with(BOB, "m.room.message", None, json!({}), prev, auth);
        assert_reason(fx.check_against_auth_events(&bad), "duplicate auth events");
    }
}

#[test]
fn rule_3_2_rejected_with_auth_events_outside_the_selection() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let jr = fx.state[&(JOIN_RULES.to_owned(), String::new())].clone();
        let ok = fx.build(BOB, "m.room.message", None, json!({}));
        fx.check_against_auth_events(&ok).unwrap();
        let mut auth = ok.auth_events().to_vec();
        auth.push(jr); // join rules are only selected for join/invite/knock
        let prev = fx.last.clone();
        let bad = fx.build_with(BOB, "m.room.message", None, json!({}), prev, auth);
        assert_reason(
            fx.check_against_auth_events(&bad),
            "not allowed by the auth events selection",
        );
    }
}

#[test]
fn rule_3_2_v12_rejected_when_create_event_is_an_auth_event() {
    let mut fx = room(RoomVersion::V12);
    let ok = fx.build(BOB, "m.room.message", None, json!({}));
    let mut auth = ok.auth_events().to_vec();
    auth.push(fx.create_id.clone());
    let prev = fx.last.clone();
    let bad = fx.build_with(BOB, "m.room.message", None, json!({}), prev, auth);
    assert_reason(
        fx.check_against_auth_events(&bad),
        "(m.room.create, \"\") is not allowed",
    );
}

#[test]
fn rule_3_4_v10_v11_rejected_without_create_auth_event() {
    for v in [RoomVersion::V10, RoomVersion::V11] {
        let mut fx = room(v);
        let ok = fx.build(BOB, "m.room.message", None, json!({}));
        fx.check_against_auth_events(&ok).unwrap();
        let auth: Vec<_> = ok
            .auth_events()
            .iter()
            .filter(|id| **id != fx.create_id)
            .cloned()
            .collect();
        let prev = fx.last.clone();
        let bad = fx.build_with(BOB, "m.room.message", None, json!({}), prev, auth);
        assert_reason(
            fx.check_against_auth_events(&bad),
            "no m.room.create event among the auth events",
        );
    }
}

#[test]
fn rule_3_3_rejected_when_an_auth_event_was_rejected() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ev = fx.build(BOB, "m.room.message", None, json!({}));
        fx.check_against_auth_events(&ev).unwrap();
        let bob_join = fx.state[&(MEMBER.to_owned(), BOB.to_owned())].clone();
        fx.events.get_mut(&bob_join).unwrap().set_rejected(true);
        assert_reason(fx.check_against_auth_events(&ev), "was rejected");
    }
}

#[test]
fn rule_3_5_rejected_when_an_auth_event_is_from_another_room() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let mut other = Fixture::new(v, "@zoe:z");
        other.join("@zoe:z");
        set_join_rule_by(&mut other, "@zoe:z", "public");
        let foreign_join = other.join(BOB);
        assert_ne!(other.room_id, fx.room_id);
        fx.events
            .insert(foreign_join.event_id().to_owned(), foreign_join.clone());
        let ok = fx.build(BOB, "m.room.message", None, json!({}));
        fx.check_against_auth_events(&ok).unwrap();
        let auth: Vec<_> = ok
            .auth_events()
            .iter()
            .map(|id| {
                if fx.get(id).is(MEMBER, BOB) {
                    foreign_join.event_id().to_owned()
                } else {
                    id.clone()
                }
            })
            .collect();
        let prev = fx.last.clone();
        let bad = fx.build_with(BOB, "m.room.message", None, json!({}), prev, auth);
        assert_reason(fx.check_against_auth_events(&bad), "belongs to room");
    }
}

// ---- Rule 4: m.federate ----------------------------------------------------------------------

#[test]
fn rule_4_rejected_when_room_is_not_federated() {
    for v in RoomVersion::ALL {
        let content = json!({"creator": ALICE, "room_version": v.as_str(), "m.federate": false});
        let mut fx = Fixture::with_create_content(v, ALICE, content);
        fx.join(ALICE);
        set_join_rule(&mut fx, "public");
        let local = fx.build(
            "@dave:a",
            MEMBER,
            Some("@dave:a"),
            json!({"membership": "join"}),
        );
        fx.assert_allowed(&local);
        let remote = fx.build(BOB, MEMBER, Some(BOB), json!({"membership": "join"}));
        fx.assert_rejected(&remote, "not federated");
    }
}

// ---- Rule 5: m.room.member -------------------------------------------------------------------

#[test]
fn rule_5_1_member_rejected_without_membership_or_state_key() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "join"}));
        fx.assert_allowed(&ok);
        let bad = fx.build(CAROL, MEMBER, Some(CAROL), json!({"displayname": "c"}));
        fx.assert_rejected(&bad, "no membership");
        let bad = fx.build(CAROL, MEMBER, None, json!({"membership": "join"}));
        fx.assert_rejected(&bad, "no state_key");
    }
}

#[test]
fn rule_5_2_join_rejected_when_not_signed_by_authorising_server() {
    for v in RoomVersion::ALL
        .into_iter()
        .filter(|v| v.supports_restricted_join())
    {
        let mut fx = room(v);
        set_join_rule(&mut fx, "restricted");
        let content = json!({"membership": "join", "join_authorised_via_users_server": ALICE});
        let unsigned = fx.build(CAROL, MEMBER, Some(CAROL), content);
        fx.assert_rejected(&unsigned, "not signed by the authorising server a");
        let signed = cosign(v, &unsigned, "a");
        fx.assert_allowed(&signed);
    }
}

#[test]
fn rule_5_3_1_creator_first_join_allowed_only_after_create() {
    for v in RoomVersion::ALL {
        let mut fx = Fixture::new(v, ALICE);
        let first = fx.build(ALICE, MEMBER, Some(ALICE), json!({"membership": "join"}));
        fx.assert_allowed(&first);
        // Someone else cannot use the shortcut: no join rules means invite-only.
        let other = fx.build(
            "@dave:a",
            MEMBER,
            Some("@dave:a"),
            json!({"membership": "join"}),
        );
        fx.assert_rejected(&other, "not invited");
    }
}

#[test]
fn rule_5_3_1_v10_uses_creator_field_v11_uses_sender() {
    for v in [RoomVersion::V10, RoomVersion::V11] {
        let content = json!({"creator": "@zed:a", "room_version": v.as_str()});
        let mut fx = Fixture::with_create_content(v, ALICE, content);
        let alice = fx.build(ALICE, MEMBER, Some(ALICE), json!({"membership": "join"}));
        let zed = fx.build(
            "@zed:a",
            MEMBER,
            Some("@zed:a"),
            json!({"membership": "join"}),
        );
        if v == RoomVersion::V10 {
            fx.assert_allowed(&zed);
            fx.assert_rejected(&alice, "not invited");
        } else {
            fx.assert_allowed(&alice);
            fx.assert_rejected(&zed, "not invited");
        }
    }
}

#[test]
fn rule_5_3_2_join_rejected_when_sender_is_not_state_key() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "join"}));
        fx.assert_allowed(&ok);
        let bad = fx.build(BOB, MEMBER, Some(CAROL), json!({"membership": "join"}));
        fx.assert_rejected(&bad, "cannot join on behalf of @carol:c");
    }
}

#[test]
fn rule_5_3_3_join_rejected_when_banned() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        fx.member(ALICE, CAROL, "ban");
        let bad = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "join"}));
        fx.assert_rejected(&bad, "is banned");
        fx.member(ALICE, CAROL, "leave"); // unban
        let ok = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "join"}));
        fx.assert_allowed(&ok);
    }
}

#[test]
fn rule_5_3_4_invite_and_knock_rooms_need_an_invite() {
    for v in RoomVersion::ALL {
        for rule in ["invite", "knock"] {
            if rule == "knock" && !v.supports_knocking() {
                continue;
            }
            let mut fx = room(v);
            set_join_rule(&mut fx, rule);
            let bad = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "join"}));
            fx.assert_rejected(
                &bad,
                &format!("join rule is {rule} and @carol:c is not invited"),
            );
            fx.member(ALICE, CAROL, "invite");
            let ok = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "join"}));
            fx.assert_allowed(&ok);
        }
    }
}

#[test]
fn rule_5_3_5_restricted_join() {
    for v in RoomVersion::ALL {
        for rule in ["restricted", "knock_restricted"] {
            let supported = match rule {
                "restricted" => v.supports_restricted_join(),
                _ => v.supports_knock_restricted(),
            };
            if !supported {
                continue;
            }
            let mut fx = room(v);
            fx.power_levels(ALICE, json!({MOD: 50}), json!({"invite": 50}));
            set_join_rule(&mut fx, rule);
            let join = |fx: &mut Fixture, via: Option<&str>| {
                let mut c = json!({"membership": "join"});
                if let Some(via) = via {
                    c["join_authorised_via_users_server"] = json!(via);
                }
                let pdu = fx.build(CAROL, MEMBER, Some(CAROL), c);
                match via {
                    Some(via) => cosign(v, &pdu, via.split_once(':').unwrap().1),
                    None => pdu,
                }
            };
            // 5.3.5.2: no authorising user / not joined / no invite power.
            let e = join(&mut fx, None);
            fx.assert_rejected(&e, "no join_authorised_via_users_server");
            let e = join(&mut fx, Some("@dave:d"));
            fx.assert_rejected(&e, "authorising user @dave:d is not joined");
            let e = join(&mut fx, Some(BOB));
            fx.assert_rejected(
                &e,
                "authorising user @bob:b lacks power to invite: needs 50, has 0",
            );
            // 5.3.5.3: a joined user with invite power.
            let ok = join(&mut fx, Some(MOD));
            fx.assert_allowed(&ok);
            // 5.3.5.1: already invited.
            fx.member(MOD, CAROL, "invite");
            let ok = join(&mut fx, None);
            fx.assert_allowed(&ok);
        }
    }
}

#[test]
fn rule_5_3_6_public_join_allowed() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "join"}));
        fx.assert_allowed(&ok);
    }
}

#[test]
fn rule_5_3_7_join_rejected_for_unknown_join_rule() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        set_join_rule(&mut fx, "private");
        let bad = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "join"}));
        fx.assert_rejected(&bad, "join rule \"private\" does not allow joining");
    }
}

/// Sets up an `m.room.third_party_invite` by alice with token `tok`, signed by the identity
/// server `id.example`; returns the content of a valid invite of carol.
fn third_party_setup(fx: &mut Fixture) -> Value {
    let id_key = key_for("id.example");
    fx.send(
        ALICE,
        THIRD_PARTY_INVITE,
        Some("tok"),
        json!({
            "display_name": "c...@example.org",
            "key_validity_url": "https://id.example/_matrix/identity/v2/pubkey/isvalid",
            "public_key": key_for("other.example").public_key_base64(),
            "public_keys": [{"public_key": id_key.public_key_base64()}],
        }),
    );
    let mut signed = json!({"mxid": CAROL, "token": "tok"});
    sign_json(&mut signed, &id_key).unwrap();
    json!({"membership": "invite", "third_party_invite": {"display_name": "c", "signed": signed}})
}

#[test]
fn rule_5_4_1_third_party_invite() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let content = third_party_setup(&mut fx);
        let ok = fx.build(ALICE, MEMBER, Some(CAROL), content.clone());
        fx.assert_allowed(&ok);
        fx.check_against_auth_events(&ok).unwrap();

        // 5.4.1.2: no signed.
        let mut c = content.clone();
        c["third_party_invite"]
            .as_object_mut()
            .unwrap()
            .remove("signed");
        fx.assert_rejected(
            &fx.clone().build(ALICE, MEMBER, Some(CAROL), c),
            "has no signed object",
        );
        // 5.4.1.3: no token.
        let mut c = content.clone();
        c["third_party_invite"]["signed"]
            .as_object_mut()
            .unwrap()
            .remove("token");
        fx.assert_rejected(
            &fx.clone().build(ALICE, MEMBER, Some(CAROL), c),
            "lacks mxid or token",
        );
        // 5.4.1.4: mxid does not match the state key.
        fx.assert_rejected(
            &fx.clone().build(ALICE, MEMBER, Some(BOB), content.clone()),
            "does not match state_key",
        );
        // 5.4.1.5: no m.room.third_party_invite for the token.
        let mut c = content.clone();
        c["third_party_invite"]["signed"]["token"] = json!("other");
        fx.assert_rejected(
            &fx.clone().build(ALICE, MEMBER, Some(CAROL), c),
            "no m.room.third_party_invite event for token",
        );
        // 5.4.1.6: sender differs from the third-party invite's sender.
        fx.assert_rejected(
            &fx.clone().build(MOD, MEMBER, Some(CAROL), content.clone()),
            "is not the sender of the third-party invite",
        );
        // 5.4.1.7/8: the signature must verify with one of the public keys.
        let mut c = content.clone();
        c["third_party_invite"]["signed"]["mxid"] = json!(CAROL);
        c["third_party_invite"]["signed"]["extra"] = json!("tampered");
        fx.assert_rejected(
            &fx.clone().build(ALICE, MEMBER, Some(CAROL), c),
            "no signature in third_party_invite.signed matches",
        );
        // 5.4.1.1: the target is banned.
        fx.member(ALICE, CAROL, "ban");
        fx.assert_rejected(
            &fx.clone().build(ALICE, MEMBER, Some(CAROL), content),
            "@carol:c is banned",
        );
    }
}

#[test]
fn rule_5_4_2_invite_rejected_when_sender_not_joined() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(BOB, MEMBER, Some(CAROL), json!({"membership": "invite"}));
        fx.assert_allowed(&ok);
        let bad = fx.build(
            "@dave:d",
            MEMBER,
            Some(CAROL),
            json!({"membership": "invite"}),
        );
        fx.assert_rejected(&bad, "@dave:d is not joined");
    }
}

#[test]
fn rule_5_4_3_invite_rejected_when_target_joined_or_banned() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let bad = fx.build(ALICE, MEMBER, Some(BOB), json!({"membership": "invite"}));
        fx.assert_rejected(&bad, "membership is join");
        fx.member(ALICE, CAROL, "ban");
        let bad = fx.build(ALICE, MEMBER, Some(CAROL), json!({"membership": "invite"}));
        fx.assert_rejected(&bad, "membership is ban");
        let ok = fx.build(
            ALICE,
            MEMBER,
            Some("@dave:d"),
            json!({"membership": "invite"}),
        );
        fx.assert_allowed(&ok);
    }
}

#[test]
fn rule_5_4_4_invite_needs_invite_level() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        fx.power_levels(ALICE, json!({MOD: 50}), json!({"invite": 50}));
        let ok = fx.build(MOD, MEMBER, Some(CAROL), json!({"membership": "invite"}));
        fx.assert_allowed(&ok);
        let bad = fx.build(BOB, MEMBER, Some(CAROL), json!({"membership": "invite"}));
        fx.assert_rejected(&bad, "sender lacks power to invite: needs 50, has 0");
    }
}

#[test]
fn rule_5_5_1_leave_self() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(BOB, MEMBER, Some(BOB), json!({"membership": "leave"}));
        fx.assert_allowed(&ok);
        fx.member(ALICE, CAROL, "invite");
        let reject_invite = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "leave"}));
        fx.assert_allowed(&reject_invite);
        let bad = fx.build(
            "@dave:d",
            MEMBER,
            Some("@dave:d"),
            json!({"membership": "leave"}),
        );
        fx.assert_rejected(&bad, "cannot leave: membership is none");
        fx.member(ALICE, BOB, "ban");
        let bad = fx.build(BOB, MEMBER, Some(BOB), json!({"membership": "leave"}));
        fx.assert_rejected(&bad, "cannot leave: membership is ban");
    }
}

#[test]
fn rule_5_5_2_kick_rejected_when_sender_not_joined() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        fx.member(MOD, MOD, "leave");
        let bad = fx.build(MOD, MEMBER, Some(BOB), json!({"membership": "leave"}));
        fx.assert_rejected(&bad, "@mod:m is not joined");
    }
}

#[test]
fn rule_5_5_3_unban_needs_ban_level() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        fx.power_levels(ALICE, json!({MOD: 50}), json!({"kick": 10, "ban": 60}));
        fx.member(ALICE, CAROL, "ban");
        let bad = fx.build(MOD, MEMBER, Some(CAROL), json!({"membership": "leave"}));
        fx.assert_rejected(&bad, "sender lacks power to unban: needs 60, has 50");
        let ok = fx.build(ALICE, MEMBER, Some(CAROL), json!({"membership": "leave"}));
        fx.assert_allowed(&ok);
    }
}

#[test]
fn rule_5_5_4_kick_allowed_with_kick_level_over_target() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(MOD, MEMBER, Some(BOB), json!({"membership": "leave"}));
        fx.assert_allowed(&ok);
    }
}

#[test]
fn rule_5_5_5_kick_rejected_without_power() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let bad = fx.build(BOB, MEMBER, Some(MOD), json!({"membership": "leave"}));
        fx.assert_rejected(&bad, "sender lacks power to kick: needs 50, has 0");
        fx.power_levels(ALICE, json!({MOD: 50, BOB: 50}), json!({}));
        let bad = fx.build(BOB, MEMBER, Some(MOD), json!({"membership": "leave"}));
        fx.assert_rejected(
            &bad,
            "sender cannot kick @mod:m: target's power 50 is not below sender's 50",
        );
    }
}

#[test]
fn rule_5_6_ban() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        // 5.6.2
        let ok = fx.build(MOD, MEMBER, Some(BOB), json!({"membership": "ban"}));
        fx.assert_allowed(&ok);
        // Banning someone who never joined is fine too.
        let ok = fx.build(MOD, MEMBER, Some("@spam:s"), json!({"membership": "ban"}));
        fx.assert_allowed(&ok);
        // 5.6.3
        let bad = fx.build(BOB, MEMBER, Some(MOD), json!({"membership": "ban"}));
        fx.assert_rejected(&bad, "sender lacks power to ban: needs 50, has 0");
        let bad = fx.build(MOD, MEMBER, Some(ALICE), json!({"membership": "ban"}));
        fx.assert_rejected(&bad, "sender cannot ban @alice:a");
        // 5.6.1
        fx.member(MOD, MOD, "leave");
        let bad = fx.build(MOD, MEMBER, Some(BOB), json!({"membership": "ban"}));
        fx.assert_rejected(&bad, "@mod:m is not joined");
    }
}

#[test]
fn rule_5_7_knock() {
    for v in RoomVersion::ALL
        .into_iter()
        .filter(|v| v.supports_knocking())
    {
        let mut fx = room(v);
        // 5.7.1: public rooms cannot be knocked on.
        let bad = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "knock"}));
        fx.assert_rejected(&bad, "does not allow knocking");
        for rule in ["knock", "knock_restricted"] {
            set_join_rule(&mut fx, rule);
            if rule == "knock_restricted" && !v.supports_knock_restricted() {
                // v7–v9 do not know `knock_restricted`: it allows no knocking.
                let bad = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "knock"}));
                fx.assert_rejected(&bad, "\"knock_restricted\" does not allow knocking");
                continue;
            }
            // 5.7.3
            let ok = fx.build(CAROL, MEMBER, Some(CAROL), json!({"membership": "knock"}));
            fx.assert_allowed(&ok);
            // 5.7.2
            let bad = fx.build(BOB, MEMBER, Some(CAROL), json!({"membership": "knock"}));
            fx.assert_rejected(&bad, "cannot knock on behalf of @carol:c");
            // 5.7.4
            let bad = fx.build(BOB, MEMBER, Some(BOB), json!({"membership": "knock"}));
            fx.assert_rejected(&bad, "cannot knock: membership is join");
        }
    }
}

#[test]
fn rule_5_8_unknown_membership_rejected() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let bad = fx.build(BOB, MEMBER, Some(BOB), json!({"membership": "dance"}));
        fx.assert_rejected(&bad, "unknown membership \"dance\"");
    }
}

// ---- Rules 6–9 -------------------------------------------------------------------------------

#[test]
fn rule_6_non_members_cannot_send() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(BOB, "m.room.message", None, json!({"body": "hi"}));
        fx.assert_allowed(&ok);
        let bad = fx.build(CAROL, "m.room.message", None, json!({"body": "hi"}));
        fx.assert_rejected(
            &bad,
            "sender @carol:c is not joined to the room (membership: none)",
        );
    }
}

#[test]
fn rule_7_third_party_invite_needs_invite_level() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        fx.power_levels(ALICE, json!({MOD: 50}), json!({"invite": 50}));
        let content = json!({"display_name": "x", "public_key": "AAAA"});
        let ok = fx.build(MOD, THIRD_PARTY_INVITE, Some("t1"), content.clone());
        fx.assert_allowed(&ok);
        let bad = fx.build(BOB, THIRD_PARTY_INVITE, Some("t2"), content);
        fx.assert_rejected(
            &bad,
            "sender lacks power to send third-party invites: needs 50, has 0",
        );
    }
}

#[test]
fn rule_8_required_power_level() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(MOD, "m.room.name", Some(""), json!({"name": "n"}));
        fx.assert_allowed(&ok);
        let bad = fx.build(BOB, "m.room.name", Some(""), json!({"name": "n"}));
        fx.assert_rejected(
            &bad,
            "sender lacks power to send m.room.name: needs 50, has 0",
        );
        fx.power_levels(
            ALICE,
            json!({MOD: 50}),
            json!({"events": {"m.room.message": 10}}),
        );
        let bad = fx.build(BOB, "m.room.message", None, json!({}));
        fx.assert_rejected(
            &bad,
            "sender lacks power to send m.room.message: needs 10, has 0",
        );
        // From v3 on, redactions are ordinary events for the auth rules: the redact level is
        // not checked (v1/v2 have rule 11, see `room_versions_tests.rs`).
        fx.power_levels(ALICE, json!({MOD: 50}), json!({"redact": 100}));
        let ok = fx.build(BOB, "m.room.redaction", None, json!({"redacts": "$x"}));
        if !v.redaction_auth_rule() {
            fx.assert_allowed(&ok);
        }
    }
}

#[test]
fn a_member_cannot_set_the_first_power_levels() {
    // Without an m.room.power_levels event, state needs 50 (the spec's default
    // state_default), which only the creator has: nobody else can set the first power
    // levels, or any other state, of such a room.
    for v in RoomVersion::ALL {
        let mut fx = Fixture::new(v, ALICE);
        fx.join(ALICE);
        fx.send(ALICE, JOIN_RULES, Some(""), json!({"join_rule": "public"}));
        fx.join(BOB);
        let content = json!({"users": {BOB: 100}});
        let grab = fx.build(BOB, POWER_LEVELS, Some(""), content.clone());
        fx.assert_rejected(
            &grab,
            "sender lacks power to send m.room.power_levels: needs 50, has 0",
        );
        let topic = fx.build(BOB, "m.room.topic", Some(""), json!({"topic": "mine"}));
        fx.assert_rejected(&topic, "needs 50, has 0");
        let message = fx.build(BOB, "m.room.message", None, json!({"body": "hi"}));
        fx.assert_allowed(&message);
        let first = fx.build(ALICE, POWER_LEVELS, Some(""), json!({"users": {MOD: 50}}));
        fx.assert_allowed(&first);
    }
}

#[test]
fn rule_9_user_state_keys_belong_to_their_user() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        fx.power_levels(ALICE, json!({MOD: 50}), json!({"state_default": 0}));
        let ok = fx.build(BOB, "org.example.status", Some(BOB), json!({}));
        fx.assert_allowed(&ok);
        let bad = fx.build(BOB, "org.example.status", Some(CAROL), json!({}));
        fx.assert_rejected(&bad, "starts with '@' but is not the sender");
    }
}

// ---- Rule 10: m.room.power_levels -------------------------------------------------------------

fn pl(fx: &mut Fixture, sender: &str, users: Value, extra: Value) -> Pdu {
    let content = fx.power_levels_content(users, extra);
    fx.build(sender, POWER_LEVELS, Some(""), content)
}

#[test]
fn rule_10_1_levels_must_be_integers() {
    for v in RoomVersion::ALL
        .into_iter()
        .filter(|v| v.integer_only_power_levels())
    {
        let mut fx = room(v);
        let ok = pl(
            &mut fx,
            ALICE,
            json!({MOD: 50}),
            json!({"ban": 50, "kick": 40}),
        );
        fx.assert_allowed(&ok);
        for field in [
            "users_default",
            "events_default",
            "state_default",
            "ban",
            "redact",
            "kick",
            "invite",
        ] {
            let bad = pl(&mut fx, ALICE, json!({MOD: 50}), json!({field: "50"}));
            fx.assert_rejected(&bad, &format!("power levels {field} must be an integer"));
        }
    }
}

#[test]
fn rule_10_2_events_and_notifications_must_map_to_integers() {
    for v in RoomVersion::ALL
        .into_iter()
        .filter(|v| v.integer_only_power_levels())
    {
        let mut fx = room(v);
        let ok = pl(
            &mut fx,
            ALICE,
            json!({}),
            json!({"events": {"m.room.name": 50}, "notifications": {"room": 20}}),
        );
        fx.assert_allowed(&ok);
        let bad = pl(
            &mut fx,
            ALICE,
            json!({}),
            json!({"events": {"m.room.name": "50"}}),
        );
        fx.assert_rejected(&bad, "events must be an object with integer values");
        let bad = pl(&mut fx, ALICE, json!({}), json!({"notifications": 5}));
        fx.assert_rejected(&bad, "notifications must be an object with integer values");
    }
}

#[test]
fn rule_10_3_users_must_map_user_ids_to_integers() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = pl(&mut fx, ALICE, json!({BOB: 10}), json!({}));
        fx.assert_allowed(&ok);
        let bad = pl(&mut fx, ALICE, json!({"bob": 10}), json!({}));
        fx.assert_rejected(&bad, "users key \"bob\" is not a valid user ID");
        let stringy = pl(&mut fx, ALICE, json!({BOB: "10"}), json!({}));
        if v.integer_only_power_levels() {
            fx.assert_rejected(&stringy, "power level of @bob:b must be an integer");
        } else {
            fx.assert_allowed(&stringy);
        }
        let bad = pl(&mut fx, ALICE, json!({BOB: "ten"}), json!({}));
        fx.assert_rejected(&bad, "power level of @bob:b must be an integer");
        let bad = fx.build(ALICE, POWER_LEVELS, Some(""), json!({"users": [BOB]}));
        fx.assert_rejected(&bad, "users must be an object");
    }
}

#[test]
fn rule_10_4_v12_creators_must_not_be_in_users() {
    let content = json!({"room_version": "12", "additional_creators": [CAROL]});
    let mut fx = Fixture::with_create_content(RoomVersion::V12, ALICE, content);
    fx.join(ALICE);
    let ok = pl(&mut fx, ALICE, json!({BOB: 50}), json!({}));
    fx.assert_allowed(&ok);
    let bad = pl(&mut fx, ALICE, json!({ALICE: 100}), json!({}));
    fx.assert_rejected(&bad, "room creator @alice:a must not be listed");
    let bad = pl(&mut fx, ALICE, json!({CAROL: 100}), json!({}));
    fx.assert_rejected(&bad, "room creator @carol:c must not be listed");
    // Before v12, listing the creator is normal.
    let mut fx = Fixture::new(RoomVersion::V11, ALICE);
    fx.join(ALICE);
    let ok = fx.build(
        ALICE,
        POWER_LEVELS,
        Some(""),
        json!({"users": {ALICE: 100}}),
    );
    fx.assert_allowed(&ok);
}

#[test]
fn rule_10_5_first_power_levels_allowed() {
    for v in RoomVersion::ALL {
        let mut fx = Fixture::new(v, ALICE);
        fx.join(ALICE);
        // No previous power levels: anything well-formed goes, even levels above the sender's.
        let ok = pl(&mut fx, ALICE, json!({BOB: 1000}), json!({"ban": 1000}));
        fx.assert_allowed(&ok);
    }
}

#[test]
fn rule_10_6_top_level_fields() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        // Let mod (50) send power levels at all.
        fx.power_levels(
            ALICE,
            json!({MOD: 50}),
            json!({"state_default": 80, "kick": 50, "events": {POWER_LEVELS: 50}}),
        );
        let ok = pl(
            &mut fx,
            MOD,
            json!({MOD: 50}),
            json!({"state_default": 80, "kick": 40, "events": {POWER_LEVELS: 50}}),
        );
        // mod lowers kick 50 → 40: old and new values are within mod's power.
        fx.assert_allowed(&ok);
        // 10.6.1: current value above sender's power.
        let bad = pl(
            &mut fx,
            MOD,
            json!({MOD: 50}),
            json!({"state_default": 50, "kick": 50, "events": {POWER_LEVELS: 50}}),
        );
        fx.assert_rejected(
            &bad,
            "cannot change state_default: current value 80 is above sender's power 50",
        );
        // 10.6.2: new value above sender's power (adding a field counts).
        let bad = pl(
            &mut fx,
            MOD,
            json!({MOD: 50}),
            json!({"state_default": 80, "kick": 50, "ban": 60, "events": {POWER_LEVELS: 50}}),
        );
        fx.assert_rejected(&bad, "cannot set ban to 60");
    }
}

#[test]
fn rule_10_7_and_10_8_events_entries() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let events = json!({POWER_LEVELS: 50, "m.room.tombstone": 100});
        fx.power_levels(ALICE, json!({MOD: 50}), json!({"events": events}));
        let ok = pl(
            &mut fx,
            MOD,
            json!({MOD: 50}),
            json!({"events": {POWER_LEVELS: 50, "m.room.tombstone": 100, "m.room.topic": 50}}),
        );
        fx.assert_allowed(&ok);
        // 10.7: removing an entry whose current value exceeds the sender's power.
        let bad = pl(
            &mut fx,
            MOD,
            json!({MOD: 50}),
            json!({"events": {POWER_LEVELS: 50}}),
        );
        fx.assert_rejected(
            &bad,
            "cannot change events.m.room.tombstone: current value 100",
        );
        // 10.8: adding an entry above the sender's power.
        let bad = pl(
            &mut fx,
            MOD,
            json!({MOD: 50}),
            json!({"events": {POWER_LEVELS: 50, "m.room.tombstone": 100, "m.room.topic": 51}}),
        );
        fx.assert_rejected(&bad, "cannot set events.m.room.topic to 51");
        // The same applies to notifications from room v6 on.
        let notifications = pl(
            &mut fx,
            MOD,
            json!({MOD: 50}),
            json!({"events": events, "notifications": {"room": 75}}),
        );
        if v.power_levels_check_notifications() {
            fx.assert_rejected(&notifications, "cannot set notifications.room to 75");
        } else {
            fx.assert_allowed(&notifications);
        }
    }
}

#[test]
fn rule_10_9_and_10_10_users_entries() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let events = json!({POWER_LEVELS: 50});
        fx.power_levels(
            ALICE,
            json!({MOD: 50, "@mod2:m": 50, BOB: 10}),
            json!({"events": events}),
        );
        // Demoting yourself and promoting others up to your own level are fine.
        let ok = pl(
            &mut fx,
            MOD,
            json!({MOD: 20, "@mod2:m": 50, BOB: 50}),
            json!({"events": events}),
        );
        fx.assert_allowed(&ok);
        // 10.9: an admin demotes a mod, but a mod cannot demote an equal.
        let bad = pl(
            &mut fx,
            MOD,
            json!({MOD: 50, "@mod2:m": 0, BOB: 10}),
            json!({"events": events}),
        );
        fx.assert_rejected(&bad, "cannot change the power level of @mod2:m: current level 50 is not below sender's power 50");
        // 10.10: granting more than you have.
        let bad = pl(
            &mut fx,
            MOD,
            json!({MOD: 50, "@mod2:m": 50, BOB: 51}),
            json!({"events": events}),
        );
        fx.assert_rejected(&bad, "cannot give @bob:b power level 51");
    }
}

#[test]
fn rule_11_other_events_allowed() {
    for v in RoomVersion::ALL {
        let mut fx = room(v);
        let ok = fx.build(BOB, "org.example.custom", None, json!({"anything": [1, 2]}));
        fx.assert_allowed(&ok);
    }
}

// ---- Creators' power (v12) and auth events selection ------------------------------------------

#[test]
fn v12_creators_have_infinite_power_and_cannot_be_kicked() {
    let content = json!({"room_version": "12", "additional_creators": [CAROL]});
    let mut fx = Fixture::with_create_content(RoomVersion::V12, ALICE, content);
    fx.join(ALICE);
    fx.power_levels(ALICE, json!({MOD: 100}), json!({"kick": 100, "ban": 100}));
    set_join_rule(&mut fx, "public");
    fx.join(MOD);
    fx.join(CAROL);
    // A user at 100 cannot kick a creator; creators cannot kick each other either.
    let bad = fx.build(MOD, MEMBER, Some(ALICE), json!({"membership": "leave"}));
    fx.assert_rejected(
        &bad,
        "target's power infinite (room creator) is not below sender's 100",
    );
    let bad = fx.build(CAROL, MEMBER, Some(ALICE), json!({"membership": "ban"}));
    fx.assert_rejected(&bad, "is not below sender's infinite");
    // A creator can kick anyone with a finite level, and send anything.
    let ok = fx.build(CAROL, MEMBER, Some(MOD), json!({"membership": "ban"}));
    fx.assert_allowed(&ok);
    // A creator may change any user's level (even 100).
    let ok = pl(
        &mut fx,
        CAROL,
        json!({MOD: 0}),
        json!({"kick": 100, "ban": 100}),
    );
    fx.assert_allowed(&ok);
}

#[test]
fn v11_creator_is_not_special_once_power_levels_exist() {
    let mut fx = room(RoomVersion::V11);
    fx.power_levels(ALICE, json!({ALICE: 100, MOD: 100}), json!({}));
    let ok = fx.build(MOD, MEMBER, Some(ALICE), json!({"membership": "leave"}));
    fx.assert_rejected(&ok, "target's power 100 is not below sender's 100");
    fx.power_levels(ALICE, json!({ALICE: 10, MOD: 100}), json!({}));
    let ok = fx.build(MOD, MEMBER, Some(ALICE), json!({"membership": "ban"}));
    fx.assert_allowed(&ok);
}

#[test]
fn auth_events_selection() {
    let sender = <&ruma::UserId>::try_from(BOB).unwrap();
    let keys = |v, t, sk: Option<&str>, c: Value| -> Vec<(String, String)> {
        auth_types_for_event(v, t, sender, sk, c.as_object().unwrap())
    };
    let k = |t: &str, sk: &str| (t.to_owned(), sk.to_owned());
    assert!(keys(RoomVersion::V12, CREATE, Some(""), json!({})).is_empty());
    assert_eq!(
        keys(RoomVersion::V11, "m.room.message", None, json!({})),
        vec![k(CREATE, ""), k(MEMBER, BOB), k(POWER_LEVELS, "")]
    );
    assert_eq!(
        keys(RoomVersion::V12, "m.room.message", None, json!({})),
        vec![k(MEMBER, BOB), k(POWER_LEVELS, "")]
    );
    assert_eq!(
        keys(
            RoomVersion::V12,
            MEMBER,
            Some(CAROL),
            json!({"membership": "invite",
            "third_party_invite": {"signed": {"token": "tok"}}})
        ),
        vec![
            k(JOIN_RULES, ""),
            k(MEMBER, BOB),
            k(MEMBER, CAROL),
            k(POWER_LEVELS, ""),
            k(THIRD_PARTY_INVITE, "tok")
        ]
    );
    assert_eq!(
        keys(
            RoomVersion::V12,
            MEMBER,
            Some(BOB),
            json!({"membership": "join",
            "join_authorised_via_users_server": MOD})
        ),
        vec![
            k(JOIN_RULES, ""),
            k(MEMBER, BOB),
            k(MEMBER, MOD),
            k(POWER_LEVELS, "")
        ]
    );
    assert_eq!(
        keys(
            RoomVersion::V10,
            MEMBER,
            Some(CAROL),
            json!({"membership": "ban"})
        ),
        vec![
            k(CREATE, ""),
            k(MEMBER, BOB),
            k(MEMBER, CAROL),
            k(POWER_LEVELS, "")
        ]
    );
    assert_eq!(
        keys(
            RoomVersion::V12,
            MEMBER,
            Some(BOB),
            json!({"membership": "knock"})
        ),
        vec![k(JOIN_RULES, ""), k(MEMBER, BOB), k(POWER_LEVELS, "")]
    );
}
