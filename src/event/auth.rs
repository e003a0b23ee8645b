//! The authorisation rules of room versions 3 to 12, and the auth events selection.
//!
//! Rule numbers in comments and test names follow the room v12 list (`content/rooms/v12.md`).
//! Rooms v3–v9 differ from v10 in: the `m.room.aliases` rule (v3–v5), `notifications` in the
//! power levels rule (v6+), knocking (v7+), restricted joins (v8+), `knock_restricted` (v10+) and
//! power levels that may be strings (v3–v9) or floats (v3–v5) instead of integers.
//! Room v10/v11 differ from v12 in: rule 1.2 (room ID domain must match the sender's domain), rule 1.4
//! (v10: `creator` required; v12: `additional_creators` validated), rule 2 (v12 only), rule 3.2/3.4
//! (v10/v11 require `m.room.create` among the auth events, v12 forbids it), rule 5.3.1 (v10:
//! `content.creator`, v11+: create `sender`), rule 10.4 (v12 only) and creators' power
//! (v12: infinite).

use std::collections::BTreeSet;

use ruma::UserId;
use serde_json::{Map, Value};

use super::auth_power_levels::check_power_levels;
use super::hashes::room_id_from_create_event_id;
use super::power_levels::{Power, RoomPowers};
use super::types::{CREATE, JOIN_RULES, MEMBER, POWER_LEVELS, REDACTION, THIRD_PARTY_INVITE};

/// `m.room.aliases`, which has its own auth rule in room versions 1–5.
const ALIASES: &str = "m.room.aliases";
use super::{EventError, Pdu, Result, RoomVersion, StateKey};

fn deny<T>(reason: impl Into<String>) -> Result<T> {
    Err(EventError::Unauthorized(reason.into()))
}

/// The auth events selection (server-server API, "Auth events selection"): the state keys whose
/// current events must be listed in `auth_events` of an event with these properties.
///
/// Returned sorted and without duplicates. `m.room.create` is included for v10/v11 and excluded
/// for v12; an `m.room.create` event itself needs no auth events.
pub fn auth_types_for_event(
    version: RoomVersion,
    event_type: &str,
    sender: &UserId,
    state_key: Option<&str>,
    content: &Map<String, Value>,
) -> Vec<StateKey> {
    let key = |t: &str, sk: &str| (t.to_owned(), sk.to_owned());
    let mut out = BTreeSet::new();
    if event_type == CREATE {
        return Vec::new();
    }
    if version.create_event_in_auth_events() {
        out.insert(key(CREATE, ""));
    }
    out.insert(key(POWER_LEVELS, ""));
    out.insert(key(MEMBER, sender.as_str()));
    if event_type == MEMBER {
        if let Some(target) = state_key {
            out.insert(key(MEMBER, target));
        }
        let membership = content.get("membership").and_then(Value::as_str);
        if matches!(membership, Some("join" | "invite" | "knock")) {
            out.insert(key(JOIN_RULES, ""));
        }
        if membership == Some("invite")
            && let Some(token) = content
                .get("third_party_invite")
                .and_then(|t| t.get("signed"))
                .and_then(|s| s.get("token"))
                .and_then(Value::as_str)
        {
            out.insert(key(THIRD_PARTY_INVITE, token));
        }
        if version.supports_restricted_join()
            && membership == Some("join")
            && let Some(via) = content
                .get("join_authorised_via_users_server")
                .and_then(Value::as_str)
        {
            out.insert(key(MEMBER, via));
        }
    }
    out.into_iter().collect()
}

/// [`auth_types_for_event`] for an existing PDU.
pub fn auth_types_for_pdu(version: RoomVersion, event: &Pdu) -> Vec<StateKey> {
    auth_types_for_event(
        version,
        event.event_type(),
        event.sender(),
        event.state_key(),
        event.content(),
    )
}

