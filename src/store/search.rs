//! The search index: one posting per (term, room, event), keyed so that one term's
//! postings in one room lie together in stream order.

use rocksdb::{DB, DBRawIteratorWithThreadMode};
use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreError, StoreResult, keys};

/// Version of the index's layout and tokenisation; a store whose index was built by
/// another version is re-indexed at start-up.
const INDEX_VERSION_KEY: &[u8] = b"search_index_version";

/// What a posting records about one event containing the term: enough to filter by
/// field and sender, and to rank, without reading the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Posting {
    /// `body`, `name` or `topic`: the searched key, which also fixes the event type.
    pub field: String,
    /// How often the term occurs in the field.
    pub tf: u32,
    /// How many words the field has.
    pub len: u32,
    pub sender: String,
    /// The state group after the event, which decides who may see it.
    pub state_group: u64,
}

// A tuple on disk: the index holds one posting per word of every message, so field
// names would dominate its size.
#[derive(Serialize, Deserialize)]
struct PostingOnDisk(String, u32, u32, String, u64);

fn prefix(term: &str, room_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(term.len() + room_id.len() + 10);
    key.extend_from_slice(term.as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(room_id.as_bytes());
    key.push(keys::SEP);
    key
}

fn posting_key(term: &str, room_id: &str, stream: u64) -> Vec<u8> {
    let mut key = prefix(term, room_id);
    key.extend_from_slice(&stream.to_be_bytes());
    key
}

impl Batch<'_> {
    pub fn put_posting(
        &mut self,
        term: &str,
        room_id: &str,
        stream: u64,
        posting: &Posting,
    ) -> StoreResult<()> {
        let on_disk = PostingOnDisk(
            posting.field.clone(),
            posting.tf,
            posting.len,
            posting.sender.clone(),
            posting.state_group,
        );
        self.put_json(
            Cf::SearchPostings,
            &posting_key(term, room_id, stream),
            &on_disk,
        )
    }

    pub fn delete_posting(&mut self, term: &str, room_id: &str, stream: u64) {
        self.delete(Cf::SearchPostings, &posting_key(term, room_id, stream));
    }

    /// Drops every posting: terms are UTF-8, which never starts with `0xFF`.
    pub fn clear_search_index(&mut self) {
        let cf = self.store.cf(Cf::SearchPostings);
        self.inner
            .delete_range_cf(cf, [].as_slice(), [keys::SEP].as_slice());
    }

    pub fn set_search_index_version(&mut self, version: u32) {
        self.put_raw(Cf::Meta, INDEX_VERSION_KEY, &version.to_be_bytes());
    }
}

impl Store {
    pub fn search_index_version(&self) -> StoreResult<Option<u32>> {
        match self.get_raw(Cf::Meta, INDEX_VERSION_KEY)? {
            None => Ok(None),
            Some(bytes) => <[u8; 4]>::try_from(bytes.as_slice())
                .map(|b| Some(u32::from_be_bytes(b)))
                .map_err(|_| StoreError::Corrupt {
                    cf: Cf::Meta.name(),
                    detail: "search_index_version is not 4 bytes".into(),
                }),
        }
    }

    /// Indexed terms that start with `prefix` (the prefix itself included), at most
    /// `max` of them, in key order (where `apple` follows `applesauce`, since the
    /// separator sorts last). Each step skips the rest of a term's postings with
    /// one seek, so the cost is one seek per term returned.
    pub fn terms_with_prefix(&self, prefix: &str, max: usize) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        let mut iter = self.inner.db.raw_iterator_cf(self.cf(Cf::SearchPostings));
        iter.seek(prefix.as_bytes());
        while out.len() < max {
            let Some(key) = iter.key() else {
                break;
            };
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            let Some(end) = key.iter().position(|b| *b == keys::SEP) else {
                return Err(corrupt("posting key without a separator"));
            };
            let term = String::from_utf8(key[..end].to_vec())
                .map_err(|_| corrupt("posting term is not UTF-8"))?;
            let mut next = key[..end].to_vec();
            next.extend_from_slice(&[keys::SEP, keys::SEP]);
            out.push(term);
            iter.seek(&next);
        }
        iter.status()?;
        Ok(out)
    }

    /// A cursor over one term's postings, positioned per room with [`PostingCursor::seek_le`].
    pub fn posting_cursor(&self, term: &str) -> PostingCursor<'_> {
        PostingCursor {
            term: term.to_owned(),
            iter: self.inner.db.raw_iterator_cf(self.cf(Cf::SearchPostings)),
            prefix: Vec::new(),
            current: None,
        }
    }
}

fn corrupt(detail: &str) -> StoreError {
    StoreError::Corrupt {
        cf: Cf::SearchPostings.name(),
        detail: detail.into(),
    }
}

/// Walks one term's postings in one room from newest to oldest, jumping with seeks.
pub struct PostingCursor<'a> {
    term: String,
    iter: DBRawIteratorWithThreadMode<'a, DB>,
    prefix: Vec<u8>,
    /// Where the last `seek_le` landed in the current room.
    current: Option<u64>,
}

