//! The rooms a sliding sync list holds: the user's rooms that pass its filters, sorted
//! by recency (the newest event of a "bump" type), cut to its ranges.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use ruma::{OwnedRoomId, RoomId};
use serde_json::Value;

use super::Pass;
use super::request::{Filters, ListConfig};
use crate::error::Result;
use crate::service::Services;
use crate::service::direct::DIRECT_TYPE;
use crate::store::UserRoomRecord;

/// The events that move a room up a list when the list names none, as Synapse.
pub const DEFAULT_BUMP_EVENT_TYPES: [&str; 7] = [
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "m.beacon_info",
];

/// One of the user's rooms that lists may hold: borrowed from the user's room list as
/// the store shares it, so that an answer copies nothing per room.
#[derive(Clone, Copy)]
pub struct Candidate<'a> {
    pub room_id: &'a OwnedRoomId,
    pub record: &'a UserRoomRecord,
}

impl Candidate<'_> {
    pub fn membership(&self) -> &str {
        &self.record.membership
    }

    /// Where the room's events end for the user: at their departure if they left.
    pub fn upto(&self, now: u64) -> u64 {
        match self.membership() {
            "leave" | "ban" => self.record.stream.min(now),
            _ => now,
        }
    }
}

/// What lists compute once per pass: bump stamps per set of bump types, DM rooms.
#[derive(Default)]
pub struct ListCache {
    /// Distinct bump type sets (`None`: the default), with their numbers in
    /// [`super::BumpStamps`]; index 0 is the default.
    type_sets: RefCell<Vec<PassTypeSet>>,
    /// Per room, its bump stamp per type set (by index).
    bumps: RefCell<HashMap<OwnedRoomId, Vec<(usize, u64)>>>,
    dms: RefCell<Option<HashSet<OwnedRoomId>>>,
}

/// A set of bump types as a pass knows it: its types (`None`: the default) and its number
/// in [`super::BumpStamps`] (none: not kept there).
type PassTypeSet = (Option<Vec<String>>, Option<usize>);

/// A list as computed: how many rooms pass its filters, and those in its ranges in order.
pub struct ListResult {
    pub count: usize,
    pub rooms: Vec<OwnedRoomId>,
}

impl ListCache {
    fn type_set(&self, types: Option<&Vec<String>>, stamps: &super::BumpStamps) -> usize {
        let mut sets = self.type_sets.borrow_mut();
        if sets.is_empty() {
            sets.push((None, Some(super::BumpStamps::DEFAULT_SET)));
        }
        let Some(types) = types else { return 0 };
        match sets.iter().position(|(s, _)| s.as_ref() == Some(types)) {
            Some(index) => index,
            None => {
                sets.push((Some(types.clone()), stamps.set_of(types)));
                sets.len() - 1
            }
        }
    }
}