/// Rule 3 (v12 numbering; rule 2 in v10/v11): checks on the event's `auth_events` themselves.
///
/// `auth_events` must be exactly the events listed in `event.auth_events()`.
pub fn check_auth_events(version: RoomVersion, event: &Pdu, auth_events: &[&Pdu]) -> Result<()> {
    for id in event.auth_events() {
        if !auth_events.iter().any(|e| e.event_id() == id) {
            return Err(EventError::MissingEvent(id.to_string()));
        }
    }
    let mut keys = Vec::with_capacity(auth_events.len());
    for ae in auth_events {
        if !event.auth_events().iter().any(|id| id == ae.event_id()) {
            return Err(EventError::invalid(format!(
                "supplied auth event {} is not listed in the event's auth_events",
                ae.event_id()
            )));
        }
        match ae.state_map_key() {
            Some(k) => keys.push((k, *ae)),
            None => return deny(format!("auth event {} is not a state event", ae.event_id())),
        }
    }
    // 3.1 duplicates
    let mut seen = BTreeSet::new();
    for ((t, sk), _) in &keys {
        if !seen.insert((t.clone(), sk.clone())) {
            return deny(format!("duplicate auth events for ({t}, {sk:?})"));
        }
    }
    // 3.2 selection
    let expected: BTreeSet<StateKey> = auth_types_for_pdu(version, event).into_iter().collect();
    for ((t, sk), ae) in &keys {
        if !expected.contains(&(t.clone(), sk.clone())) {
            return deny(format!(
                "auth event {} ({t}, {sk:?}) is not allowed by the auth events selection",
                ae.event_id()
            ));
        }
    }
    // 3.3 rejected auth events
    if let Some((_, ae)) = keys.iter().find(|(_, ae)| ae.rejected()) {
        return deny(format!("auth event {} was rejected", ae.event_id()));
    }
    // v10/v11 rule 2.4: the create event must be among the auth events.
    if version.create_event_in_auth_events() && !seen.contains(&(CREATE.to_owned(), String::new()))
    {
        return deny("no m.room.create event among the auth events");
    }
    // 3.5 room IDs
    for (_, ae) in &keys {
        if ae.room_id() != event.room_id() {
            return deny(format!(
                "auth event {} belongs to room {}, not {}",
                ae.event_id(),
                ae.room_id().map_or("(none)", |r| r.as_str()),
                event.room_id().map_or("(none)", |r| r.as_str()),
            ));
        }
    }
    Ok(())
}

/// Authorise an event against its own auth events (check 4 of "Checks performed on receipt of a
/// PDU"): rule 1, rule 2 (v12), rule 3 and then all state-dependent rules using the auth events
/// as the state.
///
/// `create_event` is required for room v12 (where the create event is not an auth event and is
/// identified by the room ID); for v10/v11 it is taken from `auth_events` and may be `None`.
pub fn check_event_auth(
    version: RoomVersion,
    event: &Pdu,
    auth_events: &[&Pdu],
    create_event: Option<&Pdu>,
) -> Result<()> {
    if event.event_type() == CREATE {
        return auth_check(version, event, |_, _| None);
    }
    if !version.create_event_in_auth_events() {
        let create = create_event.ok_or_else(|| EventError::MissingEvent(CREATE.to_owned()))?;
        check_room_id_matches_create(event, create)?;
    }
    check_auth_events(version, event, auth_events)?;
    auth_check(version, event, |t, sk| {
        auth_events
            .iter()
            .copied()
            .find(|e| e.is(t, sk))
            .or_else(|| {
                if t == CREATE && sk.is_empty() && !version.create_event_in_auth_events() {
                    create_event
                } else {
                    None
                }
            })
    })
}

/// v12 rule 2: the room ID must be the create event's ID with sigil `!`, and the create event
/// must not be rejected.
fn check_room_id_matches_create(event: &Pdu, create: &Pdu) -> Result<()> {
    if !create.is(CREATE, "") {
        return deny(format!(
            "{} is not an m.room.create event",
            create.event_id()
        ));
    }
    let expected = room_id_from_create_event_id(create.event_id());
    if event.room_id() != Some(&*expected) {
        return deny(format!(
            "room ID {} is not the ID of the room's create event ({expected})",
            event.room_id().map_or("(none)", |r| r.as_str())
        ));
    }
    if create.rejected() {
        return deny(format!(
            "the room's create event {} was rejected",
            create.event_id()
        ));
    }
    Ok(())
}