impl PostingCursor<'_> {
    pub fn term(&self) -> &str {
        &self.term
    }

    pub fn start_room(&mut self, room_id: &str) {
        self.prefix = prefix(&self.term, room_id);
        self.current = None;
    }

    /// The stream position of the last `seek_le`, if it found one.
    pub fn current(&self) -> Option<u64> {
        self.current
    }

    /// The newest posting of the current room at or below `at`. Calls must come with
    /// non-increasing `at` per room: a step back is then usually one `prev`, not a seek.
    pub fn seek_le(&mut self, at: u64) -> StoreResult<Option<u64>> {
        if let Some(current) = self.current
            && current <= at
        {
            return Ok(Some(current));
        }
        if self.current.is_some() {
            self.iter.prev();
            match self.position()? {
                Some(pos) if pos <= at => {
                    self.current = Some(pos);
                    return Ok(self.current);
                }
                Some(_) => {}
                None => {
                    self.current = None;
                    return Ok(None);
                }
            }
        }
        let mut target = self.prefix.clone();
        target.extend_from_slice(&at.to_be_bytes());
        self.iter.seek_for_prev(&target);
        self.current = self.position()?;
        Ok(self.current)
    }

    fn position(&self) -> StoreResult<Option<u64>> {
        let Some(key) = self.iter.key() else {
            self.iter.status()?;
            return Ok(None);
        };
        if !key.starts_with(&self.prefix) {
            return Ok(None);
        }
        <[u8; 8]>::try_from(&key[self.prefix.len()..])
            .map(|b| Some(u64::from_be_bytes(b)))
            .map_err(|_| corrupt("posting key does not end in a stream position"))
    }

    /// The posting the cursor stands on.
    pub fn posting(&self) -> StoreResult<Posting> {
        let value = self
            .iter
            .value()
            .ok_or_else(|| corrupt("posting cursor is not on a posting"))?;
        let PostingOnDisk(field, tf, len, sender, state_group) =
            serde_json::from_slice(value).map_err(|e| corrupt(&e.to_string()))?;
        Ok(Posting {
            field,
            tf,
            len,
            sender,
            state_group,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(sender: &str) -> Posting {
        Posting {
            field: "body".into(),
            tf: 1,
            len: 3,
            sender: sender.into(),
            state_group: 7,
        }
    }

    #[test]
    fn cursors_walk_one_room_newest_first_and_prefixes_list_terms() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut batch = store.batch();
        for stream in [3, 7, 9, 20] {
            batch
                .put_posting("apple", "!a:x", stream, &posting("@a:x"))
                .unwrap();
        }
        batch
            .put_posting("apple", "!b:x", 8, &posting("@b:x"))
            .unwrap();
        batch
            .put_posting("applesauce", "!a:x", 5, &posting("@a:x"))
            .unwrap();
        batch
            .put_posting("apply", "!a:x", 6, &posting("@a:x"))
            .unwrap();
        batch
            .put_posting("banana", "!a:x", 7, &posting("@a:x"))
            .unwrap();
        store.write(batch).unwrap();

        let mut cursor = store.posting_cursor("apple");
        cursor.start_room("!a:x");
        assert_eq!(cursor.seek_le(u64::MAX).unwrap(), Some(20));
        assert_eq!(cursor.seek_le(19).unwrap(), Some(9));
        assert_eq!(cursor.seek_le(9).unwrap(), Some(9));
        assert_eq!(cursor.seek_le(8).unwrap(), Some(7));
        assert_eq!(cursor.seek_le(4).unwrap(), Some(3));
        assert_eq!(cursor.posting().unwrap(), posting("@a:x"));
        assert_eq!(cursor.seek_le(2).unwrap(), None);
        cursor.start_room("!b:x");
        assert_eq!(cursor.seek_le(100).unwrap(), Some(8));
        assert_eq!(cursor.posting().unwrap().sender, "@b:x");
        cursor.start_room("!c:x");
        assert_eq!(cursor.seek_le(100).unwrap(), None);

        assert_eq!(
            store.terms_with_prefix("appl", 10).unwrap(),
            ["applesauce", "apple", "apply"]
        );
        assert_eq!(
            store.terms_with_prefix("appl", 2).unwrap(),
            ["applesauce", "apple"]
        );
        assert!(store.terms_with_prefix("cherry", 10).unwrap().is_empty());

        let mut batch = store.batch();
        batch.delete_posting("apple", "!a:x", 9);
        store.write(batch).unwrap();
        cursor = store.posting_cursor("apple");
        cursor.start_room("!a:x");
        assert_eq!(cursor.seek_le(19).unwrap(), Some(7));

        let mut batch = store.batch();
        batch.clear_search_index();
        store.write(batch).unwrap();
        assert!(store.terms_with_prefix("", 10).unwrap().is_empty());
    }
}