impl Services {
    /// The rooms lists may hold: those the user is joined to, invited to or knocking
    /// on, and those they left or were banned from since the connection's last position
    /// (so the client learns of it once).
    pub(super) fn sliding_candidates<'a>(
        &self,
        pass: &Pass<'_>,
        rooms: &'a [(OwnedRoomId, UserRoomRecord)],
    ) -> Result<Vec<Candidate<'a>>> {
        let mut out = Vec::new();
        for (room_id, record) in rooms {
            let keep = match record.membership.as_str() {
                "join" | "invite" | "knock" => true,
                "leave" | "ban" => {
                    !record.forgotten
                        && pass.since.is_some_and(|s| record.stream > s.events)
                        && self.store.room(room_id.as_str())?.is_some()
                }
                _ => false,
            };
            if keep {
                out.push(Candidate { room_id, record });
            }
        }
        Ok(out)
    }

    /// The list's rooms: filtered, newest first, the total and those in its ranges.
    pub(super) fn compute_list(
        &self,
        pass: &Pass<'_>,
        candidates: &[Candidate<'_>],
        list: &ListConfig,
    ) -> Result<ListResult> {
        let types = pass
            .lists
            .type_set(list.bump_event_types.as_ref(), &self.bump_stamps);
        let spaces = match list.filters.as_ref().and_then(|f| f.spaces.as_ref()) {
            Some(spaces) => Some(self.space_children(pass, spaces)?),
            None => None,
        };
        let mut rooms = Vec::new();
        for candidate in candidates {
            if let Some(filters) = &list.filters
                && !self.passes_filters(pass, candidate, filters, spaces.as_ref())?
            {
                continue;
            }
            let bump = self.bump_stamp_with(pass, candidate, types)?;
            rooms.push((bump, candidate.room_id));
        }
        rooms.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let count = rooms.len();
        let mut chosen = Vec::new();
        let mut seen = HashSet::new();
        for (start, end) in list.ranges.iter().flatten() {
            let Ok(start) = usize::try_from(*start) else {
                continue;
            };
            let end = usize::try_from(*end).unwrap_or(usize::MAX);
            for (_, room_id) in rooms
                .iter()
                .skip(start)
                .take(end.saturating_sub(start).saturating_add(1))
            {
                if seen.insert(*room_id) {
                    chosen.push((*room_id).clone());
                }
            }
        }
        Ok(ListResult {
            count,
            rooms: chosen,
        })
    }

    /// The room's bump stamp under the default bump types.
    pub(super) fn bump_stamp(&self, pass: &Pass<'_>, candidate: &Candidate) -> Result<u64> {
        let types = pass.lists.type_set(None, &self.bump_stamps);
        self.bump_stamp_with(pass, candidate, types)
    }

    /// The stream position of the newest event of one of the types the user may have
    /// seen; for an invite or knock, that of the membership event.
    fn bump_stamp_with(&self, pass: &Pass<'_>, candidate: &Candidate, types: usize) -> Result<u64> {
        let known = pass
            .lists
            .bumps
            .borrow()
            .get(candidate.room_id)
            .and_then(|bumps| {
                bumps
                    .iter()
                    .find(|(set, _)| *set == types)
                    .map(|(_, bump)| *bump)
            });
        if let Some(bump) = known {
            return Ok(bump);
        }
        let fallback = candidate.record.stream;
        let bump = match candidate.membership() {
            "invite" | "knock" => fallback,
            _ => {
                let sets = pass.lists.type_sets.borrow();
                let (types, kept) = &sets[types];
                let types = types.as_deref().unwrap_or(self.bump_stamps.default_types());
                let upto = candidate.upto(pass.now.events);
                self.newest_bump(candidate.room_id, upto, types, *kept)?
                    .unwrap_or(fallback)
            }
        };
        pass.lists
            .bumps
            .borrow_mut()
            .entry(candidate.room_id.clone())
            .or_default()
            .push((types, bump));
        Ok(bump)
    }

    /// Whether the room is a direct chat: listed in the user's `m.direct`, or an
    /// invite marked `is_direct`.
    pub(super) fn is_dm(&self, pass: &Pass<'_>, candidate: &Candidate) -> Result<bool> {
        if pass.lists.dms.borrow().is_none() {
            let mut dms = HashSet::new();
            if let Some(Value::Object(direct)) =
                self.account_data(pass.user_id, None, DIRECT_TYPE)?
            {
                for rooms in direct.values() {
                    for room in rooms.as_array().into_iter().flatten() {
                        if let Some(room_id) = room.as_str().and_then(|r| RoomId::parse(r).ok()) {
                            dms.insert(room_id);
                        }
                    }
                }
            }
            *pass.lists.dms.borrow_mut() = Some(dms);
        }
        if pass
            .lists
            .dms
            .borrow()
            .as_ref()
            .is_some_and(|dms| dms.contains(candidate.room_id))
        {
            return Ok(true);
        }
        if candidate.membership() != "invite" {
            return Ok(false);
        }
        let invite = self.store.event(candidate.record.event_id.as_str())?;
        Ok(invite.is_some_and(|e| {
            e.pdu.pointer("/content/is_direct").and_then(Value::as_bool) == Some(true)
        }))
    }

    /// `content[field]` of a state event the user may see before joining: from what an
    /// inviting server shared, otherwise from the room's current state.
    fn room_fact(
        &self,
        candidate: &Candidate,
        event_type: &str,
        field: &str,
    ) -> Result<Option<Value>> {
        if let Some(stripped) = &candidate.record.invite_state {
            return Ok(stripped
                .iter()
                .find(|e| e.get("type").and_then(Value::as_str) == Some(event_type))
                .map(|e| e.pointer(&format!("/content/{field}")).cloned())
                .map(|v| v.unwrap_or(Value::Null)));
        }
        let Some(event_id) =
            self.store
                .current_state_id(candidate.room_id.as_str(), event_type, "")?
        else {
            return Ok(None);
        };
        Ok(self.store.event(event_id.as_str())?.map(|e| {
            e.pdu
                .pointer(&format!("/content/{field}"))
                .cloned()
                .unwrap_or(Value::Null)
        }))
    }

    fn passes_filters(
        &self,
        pass: &Pass<'_>,
        candidate: &Candidate,
        filters: &Filters,
        spaces: Option<&HashSet<OwnedRoomId>>,
    ) -> Result<bool> {
        if let Some(is_invite) = filters.is_invite
            && (candidate.membership() == "invite") != is_invite
        {
            return Ok(false);
        }
        if let Some(is_dm) = filters.is_dm
            && self.is_dm(pass, candidate)? != is_dm
        {
            return Ok(false);
        }
        if let Some(is_encrypted) = filters.is_encrypted {
            let encrypted = self
                .room_fact(candidate, "m.room.encryption", "algorithm")?
                .is_some();
            if encrypted != is_encrypted {
                return Ok(false);
            }
        }
        if filters.room_types.is_some() || filters.not_room_types.is_some() {
            let room_type = self
                .room_fact(candidate, "m.room.create", "type")?
                .and_then(|t| t.as_str().map(str::to_owned));
            if filters
                .room_types
                .as_ref()
                .is_some_and(|types| !types.contains(&room_type))
            {
                return Ok(false);
            }
            if filters
                .not_room_types
                .as_ref()
                .is_some_and(|types| types.contains(&room_type))
            {
                return Ok(false);
            }
        }
        if let Some(children) = spaces
            && !children.contains(candidate.room_id)
        {
            return Ok(false);
        }
        Ok(true)
    }

    /// The children (`m.space.child` with a `via`) of the spaces the user is joined to.
    fn space_children(
        &self,
        pass: &Pass<'_>,
        spaces: &[OwnedRoomId],
    ) -> Result<HashSet<OwnedRoomId>> {
        let mut children = HashSet::new();
        for space in spaces {
            if !self.is_joined(space, pass.user_id)? {
                continue;
            }
            let state: BTreeMap<_, _> = self
                .store
                .current_state(space.as_str(), Some("m.space.child"))?;
            for ((_, child), event_id) in state {
                let Some(record) = self.store.event(event_id.as_str())? else {
                    continue;
                };
                let linked = record
                    .pdu
                    .pointer("/content/via")
                    .and_then(Value::as_array)
                    .is_some_and(|via| !via.is_empty());
                if linked && let Ok(child) = OwnedRoomId::try_from(child) {
                    children.insert(child);
                }
            }
        }
        Ok(children)
    }
}
