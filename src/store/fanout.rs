//! Fan-out intents: a change that must reach many rooms (a new display name, leaving
//! every room) is written together with an intent record, and the intent is deleted once
//! every room has it. Whatever is left here at start-up was cut short and is resumed.
//!
//! - `fanout_intents`: `subject 0xFF kind 0xFF generation (u64 BE)` → [`FanoutRecord`].
//!
//! The subject is what the intent is about (a user ID, or a room ID for a room
//! deletion); the kind names what to do; the generation orders intents, so a later intent of
//! the same subject and kind supersedes the earlier ones and a worker deletes exactly the
//! intents it has carried out, never one written while it worked.

use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreError, StoreResult, keys};

/// What a fan-out does for its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FanoutKind {
    /// Re-send the user's join, with their current display name and avatar, into every
    /// room they are joined to.
    MemberProfile,
    /// Leave every room the user is joined to, invited to or knocking on.
    LeaveRooms,
    /// Carry out an admin's deletion of the room (the subject is a room ID), as its
    /// `deleted_rooms` record describes it.
    DeleteRoom,
    /// Finish creating the room (the subject is a room ID): the initial events the
    /// `createRoom` request in the record's `payload` asks for, after the create event
    /// written with the intent.
    CreateRoom,
    /// Finish upgrading the room (the subject is the old room's ID): the new room's
    /// state, bans, the tombstone, the old room's restricted power levels and the moved
    /// aliases, as the plan in the record's `payload` lists them, after the new room's
    /// create event written with the intent.
    UpgradeRoom,
    /// Carry out an admin's bulk redaction of a user's events (the subject is the
    /// redaction's ID), as its `admin_redactions` record describes it.
    RedactUser,
}

impl FanoutKind {
    pub const ALL: [FanoutKind; 6] = [
        FanoutKind::MemberProfile,
        FanoutKind::LeaveRooms,
        FanoutKind::DeleteRoom,
        FanoutKind::CreateRoom,
        FanoutKind::UpgradeRoom,
        FanoutKind::RedactUser,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FanoutKind::MemberProfile => "member_profile",
            FanoutKind::LeaveRooms => "leave_rooms",
            FanoutKind::DeleteRoom => "delete_room",
            FanoutKind::CreateRoom => "create_room",
            FanoutKind::UpgradeRoom => "upgrade_room",
            FanoutKind::RedactUser => "redact_user",
        }
    }

    fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name().as_bytes() == name)
    }
}

/// One recorded intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanoutRecord {
    /// When the change was made (ms since the epoch), for the logs.
    pub created_ms: u64,
    /// What the kind needs to know that the store does not hold elsewhere (for
    /// `CreateRoom`, the request; for `UpgradeRoom`, the plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// An intent as stored, with the parts of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutIntent {
    pub subject: String,
    pub kind: FanoutKind,
    pub generation: u64,
    pub record: FanoutRecord,
}

fn subject_prefix(subject: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(subject.len() + 1);
    key.extend_from_slice(subject.as_bytes());
    key.push(keys::SEP);
    key
}

fn intent_key(subject: &str, kind: FanoutKind, generation: u64) -> Vec<u8> {
    let mut key = subject_prefix(subject);
    key.extend_from_slice(kind.name().as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(&generation.to_be_bytes());
    key
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        cf: Cf::FanoutIntents.name(),
        detail,
    }
}

fn parse_key(key: &[u8]) -> StoreResult<(String, FanoutKind, u64)> {
    let bad = || corrupt(format!("malformed key {key:?}"));
    let split = key.iter().position(|b| *b == keys::SEP).ok_or_else(bad)?;
    let subject = std::str::from_utf8(&key[..split]).map_err(|_| bad())?;
    let rest = &key[split + 1..];
    if rest.len() < 9 || rest[rest.len() - 9] != keys::SEP {
        return Err(bad());
    }
    let (name, generation) = rest.split_at(rest.len() - 9);
    let kind = FanoutKind::from_name(name).ok_or_else(|| {
        corrupt(format!(
            "unknown fan-out kind {:?}",
            String::from_utf8_lossy(name)
        ))
    })?;
    let generation = u64::from_be_bytes(generation[1..].try_into().map_err(|_| bad())?);
    Ok((subject.to_owned(), kind, generation))
}

