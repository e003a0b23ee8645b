//! The user directory: finding users by name among those the searcher may see, which
//! are the people they share a room with and the members of open rooms (a `public` join
//! rule or `world_readable` history), as the spec requires and Synapse does.
//!
//! Nothing is scanned per search but the searcher's rooms: open rooms are a set kept in
//! memory, member lists come from the member cache, and each candidate costs one read
//! of their display name.

use std::collections::HashSet;
use std::sync::RwLock;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::service::Services;
use crate::service::profile::{AVATAR_URL, DISPLAYNAME};
use crate::store::{Cf, Store, StoreResult};

/// Synapse's cap on one search's results.
pub const MAX_LIMIT: usize = 50;

/// Rooms whose members anyone on the server may find.
pub struct UserDirectory {
    open_rooms: RwLock<HashSet<OwnedRoomId>>,
}

fn state_content(store: &Store, room_id: &str, event_type: &str) -> StoreResult<Option<Value>> {
    let Some(event_id) = store.current_state_id(room_id, event_type, "")? else {
        return Ok(None);
    };
    Ok(store
        .event(event_id.as_str())?
        .and_then(|record| record.pdu.get("content").cloned()))
}

fn is_open(store: &Store, room_id: &str) -> StoreResult<bool> {
    let public = state_content(store, room_id, "m.room.join_rules")?
        .is_some_and(|c| c["join_rule"] == "public");
    let world_readable = state_content(store, room_id, "m.room.history_visibility")?
        .is_some_and(|c| c["history_visibility"] == "world_readable");
    Ok(public || world_readable)
}

impl UserDirectory {
    /// Reads the join rule and history visibility of every room once, at start.
    pub fn load(store: &Store) -> StoreResult<Self> {
        let mut open_rooms = HashSet::new();
        for (key, _) in store.scan_prefix::<serde::de::IgnoredAny>(Cf::Rooms, b"")? {
            let Some(room_id) = String::from_utf8(key)
                .ok()
                .and_then(|id| OwnedRoomId::try_from(id).ok())
            else {
                continue;
            };
            if is_open(store, room_id.as_str())? {
                open_rooms.insert(room_id);
            }
        }
        Ok(Self {
            open_rooms: RwLock::new(open_rooms),
        })
    }

    /// Called after a state event with an empty state key is stored in the room.
    pub fn state_changed(&self, store: &Store, room_id: &RoomId, event_type: &str) {
        if !matches!(
            event_type,
            "m.room.join_rules" | "m.room.history_visibility"
        ) {
            return;
        }
        match is_open(store, room_id.as_str()) {
            Ok(open) => {
                let mut rooms = self.open_rooms.write().unwrap_or_else(|e| e.into_inner());
                if open {
                    rooms.insert(room_id.to_owned());
                } else {
                    rooms.remove(room_id);
                }
            }
            Err(e) => {
                tracing::warn!(room_id = %room_id, error = %e, "cannot update the user directory")
            }
        }
    }

