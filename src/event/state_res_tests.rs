//! State resolution on hand-built forks. Each test explains, following the spec's algorithm,
//! why the expected state is the answer.

use std::collections::{BTreeMap, BTreeSet};

use ruma::OwnedEventId;
use serde_json::json;

use super::state_res::{StateMap, auth_difference, conflicted_subgraph, is_power_event, separate};
use super::test_support::Fixture;
use super::types::{JOIN_RULES, MEMBER, POWER_LEVELS};
use super::{EventError, Pdu, RoomVersion, resolve};

const ALICE: &str = "@alice:a";
const BOB: &str = "@bob:b";
const CAROL: &str = "@carol:c";
const MOD: &str = "@mod:m";

fn key(t: &str, sk: &str) -> (String, String) {
    (t.to_owned(), sk.to_owned())
}

/// alice creates a public room, mod gets 50; mod and bob join.
fn base(v: RoomVersion) -> Fixture {
    let mut fx = Fixture::new(v, ALICE);
    fx.join(ALICE);
    fx.power_levels(ALICE, json!({MOD: 50}), json!({}));
    fx.send(ALICE, JOIN_RULES, Some(""), json!({"join_rule": "public"}));
    fx.join(MOD);
    fx.join(BOB);
    fx
}

/// Resolve the states at the tips of two forks, in both orders (the result must not depend on
/// the order of the state sets).
fn resolve_forks(v: RoomVersion, a: &Fixture, b: &Fixture) -> StateMap {
    let mut events: BTreeMap<OwnedEventId, Pdu> = a.events.clone();
    events.extend(b.events.clone());
    let r1 = resolve(v, &[a.state.clone(), b.state.clone()], |id| events.get(id)).unwrap();
    let r2 = resolve(v, &[b.state.clone(), a.state.clone()], |id| events.get(id)).unwrap();
    assert_eq!(r1, r2, "resolution depends on the order of the state sets");
    if !v.state_res_v1() {
        let sets = [a.state.clone(), b.state.clone()];
        let ids = |id: &ruma::EventId| {
            events
                .get(id)
                .map(Pdu::auth_events)
                .ok_or_else(|| EventError::MissingEvent(id.to_string()))
        };
        assert_eq!(
            auth_difference(&sets, &ids).unwrap(),
            auth_difference_by_definition(&sets, &ids),
            "the auth difference walked once for the unconflicted events"
        );
    }
    r1
}

/// The auth difference as the spec defines it: every state set's full auth chain (its
/// events and their auth chains) walked whole, and what is not in all of them.
fn auth_difference_by_definition<'b>(
    sets: &[StateMap],
    ids: &impl Fn(&ruma::EventId) -> super::Result<&'b [OwnedEventId]>,
) -> BTreeSet<OwnedEventId> {
    let chains: Vec<BTreeSet<OwnedEventId>> = sets
        .iter()
        .map(|set| {
            let mut chain = super::state_res::auth_chain(set.values().cloned(), ids).unwrap();
            chain.extend(set.values().cloned());
            chain
        })
        .collect();
    let union: BTreeSet<&OwnedEventId> = chains.iter().flatten().collect();
    union
        .into_iter()
        .filter(|id| !chains.iter().all(|c| c.contains(*id)))
        .cloned()
        .collect()
}

#[test]
fn admin_demotes_mod_while_mod_bans() {
    for v in RoomVersion::ALL.into_iter().filter(|v| !v.state_res_v1()) {
        let base = base(v);
        let pl1 = base.state[&key(POWER_LEVELS, "")].clone();
        let bob_join = base.state[&key(MEMBER, BOB)].clone();
        let (mut a, mut b) = (base.clone(), base.clone());
        // The mod's ban is even sent first.
        let ban = b.member(MOD, BOB, "ban");
        a.ts += 100;
        let pl2 = a.power_levels(ALICE, json!({MOD: 0}), json!({}));

        // Conflicted: power levels {PL1, PL2} and bob's membership {join, ban}.
        // Auth difference: {PL2, ban}. Power events: PL1, PL2 and the ban; bob's join is in the
        // ban's auth chain and in the full conflicted set, so it joins X too.
        // Reverse topological power order: PL1 (the only one with no in-set auth events), then
        // PL2 (alice has 100 / infinite power) before bob's join (0), then the ban (which needs
        // bob's join). Iterative auth checks: PL1, PL2 pass; bob's join passes (public); the ban
        // is checked against PL2, where mod has 0 < ban level 50, so it is dropped.
        let resolved = resolve_forks(v, &a, &b);
        assert_eq!(resolved[&key(POWER_LEVELS, "")], *pl2.event_id());
        assert_eq!(resolved[&key(MEMBER, BOB)], bob_join);
        assert_ne!(resolved[&key(MEMBER, BOB)], *ban.event_id());
        assert_ne!(resolved[&key(POWER_LEVELS, "")], pl1);
    }
}

