//! State resolution v1 (room version 1, `content/rooms/v1.md` §State resolution).
//!
//! Start from the unconflicted state *R*. For `m.room.power_levels`, then
//! `m.room.join_rules`, then each conflicted `m.room.member` key: sort the conflicting events
//! by ascending depth then descending `sha1(event_id)`, take the first, and apply each
//! following one while it passes the auth rules in *R*, stopping at the first that does not.
//! Every other conflicted key gets the event with the highest depth and lowest
//! `sha1(event_id)` that passes the auth rules in *R*.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{EventId, OwnedEventId};
use sha1::{Digest, Sha1};

use super::auth::auth_check;
use super::state_res::StateMap;
use super::types::{JOIN_RULES, MEMBER, POWER_LEVELS};
use super::{EventError, Pdu, Result, RoomVersion, StateKey};

/// Resolve `state_sets` with the v1 algorithm; `fetch` must return every event they name.
pub fn resolve<'a, F>(version: RoomVersion, state_sets: &[StateMap], fetch: F) -> Result<StateMap>
where
    F: Fn(&EventId) -> Option<&'a Pdu>,
{
    let get = |id: &EventId| fetch(id).ok_or_else(|| EventError::MissingEvent(id.to_string()));
    // Every key with its distinct events; a key is conflicted when the sets disagree on it
    // (a set without the key counts as disagreeing).
    let mut by_key: BTreeMap<&StateKey, BTreeSet<&OwnedEventId>> = BTreeMap::new();
    for set in state_sets {
        for (key, id) in set {
            by_key.entry(key).or_default().insert(id);
        }
    }
    let mut resolved = StateMap::new();
    let mut conflicted: BTreeMap<StateKey, Vec<&'a Pdu>> = BTreeMap::new();
    for (key, ids) in by_key {
        let everywhere = state_sets.iter().all(|set| set.contains_key(key));
        if ids.len() == 1 && everywhere {
            let id = *ids.iter().next().expect("one ID");
            resolved.insert(key.clone(), id.clone());
        } else {
            let events = ids.into_iter().map(|id| get(id)).collect::<Result<_>>()?;
            conflicted.insert(key.clone(), events);
        }
    }

    let order = |events: &mut Vec<&'a Pdu>| {
        events.sort_by(|a, b| {
            a.depth()
                .cmp(&b.depth())
                .then_with(|| sha1_of(b.event_id()).cmp(&sha1_of(a.event_id())))
        });
    };
    for event_type in [POWER_LEVELS, JOIN_RULES, MEMBER] {
        let keys: Vec<StateKey> = conflicted
            .keys()
            .filter(|(t, _)| t == event_type)
            .cloned()
            .collect();
        for key in keys {
            let mut events = conflicted.remove(&key).unwrap_or_default();
            order(&mut events);
            let mut iter = events.into_iter();
            if let Some(first) = iter.next() {
                resolved.insert(key.clone(), first.event_id().to_owned());
            }
            for event in iter {
                if !passes(version, event, &resolved, &get) {
                    break;
                }
                resolved.insert(key.clone(), event.event_id().to_owned());
            }
        }
    }
    for (key, mut events) in conflicted {
        order(&mut events);
        // Highest depth, then lowest sha1: the reverse of the order above.
        if let Some(winner) = events
            .into_iter()
            .rev()
            .find(|e| passes(version, e, &resolved, &get))
        {
            resolved.insert(key, winner.event_id().to_owned());
        }
    }
    Ok(resolved)
}

fn sha1_of(id: &EventId) -> [u8; 20] {
    Sha1::digest(id.as_str().as_bytes()).into()
}

fn passes<'a, G>(version: RoomVersion, event: &Pdu, state: &StateMap, get: &G) -> bool
where
    G: Fn(&EventId) -> Result<&'a Pdu>,
{
    auth_check(version, event, |t, sk| {
        state
            .get(&(t.to_owned(), sk.to_owned()))
            .and_then(|id| get(id).ok())
            .filter(|e| !e.rejected())
    })
    .is_ok()
}
