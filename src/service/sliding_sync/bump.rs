//! Bump stamps: the stream position of a room's newest event of a "bump" type, which
//! sorts sliding sync lists. Every answer sorts every list over all the user's rooms, so
//! the scan's outcome is kept per room and set of types, and the next answer reads only
//! the events that came after it: the events at or before a position a scan has reached
//! do not change (the room's stream only grows), so the outcome is the one a full scan
//! would give.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use ruma::{OwnedRoomId, RoomId};
use serde_json::Value;

use super::lists::DEFAULT_BUMP_EVENT_TYPES;
use crate::error::Result;
use crate::service::Services;

/// How many of a room's newest events are read looking for one of a bump type; past
/// that the room sorts by the user's membership event.
pub const BUMP_SCAN_BUDGET: usize = 500;
const BUMP_PAGE: usize = 50;
/// Distinct sets of bump types kept (clients use one or two); others are not kept.
const MAX_TYPE_SETS: usize = 32;

/// What a scan of a room found, as of a stream position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scanned {
    /// The scan read the room's events up to this position.
    upto: u64,
    /// The newest event of a bump type within the budget, if any.
    found: Option<u64>,
    /// How many events, from `upto` down, were read to reach `found` (it included).
    read: usize,
}

impl Scanned {
    /// This outcome moved on to `upto` by a scan of the events after it alone, which
    /// read `read` events and found `found`.
    fn extended(self, upto: u64, found: Option<u64>, read: usize) -> Scanned {
        match (found, self.found) {
            (Some(_), _) => Scanned { upto, found, read },
            (None, Some(older)) if read + self.read <= BUMP_SCAN_BUDGET => Scanned {
                upto,
                found: Some(older),
                read: read + self.read,
            },
            _ => Scanned {
                upto,
                found: None,
                read: BUMP_SCAN_BUDGET,
            },
        }
    }
}

/// Scan outcomes per set of bump types and room. The sets are numbered as they come
/// ([`BumpStamps::set_of`]), so that an answer finds a room's outcome by that number
/// rather than by hashing the types again.
pub struct BumpStamps {
    /// The bump types of a list that names none ([`DEFAULT_BUMP_EVENT_TYPES`]), whose
    /// outcomes are set [`BumpStamps::DEFAULT_SET`].
    default: Vec<String>,
    sets: Mutex<Vec<TypeSet>>,
}

impl Default for BumpStamps {
    fn default() -> Self {
        let default: Vec<String> = DEFAULT_BUMP_EVENT_TYPES
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        BumpStamps {
            sets: Mutex::new(vec![(default.clone(), HashMap::new())]),
            default,
        }
    }
}

/// A set of bump types and the outcomes kept for it, by room.
type TypeSet = (Vec<String>, HashMap<OwnedRoomId, Scanned>);

impl BumpStamps {
    /// The number of the default bump types' set.
    pub(super) const DEFAULT_SET: usize = 0;

    pub(super) fn default_types(&self) -> &[String] {
        &self.default
    }

    fn lock(&self) -> MutexGuard<'_, Vec<TypeSet>> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number outcomes for `types` are kept under; none when as many sets as are
    /// kept are taken by others.
    pub(super) fn set_of(&self, types: &[String]) -> Option<usize> {
        let mut sets = self.lock();
        if let Some(set) = sets.iter().position(|(kept, _)| kept == types) {
            return Some(set);
        }
        if sets.len() >= MAX_TYPE_SETS {
            return None;
        }
        sets.push((types.to_vec(), HashMap::new()));
        Some(sets.len() - 1)
    }

    fn get(&self, set: usize, room_id: &RoomId) -> Option<Scanned> {
        self.lock().get(set)?.1.get(room_id).copied()
    }

    fn put(&self, set: usize, room_id: &RoomId, scanned: Scanned) {
        let mut sets = self.lock();
        let Some((_, rooms)) = sets.get_mut(set) else {
            return;
        };
        match rooms.get_mut(room_id) {
            // A concurrent answer got further: its outcome stays.
            Some(kept) if kept.upto >= scanned.upto => {}
            Some(kept) => *kept = scanned,
            None => {
                rooms.insert(room_id.to_owned(), scanned);
            }
        }
    }
}

impl Services {
    /// The stream position of the room's newest event at or before `upto` whose type is
    /// one of `types`, among its newest [`BUMP_SCAN_BUDGET`] events. `set` is the number
    /// of `types` in [`BumpStamps`] (none: nothing is kept for them).
    pub(super) fn newest_bump(
        &self,
        room_id: &RoomId,
        upto: u64,
        types: &[String],
        set: Option<usize>,
    ) -> Result<Option<u64>> {
        let cache = &self.bump_stamps;
        let Some(set) = set else {
            return Ok(self.scan_bump(room_id, upto, 0, types)?.0);
        };
        let scanned = match cache.get(set, room_id) {
            Some(kept) if kept.upto == upto => return Ok(kept.found),
            Some(kept) if kept.upto < upto => {
                let (found, read) = self.scan_bump(room_id, upto, kept.upto, types)?;
                kept.extended(upto, found, read)
            }
            // Nothing kept, or kept past `upto` (a room the user left): a full scan.
            _ => {
                let (found, read) = self.scan_bump(room_id, upto, 0, types)?;
                Scanned { upto, found, read }
            }
        };
        cache.put(set, room_id, scanned);
        Ok(scanned.found)
    }

    /// Reads the room's events in `(above, newest]`, newest first, at most the budget,
    /// until one of `types`: that one, and how many were read.
    fn scan_bump(
        &self,
        room_id: &RoomId,
        newest: u64,
        above: u64,
        types: &[String],
    ) -> Result<(Option<u64>, usize)> {
        // Most rooms of a list have no event since the last scan.
        if !self.store.room_has_events_after(room_id.as_str(), above)? {
            return Ok((None, 0));
        }
        let mut newest = newest;
        let mut read = 0;
        while read < BUMP_SCAN_BUDGET && newest > above {
            let page = self
                .store
                .room_events_rev(room_id.as_str(), newest, above, BUMP_PAGE)?;
            let exhausted = page.len() < BUMP_PAGE;
            for (position, event_id) in page {
                read += 1;
                newest = position.saturating_sub(1);
                let Some(event) = self.store.event_shared(event_id.as_str())? else {
                    continue;
                };
                let event_type = event.record.pdu.get("type").and_then(Value::as_str);
                if event_type.is_some_and(|t| types.iter().any(|w| w == t)) {
                    return Ok((Some(position), read));
                }
                if read == BUMP_SCAN_BUDGET {
                    break;
                }
            }
            if exhausted {
                break;
            }
        }
        Ok((None, read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_moves_on_as_a_full_scan_would() {
        let kept = Scanned {
            upto: 100,
            found: Some(90),
            read: 10,
        };
        // A newer bump event wins.
        assert_eq!(
            kept.extended(120, Some(115), 5),
            Scanned {
                upto: 120,
                found: Some(115),
                read: 5
            }
        );
        // None among the newer events: the older one, while within the budget.
        assert_eq!(
            kept.extended(120, None, 20),
            Scanned {
                upto: 120,
                found: Some(90),
                read: 30
            }
        );
        assert_eq!(
            kept.extended(2000, None, BUMP_SCAN_BUDGET - 10).found,
            Some(90)
        );
        assert_eq!(
            kept.extended(2000, None, BUMP_SCAN_BUDGET - 9).found,
            None,
            "past the budget"
        );
        let none = Scanned {
            upto: 100,
            found: None,
            read: 3,
        };
        assert_eq!(none.extended(120, None, 1).found, None);
    }
}
