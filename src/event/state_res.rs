//! State resolution v2 (room versions 2 to 11) and its room v12 revision; room version 1
//! goes to [`super::state_res_v1`].
//!
//! Room v12 changes (see `content/rooms/v12.md`): the first iterative auth checks start from an
//! *empty* state map instead of the unconflicted state map, and the full conflicted set also
//! contains the *conflicted state subgraph* (every event on an `auth_events` path between two
//! conflicted state events).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};

use ruma::{EventId, OwnedEventId, UserId};
use serde_json::Value;

use super::auth::{auth_check, auth_types_for_pdu};
use super::hashes::create_event_id_from_room_id;
use super::power_levels::{Power, room_creators};
use super::types::{CREATE, JOIN_RULES, MEMBER, POWER_LEVELS};
use super::{EventError, Pdu, Result, RoomVersion, StateKey};

/// A room state: `(event type, state key)` → event ID.
pub type StateMap<T = OwnedEventId> = BTreeMap<StateKey, T>;

/// Resolve a set of room states (the states after each `prev_event`) into one.
///
/// `fetch` must return every event in the state sets and in their auth chains; a missing event
/// is an [`EventError::MissingEvent`]. Events marked rejected ([`Pdu::set_rejected`]) are not
/// used as auth events during the iterative auth checks.
pub fn resolve<'a, F>(version: RoomVersion, state_sets: &[StateMap], fetch: F) -> Result<StateMap>
where
    F: Fn(&EventId) -> Option<&'a Pdu>,
{
    resolve_with(
        version,
        state_sets,
        |id| fetch(id).map(Pdu::auth_events),
        &fetch,
    )
}

/// [`resolve`] with the auth DAG's edges given apart: `auth_ids` must name the auth events
/// of every event in the state sets and in their auth chains, while `fetch` need return
/// only the events the algorithm reads (the full conflicted set, the auth events and
/// power-levels chains of its events, and the state entries their auth checks use). A
/// caller that keeps the edges of a big room's auth DAG in memory resolves a small conflict
/// without loading thousands of unconflicted events.
pub fn resolve_with<'a, 'b, F, A>(
    version: RoomVersion,
    state_sets: &[StateMap],
    auth_ids: A,
    fetch: F,
) -> Result<StateMap>
where
    F: Fn(&EventId) -> Option<&'a Pdu>,
    A: Fn(&EventId) -> Option<&'b [OwnedEventId]>,
{
    let ids = |id: &EventId| auth_ids(id).ok_or_else(|| EventError::MissingEvent(id.to_string()));
    match state_sets {
        [] => return Ok(StateMap::new()),
        [only] => return Ok(only.clone()),
        _ => {}
    }
    if version.state_res_v1() {
        return super::state_res_v1::resolve(version, state_sets, fetch);
    }
    let (unconflicted, conflicted) = separate(state_sets);
    if conflicted.is_empty() {
        return Ok(unconflicted);
    }
    let full = full_conflicted_set(version, state_sets, &unconflicted, &conflicted, &ids)?;
    resolve_from_full(version, &unconflicted, &full, auth_ids, fetch)
}

/// The full conflicted set: the conflicted state set, the auth difference and, in v12,
/// the conflicted state subgraph. `unconflicted` and `conflicted` are the sets'
/// [`separate`]; `ids` gives an event's auth events.
pub fn full_conflicted_set<'b, I>(
    version: RoomVersion,
    state_sets: &[StateMap],
    unconflicted: &StateMap,
    conflicted: &BTreeSet<OwnedEventId>,
    ids: &I,
) -> Result<BTreeSet<OwnedEventId>>
where
    I: Fn(&EventId) -> Result<&'b [OwnedEventId]>,
{
    let mut full: BTreeSet<OwnedEventId> = conflicted.clone();
    full.extend(auth_difference_given(state_sets, unconflicted, ids)?);
    if version.state_res_v2_1() {
        full.extend(conflicted_subgraph(conflicted, ids)?);
    }
    Ok(full)
}