impl Store {
    /// Every intent left for `subject`, by kind and then generation.
    pub fn fanout_intents(&self, subject: &str) -> StoreResult<Vec<FanoutIntent>> {
        self.scan_prefix::<FanoutRecord>(Cf::FanoutIntents, &subject_prefix(subject))?
            .into_iter()
            .map(|(key, record)| {
                let (subject, kind, generation) = parse_key(&key)?;
                Ok(FanoutIntent {
                    subject,
                    kind,
                    generation,
                    record,
                })
            })
            .collect()
    }

    /// Every subject with intents left, and the highest generation stored (0 if none):
    /// read once at start-up.
    pub fn fanout_subjects(&self) -> StoreResult<(Vec<String>, u64)> {
        let mut subjects: Vec<String> = Vec::new();
        let mut highest = 0;
        for item in self.raw_iter_from(Cf::FanoutIntents, &[]) {
            let (key, _) = item?;
            let (subject, _, generation) = parse_key(&key)?;
            highest = highest.max(generation);
            if subjects.last() != Some(&subject) {
                subjects.push(subject);
            }
        }
        Ok((subjects, highest))
    }
}

impl Batch<'_> {
    pub fn put_fanout_intent(
        &mut self,
        subject: &str,
        kind: FanoutKind,
        generation: u64,
        record: &FanoutRecord,
    ) -> StoreResult<()> {
        self.put_json(
            Cf::FanoutIntents,
            &intent_key(subject, kind, generation),
            record,
        )
    }

    pub fn delete_fanout_intent(&mut self, subject: &str, kind: FanoutKind, generation: u64) {
        self.delete(Cf::FanoutIntents, &intent_key(subject, kind, generation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_are_listed_per_subject_in_kind_and_generation_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let record = FanoutRecord {
            created_ms: 7,
            payload: None,
        };
        let mut batch = store.batch();
        for (subject, kind, generation) in [
            ("@a:x", FanoutKind::MemberProfile, 300),
            ("@a:x", FanoutKind::MemberProfile, 2),
            ("@a:x", FanoutKind::LeaveRooms, 5),
            ("@a:xy", FanoutKind::MemberProfile, 9),
        ] {
            batch
                .put_fanout_intent(subject, kind, generation, &record)
                .unwrap();
        }
        store.write(batch).unwrap();
        let listed: Vec<(FanoutKind, u64)> = store
            .fanout_intents("@a:x")
            .unwrap()
            .into_iter()
            .map(|i| (i.kind, i.generation))
            .collect();
        // "leave_rooms" sorts before "member_profile"; generations numerically.
        assert_eq!(
            listed,
            [
                (FanoutKind::LeaveRooms, 5),
                (FanoutKind::MemberProfile, 2),
                (FanoutKind::MemberProfile, 300),
            ]
        );
        // Key order: "@a:xy" sorts before "@a:x" 0xFF; each subject is listed once.
        assert_eq!(
            store.fanout_subjects().unwrap(),
            (vec!["@a:xy".to_owned(), "@a:x".to_owned()], 300)
        );
        let mut batch = store.batch();
        batch.delete_fanout_intent("@a:x", FanoutKind::MemberProfile, 2);
        store.write(batch).unwrap();
        assert_eq!(store.fanout_intents("@a:x").unwrap().len(), 2);
    }

    #[test]
    fn a_malformed_key_is_reported_not_misread() {
        assert!(parse_key(b"@a:x").is_err());
        assert!(parse_key(b"@a:x\xffmember_profile").is_err());
        let mut key = b"@a:x\xffnot_a_kind\xff".to_vec();
        key.extend_from_slice(&1u64.to_be_bytes());
        assert!(parse_key(&key).is_err());
        let key = intent_key("@a:x", FanoutKind::LeaveRooms, 42);
        assert_eq!(
            parse_key(&key).unwrap(),
            ("@a:x".to_owned(), FanoutKind::LeaveRooms, 42)
        );
    }
}
