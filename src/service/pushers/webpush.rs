//! Web Push pushers (MSC4174, `kind: "webpush"`): the server posts straight to the
//! subscription's push service (RFC 8030), the message encrypted for the subscribing
//! browser (RFC 8291, `aes128gcm`) and signed with the server's VAPID key (RFC 8292).
//!
//! The pusher's `pushkey` is the subscription's P-256 public key (`p256dh`) and its
//! `data.url` the push resource (HTTPS), `data.auth` the 16-byte authentication secret,
//! both URL-safe base64 without padding.

use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use p256::{PublicKey, SecretKey};
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::vapid::Vapid;
use crate::config::IpRange;
use crate::error::{Error, Result};
use crate::service::federation::client::with_extra_roots;
use crate::service::federation::guard::{IpGuard, guarded_client};

/// The MSC's kind, and the unstable name clients used before it had none.
pub const KINDS: [&str; 2] = ["webpush", "org.matrix.msc4174.webpush"];
/// The record size in the `aes128gcm` header: one record holds the whole message.
const RECORD_SIZE: u32 = 4096;
/// The most plaintext one push message may carry (RFC 8291 §4).
pub const MAX_PLAINTEXT: usize = 3993;
/// How long the push service keeps a message for an offline browser.
const TTL_SECS: u64 = 24 * 60 * 60;
/// The longest body preview in a message.
const PREVIEW_CHARS: usize = 300;

pub fn is_webpush(kind: &str) -> bool {
    KINDS.contains(&kind)
}

/// What the push service said.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// 404, 410 or 403: the subscription is gone (or not ours); the pusher is removed.
    Gone(u16),
    /// Another 4xx: this message will never be taken; it is dropped, not retried.
    Refused(u16),
}

pub struct WebPushClient {
    http: reqwest::Client,
    guard: Arc<IpGuard>,
    vapid: Vapid,
}

fn decode_b64(value: &str) -> Option<Vec<u8>> {
    let trimmed = value.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE.decode(value))
        .ok()
}

/// The subscription's public key from a `pushkey`.
fn ua_public_key(pushkey: &str) -> Option<PublicKey> {
    let bytes = decode_b64(pushkey)?;
    (bytes.len() == 65 && bytes[0] == 4)
        .then(|| PublicKey::from_sec1_bytes(&bytes).ok())
        .flatten()
}

/// Checks a Web Push pusher's `pushkey` and `data`; the URL is not at a denied address.
pub fn check_data(pushkey: &str, data: &Map<String, Value>, guard: &IpGuard) -> Result<()> {
    if ua_public_key(pushkey).is_none() {
        return Err(Error::invalid_param(
            "pushkey must be the subscription's P-256 public key, uncompressed, in URL-safe base64",
        ));
    }
    let url = match data.get("url") {
        Some(Value::String(url)) => url,
        Some(_) => return Err(Error::invalid_param("data.url must be a string")),
        None => {
            return Err(Error::missing_param(
                "data.url (the push subscription's endpoint) is required for a webpush pusher",
            ));
        }
    };
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::invalid_param(format!("data.url is not a URL: {e}")))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none() {
        return Err(Error::invalid_param("data.url must be an https URL"));
    }
    if let Some(ip) = guard.denied_literal(&parsed) {
        return Err(Error::invalid_param(format!(
            "data.url points at {ip}, an address this server does not send to"
        )));
    }
    match data.get("auth") {
        Some(Value::String(auth)) if decode_b64(auth).is_some_and(|a| a.len() == 16) => {}
        Some(_) => {
            return Err(Error::invalid_param(
                "data.auth must be 16 bytes in URL-safe base64",
            ));
        }
        None => {
            return Err(Error::missing_param(
                "data.auth is required for a webpush pusher",
            ));
        }
    }
    match data.get("format") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(f)) if f == "event_id_only" => Ok(()),
        Some(_) => Err(Error::invalid_param(
            "data.format must be \"event_id_only\" or absent",
        )),
    }
}