/// State resolution v2 from its full conflicted set (see [`full_conflicted_set`]), for a
/// caller that computed it to know which events to load; `unconflicted` is the sets'
/// unconflicted state map. Not for room version 1.
pub fn resolve_from_full<'a, 'b, F, A>(
    version: RoomVersion,
    unconflicted: &StateMap,
    full: &BTreeSet<OwnedEventId>,
    auth_ids: A,
    fetch: F,
) -> Result<StateMap>
where
    F: Fn(&EventId) -> Option<&'a Pdu>,
    A: Fn(&EventId) -> Option<&'b [OwnedEventId]>,
{
    if version.state_res_v1() {
        return Err(EventError::invalid(
            "room version 1 resolves state with its own algorithm",
        ));
    }
    let get = |id: &EventId| fetch(id).ok_or_else(|| EventError::MissingEvent(id.to_string()));
    let ids = |id: &EventId| auth_ids(id).ok_or_else(|| EventError::MissingEvent(id.to_string()));

    // Step 1: power events of the full conflicted set plus their auth chains within it.
    let mut power_set = BTreeSet::new();
    for id in full {
        if is_power_event(get(id)?) {
            power_set.insert(id.clone());
            for a in auth_chain(std::iter::once(id.clone()), &ids)? {
                if full.contains(&a) {
                    power_set.insert(a);
                }
            }
        }
    }
    let sorted_power = reverse_topological_power_sort(version, &power_set, &get)?;

    // Step 2: iterative auth checks from the unconflicted map (v10/v11) or empty (v12).
    let initial = if version.state_res_v2_1() {
        StateMap::new()
    } else {
        unconflicted.clone()
    };
    let partial = iterative_auth_checks(version, &sorted_power, initial, &get)?;

    // Step 3: mainline ordering of the remaining events.
    let power_level_id = partial
        .get(&(POWER_LEVELS.to_owned(), String::new()))
        .cloned();
    let mut remaining: Vec<OwnedEventId> = full.difference(&power_set).cloned().collect();
    mainline_sort(power_level_id.as_deref(), &mut remaining, &get)?;

    // Step 4: iterative auth checks on top of the partial state.
    let mut resolved = iterative_auth_checks(version, &remaining, partial, &get)?;

    // Step 5: the unconflicted state map wins.
    resolved.extend(unconflicted.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(resolved)
}

/// Split the state sets into the unconflicted state map and the conflicted state set.
pub fn separate(state_sets: &[StateMap]) -> (StateMap, BTreeSet<OwnedEventId>) {
    let keys: BTreeSet<&StateKey> = state_sets.iter().flat_map(|s| s.keys()).collect();
    let mut unconflicted = StateMap::new();
    let mut conflicted = BTreeSet::new();
    for key in keys {
        let values: Vec<Option<&OwnedEventId>> = state_sets.iter().map(|s| s.get(key)).collect();
        match values[0] {
            Some(first) if values.iter().all(|v| *v == Some(first)) => {
                unconflicted.insert(key.clone(), first.clone());
            }
            _ => conflicted.extend(values.into_iter().flatten().cloned()),
        }
    }
    (unconflicted, conflicted)
}

/// Whether an event is a power event: power levels, join rules, or a kick/ban (a `leave` or
/// `ban` membership whose sender is not the target).
pub fn is_power_event(event: &Pdu) -> bool {
    match (event.event_type(), event.state_key()) {
        (POWER_LEVELS | JOIN_RULES, Some("")) => true,
        (MEMBER, Some(target)) => {
            matches!(event.membership(), Some("leave" | "ban")) && target != event.sender().as_str()
        }
        _ => false,
    }
}

/// The auth chain of the given events (all events reachable through `auth_events`, excluding
/// the starting events unless they are reachable from another one); `ids` gives an event's
/// auth events.
pub fn auth_chain<'b, I>(
    start: impl IntoIterator<Item = OwnedEventId>,
    ids: &I,
) -> Result<BTreeSet<OwnedEventId>>
where
    I: Fn(&EventId) -> Result<&'b [OwnedEventId]>,
{
    let mut chain = BTreeSet::new();
    let mut stack: Vec<OwnedEventId> = Vec::new();
    for id in start {
        stack.extend(ids(&id)?.iter().cloned());
    }
    while let Some(id) = stack.pop() {
        if chain.insert(id.clone()) {
            stack.extend(ids(&id)?.iter().cloned());
        }
    }
    Ok(chain)
}

