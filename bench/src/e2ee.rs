//! Encryption in the single-server bench (`--e2ee`): every client's device has real
//! Ed25519 and Curve25519 key pairs and uploads signed device keys, one-time keys and a
//! fallback key; each sender, before its first message of a run and again every
//! `--key-rotation` messages, shares a room key as Element does (`/keys/query` for the
//! room's members, `/keys/claim` for one key per other device, one to-device message
//! per device), then sends `m.room.encrypted` events; receivers re-upload one-time keys
//! when their count falls below half. The ciphertexts are random bytes of realistic
//! size, not Olm or Megolm: the server never reads them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use curve25519_dalek::MontgomeryPoint;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::matrix::{Api, BENCH_ID_KEY, Client};
use crate::run::Run;

/// One-time keys a device keeps on the server; it uploads more below half of them.
pub const ONE_TIME_KEYS: u64 = 50;
/// Messages per Megolm session, as Element's default `rotation_period_msgs`.
pub const DEFAULT_ROTATION: usize = 100;
/// The one-time key algorithm clients upload and claim.
const OTK_ALGORITHM: &str = "signed_curve25519";
/// Random bytes in a to-device message's Olm body: 1,000 characters of base64, about
/// an `m.room_key` in an Olm pre-key message.
const OLM_BODY_BYTES: usize = 750;
/// Random bytes in a room message's Megolm ciphertext: about a short text message's.
const MEGOLM_BYTES: usize = 300;
/// To-device content keys: the bench ID of the run a message belongs to, and when it
/// was sent (nanoseconds on the run's clock).
pub const RUN_KEY: &str = "org.hearth.bench.run";
pub const SENT_KEY: &str = "org.hearth.bench.sent";

fn b64(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

/// Canonical JSON (keys sorted, no spaces), what Matrix signatures cover.
pub fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// Pseudo-random bytes: SHA-256 of a secret seed and a counter.
struct Random {
    seed: [u8; 32],
    counter: AtomicU64,
}

impl Random {
    fn block(&self) -> [u8; 32] {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        Sha256::new()
            .chain_update(self.seed)
            .chain_update(n.to_le_bytes())
            .finalize()
            .into()
    }

    fn bytes(&self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 32);
        while out.len() < len {
            out.extend_from_slice(&self.block());
        }
        out.truncate(len);
        out
    }
}

/// A Curve25519 public key of a fresh secret (X25519: the base point times the
/// clamped secret).
fn curve25519_public(secret: [u8; 32]) -> [u8; 32] {
    MontgomeryPoint::mul_base_clamped(secret).to_bytes()
}

/// One client's device and its keys.
pub struct Device {
    user_id: String,
    device_id: String,
    signing: SigningKey,
    pub ed25519: String,
    pub curve25519: String,
    random: Random,
    next_key: AtomicU64,
    uploading: AtomicBool,
}

impl Device {
    pub fn new(user_id: String, device_id: String, seed: [u8; 32]) -> Self {
        let random = Random {
            seed,
            counter: AtomicU64::new(0),
        };
        let signing = SigningKey::from_bytes(&random.block());
        let ed25519 = b64(signing.verifying_key().as_bytes());
        let curve25519 = b64(&curve25519_public(random.block()));
        Self {
            user_id,
            device_id,
            signing,
            ed25519,
            curve25519,
            random,
            next_key: AtomicU64::new(0),
            uploading: AtomicBool::new(false),
        }
    }

    /// Adds the device's signature to `value` (over it without `signatures` and
    /// `unsigned`).
    fn sign(&self, value: &mut Value) {
        let mut signed = value.clone();
        if let Some(object) = signed.as_object_mut() {
            object.remove("signatures");
            object.remove("unsigned");
        }
        let signature = self.signing.sign(canonical(&signed).as_bytes());
        value["signatures"] = json!({
            &self.user_id: {format!("ed25519:{}", self.device_id): b64(&signature.to_bytes())}
        });
    }