fn membership_name(m: Option<&str>) -> &str {
    m.unwrap_or("none")
}

/// Authorise `event` against a room state (rules 1, 2 and 4–11; rule 3 concerns the auth events
/// themselves, see [`check_auth_events`]).
///
/// `state(event_type, state_key)` returns the current state event for that key, if any. It is
/// consulted for `m.room.create`, `m.room.power_levels`, `m.room.join_rules`, members and
/// `m.room.third_party_invite`.
///
/// Signature *presence* is checked here (the sender's server, and the authorising server of a
/// restricted join, rule 5.2); cryptographic validity is the job of
/// [`super::signing::verify_event`], which is run on receipt before authorisation.
pub fn auth_check<'a, F>(version: RoomVersion, event: &Pdu, state: F) -> Result<()>
where
    F: Fn(&str, &str) -> Option<&'a Pdu>,
{
    let sender = event.sender();
    let is_third_party_invite = event.event_type() == MEMBER
        && event.membership() == Some("invite")
        && event.content().contains_key("third_party_invite");
    if !is_third_party_invite && !event.has_signature_from(sender.server_name().as_str()) {
        return deny(format!(
            "event is not signed by the sender's server {}",
            sender.server_name()
        ));
    }

    // Rule 1.
    if event.event_type() == CREATE {
        return check_create(version, event);
    }

    let Some(create) = state(CREATE, "") else {
        return deny("no m.room.create event in the room state");
    };
    // Rule 2 (v12).
    if version.room_id_is_create_event_hash() {
        check_room_id_matches_create(event, create)?;
    }
    // Rule 4.
    if create.content().get("m.federate") == Some(&Value::Bool(false))
        && sender.server_name() != create.sender().server_name()
    {
        return deny(format!(
            "room is not federated (m.federate is false) and sender's server {} is not the creator's server {}",
            sender.server_name(),
            create.sender().server_name()
        ));
    }

    // Rule 4 of room versions 1–5: `m.room.aliases`.
    if version.has_aliases_auth_rule() && event.event_type() == ALIASES {
        return match event.state_key() {
            None => deny("m.room.aliases event has no state_key"),
            Some(sk) if sk == sender.server_name().as_str() => Ok(()),
            Some(sk) => deny(format!(
                "m.room.aliases state_key {sk:?} is not the sender's server {}",
                sender.server_name()
            )),
        };
    }

    let power_levels_event = state(POWER_LEVELS, "");
    let powers = RoomPowers::new(version, create, power_levels_event)
        .map_err(|e| EventError::Unauthorized(format!("current power levels are invalid: {e}")))?;
    let membership_of = |user: &str| state(MEMBER, user).and_then(Pdu::membership);

    // Rule 5.
    if event.event_type() == MEMBER {
        return check_member(version, event, &state, create, &powers);
    }

    // Rule 6.
    let sender_membership = membership_of(sender.as_str());
    if sender_membership != Some("join") {
        return deny(format!(
            "sender {sender} is not joined to the room (membership: {})",
            membership_name(sender_membership)
        ));
    }

    let sender_power = powers.user_power(sender);
    // Rule 7.
    if event.event_type() == THIRD_PARTY_INVITE {
        let needed = powers.invite_level();
        if sender_power.at_least(needed) {
            return Ok(());
        }
        return deny(format!(
            "sender lacks power to send third-party invites: needs {needed}, has {sender_power}"
        ));
    }

    // Rule 8.
    let needed = powers.required_level(event.event_type(), event.is_state());
    if !sender_power.at_least(needed) {
        return deny(format!(
            "sender lacks power to send {}: needs {needed}, has {sender_power}",
            event.event_type()
        ));
    }

    // Rule 9.
    if let Some(sk) = event.state_key()
        && sk.starts_with('@')
        && sk != sender.as_str()
    {
        return deny(format!(
            "state key {sk:?} starts with '@' but is not the sender"
        ));
    }

    // Rule 10.
    if event.event_type() == POWER_LEVELS {
        return check_power_levels(version, event, power_levels_event, &powers);
    }

    // Rule 11 of room versions 1 and 2: redactions.
    if version.redaction_auth_rule() && event.event_type() == REDACTION {
        if sender_power.at_least(powers.redact_level()) {
            return Ok(());
        }
        let target_server = event
            .redacts(version)
            .and_then(|id| ruma::EventId::parse(id).ok())
            .and_then(|id| id.server_name().map(ToOwned::to_owned));
        let own_server = event.event_id().server_name();
        if target_server.is_some() && target_server.as_deref() == own_server {
            return Ok(());
        }
        return deny(format!(
            "sender lacks power to redact events of other servers: needs {}, has {sender_power}",
            powers.redact_level()
        ));
    }

    // Rule 11.
    Ok(())
}