/// The auth difference: events in some but not all of the state sets' full auth chains.
///
/// As in Synapse, each state set's full auth chain includes the state events themselves.
/// The unconflicted state events, and their auth chains, are in every set's full chain, so
/// they are walked once and only the conflicted events' chains are compared: with `U` the
/// unconflicted events and their chain, and `D_i` set `i`'s conflicted events and their
/// chain, the difference is `(⋃ D_i − ⋂ D_i) − U`.
pub fn auth_difference<'b, I>(state_sets: &[StateMap], ids: &I) -> Result<BTreeSet<OwnedEventId>>
where
    I: Fn(&EventId) -> Result<&'b [OwnedEventId]>,
{
    auth_difference_given(state_sets, &separate(state_sets).0, ids)
}

/// [`auth_difference`] given the sets' unconflicted state map.
fn auth_difference_given<'b, I>(
    state_sets: &[StateMap],
    unconflicted: &StateMap,
    ids: &I,
) -> Result<BTreeSet<OwnedEventId>>
where
    I: Fn(&EventId) -> Result<&'b [OwnedEventId]>,
{
    // In a big room this is thousands of events (every member's join and its chain):
    // borrowed, hashed, never copied.
    let mut common: HashSet<&EventId> = HashSet::new();
    chain_into(
        unconflicted.values().map(|id| &**id),
        ids,
        None,
        &mut common,
    )?;
    // What a common event reaches is common too: each set's own walk stops there.
    let mut chains: Vec<HashSet<&EventId>> = Vec::with_capacity(state_sets.len());
    for set in state_sets {
        let mut chain = HashSet::new();
        let own = set.values().map(|id| &**id);
        chain_into(own, ids, Some(&common), &mut chain)?;
        chains.push(chain);
    }
    let union: BTreeSet<&EventId> = chains.iter().flatten().copied().collect();
    Ok(union
        .into_iter()
        .filter(|id| !chains.iter().all(|c| c.contains(id)))
        .map(ToOwned::to_owned)
        .collect())
}

/// Adds `start` and their auth chains to `chain`, leaving out (and not walking beyond)
/// the events of `skip`.
fn chain_into<'s, 'b: 's, I>(
    start: impl IntoIterator<Item = &'s EventId>,
    ids: &I,
    skip: Option<&HashSet<&'s EventId>>,
    chain: &mut HashSet<&'s EventId>,
) -> Result<()>
where
    I: Fn(&EventId) -> Result<&'b [OwnedEventId]>,
{
    let mut stack: Vec<&'s EventId> = start.into_iter().collect();
    while let Some(id) = stack.pop() {
        if skip.is_some_and(|skip| skip.contains(id)) {
            continue;
        }
        if chain.insert(id) {
            stack.extend(ids(id)?.iter().map(|a| &**a));
        }
    }
    Ok(())
}