#[test]
fn ban_racing_with_join() {
    for v in RoomVersion::ALL.into_iter().filter(|v| !v.state_res_v1()) {
        let base = base(v);
        let (mut a, mut b) = (base.clone(), base.clone());
        b.ts += 100; // the join is even later than the ban; order of ts does not matter here
        let ban = a.member(MOD, CAROL, "ban");
        let join = b.join(CAROL);

        // Conflicted: carol's membership {ban, join}; auth difference adds nothing new.
        // The ban is a power event (sender ≠ target) and is applied first (step 2); the join
        // is a normal event, ordered by mainline and checked in step 4 against the partial
        // state, where carol is banned (rule 5.3.3), so it is dropped.
        let resolved = resolve_forks(v, &a, &b);
        assert_eq!(resolved[&key(MEMBER, CAROL)], *ban.event_id());
        assert_ne!(resolved[&key(MEMBER, CAROL)], *join.event_id());
    }
}

#[test]
fn join_rules_change_to_invite_racing_with_join() {
    for v in RoomVersion::ALL.into_iter().filter(|v| !v.state_res_v1()) {
        let base = base(v);
        let (mut a, mut b) = (base.clone(), base.clone());
        let jr2 = a.send(ALICE, JOIN_RULES, Some(""), json!({"join_rule": "invite"}));
        b.ts += 100;
        let carol_join = b.join(CAROL);
        let dave_join = b.join("@dave:d");

        // Conflicted: join rules {public, invite}, carol's and dave's memberships (present on one
        // side only). The join rules events are power events: public (older) then invite are
        // applied, so the partial state is invite-only. The joins are normal events checked
        // against it in step 4: neither user is invited (rule 5.3.4), so both are dropped.
        let resolved = resolve_forks(v, &a, &b);
        assert_eq!(resolved[&key(JOIN_RULES, "")], *jr2.event_id());
        assert!(
            !resolved.contains_key(&key(MEMBER, CAROL)),
            "{:?}",
            carol_join.event_id()
        );
        assert!(
            !resolved.contains_key(&key(MEMBER, "@dave:d")),
            "{:?}",
            dave_join.event_id()
        );
        // Unconflicted state survives.
        assert_eq!(resolved[&key(MEMBER, BOB)], base.state[&key(MEMBER, BOB)]);
    }
}

#[test]
fn join_racing_with_join_rules_change_is_kept_if_invited() {
    for v in RoomVersion::ALL.into_iter().filter(|v| !v.state_res_v1()) {
        let mut base = base(v);
        base.member(ALICE, CAROL, "invite");
        let (mut a, mut b) = (base.clone(), base.clone());
        let jr2 = a.send(ALICE, JOIN_RULES, Some(""), json!({"join_rule": "invite"}));
        let carol_join = b.join(CAROL);
        // As above, but carol was invited before the fork: the invite is unconflicted and in
        // the partial state (v10/v11 from the unconflicted map; v12 through the join's own auth
        // events, since the partial state starts empty), so her join passes 5.3.4.
        let resolved = resolve_forks(v, &a, &b);
        assert_eq!(resolved[&key(JOIN_RULES, "")], *jr2.event_id());
        assert_eq!(resolved[&key(MEMBER, CAROL)], *carol_join.event_id());
    }
}

