//! Other servers' signing keys (spec "Retrieving server keys"): fetched from the server's
//! `/_matrix/key/v2/server`, or through the notaries of `federation.trusted_key_servers`
//! first (as Synapse does), checked, and kept in RocksDB with the time until which each
//! key verifies signatures. Concurrent fetches of one server are coalesced, and a server
//! is not asked again right after a failed or fruitless fetch.
//!
//! This server also acts as a notary (`keys/notary.rs`): it hands on servers' own signed
//! key answers with its signature added.

mod notary;

pub use notary::NotaryQuery;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ruma::api::federation::discovery::{
    ServerSigningKeys, get_remote_server_keys_batch, get_server_keys,
};
use ruma::{OwnedServerName, ServerName};
use serde_json::Value;

use super::{FederationClient, OutboundError};
use crate::config::Config;
use crate::event::{EventError, PublicKeyMap, RoomVersion, Verified, verify_json};
use crate::service::keys::ServerKeys;
use crate::service::now_ms;
use crate::store::{ServerKeysRecord, Store, StoredKey};

/// The spec: a key is never trusted for longer than 7 days after it was fetched.
const MAX_VALIDITY_MS: u64 = 7 * 24 * 3600 * 1000;
/// A server whose fetch failed is not asked again for this long.
const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(30);
/// Nor one that answered without the key wanted, so that requests signed with unknown
/// keys cannot make this server hammer the claimed origin.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Past this many servers, the fetch bookkeeping drops what it no longer needs.
const MAX_TRACKED_SERVERS: usize = 10_000;
/// A notary query answers for at most this many servers.
pub const MAX_NOTARY_SERVERS: usize = 100;
/// Earlier key answers kept per server for the keys the latest one no longer lists.
const MAX_OLDER_ANSWERS: usize = 16;

/// A signature check that failed: the keys could not be had, or they do not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Keys(#[from] OutboundError),
    #[error("bad signature of {server}: {detail}")]
    BadSignature {
        server: OwnedServerName,
        detail: String,
    },
}

struct Attempt {
    at: Instant,
    error: Option<OutboundError>,
}