/// Room v12: the conflicted state subgraph — every event lying on an `auth_events` path from one
/// conflicted state event to another (endpoints included).
pub fn conflicted_subgraph<'b, I>(
    conflicted: &BTreeSet<OwnedEventId>,
    ids: &I,
) -> Result<BTreeSet<OwnedEventId>>
where
    I: Fn(&EventId) -> Result<&'b [OwnedEventId]>,
{
    // reaches[e]: can a conflicted event be reached from e by following auth_events (≥ 0 steps)?
    let mut reaches: BTreeMap<OwnedEventId, bool> = BTreeMap::new();
    let reachable_from_conflicted = auth_chain(conflicted.iter().cloned(), ids)?;
    // Iterative post-order DFS over the auth DAG below the conflicted events.
    for root in conflicted.iter().chain(reachable_from_conflicted.iter()) {
        let mut stack: Vec<(OwnedEventId, bool)> = vec![(root.clone(), false)];
        while let Some((id, expanded)) = stack.pop() {
            if reaches.contains_key(&id) {
                continue;
            }
            let auth = ids(&id)?;
            if expanded {
                let r = conflicted.contains(&id)
                    || auth
                        .iter()
                        .any(|a| reaches.get(a).copied().unwrap_or(false));
                reaches.insert(id, r);
            } else {
                stack.push((id.clone(), true));
                for a in auth {
                    if !reaches.contains_key(a) {
                        stack.push((a.clone(), false));
                    }
                }
            }
        }
    }
    Ok(conflicted
        .iter()
        .chain(reachable_from_conflicted.iter())
        .filter(|id| reaches.get(*id).copied().unwrap_or(false))
        .cloned()
        .collect())
}

/// The create event of the room `event` belongs to, looked up through its auth events (v10,
/// v11) or its room ID (v12).
fn create_event_for<'a, G>(version: RoomVersion, event: &Pdu, get: &G) -> Result<Option<&'a Pdu>>
where
    G: Fn(&EventId) -> Result<&'a Pdu>,
{
    if event.event_type() == CREATE {
        return Ok(None);
    }
    if version.create_event_in_auth_events() {
        for id in event.auth_events() {
            let ae = get(id)?;
            if ae.is(CREATE, "") {
                return Ok(Some(ae));
            }
        }
        Ok(None)
    } else {
        match event.room_id().and_then(create_event_id_from_room_id) {
            Some(id) => get(&id).map(Some),
            None => Ok(None),
        }
    }
}

/// The power of an event's sender according to the event's own auth events (used by the
/// reverse topological power ordering).
fn sender_power_from_auth_events<'a, G>(version: RoomVersion, event: &Pdu, get: &G) -> Result<Power>
where
    G: Fn(&EventId) -> Result<&'a Pdu>,
{
    let sender: &UserId = event.sender();
    let create = create_event_for(version, event, get)?;
    let creators = create
        .map(|c| room_creators(version, c))
        .unwrap_or_default();
    if version.creators_have_infinite_power() && creators.contains(sender) {
        return Ok(Power::Infinite);
    }
    for id in event.auth_events() {
        let ae = get(id)?;
        if ae.is(POWER_LEVELS, "") {
            let level = ae
                .content()
                .get("users")
                .and_then(|u| u.get(sender.as_str()))
                .or_else(|| ae.content().get("users_default"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            return Ok(Power::Level(level));
        }
    }
    Ok(Power::Level(if creators.contains(sender) {
        100
    } else {
        0
    }))
}

/// Kahn's algorithm over the auth DAG restricted to `events`, choosing at each step the
/// candidate with the highest sender power, then the smallest `origin_server_ts`, then the
/// smallest event ID.
fn reverse_topological_power_sort<'a, G>(
    version: RoomVersion,
    events: &BTreeSet<OwnedEventId>,
    get: &G,
) -> Result<Vec<OwnedEventId>>
where
    G: Fn(&EventId) -> Result<&'a Pdu>,
{
    // Edges event → auth event (within the set). An event is ready once all of its in-set auth
    // events have been emitted.
    let mut pending: BTreeMap<&OwnedEventId, usize> = BTreeMap::new();
    let mut dependants: BTreeMap<&EventId, Vec<&OwnedEventId>> = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for id in events {
        let ev = get(id)?;
        let in_set: BTreeSet<&OwnedEventId> = ev
            .auth_events()
            .iter()
            .filter(|a| events.contains(*a))
            .collect();
        pending.insert(id, in_set.len());
        for a in in_set {
            dependants.entry(&**a).or_default().push(id);
        }
        let power = sender_power_from_auth_events(version, ev, get)?;
        keys.insert(id, (Reverse(power), ev.origin_server_ts(), id.clone()));
    }
    let mut heap: BinaryHeap<Reverse<(Reverse<Power>, u64, OwnedEventId)>> = pending
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| Reverse(keys[id].clone()))
        .collect();
    let mut out = Vec::with_capacity(events.len());
    while let Some(Reverse((_, _, id))) = heap.pop() {
        if let Some(deps) = dependants.get(&*id) {
            for d in deps {
                let n = pending.get_mut(*d).expect("dependant is in the set");
                *n -= 1;
                if *n == 0 {
                    heap.push(Reverse(keys[*d].clone()));
                }
            }
        }
        out.push(id);
    }
    if out.len() != events.len() {
        return Err(EventError::invalid("auth events contain a cycle"));
    }
    Ok(out)
}

