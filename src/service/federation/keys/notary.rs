//! The notary side of the key store (spec "Querying Keys Through Another Server"):
//! `POST /_matrix/key/v2/query` and `GET /_matrix/key/v2/query/{serverName}` hand on
//! servers' own signed key answers with this server's signature added.
//!
//! For each key asked for, the latest answer that lists it is handed on; an answer that
//! expires before the `minimum_valid_until_ts` asked for (default: now), or a key no
//! answer listed, makes this server ask the server again first (an expired key not
//! within 30 s of a failed fetch), but whatever it then answers (another key, an
//! error, nothing) the known answers stay and are handed on, expired or not: a key is
//! never forgotten because its server stopped listing it or went down.

use std::collections::BTreeMap;

use ruma::ServerName;
use serde_json::Value;

use super::ServerKeyStore;
use crate::event::sign_json;
use crate::service::now_ms;
use crate::store::ServerKeysRecord;

/// What a notary query asks of one server.
#[derive(Debug, Default, Clone)]
pub struct NotaryQuery {
    /// Key ID → the time until which it should be valid (`None`: the default); no key
    /// ID means every key of the server.
    pub key_ids: BTreeMap<String, Option<u64>>,
    /// The time until which the answer should be valid when `key_ids` gives none.
    pub minimum_valid_until_ts: Option<u64>,
}

/// An answer's `valid_until_ts`, 0 if it has none.
fn valid_until(answer: &Value) -> u64 {
    answer
        .get("valid_until_ts")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The latest known answer that lists `key_id`.
fn latest_listing<'a>(record: &'a ServerKeysRecord, key_id: &str) -> Option<&'a Value> {
    std::iter::once(&record.response)
        .chain(&record.older)
        .find(|answer| {
            ["verify_keys", "old_verify_keys"]
                .iter()
                .any(|field| answer.get(*field).and_then(|k| k.get(key_id)).is_some())
        })
}

impl NotaryQuery {
    fn minimum(&self, asked: Option<u64>, now: u64) -> u64 {
        asked.or(self.minimum_valid_until_ts).unwrap_or(now)
    }

    /// Whether what is known answers the query without asking the server.
    fn satisfied_by(&self, record: &ServerKeysRecord, now: u64) -> bool {
        if self.key_ids.is_empty() {
            return valid_until(&record.response) >= self.minimum(None, now);
        }
        self.key_ids.iter().all(|(id, asked)| {
            latest_listing(record, id).is_some_and(|a| valid_until(a) >= self.minimum(*asked, now))
        })
    }

    /// Whether a key asked for is listed by no known answer.
    fn names_unknown_key(&self, record: &ServerKeysRecord) -> bool {
        self.key_ids
            .keys()
            .any(|id| latest_listing(record, id).is_none())
    }

    /// The answers to hand on: for each key asked for, the latest answer listing it
    /// (each once); all kept answers when no key is named, or when none of those named
    /// is known (the latest answer then shows the server's current keys).
    fn answers(&self, record: &ServerKeysRecord) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        for id in self.key_ids.keys() {
            if let Some(answer) = latest_listing(record, id)
                && !out.contains(answer)
            {
                out.push(answer.clone());
            }
        }
        if out.is_empty() {
            out.push(record.response.clone());
            if self.key_ids.is_empty() {
                out.extend(record.older.iter().cloned());
            }
        }
        out
    }
}

impl ServerKeyStore {
    /// The key answers of `server` as a notary hands them on, each signed by this server
    /// too: this server's own answer, or the known answers of another server, asked for
    /// again first when they do not meet the query (unless its last fetch failed within
    /// the back-off). Empty when nothing is known and the server cannot be reached.
    pub async fn notary_answer(&self, server: &ServerName, query: &NotaryQuery) -> Vec<Value> {
        let now = now_ms();
        if server == self.own.signing_key().server_name() {
            return self
                .own
                .server_keys_response(now)
                .ok()
                .into_iter()
                .collect();
        }
        if !self
            .record(server)
            .is_some_and(|r| query.satisfied_by(&r, now))
        {
            let mutex = self.fetch_lock(server);
            let _fetching = mutex.lock().await;
            let record = self.record(server);
            let still_unmet = !record.as_ref().is_some_and(|r| query.satisfied_by(r, now));
            // A key never seen is always asked for; an expired one not again right after
            // a failure (a server that is down is not hammered for it).
            let unknown = record.as_ref().is_none_or(|r| query.names_unknown_key(r));
            if still_unmet && (unknown || !self.recent_failure(server)) {
                let error = self.fetch_direct(server).await.err();
                if let Some(e) = &error {
                    tracing::debug!(%server, error = %e, "notary: cannot refresh keys");
                }
                self.note_attempt(server, error);
            }
        }
        let Some(record) = self.record(server) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for mut answer in query.answers(&record) {
            match sign_json(&mut answer, self.own.signing_key()) {
                Ok(()) => out.push(answer),
                Err(e) => tracing::warn!(%server, error = %e, "notary: cannot sign a key answer"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answer(key_id: &str, valid_until_ts: u64) -> Value {
        json!({
            "server_name": "remote.example",
            "valid_until_ts": valid_until_ts,
            "verify_keys": { key_id: { "key": "k" } },
            "old_verify_keys": {},
        })
    }

    #[test]
    fn each_key_is_answered_with_the_latest_answer_listing_it() {
        // key_1 was listed by an answer valid until 1000; the server then answered with
        // key_2 only.
        let record = ServerKeysRecord {
            keys: BTreeMap::new(),
            response: answer("ed25519:key_2", 2000),
            older: vec![answer("ed25519:key_1", 1000)],
            valid_until_ts: 2000,
            fetched_ts: 0,
        };
        let ask = |id: &str, min: u64| NotaryQuery {
            key_ids: BTreeMap::from([(id.to_owned(), Some(min))]),
            minimum_valid_until_ts: None,
        };
        assert!(ask("ed25519:key_1", 1000).satisfied_by(&record, 5000));
        assert!(!ask("ed25519:key_1", 1001).satisfied_by(&record, 5000));
        assert_eq!(
            ask("ed25519:key_1", 0).answers(&record),
            vec![answer("ed25519:key_1", 1000)]
        );
        assert_eq!(
            ask("ed25519:unknown", 0).answers(&record),
            vec![record.response.clone()]
        );
        assert!(!ask("ed25519:unknown", 0).satisfied_by(&record, 5000));
        assert!(ask("ed25519:unknown", 0).names_unknown_key(&record));
        assert!(!ask("ed25519:key_1", 0).names_unknown_key(&record));
        let all = NotaryQuery::default();
        assert_eq!(all.answers(&record).len(), 2);
        assert!(
            !all.satisfied_by(&record, 5000),
            "the default minimum is now"
        );
        assert!(
            NotaryQuery {
                minimum_valid_until_ts: Some(2000),
                ..NotaryQuery::default()
            }
            .satisfied_by(&record, 5000)
        );
    }
}