    /// The signed device keys.
    pub fn device_keys(&self) -> Value {
        let mut keys = json!({
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("curve25519:{}", self.device_id): self.curve25519,
                format!("ed25519:{}", self.device_id): self.ed25519,
            },
        });
        self.sign(&mut keys);
        keys
    }

    /// A fresh signed Curve25519 key under a new key ID, marked `fallback` if asked.
    fn signed_key(&self, fallback: bool) -> (String, Value) {
        let id = self.next_key.fetch_add(1, Ordering::Relaxed);
        let mut key = json!({"key": b64(&curve25519_public(self.random.block()))});
        if fallback {
            key["fallback"] = json!(true);
        }
        self.sign(&mut key);
        (format!("{OTK_ALGORITHM}:AAAA{id:x}"), key)
    }

    /// `n` fresh signed one-time keys.
    pub fn one_time_keys(&self, n: u64) -> Value {
        Value::Object((0..n).map(|_| self.signed_key(false)).collect())
    }

    /// The first upload: device keys, [`ONE_TIME_KEYS`] one-time keys and a fallback key.
    pub fn first_upload(&self) -> Value {
        json!({
            "device_keys": self.device_keys(),
            "one_time_keys": self.one_time_keys(ONE_TIME_KEYS),
            "fallback_keys": Value::Object([self.signed_key(true)].into_iter().collect()),
        })
    }
}

/// The devices of all clients, in client order.
pub struct Keys {
    pub devices: Vec<Device>,
    pub rotation: usize,
}

impl Keys {
    /// A device per client, with a secret seed from the kernel each.
    pub fn new(clients: &[Client], device_ids: Vec<String>, rotation: usize) -> Result<Self> {
        let mut urandom = std::fs::File::open("/dev/urandom").context("open /dev/urandom")?;
        let devices = clients
            .iter()
            .zip(device_ids)
            .map(|(client, device_id)| -> Result<Device> {
                let mut seed = [0u8; 32];
                std::io::Read::read_exact(&mut urandom, &mut seed)?;
                Ok(Device::new(client.user_id.clone(), device_id, seed))
            })
            .collect::<Result<_>>()?;
        Ok(Self { devices, rotation })
    }

    /// Every client uploads its keys, 16 at a time.
    pub async fn upload_all(&self, api: &Api, clients: &[Client]) -> Result<()> {
        futures_util::stream::iter(clients.iter().zip(&self.devices))
            .map(|(client, device)| async move {
                let path = "/_matrix/client/v3/keys/upload";
                let answer = api
                    .call(
                        Method::POST,
                        path,
                        Some(&client.token),
                        &device.first_upload(),
                    )
                    .await?;
                let count = answer["one_time_key_counts"][OTK_ALGORITHM].as_u64();
                if count != Some(ONE_TIME_KEYS) {
                    anyhow::bail!("{}: {path} counted {count:?} one-time keys", client.user_id);
                }
                anyhow::Ok(())
            })
            .buffer_unordered(16)
            .collect::<Vec<Result<()>>>()
            .await
            .into_iter()
            .collect()
    }
}

/// A sender's current Megolm session.
#[derive(Default)]
struct Session {
    id: String,
    /// Messages sent in it.
    sent: usize,
    shares: u64,
}

/// Counts of one run's encryption traffic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// Room keys shared (each: a query, a claim and a to-device request).
    pub shares: u64,
    /// To-device messages sent (one per recipient device).
    pub to_device_sent: u64,
    /// One-time keys claimed, and of them fallback keys.
    pub keys_claimed: u64,
    pub fallback_claimed: u64,
    /// One-time key uploads made because the count fell below half, and keys uploaded.
    pub reuploads: u64,
    pub keys_reuploaded: u64,
    /// p50, p99 and max (ms) of the shares' `/keys/query`, `/keys/claim` and
    /// `PUT /sendToDevice` requests, each timed by the bench from send to answer.
    pub steps: [[Option<f64>; 3]; 3],
    /// When the last sender's first share of the run ended, on the run's clock (ms).
    pub first_shares_done_ms: Option<f64>,
}