/// The iterative auth checks: apply each event to `state` if it passes the authorisation rules
/// against `state`, falling back to the event's own (non-rejected) auth events for keys `state`
/// lacks (and, in v12, to the create event named by the room ID).
fn iterative_auth_checks<'a, G>(
    version: RoomVersion,
    events: &[OwnedEventId],
    mut state: StateMap,
    get: &G,
) -> Result<StateMap>
where
    G: Fn(&EventId) -> Result<&'a Pdu>,
{
    for id in events {
        let event = get(id)?;
        let Some(key) = event.state_map_key() else {
            continue;
        };
        let mut auth: BTreeMap<StateKey, &Pdu> = BTreeMap::new();
        for aid in event.auth_events() {
            let ae = get(aid)?;
            if !ae.rejected()
                && let Some(k) = ae.state_map_key()
            {
                auth.insert(k, ae);
            }
        }
        if !version.create_event_in_auth_events()
            && let Some(create) = create_event_for(version, event, get)?
        {
            auth.insert((CREATE.to_owned(), String::new()), create);
        }
        let mut needed = auth_types_for_pdu(version, event);
        needed.push((CREATE.to_owned(), String::new()));
        for k in needed {
            if let Some(sid) = state.get(&k) {
                auth.insert(k, get(sid)?);
            }
        }
        let lookup = |t: &str, sk: &str| auth.get(&(t.to_owned(), sk.to_owned())).copied();
        if auth_check(version, event, lookup).is_ok() {
            state.insert(key, id.clone());
        }
    }
    Ok(state)
}

/// Sort `events` by mainline ordering based on the power levels event `power_levels`.
fn mainline_sort<'a, G>(
    power_levels: Option<&EventId>,
    events: &mut [OwnedEventId],
    get: &G,
) -> Result<()>
where
    G: Fn(&EventId) -> Result<&'a Pdu>,
{
    let power_levels_in_auth = |ev: &Pdu| -> Result<Option<OwnedEventId>> {
        for a in ev.auth_events() {
            if get(a)?.is(POWER_LEVELS, "") {
                return Ok(Some(a.clone()));
            }
        }
        Ok(None)
    };
    // Mainline position: P0 = 0, P1 = 1, ...
    let mut mainline: BTreeMap<OwnedEventId, u64> = BTreeMap::new();
    let mut cur = power_levels.map(ToOwned::to_owned);
    let mut i = 0;
    while let Some(p) = cur {
        mainline.insert(p.clone(), i);
        i += 1;
        cur = power_levels_in_auth(get(&p)?)?;
    }
    let mut keys = BTreeMap::new();
    for id in events.iter() {
        let ev = get(id)?;
        let mut position = u64::MAX; // ∞
        let mut cur = power_levels_in_auth(ev)?;
        while let Some(p) = cur {
            if let Some(pos) = mainline.get(&p) {
                position = *pos;
                break;
            }
            cur = power_levels_in_auth(get(&p)?)?;
        }
        // x < y if x's position is greater, then smaller ts, then smaller ID.
        keys.insert(id.clone(), (Reverse(position), ev.origin_server_ts()));
    }
    events.sort_by(|a, b| (&keys[a], a).cmp(&(&keys[b], b)));
    Ok(())
}
