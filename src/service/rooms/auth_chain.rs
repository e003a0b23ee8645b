//! Auth chains: every event that the authorisation of some events rests on, through
//! their `auth_events`, transitively. Served by `/state`, `/state_ids` and
//! `/event_auth`, and wanted by `send_join`.

use std::collections::HashSet;

use ruma::{EventId, OwnedEventId, RoomId};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::Services;
use crate::store::{EventRecord, EventStatus};

/// The most events one auth chain may hold. A room's auth chain grows with its
/// membership history (every join, leave, invite and ban is in it); this bound keeps a
/// request from holding an unbounded number of events in memory. Past it the request
/// fails rather than answer with a chain that silently lacks events.
pub const MAX_AUTH_CHAIN: usize = 100_000;

/// What the walk needs of one stored event, and what it hands on (`payload`).
struct Node<T> {
    depth: u64,
    auth_events: Vec<OwnedEventId>,
    is_create: bool,
    payload: T,
}

/// The auth event IDs a PDU lists; entries that are not event IDs are skipped (the
/// event passed the format checks when stored, so there are none in practice).
fn listed_auth_events(pdu: &Value) -> Vec<OwnedEventId> {
    crate::event::pdu::referenced_ids(pdu.get("auth_events"))
        .into_iter()
        .filter_map(|id| EventId::parse(id).ok())
        .collect()
}

fn is_create(pdu: &Value) -> bool {
    pdu.get("type").and_then(Value::as_str) == Some("m.room.create")
        && pdu.get("state_key").and_then(Value::as_str) == Some("")
}

/// Walks from `seeds` through auth events, iteratively, visiting each reachable event
/// once (the seeds themselves only if another seed's chain reaches them). `lookup`
/// gives an event's node, or `None` for an event that must not be used (unknown,
/// rejected, or in another room): it is neither visited nor walked through.
/// `implicit_create` is the room's create event when the room version leaves it out of
/// `auth_events` (v12): every other event depends on it all the same.
fn walk<T, L, V>(
    seeds: &[OwnedEventId],
    implicit_create: Option<&EventId>,
    limit: usize,
    mut lookup: L,
    mut visit: V,
) -> Result<()>
where
    L: FnMut(&EventId) -> Result<Option<Node<T>>>,
    V: FnMut(OwnedEventId, Node<T>) -> Result<()>,
{
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    let mut pending: Vec<OwnedEventId> = Vec::new();
    let push_auth = |node: &Node<T>, pending: &mut Vec<OwnedEventId>| {
        pending.extend(node.auth_events.iter().cloned());
        if let Some(create) = implicit_create
            && !node.is_create
        {
            pending.push(create.to_owned());
        }
    };
    for seed in seeds {
        if let Some(node) = lookup(seed)? {
            push_auth(&node, &mut pending);
        }
    }
    while let Some(id) = pending.pop() {
        if seen.contains(&id) {
            continue;
        }
        if seen.len() >= limit {
            return Err(Error::internal(format!(
                "auth chain of {} event(s) is larger than {limit} events",
                seeds.len()
            )));
        }
        seen.insert(id.clone());
        let Some(node) = lookup(&id)? else {
            continue;
        };
        push_auth(&node, &mut pending);
        visit(id, node)?;
    }
    Ok(())
}

impl Services {
    /// Walks the auth chain of `seeds` in `room_id`, giving each event with its record.
    fn walk_auth_chain(
        &self,
        room_id: &RoomId,
        seeds: &[OwnedEventId],
        mut visit: impl FnMut(OwnedEventId, u64, EventRecord) -> Result<()>,
    ) -> Result<()> {
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
        let implicit_create = room
            .version
            .room_id_is_create_event_hash()
            .then_some(room.create_event.as_ref());
        walk(
            seeds,
            implicit_create,
            MAX_AUTH_CHAIN,
            |id| {
                let Some(record) = self.store.event(id.as_str())? else {
                    tracing::debug!(event = %id, "auth chain names an event we do not have");
                    return Ok(None);
                };
                if record.room_id != room_id {
                    tracing::warn!(event = %id, room = %room_id, "auth chain names an event of another room");
                    return Ok(None);
                }
                if record.status == EventStatus::Rejected {
                    return Ok(None);
                }
                Ok(Some(Node {
                    depth: record.pdu.get("depth").and_then(Value::as_u64).unwrap_or(0),
                    auth_events: listed_auth_events(&record.pdu),
                    is_create: is_create(&record.pdu),
                    payload: record,
                }))
            },
            |id, node| visit(id, node.depth, node.payload),
        )
    }