/// Rule 1: `m.room.create`.
fn check_create(version: RoomVersion, event: &Pdu) -> Result<()> {
    // 1.1
    if !event.prev_events().is_empty() {
        return deny("m.room.create must not have prev_events");
    }
    // 1.2
    if version.room_id_is_create_event_hash() {
        if let Some(room_id) = event.room_id() {
            return deny(format!(
                "m.room.create must not have a room_id in room version {version} (has {room_id})"
            ));
        }
    } else {
        let Some(room_id) = event.room_id() else {
            return deny("m.room.create has no room_id");
        };
        if room_id.server_name() != Some(event.sender().server_name()) {
            return deny(format!(
                "room ID {room_id} does not have the sender's server name {}",
                event.sender().server_name()
            ));
        }
    }
    // 1.3
    if let Some(rv) = event.content().get("room_version") {
        match rv.as_str() {
            Some(s) if RoomVersion::is_recognised(s) => {}
            _ => return deny(format!("unrecognised room_version {rv}")),
        }
    }
    // 1.4 (v10: creator required; v12: additional_creators validated)
    if version.create_requires_creator_field() && !event.content().contains_key("creator") {
        return deny("m.room.create content has no creator");
    }
    if version.supports_additional_creators()
        && let Some(extra) = event.content().get("additional_creators")
    {
        let Some(list) = extra.as_array() else {
            return deny("additional_creators must be an array of user IDs");
        };
        for item in list {
            match item.as_str().map(UserId::parse) {
                Some(Ok(_)) => {}
                _ => {
                    return deny(format!(
                        "additional_creators entry {item} is not a valid user ID"
                    ));
                }
            }
        }
    }
    // 1.5
    Ok(())
}