/// RFC 8291 with a given sender key and salt (random ones in [`encrypt`]).
fn encrypt_with(
    sender: &SecretKey,
    salt: &[u8; 16],
    ua_public: &PublicKey,
    auth: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, String> {
    let ua_bytes = ua_public.to_sec1_bytes();
    let sender_public = sender.public_key().to_sec1_bytes();
    let shared = p256::ecdh::diffie_hellman(sender.to_nonzero_scalar(), ua_public.as_affine());
    // §3.3: IKM from the shared secret, keyed by the authentication secret.
    let mut key_info = Vec::with_capacity(14 + 130);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(&ua_bytes);
    key_info.extend_from_slice(&sender_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .map_err(|e| e.to_string())?;
    // RFC 8188 §2.2 and §2.3: the content key and nonce.
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|e| e.to_string())?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|e| e.to_string())?;
    // One record, the last: the plaintext and the delimiter 0x02, no padding.
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|e| e.to_string())?;
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), record.as_slice())
        .map_err(|e| e.to_string())?;
    let mut body = Vec::with_capacity(16 + 4 + 1 + sender_public.len() + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(sender_public.len() as u8);
    body.extend_from_slice(&sender_public);
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// Encrypts `plaintext` for the subscription (`aes128gcm`, RFC 8291).
pub fn encrypt(pushkey: &str, auth: &str, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(format!(
            "a push message may carry at most {MAX_PLAINTEXT} bytes"
        ));
    }
    let ua_public = ua_public_key(pushkey).ok_or("the pushkey is not a P-256 public key")?;
    let auth = decode_b64(auth).ok_or("data.auth is not base64")?;
    let sender = SecretKey::random(&mut rand::rngs::OsRng);
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    encrypt_with(&sender, &salt, &ua_public, &auth, plaintext)
}