/// One run's encryption: the senders' sessions and the counts.
pub struct Traffic {
    keys: Arc<Keys>,
    api: Api,
    clients: Arc<Vec<Client>>,
    /// The client indices of each room's members.
    members: Vec<Vec<usize>>,
    run: Arc<Run>,
    sessions: Vec<tokio::sync::Mutex<Session>>,
    shares: AtomicU64,
    keys_claimed: AtomicU64,
    fallback_claimed: AtomicU64,
    reuploads: AtomicU64,
    keys_reuploaded: AtomicU64,
    /// How long each share's three requests took, nanoseconds: `/keys/query`,
    /// `/keys/claim`, `PUT /sendToDevice`.
    steps: std::sync::Mutex<Vec<[u64; 3]>>,
}

impl Traffic {
    pub fn new(
        keys: Arc<Keys>,
        api: Api,
        clients: Arc<Vec<Client>>,
        rooms: usize,
        run: Arc<Run>,
    ) -> Self {
        let mut members = vec![Vec::new(); rooms];
        for (index, client) in clients.iter().enumerate() {
            members[client.room].push(index);
        }
        let sessions = clients.iter().map(|_| Default::default()).collect();
        Self {
            keys,
            api,
            clients,
            members,
            run,
            sessions,
            shares: AtomicU64::new(0),
            keys_claimed: AtomicU64::new(0),
            fallback_claimed: AtomicU64::new(0),
            reuploads: AtomicU64::new(0),
            keys_reuploaded: AtomicU64::new(0),
            steps: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn figures(&self) -> Figures {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        Figures {
            shares: get(&self.shares),
            to_device_sent: get(&self.run.to_device_sent),
            keys_claimed: get(&self.keys_claimed),
            fallback_claimed: get(&self.fallback_claimed),
            reuploads: get(&self.reuploads),
            keys_reuploaded: get(&self.keys_reuploaded),
            steps: {
                let steps = self.steps.lock().unwrap();
                std::array::from_fn(|i| {
                    let mut times: Vec<u64> = steps.iter().map(|s| s[i]).collect();
                    times.sort_unstable();
                    [50.0, 99.0, 100.0].map(|p| crate::run::percentile_ms(&times, p))
                })
            },
            first_shares_done_ms: match self.run.first_shares_done.load(Ordering::Relaxed) {
                0 => None,
                at => Some(at as f64 / 1e6),
            },
        }
    }

    /// Before each message of `sender`: shares a new room key when its session is new
    /// or has carried `rotation` messages; returns the session ID for the message. A
    /// failed share is counted as an error and the message still goes.
    pub async fn before_send(&self, sender: usize) -> String {
        let mut session = self.sessions[sender].lock().await;
        if session.sent % self.keys.rotation.max(1) == 0 {
            session.id = b64(&self.keys.devices[sender].random.block());
            session.shares += 1;
            if let Err(error) = self.share(sender, session.shares).await {
                self.run.error(format!("room key share: {error:#}"));
            }
            if session.shares == 1 {
                self.run
                    .first_shares_done
                    .fetch_max(self.run.now(), Ordering::Relaxed);
            }
        }
        session.sent += 1;
        session.id.clone()
    }

    /// Queries the keys of the sender's room's members, claims a one-time key for each
    /// of their devices but the sender's own and sends each of those devices one
    /// to-device message.
    async fn share(&self, sender: usize, number: u64) -> Result<()> {
        self.shares.fetch_add(1, Ordering::Relaxed);
        let client = &self.clients[sender];
        let device = &self.keys.devices[sender];
        let members = &self.members[client.room];
        let users: Map<String, Value> = members
            .iter()
            .map(|&m| (self.clients[m].user_id.clone(), json!([])))
            .collect();
        let token = Some(client.token.as_str());
        let started = self.run.now();
        let mut step = [0u64; 3];
        let answer = self
            .api
            .call(
                Method::POST,
                "/_matrix/client/v3/keys/query",
                token,
                &json!({"device_keys": users}),
            )
            .await?;
        step[0] = self.run.now() - started;
        // (user, device, Curve25519 key) of every other device.
        let mut targets = Vec::new();
        for (user, devices) in answer["device_keys"].as_object().into_iter().flatten() {
            for (device_id, keys) in devices.as_object().into_iter().flatten() {
                if *user == client.user_id && *device_id == device.device_id {
                    continue;
                }
                let curve = keys["keys"][format!("curve25519:{device_id}")]
                    .as_str()
                    .unwrap_or_default();
                targets.push((user.clone(), device_id.clone(), curve.to_owned()));
            }
        }
        if targets.len() + 1 != members.len() {
            self.run.error(format!(
                "/keys/query for {}'s room listed {} other devices, not {}",
                client.user_id,
                targets.len(),
                members.len() - 1
            ));
        }
        if targets.is_empty() {
            return Ok(());
        }

        let mut wanted: Map<String, Value> = Map::new();
        for (user, device_id, _) in &targets {
            wanted
                .entry(user.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("an object")
                .insert(device_id.clone(), json!(OTK_ALGORITHM));
        }
        let claim_started = self.run.now();
        let answer = self
            .api
            .call(
                Method::POST,
                "/_matrix/client/v3/keys/claim",
                token,
                &json!({"one_time_keys": wanted}),
            )
            .await?;
        step[1] = self.run.now() - claim_started;
        let mut messages: Map<String, Value> = Map::new();
        let mut without_key = 0;
        for (user, device_id, curve) in targets {
            let claimed = &answer["one_time_keys"][&user][&device_id];
            let Some(key) = claimed.as_object().and_then(|k| k.values().next()) else {
                without_key += 1;
                continue;
            };
            self.keys_claimed.fetch_add(1, Ordering::Relaxed);
            if key["fallback"] == json!(true) {
                self.fallback_claimed.fetch_add(1, Ordering::Relaxed);
            }
            let content = json!({
                "algorithm": "m.olm.v1.curve25519-aes-sha2",
                "sender_key": device.curve25519,
                "ciphertext": {curve: {"type": 0, "body": b64(&device.random.bytes(OLM_BODY_BYTES))}},
                RUN_KEY: self.run.first_id,
                SENT_KEY: self.run.now(),
            });
            messages
                .entry(user)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("an object")
                .insert(device_id, content);
        }
        if without_key > 0 {
            self.run.error(format!(
                "/keys/claim for {} found no key for {without_key} devices",
                client.user_id
            ));
        }
        let count: usize = messages
            .values()
            .map(|d| d.as_object().map_or(0, Map::len))
            .sum();
        if count == 0 {
            return Ok(());
        }
        let path = format!(
            "/_matrix/client/v3/sendToDevice/m.room.encrypted/k{}-{sender}-{number}",
            self.run.first_id
        );
        self.run
            .to_device_sent
            .fetch_add(count as u64, Ordering::Relaxed);
        let send_started = self.run.now();
        let sent = self
            .api
            .call(Method::PUT, &path, token, &json!({"messages": messages}))
            .await;
        step[2] = self.run.now() - send_started;
        if sent.is_ok() {
            self.steps.lock().unwrap().push(step);
        }
        if sent.is_err() {
            self.run
                .to_device_sent
                .fetch_sub(count as u64, Ordering::Relaxed);
        }
        sent.map(|_| ())
    }

    /// The content of bench message `bench_id` from `sender` in Megolm session
    /// `session_id`: the fields of `m.megolm.v1.aes-sha2`, a random ciphertext of a
    /// short message's size, and the bench ID.
    pub fn megolm_content(&self, sender: usize, session_id: &str, bench_id: u64) -> Value {
        let device = &self.keys.devices[sender];
        json!({
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": device.curve25519,
            "device_id": device.device_id,
            "session_id": session_id,
            "ciphertext": b64(&device.random.bytes(MEGOLM_BYTES)),
            BENCH_ID_KEY: bench_id,
        })
    }

    /// A receiver's sync told client `index` how many one-time keys it has left: below
    /// half of [`ONE_TIME_KEYS`], it uploads new ones in the background (once at a
    /// time), as clients do.
    pub fn one_time_key_count(self: &Arc<Self>, index: usize, counts: &HashMap<String, u64>) {
        let left = counts.get(OTK_ALGORITHM).copied().unwrap_or(0);
        if left >= ONE_TIME_KEYS / 2 {
            return;
        }
        let device = &self.keys.devices[index];
        if device.uploading.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let device = &this.keys.devices[index];
            let client = &this.clients[index];
            let n = ONE_TIME_KEYS - left;
            let body = json!({"one_time_keys": device.one_time_keys(n)});
            let answer = this
                .api
                .call(
                    Method::POST,
                    "/_matrix/client/v3/keys/upload",
                    Some(&client.token),
                    &body,
                )
                .await;
            match answer {
                Ok(_) => {
                    this.reuploads.fetch_add(1, Ordering::Relaxed);
                    this.keys_reuploaded.fetch_add(n, Ordering::Relaxed);
                }
                Err(error) => this.run.error(format!("one-time key upload: {error:#}")),
            }
            device.uploading.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = json!({"b": 1, "a": {"d": [true, null, "x\"y"], "c": "é"}});
        assert_eq!(
            canonical(&value),
            r#"{"a":{"c":"é","d":[true,null,"x\"y"]},"b":1}"#
        );
    }

    #[test]
    fn curve25519_keys_are_x25519() {
        // RFC 7748, section 6.1: Alice's key pair.
        let hex = |s: &str| -> [u8; 32] {
            let bytes: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            bytes.try_into().unwrap()
        };
        let secret = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(curve25519_public(secret), public);
    }

    #[test]
    fn uploads_are_signed_by_the_device_key() {
        let device = Device::new("@a:h".into(), "DEV".into(), [7; 32]);
        let upload = device.first_upload();
        let public: [u8; 32] = STANDARD_NO_PAD
            .decode(&device.ed25519)
            .unwrap()
            .try_into()
            .unwrap();
        let verifying = VerifyingKey::from_bytes(&public).unwrap();
        let verify = |object: &Value| {
            let signature = object["signatures"]["@a:h"]["ed25519:DEV"]
                .as_str()
                .unwrap();
            let signature =
                Signature::from_slice(&STANDARD_NO_PAD.decode(signature).unwrap()).unwrap();
            let mut unsigned = object.clone();
            unsigned.as_object_mut().unwrap().remove("signatures");
            verifying
                .verify(canonical(&unsigned).as_bytes(), &signature)
                .unwrap();
        };
        let keys = &upload["device_keys"];
        verify(keys);
        assert_eq!(keys["keys"]["ed25519:DEV"], device.ed25519);
        let otks = upload["one_time_keys"].as_object().unwrap();
        assert_eq!(otks.len(), ONE_TIME_KEYS as usize);
        otks.values().for_each(verify);
        let fallback = upload["fallback_keys"].as_object().unwrap();
        assert_eq!(fallback.len(), 1);
        let (id, key) = fallback.iter().next().unwrap();
        assert!(!otks.contains_key(id), "key IDs are unique");
        assert_eq!(key["fallback"], true);
        verify(key);
        // Distinct keys, 32 bytes each.
        let first = otks.values().next().unwrap()["key"].as_str().unwrap();
        assert_eq!(STANDARD_NO_PAD.decode(first).unwrap().len(), 32);
        assert!(otks.values().skip(1).all(|k| k["key"] != first));
    }
}