/// Rule 5: `m.room.member`.
fn check_member<'a, F>(
    version: RoomVersion,
    event: &Pdu,
    state: &F,
    create: &Pdu,
    powers: &RoomPowers,
) -> Result<()>
where
    F: Fn(&str, &str) -> Option<&'a Pdu>,
{
    let membership_of = |user: &str| state(MEMBER, user).and_then(Pdu::membership);
    // 5.1
    let Some(target_str) = event.state_key() else {
        return deny("m.room.member event has no state_key");
    };
    let Some(membership) = event.membership() else {
        return deny("m.room.member event has no membership in content");
    };
    let Ok(target) = UserId::parse(target_str) else {
        return deny(format!(
            "m.room.member state_key {target_str:?} is not a valid user ID"
        ));
    };
    // 5.2 (v8+)
    let authorised_via = match event.content().get("join_authorised_via_users_server") {
        None => None,
        Some(_) if !version.supports_restricted_join() => None,
        Some(v) => {
            let Some(user) = v.as_str().and_then(|s| UserId::parse(s).ok()) else {
                return deny(format!(
                    "join_authorised_via_users_server {v} is not a valid user ID"
                ));
            };
            if !event.has_signature_from(user.server_name().as_str()) {
                return deny(format!(
                    "event is not signed by the authorising server {}",
                    user.server_name()
                ));
            }
            Some(user)
        }
    };

    let sender = event.sender();
    let sender_membership = membership_of(sender.as_str());
    let target_membership = membership_of(target.as_str());
    // Synapse treats a room without m.room.join_rules as invite-only.
    let join_rule = state(JOIN_RULES, "")
        .and_then(|e| e.content_str("join_rule"))
        .unwrap_or("invite");
    let sender_power = powers.user_power(sender);
    let target_power = powers.user_power(&target);
    let not_joined = || {
        deny(format!(
            "sender {sender} is not joined to the room (membership: {})",
            membership_name(sender_membership)
        ))
    };

    match membership {
        // 5.3
        "join" => {
            // 5.3.1
            let creator = if version.create_requires_creator_field() {
                create.content_str("creator")
            } else {
                Some(create.sender().as_str())
            };
            if event.prev_events().len() == 1
                && event.prev_events()[0] == create.event_id()
                && creator == Some(target.as_str())
            {
                return Ok(());
            }
            // 5.3.2
            if sender != &*target {
                return deny(format!("{sender} cannot join on behalf of {target}"));
            }
            // 5.3.3
            if sender_membership == Some("ban") {
                return deny(format!("{sender} is banned from the room"));
            }
            match known_join_rule(version, join_rule) {
                // 5.3.4
                "invite" | "knock" => {
                    if matches!(target_membership, Some("invite" | "join")) {
                        Ok(())
                    } else {
                        deny(format!(
                            "join rule is {join_rule} and {target} is not invited (membership: {})",
                            membership_name(target_membership)
                        ))
                    }
                }
                // 5.3.5
                "restricted" | "knock_restricted" => {
                    if matches!(target_membership, Some("invite" | "join")) {
                        return Ok(());
                    }
                    let Some(via) = authorised_via else {
                        return deny(format!(
                            "join rule is {join_rule} and no join_authorised_via_users_server was given"
                        ));
                    };
                    let via_membership = membership_of(via.as_str());
                    if via_membership != Some("join") {
                        return deny(format!(
                            "authorising user {via} is not joined to the room (membership: {})",
                            membership_name(via_membership)
                        ));
                    }
                    let via_power = powers.user_power(&via);
                    if !via_power.at_least(powers.invite_level()) {
                        return deny(format!(
                            "authorising user {via} lacks power to invite: needs {}, has {via_power}",
                            powers.invite_level()
                        ));
                    }
                    Ok(())
                }
                // 5.3.6
                "public" => Ok(()),
                // 5.3.7
                _ => deny(format!(
                    "join rule {join_rule:?} does not allow joining in room version {version}"
                )),
            }
        }
        // 5.4
        "invite" => {
            // 5.4.1
            if let Some(tpi) = event.content().get("third_party_invite") {
                if target_membership == Some("ban") {
                    return deny(format!("{target} is banned from the room"));
                }
                let Some(signed) = tpi.get("signed").and_then(Value::as_object) else {
                    return deny("third_party_invite has no signed object");
                };
                let (Some(mxid), Some(token)) = (
                    signed.get("mxid").and_then(Value::as_str),
                    signed.get("token").and_then(Value::as_str),
                ) else {
                    return deny("third_party_invite.signed lacks mxid or token");
                };
                if mxid != target.as_str() {
                    return deny(format!(
                        "third_party_invite mxid {mxid} does not match state_key {target}"
                    ));
                }
                let Some(invite_event) = state(THIRD_PARTY_INVITE, token) else {
                    return deny(format!(
                        "no m.room.third_party_invite event for token {token:?}"
                    ));
                };
                if invite_event.sender() != sender {
                    return deny(format!(
                        "sender {sender} is not the sender of the third-party invite ({})",
                        invite_event.sender()
                    ));
                }
                if third_party_signature_matches(signed, invite_event) {
                    return Ok(());
                }
                return deny(
                    "no signature in third_party_invite.signed matches a public key of the third-party invite",
                );
            }
            // 5.4.2
            if sender_membership != Some("join") {
                return not_joined();
            }
            // 5.4.3
            if let Some(m @ ("join" | "ban")) = target_membership {
                return deny(format!("cannot invite {target}: membership is {m}"));
            }
            // 5.4.4 / 5.4.5
            if sender_power.at_least(powers.invite_level()) {
                Ok(())
            } else {
                deny(format!(
                    "sender lacks power to invite: needs {}, has {sender_power}",
                    powers.invite_level()
                ))
            }
        }
        // 5.5
        "leave" => {
            // 5.5.1
            if sender == &*target {
                let may_leave = match sender_membership {
                    Some("invite" | "join") => true,
                    Some("knock") => version.supports_knocking(),
                    _ => false,
                };
                return if may_leave {
                    Ok(())
                } else {
                    deny(format!(
                        "{sender} cannot leave: membership is {}",
                        membership_name(sender_membership)
                    ))
                };
            }
            // 5.5.2
            if sender_membership != Some("join") {
                return not_joined();
            }
            // 5.5.3
            if target_membership == Some("ban") && !sender_power.at_least(powers.ban_level()) {
                return deny(format!(
                    "sender lacks power to unban: needs {}, has {sender_power}",
                    powers.ban_level()
                ));
            }
            // 5.5.4 / 5.5.5
            check_power_over_target(
                "kick",
                powers.kick_level(),
                sender_power,
                &target,
                target_power,
            )
        }
        // 5.6
        "ban" => {
            if sender_membership != Some("join") {
                return not_joined();
            }
            check_power_over_target(
                "ban",
                powers.ban_level(),
                sender_power,
                &target,
                target_power,
            )
        }
        // 5.7 (v7+)
        "knock" if version.supports_knocking() => {
            if !matches!(
                known_join_rule(version, join_rule),
                "knock" | "knock_restricted"
            ) {
                return deny(format!("join rule {join_rule:?} does not allow knocking"));
            }
            if sender != &*target {
                return deny(format!("{sender} cannot knock on behalf of {target}"));
            }
            match sender_membership {
                Some(m @ ("ban" | "invite" | "join")) => {
                    deny(format!("{sender} cannot knock: membership is {m}"))
                }
                _ => Ok(()),
            }
        }
        // 5.8
        other => deny(format!("unknown membership {other:?}")),
    }
}