#[test]
fn conflicting_power_level_changes_v11_vs_v12() {
    for v in RoomVersion::ALL.into_iter().filter(|v| !v.state_res_v1()) {
        let mut base = base(v);
        // adm is an admin at 100 (alice is 100 in v10/v11 and infinite in v12).
        base.power_levels(ALICE, json!({MOD: 50, "@adm:x": 100}), json!({}));
        base.join("@adm:x");
        let (mut a, mut b) = (base.clone(), base.clone());
        // Fork A (earlier): adm promotes bob to 50.
        let pl_a = a.power_levels(
            "@adm:x",
            json!({MOD: 50, "@adm:x": 100, BOB: 50}),
            json!({}),
        );
        // Fork B (later): alice raises events_default to 10, from the old levels (bob at 0).
        b.ts += 100;
        let pl_b = b.power_levels(
            ALICE,
            json!({MOD: 50, "@adm:x": 100}),
            json!({"events_default": 10}),
        );

        // Both PL events are power events whose only in-set auth event is the old PL.
        // v10/v11: alice and adm both have 100, so origin_server_ts decides: PL_A, then PL_B.
        //   PL_B (by alice, 100) is then checked against PL_A: removing bob's 50 is allowed
        //   (50 < 100), so PL_B is applied last and wins.
        // v12: alice is a creator with infinite power, so PL_B sorts first and PL_A second.
        //   PL_A (by adm, 100) is checked against PL_B: resetting events_default 10 → absent
        //   and adding bob 50 are within 100, so PL_A is applied last and wins.
        let resolved = resolve_forks(v, &a, &b);
        let expected = if v == RoomVersion::V12 {
            pl_a.event_id()
        } else {
            pl_b.event_id()
        };
        assert_eq!(resolved[&key(POWER_LEVELS, "")], *expected, "room v{v}");
    }
}

#[test]
fn creator_demotes_admin_while_admin_kicks() {
    for v in RoomVersion::ALL.into_iter().filter(|v| !v.state_res_v1()) {
        let mut base = base(v);
        base.power_levels(ALICE, json!({MOD: 50, "@adm:x": 90}), json!({}));
        base.join("@adm:x");
        let (mut a, mut b) = (base.clone(), base.clone());
        let kick = a.member("@adm:x", MOD, "leave");
        b.ts += 100;
        let pl = b.power_levels(ALICE, json!({MOD: 50, "@adm:x": 0}), json!({}));
        // The kick and the demotion are both power events. alice (100 / infinite) outranks adm
        // (90), so the demotion is applied first; the kick is then checked against it: adm has 0
        // < kick level 50, so the kick is dropped and mod stays joined.
        let resolved = resolve_forks(v, &a, &b);
        assert_eq!(resolved[&key(POWER_LEVELS, "")], *pl.event_id());
        assert_eq!(resolved[&key(MEMBER, MOD)], base.state[&key(MEMBER, MOD)]);
        assert_ne!(resolved[&key(MEMBER, MOD)], *kick.event_id());
    }
}

#[test]
fn normal_state_conflict_is_ordered_by_mainline_then_timestamp() {
    for v in RoomVersion::ALL.into_iter().filter(|v| !v.state_res_v1()) {
        let base = base(v);
        let (mut a, mut b) = (base.clone(), base.clone());
        let topic_a = a.send(MOD, "m.room.name", Some(""), json!({"name": "A"}));
        b.ts += 100;
        let topic_b = b.send(ALICE, "m.room.name", Some(""), json!({"name": "B"}));
        // Neither is a power event. Both cite the same power levels event, so their mainline
        // positions are equal and origin_server_ts decides: A is applied first, then B, which
        // overwrites it.
        let resolved = resolve_forks(v, &a, &b);
        assert_eq!(resolved[&key("m.room.name", "")], *topic_b.event_id());
        let _ = topic_a;
    }
}

#[test]
fn later_mainline_beats_earlier_timestamp() {
    for v in RoomVersion::ALL.into_iter().filter(|v| !v.state_res_v1()) {
        let base = base(v);
        let (mut a, mut b) = (base.clone(), base.clone());
        // Fork A: a new power levels event, then a name citing it (early timestamps).
        let pl2 = a.power_levels(ALICE, json!({MOD: 50, BOB: 10}), json!({}));
        let name_a = a.send(MOD, "m.room.name", Some(""), json!({"name": "A"}));
        // Fork B: a name citing the old power levels, with a much later timestamp.
        b.ts += 10_000;
        let name_b = b.send(MOD, "m.room.name", Some(""), json!({"name": "B"}));
        // PL2 wins the power levels (only change). Mainline of PL2: [PL2, PL1]. name_a cites PL2
        // (position 0), name_b cites PL1 (position 1); a greater position sorts first, so
        // name_b is applied first and name_a last, despite name_b's later timestamp.
        let resolved = resolve_forks(v, &a, &b);
        assert_eq!(resolved[&key(POWER_LEVELS, "")], *pl2.event_id());
        assert_eq!(resolved[&key("m.room.name", "")], *name_a.event_id());
        let _ = name_b;
    }
}