/// The message for one notification, from the push gateway API's `notification` object:
/// `data.default_payload` (as Sygnal merges it), then the event's IDs and counts; for an
/// unencrypted event also its type, sender, the sender's display name, the room's name
/// and a preview of the body. An encrypted event gives nothing readable but the IDs.
pub fn payload(notification: &Value, data: &Value) -> Value {
    let mut out = data
        .get("default_payload")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for field in ["event_id", "room_id", "counts", "prio"] {
        if let Some(value) = notification.get(field) {
            out.insert(field.into(), value.clone());
        }
    }
    let event_type = notification.get("type").and_then(Value::as_str);
    if event_type.is_none() || event_type == Some("m.room.encrypted") {
        // `event_id_only`, or nothing the push service or the browser could read.
        if let Some(t) = event_type {
            out.insert("type".into(), json!(t));
        }
        return Value::Object(out);
    }
    for field in [
        "type",
        "sender",
        "sender_display_name",
        "room_name",
        "room_alias",
        "user_is_target",
    ] {
        if let Some(value) = notification.get(field) {
            out.insert(field.into(), value.clone());
        }
    }
    if let Some(content) = notification.get("content").and_then(Value::as_object) {
        let mut preview = Map::new();
        for field in ["msgtype", "membership"] {
            if let Some(Value::String(s)) = content.get(field) {
                preview.insert(field.into(), json!(s));
            }
        }
        if let Some(Value::String(body)) = content.get("body") {
            preview.insert("body".into(), json!(truncate(body, PREVIEW_CHARS)));
        }
        out.insert("content".into(), Value::Object(preview));
    }
    Value::Object(out)
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The JSON of `message`, shortened to fit one push message: the preview and names go
/// first, then everything but the IDs and counts.
pub fn encode(message: &Value) -> Vec<u8> {
    let bytes = serde_json::to_vec(message).unwrap_or_default();
    if bytes.len() <= MAX_PLAINTEXT {
        return bytes;
    }
    let mut slim = json!({});
    for field in ["event_id", "room_id", "counts", "prio", "type"] {
        if let Some(value) = message.get(field) {
            slim[field] = value.clone();
        }
    }
    serde_json::to_vec(&slim).unwrap_or_default()
}

impl WebPushClient {
    pub fn new(
        denylist: Vec<IpRange>,
        extra_ca_files: &[std::path::PathBuf],
        timeout: Duration,
        vapid: Vapid,
    ) -> anyhow::Result<Self> {
        let guard = Arc::new(IpGuard::new(denylist));
        let builder = guarded_client(guard.clone())
            .use_rustls_tls()
            .https_only(true)
            .timeout(timeout)
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")));
        let http = with_extra_roots(builder, extra_ca_files)?.build()?;
        Ok(Self { http, guard, vapid })
    }

    pub fn guard(&self) -> &IpGuard {
        &self.guard
    }

    pub fn vapid_public_key(&self) -> &str {
        self.vapid.public_key()
    }

    /// Posts one encrypted message to the pusher's push resource; `urgent` for
    /// highlights and other loud notifications. An error is a text for the log (the
    /// message is tried again).
    pub async fn send(
        &self,
        url: &str,
        pushkey: &str,
        auth: &str,
        message: &Value,
        urgent: bool,
    ) -> Result<Sent, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad push URL: {e}"))?;
        if let Some(ip) = self.guard.denied_literal(&parsed) {
            return Err(format!(
                "the push service's address {ip} is in federation.ip_range_denylist"
            ));
        }
        let body = encrypt(pushkey, auth, &encode(message))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let authorization = self.vapid.authorization(&parsed, now)?;
        let response = self
            .http
            .post(parsed)
            .header("TTL", TTL_SECS.to_string())
            .header("Urgency", if urgent { "high" } else { "normal" })
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", authorization)
            .body(body)
            .send()
            .await
            .map_err(|e| super::gateway::with_causes(&e))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(Sent::Delivered),
            403 | 404 | 410 => Ok(Sent::Gone(status)),
            408 | 429 => Err(format!("the push service answered {status}")),
            400..=499 => Ok(Sent::Refused(status)),
            _ => Err(format!("the push service answered {status}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    /// RFC 8291 Appendix A: fixed sender key and salt give the RFC's message exactly.
    #[test]
    fn the_rfc_8291_example_is_reproduced() {
        let sender =
            SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).unwrap();
        let ua_public = ua_public_key(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        )
        .unwrap();
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let body = encrypt_with(
            &sender,
            &salt,
            &ua_public,
            &b64("BTBZMqHH6r4Tts7J_aSIgg"),
            b"When I grow up, I want to be a watermelon",
        )
        .unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn encrypted_events_give_only_ids_and_counts() {
        let notification = json!({
            "event_id": "$e", "room_id": "!r:x", "counts": {"unread": 2}, "prio": "high",
            "type": "m.room.encrypted", "sender": "@a:x", "room_name": "Secret",
            "content": {"ciphertext": "abc"},
        });
        let data = json!({"default_payload": {"user_id": "@b:x"}});
        assert_eq!(
            payload(&notification, &data),
            json!({"user_id": "@b:x", "event_id": "$e", "room_id": "!r:x",
                   "counts": {"unread": 2}, "prio": "high", "type": "m.room.encrypted"})
        );
    }

    #[test]
    fn plain_events_carry_a_preview_that_fits() {
        let long = "x".repeat(5000);
        let notification = json!({
            "event_id": "$e", "room_id": "!r:x", "counts": {"unread": 1}, "prio": "low",
            "type": "m.room.message", "sender": "@a:x", "sender_display_name": "Alice",
            "room_name": "general", "content": {"msgtype": "m.text", "body": long, "other": 1},
        });
        let message = payload(&notification, &json!({}));
        assert_eq!(message["sender_display_name"], "Alice");
        assert_eq!(message["room_name"], "general");
        let body = message["content"]["body"].as_str().unwrap();
        assert_eq!(body.chars().count(), PREVIEW_CHARS + 1);
        assert!(message["content"].get("other").is_none());
        assert!(encode(&message).len() <= MAX_PLAINTEXT);
    }

    #[test]
    fn bad_keys_and_urls_are_refused() {
        let guard = IpGuard::new(crate::config::default_ip_range_denylist());
        let key = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        let good = |url: &str| {
            json!({"url": url, "auth": "BTBZMqHH6r4Tts7J_aSIgg"})
                .as_object()
                .unwrap()
                .clone()
        };
        assert!(check_data(key, &good("https://push.example.org/x"), &guard).is_ok());
        assert!(check_data("abc", &good("https://push.example.org/x"), &guard).is_err());
        assert!(check_data(key, &good("http://push.example.org/x"), &guard).is_err());
        assert!(check_data(key, &good("https://10.0.0.1/x"), &guard).is_err());
        let mut short_auth = good("https://push.example.org/x");
        short_auth.insert("auth".into(), json!("AAAA"));
        assert!(check_data(key, &short_auth, &guard).is_err());
    }
}