/// The join rule as the room version knows it: rules introduced by later versions (`knock` in
/// v7, `restricted` in v8, `knock_restricted` in v10) are unknown before, and so allow nothing.
fn known_join_rule(version: RoomVersion, join_rule: &str) -> &str {
    let known = match join_rule {
        "knock" => version.supports_knocking(),
        "restricted" => version.supports_restricted_join(),
        "knock_restricted" => version.supports_knock_restricted(),
        _ => true,
    };
    if known {
        join_rule
    } else {
        "(unknown in this room version)"
    }
}

fn check_power_over_target(
    action: &str,
    needed: i64,
    sender_power: Power,
    target: &UserId,
    target_power: Power,
) -> Result<()> {
    if !sender_power.at_least(needed) {
        return deny(format!(
            "sender lacks power to {action}: needs {needed}, has {sender_power}"
        ));
    }
    if target_power >= sender_power {
        return deny(format!(
            "sender cannot {action} {target}: target's power {target_power} is not below sender's {sender_power}"
        ));
    }
    Ok(())
}

/// Rule 5.4.1.7: does any signature in `signed` verify with a public key of the
/// `m.room.third_party_invite` event (`public_key`, or any `public_keys[].public_key`)?
fn third_party_signature_matches(signed: &Map<String, Value>, invite_event: &Pdu) -> bool {
    super::third_party::signing_key(signed, invite_event.content()).is_some()
}