#[test]
fn trivial_inputs() {
    let fx = base(RoomVersion::V12);
    let get = |id: &ruma::EventId| fx.events.get(id);
    assert!(resolve(RoomVersion::V12, &[], get).unwrap().is_empty());
    assert_eq!(
        resolve(RoomVersion::V12, std::slice::from_ref(&fx.state), get).unwrap(),
        fx.state
    );
    assert_eq!(
        resolve(RoomVersion::V12, &[fx.state.clone(), fx.state.clone()], get).unwrap(),
        fx.state
    );
    let (unconflicted, conflicted) = separate(&[fx.state.clone(), fx.state.clone()]);
    assert_eq!(unconflicted, fx.state);
    assert!(conflicted.is_empty());
}

#[test]
fn missing_events_are_reported() {
    let base = base(RoomVersion::V11);
    let (mut a, b) = (base.clone(), base.clone());
    a.send(ALICE, "m.room.name", Some(""), json!({"name": "x"}));
    let err = resolve(
        RoomVersion::V11,
        &[a.state.clone(), b.state.clone()],
        |id| b.events.get(id),
    );
    assert!(matches!(err, Err(EventError::MissingEvent(_))));
}

#[test]
fn power_event_classification() {
    let mut fx = base(RoomVersion::V12);
    let pl = fx.state_event(POWER_LEVELS, "").unwrap().clone();
    let jr = fx.state_event(JOIN_RULES, "").unwrap().clone();
    let kick = fx.member(MOD, BOB, "leave");
    let self_leave = fx.member(MOD, MOD, "leave");
    let join = fx.join(CAROL);
    assert!(is_power_event(&pl) && is_power_event(&jr) && is_power_event(&kick));
    assert!(!is_power_event(&self_leave) && !is_power_event(&join));
}

/// v12's conflicted state subgraph picks up events on auth paths between conflicted events even
/// when they are in every auth chain (and so not in the auth difference).
#[test]
fn v12_conflicted_state_subgraph() {
    let mut fx = base(RoomVersion::V12);
    let pl1 = fx.state[&key(POWER_LEVELS, "")].clone();
    let pl2 = fx.power_levels(ALICE, json!({MOD: 50, BOB: 1}), json!({}));
    let pl3 = fx.power_levels(ALICE, json!({MOD: 50, BOB: 2}), json!({}));
    // bob's new member event cites PL3 (so PL2 and PL1 are in its auth chain).
    let bob_update = fx.send(
        BOB,
        MEMBER,
        Some(BOB),
        json!({"membership": "join", "displayname": "b"}),
    );
    // S1: PL3. S2: PL1 but with bob's updated member event (which has PL2 in its chain).
    let mut s1 = fx.state.clone();
    s1.insert(key(MEMBER, BOB), bob_update.event_id().to_owned());
    let mut s2 = s1.clone();
    s2.insert(key(POWER_LEVELS, ""), pl1.clone());
    let get = |id: &ruma::EventId| {
        fx.events
            .get(id)
            .ok_or_else(|| EventError::MissingEvent(id.to_string()))
    };
    let (_, conflicted) = separate(&[s1.clone(), s2.clone()]);
    assert_eq!(
        conflicted,
        BTreeSet::from([pl1.clone(), pl3.event_id().to_owned()])
    );
    let ids = |id: &ruma::EventId| get(id).map(Pdu::auth_events);
    let diff = auth_difference(&[s1.clone(), s2.clone()], &ids).unwrap();
    assert!(diff.is_empty(), "PL1..PL3 are in both chains: {diff:?}");
    let sub = conflicted_subgraph(&conflicted, &ids).unwrap();
    assert_eq!(
        sub,
        BTreeSet::from([pl1, pl2.event_id().to_owned(), pl3.event_id().to_owned()])
    );
    // Resolution keeps the newest power levels: PL1, PL2, PL3 are re-applied in order.
    let resolved = resolve(RoomVersion::V12, &[s1, s2], |id| fx.events.get(id)).unwrap();
    assert_eq!(resolved[&key(POWER_LEVELS, "")], *pl3.event_id());
}