    fn open_rooms(&self) -> Vec<OwnedRoomId> {
        self.open_rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Lower-case words of a name or search term: runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A parsed search term.
struct Term {
    whole: String,
    words: Vec<String>,
}

impl Term {
    fn parse(text: &str) -> Option<Self> {
        let words = words(text);
        (!words.is_empty()).then(|| Term {
            whole: text.trim().to_lowercase(),
            words,
        })
    }

    /// Lower is better: 0 for an exact name or localpart, 1 when the name, localpart or
    /// user ID starts with the term, 2 when every word of the term starts a word of the
    /// name or localpart. `None` for no match.
    fn rank(&self, user_id: &UserId, displayname: Option<&str>) -> Option<u8> {
        let name = displayname.map(str::to_lowercase).unwrap_or_default();
        let localpart = user_id.localpart().to_lowercase();
        let id = user_id.as_str().to_lowercase();
        if name == self.whole || localpart == self.whole {
            return Some(0);
        }
        if (!name.is_empty() && name.starts_with(&self.whole))
            || localpart.starts_with(&self.whole)
            || id.starts_with(&self.whole)
        {
            return Some(1);
        }
        let candidates: Vec<String> = words(&name).into_iter().chain(words(&localpart)).collect();
        self.words
            .iter()
            .all(|word| candidates.iter().any(|c| c.starts_with(word.as_str())))
            .then_some(2)
    }
}

struct Hit {
    rank: u8,
    user_id: OwnedUserId,
    displayname: Option<String>,
    avatar_url: Option<String>,
}

impl Hit {
    /// By rank, then those with a display name and an avatar first, as the spec orders
    /// results; the user ID makes the order total.
    fn key(&self) -> (u8, bool, bool, &UserId) {
        (
            self.rank,
            self.displayname.is_none(),
            self.avatar_url.is_none(),
            &self.user_id,
        )
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("user_id".into(), json!(self.user_id));
        if let Some(name) = &self.displayname {
            entry.insert("display_name".into(), json!(name));
        }
        if let Some(avatar) = &self.avatar_url {
            entry.insert("avatar_url".into(), json!(avatar));
        }
        Value::Object(entry)
    }
}

impl Services {
    /// Users matching `term` that `searcher` may see, best first; `true` when more
    /// matched than `limit`.
    pub fn search_users(
        &self,
        searcher: &UserId,
        term: &str,
        limit: usize,
    ) -> Result<(Vec<Value>, bool)> {
        let Some(term) = Term::parse(term) else {
            return Ok((Vec::new(), false));
        };
        let rooms: Vec<OwnedRoomId> = self
            .store
            .user_rooms(searcher.as_str())?
            .into_iter()
            .filter(|(_, record)| record.membership == "join")
            .map(|(room_id, _)| room_id)
            .collect();
        let open_rooms = self.user_directory.open_rooms();
        let open: HashSet<&OwnedRoomId> = open_rooms.iter().collect();
        let mut seen: HashSet<OwnedUserId> = HashSet::new();
        let mut hits = Vec::new();
        for room_id in rooms.iter().chain(&open_rooms) {
            for member in &self.room_members(room_id)?.joined {
                // The searcher shares their private rooms with others, not with
                // themselves: they find themselves only through an open room (as Synapse).
                if member.as_str() == searcher.as_str() && !open.contains(room_id) {
                    continue;
                }
                if !seen.insert(member.clone()) {
                    continue;
                }
                if let Some(hit) = self.directory_hit(&term, member)? {
                    hits.push(hit);
                }
            }
        }
        hits.sort_by(|a, b| a.key().cmp(&b.key()));
        let limited = hits.len() > limit;
        Ok((hits.iter().take(limit).map(Hit::to_json).collect(), limited))
    }

    fn directory_hit(&self, term: &Term, user_id: &UserId) -> Result<Option<Hit>> {
        let local = user_id.server_name() == self.server_name();
        // Users of other servers have no profile here until federation fetches one.
        let displayname = if local {
            self.store.profile_string(user_id.as_str(), DISPLAYNAME)?
        } else {
            None
        };
        let Some(rank) = term.rank(user_id, displayname.as_deref()) else {
            return Ok(None);
        };
        // Deactivated users stay in their rooms' member lists but never in the directory.
        if local
            && self
                .store
                .user(user_id.as_str())?
                .is_none_or(|user| user.deactivated)
        {
            return Ok(None);
        }
        let avatar_url = if local {
            self.store.profile_string(user_id.as_str(), AVATAR_URL)?
        } else {
            None
        };
        Ok(Some(Hit {
            rank,
            user_id: user_id.to_owned(),
            displayname,
            avatar_url,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(term: &str, user: &str, name: Option<&str>) -> Option<u8> {
        Term::parse(term)
            .unwrap()
            .rank(<&UserId>::try_from(user).unwrap(), name)
    }

    #[test]
    fn terms_match_word_prefixes_of_names_and_user_ids_case_insensitively() {
        assert_eq!(rank("alice", "@alice:x", None), Some(0));
        assert_eq!(rank("Alice Smith", "@a1:x", Some("alice smith")), Some(0));
        assert_eq!(rank("ali", "@alice:x", None), Some(1));
        assert_eq!(rank("@alice:x", "@alice:x", None), Some(1));
        assert_eq!(rank("smi", "@a1:x", Some("Alice Smith")), Some(2));
        assert_eq!(rank("SMI ali", "@a1:x", Some("Alice Smith")), Some(2));
        assert_eq!(rank("smith", "@alice.smith:x", None), Some(2));
        assert_eq!(rank("lice", "@alice:x", Some("Alice")), None);
        assert_eq!(rank("bob", "@alice:x", Some("Alice")), None);
        // The server name is not a word of the user: it would match everyone.
        assert_eq!(rank("x", "@alice:x", None), None);
        assert!(Term::parse("  ").is_none());
        assert!(Term::parse("@:").is_none());
    }
}