    /// The IDs of the auth chain of `seeds`: every event reachable from them through
    /// `auth_events` (in v12 rooms, the create event too), once each, by depth then ID.
    /// The seeds are in it only when another seed's chain reaches them, as Synapse's
    /// `get_auth_chain_ids` has it. Unknown and rejected events are left out, and so
    /// are events of another room. 404 for an unknown room.
    pub fn auth_chain_ids(
        &self,
        room_id: &RoomId,
        seeds: &[OwnedEventId],
    ) -> Result<Vec<OwnedEventId>> {
        let mut chain = Vec::new();
        self.walk_auth_chain(room_id, seeds, |id, depth, _| {
            chain.push((depth, id));
            Ok(())
        })?;
        chain.sort_unstable();
        Ok(chain.into_iter().map(|(_, id)| id).collect())
    }

    /// [`Self::auth_chain_ids`] with the events' records, in the same order.
    pub fn auth_chain(
        &self,
        room_id: &RoomId,
        seeds: &[OwnedEventId],
    ) -> Result<Vec<(OwnedEventId, EventRecord)>> {
        let mut chain = Vec::new();
        self.walk_auth_chain(room_id, seeds, |id, depth, record| {
            chain.push((depth, id, record));
            Ok(())
        })?;
        chain.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(chain
            .into_iter()
            .map(|(_, id, record)| (id, record))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn id(name: &str) -> OwnedEventId {
        EventId::parse(format!("${name}")).unwrap()
    }

    /// A graph of `(event, depth, auth events)`; the event named `create` is the create event.
    fn graph(edges: &[(&str, u64, &[&str])]) -> HashMap<OwnedEventId, (u64, Vec<OwnedEventId>)> {
        edges
            .iter()
            .map(|(e, depth, auth)| (id(e), (*depth, auth.iter().map(|a| id(a)).collect())))
            .collect()
    }

    fn chain(
        graph: &HashMap<OwnedEventId, (u64, Vec<OwnedEventId>)>,
        seeds: &[&str],
        implicit_create: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let seeds: Vec<OwnedEventId> = seeds.iter().map(|s| id(s)).collect();
        let create = implicit_create.map(id);
        let mut out = Vec::new();
        walk(
            &seeds,
            create.as_deref(),
            limit,
            |e| {
                Ok(graph.get(e).map(|(depth, auth)| Node {
                    depth: *depth,
                    auth_events: auth.clone(),
                    is_create: e.as_str() == "$create",
                    payload: (),
                }))
            },
            |e, _| {
                out.push(e.as_str()[1..].to_owned());
                Ok(())
            },
        )?;
        out.sort();
        Ok(out)
    }

    #[test]
    fn transitive_and_deduplicated() {
        let g = graph(&[
            ("create", 1, &[]),
            ("alice", 2, &["create"]),
            ("power", 3, &["create", "alice"]),
            ("rules", 4, &["create", "alice", "power"]),
            ("bob", 5, &["create", "power", "rules"]),
            ("msg", 6, &["create", "power", "bob"]),
        ]);
        let got = chain(&g, &["msg"], None, 100).unwrap();
        assert_eq!(got, ["alice", "bob", "create", "power", "rules"]);
        // Seeds are left out unless another seed's chain reaches them.
        let got = chain(&g, &["bob", "power"], None, 100).unwrap();
        assert_eq!(got, ["alice", "create", "power", "rules"]);
        assert!(chain(&g, &["create"], None, 100).unwrap().is_empty());
    }

    #[test]
    fn unknown_events_are_skipped_and_cycles_end() {
        let g = graph(&[("a", 2, &["b", "missing"]), ("b", 1, &["a"])]);
        assert_eq!(chain(&g, &["a"], None, 100).unwrap(), ["a", "b"]);
        assert!(chain(&g, &["missing"], None, 100).unwrap().is_empty());
    }

    #[test]
    fn v12_rooms_depend_on_the_create_event_implicitly() {
        let g = graph(&[
            ("create", 1, &[]),
            ("alice", 2, &[]),
            ("msg", 3, &["alice"]),
        ]);
        assert_eq!(chain(&g, &["msg"], None, 100).unwrap(), ["alice"]);
        assert_eq!(
            chain(&g, &["msg"], Some("create"), 100).unwrap(),
            ["alice", "create"]
        );
        // The create event does not depend on itself.
        assert!(
            chain(&g, &["create"], Some("create"), 100)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_bound_fails_the_walk() {
        let g = graph(&[
            ("create", 1, &[]),
            ("a", 2, &["create"]),
            ("b", 3, &["a", "create"]),
            ("c", 4, &["b", "a", "create"]),
        ]);
        assert_eq!(chain(&g, &["c"], None, 3).unwrap().len(), 3);
        assert!(chain(&g, &["c"], None, 2).is_err());
    }
}