pub struct ServerKeyStore {
    own: Arc<ServerKeys>,
    store: Store,
    client: Arc<FederationClient>,
    notaries: Vec<OwnedServerName>,
    memory: Mutex<HashMap<OwnedServerName, Arc<ServerKeysRecord>>>,
    locks: Mutex<HashMap<OwnedServerName, Arc<tokio::sync::Mutex<()>>>>,
    attempts: Mutex<HashMap<OwnedServerName, Attempt>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ServerKeyStore {
    pub fn new(
        config: &Config,
        own: Arc<ServerKeys>,
        store: Store,
        client: Arc<FederationClient>,
    ) -> Self {
        let notaries = config
            .federation
            .trusted_key_servers
            .iter()
            .filter_map(|name| ServerName::parse(name).ok())
            .collect();
        Self {
            own,
            store,
            client,
            notaries,
            memory: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// The public keys of `server` among `key_ids` (all its keys if empty) that verify
    /// signatures made at `valid_at_ts`, fetched if not known. An error only when none
    /// of them is found.
    pub async fn verify_keys(
        &self,
        server: &ServerName,
        key_ids: &[&str],
        valid_at_ts: u64,
    ) -> Result<PublicKeyMap, OutboundError> {
        if server == self.own.signing_key().server_name() {
            let map = self.own.signing_key().public_key_map();
            return Ok(select(&map, server, key_ids));
        }
        let found = self.cached_keys(server, key_ids, valid_at_ts);
        if complete(&found, server, key_ids) {
            return Ok(found);
        }
        let mutex = self.fetch_lock(server);
        let _fetching = mutex.lock().await;
        // Another request may have fetched them while this one waited.
        let found = self.cached_keys(server, key_ids, valid_at_ts);
        if complete(&found, server, key_ids) {
            return Ok(found);
        }
        let error = match self.recent_attempt(server) {
            Some(previous_error) => previous_error,
            None => {
                let error = self.fetch(server, key_ids, valid_at_ts).await.err();
                self.note_attempt(server, error.clone());
                error
            }
        };
        let found = self.cached_keys(server, key_ids, valid_at_ts);
        if found
            .get(server.as_str())
            .is_some_and(|keys| !keys.is_empty())
        {
            return Ok(found);
        }
        Err(error.unwrap_or_else(|| OutboundError::BadKeys {
            server: server.to_owned(),
            detail: format!(
                "it publishes no key {} valid at {valid_at_ts}",
                if key_ids.is_empty() {
                    "at all".to_owned()
                } else {
                    key_ids.join(", ")
                }
            ),
        }))
    }

    /// Checks that `server` signed `value` (a request object, any signed JSON) with keys
    /// valid at `valid_at_ts`.
    pub async fn verify_signed_json(
        &self,
        server: &ServerName,
        value: &Value,
        valid_at_ts: u64,
    ) -> Result<(), VerifyError> {
        let key_ids = signing_key_ids(value, server);
        let refs: Vec<&str> = key_ids.iter().map(String::as_str).collect();
        if refs.is_empty() {
            return Err(bad_signature(server, "no signature of this server"));
        }
        let keys = self.verify_keys(server, &refs, valid_at_ts).await?;
        verify_json(value, server.as_str(), &keys).map_err(|e| bad_signature(server, e))
    }

    /// Checks a PDU's signatures and content hash with the keys of every server that
    /// signed it, valid at its `origin_server_ts` (see [`crate::event::verify_event`]).
    pub async fn verify_event(
        &self,
        event: &Value,
        version: RoomVersion,
    ) -> Result<Verified, VerifyError> {
        // Room versions before 5 do not require the key to be valid when the event was sent:
        // any key the server published (asked for as valid at time 0) verifies its events.
        let ts = if version.enforces_key_validity() {
            event
                .get("origin_server_ts")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        } else {
            0
        };
        let signers: Vec<OwnedServerName> = event
            .get("signatures")
            .and_then(Value::as_object)
            .map(|sigs| {
                sigs.keys()
                    .filter_map(|s| ServerName::parse(s).ok())
                    .take(10)
                    .collect()
            })
            .unwrap_or_default();
        let mut keys = PublicKeyMap::new();
        for server in &signers {
            let ids = signing_key_ids(event, server);
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            // A signer whose keys cannot be had fails the check below only if its
            // signature is one the event needs.
            if let Ok(found) = self.verify_keys(server, &refs, ts).await {
                keys.extend(found);
            }
        }
        crate::event::verify_event(event, &keys, version).map_err(|e: EventError| {
            let server = signers
                .first()
                .cloned()
                .unwrap_or_else(|| self.own.signing_key().server_name().to_owned());
            bad_signature(&server, e)
        })
    }

    fn note_attempt(&self, server: &ServerName, error: Option<OutboundError>) {
        let mut attempts = lock(&self.attempts);
        if attempts.len() >= MAX_TRACKED_SERVERS {
            attempts.retain(|_, a| a.at.elapsed() < FAILED_FETCH_BACKOFF);
        }
        attempts.insert(
            server.to_owned(),
            Attempt {
                at: Instant::now(),
                error,
            },
        );
    }

    /// The fetch lock of `server`; locks nobody holds are dropped now and then.
    fn fetch_lock(&self, server: &ServerName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = lock(&self.locks);
        if locks.len() >= MAX_TRACKED_SERVERS {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(server.to_owned()).or_default().clone()
    }

    /// The last fetch of `server`, if it was too recent to fetch again: its error.
    fn recent_attempt(&self, server: &ServerName) -> Option<Option<OutboundError>> {
        let attempts = lock(&self.attempts);
        let attempt = attempts.get(server)?;
        let wait = if attempt.error.is_some() {
            FAILED_FETCH_BACKOFF
        } else {
            REFETCH_INTERVAL
        };
        (attempt.at.elapsed() < wait).then(|| attempt.error.clone())
    }

    /// Whether the last fetch of `server` failed too recently to fetch again.
    fn recent_failure(&self, server: &ServerName) -> bool {
        lock(&self.attempts)
            .get(server)
            .is_some_and(|a| a.error.is_some() && a.at.elapsed() < FAILED_FETCH_BACKOFF)
    }

    fn record(&self, server: &ServerName) -> Option<Arc<ServerKeysRecord>> {
        if let Some(record) = lock(&self.memory).get(server) {
            return Some(record.clone());
        }
        match self.store.server_keys(server.as_str()) {
            Ok(Some(record)) => {
                let record = Arc::new(record);
                lock(&self.memory).insert(server.to_owned(), record.clone());
                Some(record)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(%server, error = %e, "cannot read stored server keys");
                None
            }
        }
    }

    fn cached_keys(&self, server: &ServerName, key_ids: &[&str], valid_at_ts: u64) -> PublicKeyMap {
        let mut map = PublicKeyMap::new();
        if let Some(record) = self.record(server) {
            let usable: BTreeMap<String, String> = record
                .keys
                .iter()
                .filter(|(id, key)| {
                    (key_ids.is_empty() || key_ids.contains(&id.as_str()))
                        && key.valid_until_ts >= valid_at_ts
                })
                .map(|(id, key)| (id.clone(), key.key.clone()))
                .collect();
            if !usable.is_empty() {
                map.insert(server.to_string(), usable);
            }
        }
        map
    }

    /// Notaries first, then the server itself, until the wanted keys are known.
    async fn fetch(
        &self,
        server: &ServerName,
        key_ids: &[&str],
        valid_at_ts: u64,
    ) -> Result<(), OutboundError> {
        // A notary's own keys always come from the notary, so fetching one never waits
        // for another notary.
        if !self.notaries.iter().any(|n| n == server) {
            for notary in &self.notaries {
                match self.fetch_via_notary(notary, server, key_ids).await {
                    Ok(()) => {
                        let found = self.cached_keys(server, key_ids, valid_at_ts);
                        if complete(&found, server, key_ids) {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        tracing::info!(%server, %notary, error = %e, "notary key query failed");
                    }
                }
            }
        }
        self.fetch_direct(server).await
    }

    async fn fetch_direct(&self, server: &ServerName) -> Result<(), OutboundError> {
        let response = self
            .client
            .send(server, get_server_keys::v2::Request::new())
            .await?;
        let value: Value = serde_json::from_str(response.server_key.json().get()).map_err(|e| {
            OutboundError::BadResponse {
                server: server.to_owned(),
                detail: e.to_string(),
            }
        })?;
        self.accept(server, value, None)
    }

    async fn fetch_via_notary(
        &self,
        notary: &ServerName,
        server: &ServerName,
        key_ids: &[&str],
    ) -> Result<(), OutboundError> {
        let criteria = key_ids
            .iter()
            .filter_map(|id| ruma::OwnedServerSigningKeyId::try_from(*id).ok())
            .map(|id| (id, get_remote_server_keys_batch::v2::QueryCriteria::new()))
            .collect();
        let request = get_remote_server_keys_batch::v2::Request::new(BTreeMap::from([(
            server.to_owned(),
            criteria,
        )]));
        let response = self.client.send(notary, request).await?;
        let bad = |detail: String| OutboundError::BadKeys {
            server: notary.to_owned(),
            detail,
        };
        let mut accepted = false;
        for raw in response.server_keys {
            let value: Value =
                serde_json::from_str(raw.json().get()).map_err(|e| bad(e.to_string()))?;
            if value.get("server_name").and_then(Value::as_str) != Some(server.as_str()) {
                continue;
            }
            let ids = signing_key_ids(&value, notary);
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            if refs.is_empty() {
                return Err(bad(format!("the notary did not sign the keys of {server}")));
            }
            let notary_keys = Box::pin(self.verify_keys(notary, &refs, now_ms())).await?;
            verify_json(&value, notary.as_str(), &notary_keys)
                .map_err(|e| bad(format!("the notary's signature does not verify: {e}")))?;
            self.accept(server, value, Some(notary))?;
            accepted = true;
        }
        if accepted {
            Ok(())
        } else {
            Err(bad(format!("the notary knows no keys of {server}")))
        }
    }

    /// Checks a key answer for `server` (already checked for the notary's signature, if
    /// it came through one) and merges it into what is stored.
    fn accept(
        &self,
        server: &ServerName,
        value: Value,
        via: Option<&ServerName>,
    ) -> Result<(), OutboundError> {
        let bad = |detail: String| OutboundError::BadKeys {
            server: server.to_owned(),
            detail: match via {
                Some(notary) => format!("{detail} (through {notary})"),
                None => detail,
            },
        };
        let parsed: ServerSigningKeys = serde_json::from_value(value.clone())
            .map_err(|e| bad(format!("not a key answer: {e}")))?;
        if parsed.server_name != server {
            return Err(bad(format!(
                "the answer is for {}, not {server}",
                parsed.server_name
            )));
        }
        let mut own_keys = BTreeMap::new();
        for (id, key) in &parsed.verify_keys {
            own_keys.insert(id.to_string(), key.key.encode());
        }
        let self_map = PublicKeyMap::from([(server.to_string(), own_keys)]);
        verify_json(&value, server.as_str(), &self_map)
            .map_err(|e| bad(format!("not signed by its own keys: {e}")))?;
        let now = now_ms();
        let previous = self.record(server);
        let record = merge(previous.as_deref(), &parsed, value, now);
        if let Err(e) = self.store.put_server_keys(server.as_str(), &record) {
            tracing::error!(%server, error = %e, "cannot store server keys");
        }
        lock(&self.memory).insert(server.to_owned(), Arc::new(record));
        Ok(())
    }
}

/// Adds a checked key answer to what was known: current keys are valid until the
/// answer's `valid_until_ts` (at most 7 days from `now`, and never less than an earlier
/// answer allowed), old keys until their `expired_ts`.
fn merge(
    previous: Option<&ServerKeysRecord>,
    parsed: &ServerSigningKeys,
    response: Value,
    now: u64,
) -> ServerKeysRecord {
    let valid_until_ts: u64 = parsed.valid_until_ts.get().into();
    let capped = valid_until_ts.min(now.saturating_add(MAX_VALIDITY_MS));
    let mut keys = previous.map(|r| r.keys.clone()).unwrap_or_default();
    for (id, key) in &parsed.verify_keys {
        let key = key.key.encode();
        let entry = keys.entry(id.to_string()).or_insert(StoredKey {
            key: key.clone(),
            valid_until_ts: capped,
            expired_ts: None,
        });
        if entry.key == key && entry.expired_ts.is_none() {
            entry.valid_until_ts = entry.valid_until_ts.max(capped);
        } else {
            *entry = StoredKey {
                key,
                valid_until_ts: capped,
                expired_ts: None,
            };
        }
    }
    for (id, old) in &parsed.old_verify_keys {
        let expired_ts: u64 = old.expired_ts.get().into();
        keys.insert(
            id.to_string(),
            StoredKey {
                key: old.key.encode(),
                valid_until_ts: expired_ts,
                expired_ts: Some(expired_ts),
            },
        );
    }
    // Earlier answers stay while they are the latest to list some key, so that a notary
    // can still hand on a key the server no longer lists.
    let mut listed = listed_keys(&response);
    let mut older = Vec::new();
    if let Some(previous) = previous {
        for earlier in std::iter::once(&previous.response).chain(&previous.older) {
            let keys = listed_keys(earlier);
            if older.len() < MAX_OLDER_ANSWERS && keys.iter().any(|k| !listed.contains(k)) {
                listed.extend(keys);
                older.push(earlier.clone());
            }
        }
    }
    ServerKeysRecord {
        keys,
        response,
        older,
        valid_until_ts,
        fetched_ts: now,
    }
}

/// The key IDs a key answer lists, current or old.
fn listed_keys(answer: &Value) -> BTreeSet<String> {
    ["verify_keys", "old_verify_keys"]
        .iter()
        .filter_map(|field| answer.get(*field).and_then(Value::as_object))
        .flat_map(|keys| keys.keys().cloned())
        .collect()
}

/// The key IDs `server` signed `value` with.
fn signing_key_ids(value: &Value, server: &ServerName) -> Vec<String> {
    value
        .get("signatures")
        .and_then(|s| s.get(server.as_str()))
        .and_then(Value::as_object)
        .map(|sigs| sigs.keys().cloned().collect())
        .unwrap_or_default()
}

fn select(map: &PublicKeyMap, server: &ServerName, key_ids: &[&str]) -> PublicKeyMap {
    let mut out = PublicKeyMap::new();
    if let Some(keys) = map.get(server.as_str()) {
        let chosen: BTreeMap<String, String> = keys
            .iter()
            .filter(|(id, _)| key_ids.is_empty() || key_ids.contains(&id.as_str()))
            .map(|(id, key)| (id.clone(), key.clone()))
            .collect();
        if !chosen.is_empty() {
            out.insert(server.to_string(), chosen);
        }
    }
    out
}

/// Whether every wanted key was found (or any key, when none is named).
fn complete(found: &PublicKeyMap, server: &ServerName, key_ids: &[&str]) -> bool {
    match found.get(server.as_str()) {
        None => false,
        Some(keys) => key_ids.iter().all(|id| keys.contains_key(*id)) && !keys.is_empty(),
    }
}

fn bad_signature(server: &ServerName, detail: impl std::fmt::Display) -> VerifyError {
    VerifyError::BadSignature {
        server: server.to_owned(),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{SigningKey, sign_json};
    use serde_json::json;

    fn answer(key: &SigningKey, valid_until_ts: u64, old: Value) -> (ServerSigningKeys, Value) {
        let mut value = json!({
            "server_name": key.server_name(),
            "valid_until_ts": valid_until_ts,
            "verify_keys": { key.key_id(): { "key": key.public_key_base64() } },
            "old_verify_keys": old,
        });
        sign_json(&mut value, key).unwrap();
        (serde_json::from_value(value.clone()).unwrap(), value)
    }

    #[test]
    fn validity_is_capped_at_seven_days_and_old_keys_end_at_their_expiry() {
        let (key, _) = SigningKey::generate("remote.example", "ed25519:new").unwrap();
        let now = 1_000_000;
        let (parsed, value) = answer(
            &key,
            now + 30 * MAX_VALIDITY_MS,
            json!({ "ed25519:old": { "key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "expired_ts": 500 } }),
        );
        let record = merge(None, &parsed, value, now);
        assert_eq!(
            record.keys["ed25519:new"].valid_until_ts,
            now + MAX_VALIDITY_MS
        );
        assert_eq!(record.keys["ed25519:old"].valid_until_ts, 500);
        assert_eq!(record.keys["ed25519:old"].expired_ts, Some(500));
        assert_eq!(record.valid_until_ts, now + 30 * MAX_VALIDITY_MS);
    }

    #[test]
    fn a_later_answer_extends_a_key_and_keeps_keys_it_no_longer_lists() {
        let (first, _) = SigningKey::generate("remote.example", "ed25519:a").unwrap();
        let (second, _) = SigningKey::generate("remote.example", "ed25519:b").unwrap();
        let (parsed, value) = answer(&first, 2_000, json!({}));
        let record = merge(None, &parsed, value, 1_000);
        let (parsed, value) = answer(&first, 5_000, json!({}));
        let record = merge(Some(&record), &parsed, value, 3_000);
        assert_eq!(record.keys["ed25519:a"].valid_until_ts, 5_000);
        // Rotated: the old key still verifies what it signed while it was valid.
        let (parsed, value) = answer(&second, 9_000, json!({}));
        let record = merge(Some(&record), &parsed, value, 4_000);
        assert_eq!(record.keys["ed25519:a"].valid_until_ts, 5_000);
        assert_eq!(record.keys["ed25519:b"].valid_until_ts, 9_000);
        // The answer listing only the old key stays for a notary to hand on.
        assert_eq!(record.older.len(), 1);
        assert!(record.older[0]["verify_keys"]["ed25519:a"].is_object());
        // A shorter answer does not shorten what an earlier one allowed.
        let (parsed, value) = answer(&second, 6_000, json!({}));
        let record = merge(Some(&record), &parsed, value, 4_500);
        assert_eq!(record.keys["ed25519:b"].valid_until_ts, 9_000);
        // Answers superseded for every key they list are dropped.
        assert_eq!(record.older.len(), 1);
        assert_eq!(record.response["valid_until_ts"], 6_000);
    }

    /// A key store for `our.example` whose data lives in `dir`.
    fn key_store(dir: &std::path::Path) -> (ServerKeyStore, Arc<ServerKeys>) {
        let config = Config {
            server_name: "our.example".into(),
            ..Config::default()
        };
        let own = Arc::new(ServerKeys::load_or_create(dir, "our.example").unwrap());
        let store = Store::open(&dir.join("db"), false).unwrap();
        let client = Arc::new(FederationClient::new(&config, own.clone()).unwrap());
        (
            ServerKeyStore::new(&config, own.clone(), store, client),
            own,
        )
    }

    #[tokio::test]
    async fn signed_json_and_events_verify_with_known_keys_and_fail_without() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, own) = key_store(dir.path());
        let now = now_ms();

        // Our own events verify from memory.
        let pdu = crate::event::NewPdu {
            room_id: Some("!r:our.example".try_into().unwrap()),
            sender: "@a:our.example".try_into().unwrap(),
            event_type: "m.room.message".into(),
            state_key: None,
            content: json!({ "body": "hi" }),
            prev_events: vec![],
            auth_events: vec![],
            depth: 1,
            origin_server_ts: now,
            redacts: None,
        };
        let (_, event) =
            crate::event::build_signed_pdu(&pdu, RoomVersion::V11, own.signing_key()).unwrap();
        assert_eq!(
            keys.verify_event(&event, RoomVersion::V11).await,
            Ok(Verified::All)
        );
        let mut tampered = event.clone();
        tampered["content"]["body"] = json!("bye");
        assert_eq!(
            keys.verify_event(&tampered, RoomVersion::V11).await,
            Ok(Verified::SignaturesOnly)
        );
        tampered["depth"] = json!(2);
        assert!(matches!(
            keys.verify_event(&tampered, RoomVersion::V11).await,
            Err(VerifyError::BadSignature { .. })
        ));

        // A remote server whose keys are known: an IP literal the default denylist
        // refuses, so nothing here can reach the network.
        let remote = <&ServerName>::try_from("127.0.0.2:9").unwrap();
        let (remote_key, _) = SigningKey::generate("127.0.0.2:9", "ed25519:r").unwrap();
        let (_, published) = answer(&remote_key, now + 3_600_000, json!({}));
        keys.accept(remote, published, None).unwrap();
        let mut signed = json!({ "method": "GET", "uri": "/x" });
        sign_json(&mut signed, &remote_key).unwrap();
        keys.verify_signed_json(remote, &signed, now).await.unwrap();
        let mut forged = signed.clone();
        forged["uri"] = json!("/y");
        assert!(matches!(
            keys.verify_signed_json(remote, &forged, now).await,
            Err(VerifyError::BadSignature { .. })
        ));
        assert!(matches!(
            keys.verify_signed_json(remote, &json!({ "unsigned": 1 }), now)
                .await,
            Err(VerifyError::BadSignature { .. })
        ));
        // Past the key's validity it is not used, and a fetch is refused by the guard.
        let later = now + 2 * 3_600_000;
        match keys.verify_keys(remote, &["ed25519:r"], later).await {
            Err(OutboundError::Denied { .. }) => {}
            other => panic!("expected the guard's refusal, got {other:?}"),
        }
        // The keys survive a restart of the store.
        drop(keys);
        let (keys, _) = key_store(dir.path());
        let found = keys.verify_keys(remote, &["ed25519:r"], now).await.unwrap();
        assert_eq!(
            found[remote.as_str()]["ed25519:r"],
            remote_key.public_key_base64()
        );
        // The notary hands on the remote's answer with our signature added.
        let query = NotaryQuery {
            minimum_valid_until_ts: Some(0),
            ..NotaryQuery::default()
        };
        let answers = keys.notary_answer(remote, &query).await;
        assert_eq!(answers.len(), 1);
        verify_json(
            &answers[0],
            "our.example",
            &own.signing_key().public_key_map(),
        )
        .unwrap();
        verify_json(&answers[0], remote.as_str(), &remote_key.public_key_map()).unwrap();
        // Past its validity, and its server unreachable (the guard refuses it), the
        // answer is still handed on.
        let query = NotaryQuery {
            minimum_valid_until_ts: Some(now + 10 * 3_600_000),
            ..NotaryQuery::default()
        };
        let answers = keys.notary_answer(remote, &query).await;
        assert_eq!(answers.len(), 1);
        assert_eq!(
            answers[0]["verify_keys"]["ed25519:r"]["key"],
            remote_key.public_key_base64()
        );
    }

    #[test]
    fn completeness_needs_every_named_key() {
        let server = <&ServerName>::try_from("remote.example").unwrap();
        let found = PublicKeyMap::from([(
            "remote.example".to_owned(),
            BTreeMap::from([("ed25519:a".to_owned(), "k".to_owned())]),
        )]);
        assert!(complete(&found, server, &["ed25519:a"]));
        assert!(complete(&found, server, &[]));
        assert!(!complete(&found, server, &["ed25519:a", "ed25519:b"]));
        assert!(!complete(&PublicKeyMap::new(), server, &[]));
        assert_eq!(select(&found, server, &["ed25519:b"]), PublicKeyMap::new());
        assert_eq!(select(&found, server, &[]), found);
    }
}
