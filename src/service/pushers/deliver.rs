//! A pusher's worker: sends the user's new notifications to the push gateway (or Web
//! Push service) one at a time, in order, retrying with exponential backoff, and to a
//! gateway a badge-only update when the user's unread count dropped because they read on
//! some device. A Web Push pusher waiting for its activation only gets its validation
//! push.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::webpush::{self, Sent, is_webpush};
use super::{Pushers, Signals, lock};
use crate::service::notifications::notifications_after;
use crate::service::notifications::read_up_to;
use crate::store::{NotificationRecord, PusherRecord};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(600);
/// After this many failed attempts a notification is given up (about a day of retries).
const MAX_ATTEMPTS: u32 = 150;
/// A pusher's progress is written after this many notifications, and whenever its queue is
/// empty or the server stops: a crash repeats at most this many pushes.
const SAVE_EVERY: u32 = 64;

#[derive(Debug)]
enum Outcome {
    Delivered,
    /// The gateway rejected this pusher's pushkey: the pusher is removed.
    Rejected,
}

#[derive(Deserialize)]
struct GatewayResponse {
    #[serde(default)]
    rejected: Vec<String>,
}

/// 1 s, 2 s, 4 s … up to [`MAX_RETRY`].
pub(super) fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    FIRST_RETRY.saturating_mul(1 << exp).min(MAX_RETRY)
}

impl Pushers {
    pub(super) async fn run(
        self: Arc<Self>,
        user_id: OwnedUserId,
        key: Vec<u8>,
        pusher: PusherRecord,
        signals: Arc<Signals>,
    ) {
        let mut shutdown = self.shutdown.clone();
        if let Some(activation) = &pusher.activation {
            self.send_activation(&user_id, &pusher, activation, &signals)
                .await;
            // Nothing more until the client acks: that starts a new worker.
            let _ = shutdown.wait_for(|stopping| *stopping).await;
            return;
        }
        let mut progress = match self.store.pusher_progress(&key) {
            Ok(progress) => progress.unwrap_or(0),
            Err(e) => {
                tracing::error!(user = %user_id, error = %e, "cannot read a pusher's progress");
                return;
            }
        };
        let mut failures: u32 = 0;
        let mut unsaved: u32 = 0;
        loop {
            if *shutdown.borrow() {
                if unsaved > 0 {
                    self.save_progress(&key, progress);
                }
                return;
            }
            let visible = self.visible.load(Ordering::SeqCst);
            let next = match notifications_after(&self.store, &user_id, progress, visible, 1) {
                Ok(mut next) => next.pop(),
                Err(e) => {
                    tracing::error!(user = %user_id, error = %e, "cannot read notifications");
                    None
                }
            };
            let (body, stream) = match next {
                Some((stream, record)) => {
                    match self.notify_body(&user_id, &pusher, stream, &record) {
                        Some(body) => (body, Some(stream)),
                        None => {
                            // Read already, or gone: nothing to push for it.
                            progress = stream;
                            unsaved += 1;
                            continue;
                        }
                    }
                }
                None if signals.badge.swap(false, Ordering::SeqCst) => {
                    match self.badge_body(&user_id, &pusher) {
                        Some(body) => (body, None),
                        None => continue,
                    }
                }
                None => {
                    if unsaved > 0 {
                        self.save_progress(&key, progress);
                        unsaved = 0;
                    }
                    tokio::select! {
                        () = signals.work.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            match self.post(&pusher, &body).await {
                Ok(outcome) => {
                    failures = 0;
                    if let Some(stream) = stream {
                        progress = stream;
                        unsaved += 1;
                        if unsaved >= SAVE_EVERY {
                            self.save_progress(&key, progress);
                            unsaved = 0;
                        }
                    }
                    if matches!(outcome, Outcome::Rejected) {
                        tracing::info!(user = %user_id, app_id = %pusher.app_id, "the gateway rejected the pushkey (or the push service has no such subscription); removing the pusher");
                        self.forget_rejected(&user_id, &pusher, &signals);
                        return;
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if stream.is_none() {
                        // A badge is sent again only if it is still wanted; a newer one
                        // replaces it.
                        signals.badge.store(true, Ordering::SeqCst);
                    }
                    if failures >= MAX_ATTEMPTS {
                        tracing::warn!(user = %user_id, error = %e, "giving up a push notification");
                        if let Some(stream) = stream {
                            progress = stream;
                            unsaved += 1;
                        }
                        failures = 0;
                        continue;
                    }
                    let wait = backoff(failures);
                    tracing::info!(user = %user_id, error = %e, retry_in = ?wait, "push not delivered");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// Not waited for: should it be lost, a notification is pushed again.
    fn save_progress(&self, key: &[u8], stream: u64) {
        let mut batch = self.store.batch();
        batch.put_pusher_progress(key, stream);
        if let Err(e) = self.store.write_unsynced(batch) {
            tracing::error!(error = %e, "cannot store a pusher's progress");
        }
    }

    async fn post(&self, pusher: &PusherRecord, body: &Value) -> Result<Outcome, String> {
        let url = pusher
            .data
            .get("url")
            .and_then(Value::as_str)
            .ok_or("the pusher has no URL")?;
        if is_webpush(&pusher.kind) {
            let notification = &body["notification"];
            let message = webpush::payload(notification, &pusher.data);
            let auth = pusher
                .data
                .get("auth")
                .and_then(Value::as_str)
                .ok_or("the pusher has no auth secret")?;
            let urgent = notification["prio"] == "high";
            let sent = self
                .webpush
                .send(url, &pusher.pushkey, auth, &message, urgent)
                .await?;
            return Ok(match sent {
                Sent::Delivered => Outcome::Delivered,
                Sent::Gone(_) => Outcome::Rejected,
                Sent::Refused(status) => {
                    tracing::warn!(app_id = %pusher.app_id, status, "the push service refused a message; dropping it");
                    Outcome::Delivered
                }
            });
        }
        let response = self.gateway.post(url, body).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the gateway answered {status}"));
        }
        let answer: GatewayResponse = response.json().await.map_err(|e| e.to_string())?;
        if answer.rejected.contains(&pusher.pushkey) {
            Ok(Outcome::Rejected)
        } else {
            Ok(Outcome::Delivered)
        }
    }

    /// The `devices` entry of the notify request for this pusher.
    fn device(pusher: &PusherRecord, tweaks: Map<String, Value>) -> Value {
        let mut data = pusher.data.as_object().cloned().unwrap_or_default();
        data.remove("url");
        json!({
            "app_id": pusher.app_id,
            "pushkey": pusher.pushkey,
            "pushkey_ts": pusher.ts / 1000,
            "data": data,
            "tweaks": tweaks,
        })
    }

    fn unread_count(&self, user_id: &UserId) -> Option<u64> {
        self.counts
            .total(user_id)
            .inspect_err(|e| tracing::error!(user = %user_id, error = %e, "cannot count unread"))
            .ok()
    }

    /// Counts only: the user read something elsewhere.
    /// None for Web Push: a browser must show a notification for every push it gets.
    fn badge_body(&self, user_id: &UserId, pusher: &PusherRecord) -> Option<Value> {
        if is_webpush(&pusher.kind) {
            return None;
        }
        let unread = self.unread_count(user_id)?;
        Some(json!({"notification": {
            "counts": {"unread": unread},
            "devices": [Self::device(pusher, Map::new())],
        }}))
    }

    /// The notify request for one notification; `None` when the user has read the event
    /// already or it is gone.
    fn notify_body(
        &self,
        user_id: &UserId,
        pusher: &PusherRecord,
        stream: u64,
        record: &NotificationRecord,
    ) -> Option<Value> {
        let read = read_up_to(
            &self.store,
            user_id,
            &record.room_id,
            record.thread.as_deref(),
        )
        .ok()?;
        if read.is_some_and(|r| r >= stream) {
            return None;
        }
        // Shared with the syncs that delivered it a moment ago: no decoding again.
        let cached = self.store.event_shared(record.event_id.as_str()).ok()??;
        let event = &cached.record;
        if event.redacted_because.is_some() {
            return None;
        }
        let unread = self.unread_count(user_id)?;
        let mut tweaks = Map::new();
        for action in &record.actions {
            if let Some(name) = action.get("set_tweak").and_then(Value::as_str) {
                let value = action.get("value").cloned().unwrap_or(Value::Bool(true));
                tweaks.insert(name.to_owned(), value);
            }
        }
        let pdu = &event.pdu;
        let event_type = pdu.get("type").and_then(Value::as_str).unwrap_or("");
        let loud =
            record.highlight || tweaks.contains_key("sound") || event_type == "m.room.encrypted";
        let mut notification = json!({
            "event_id": record.event_id,
            "room_id": record.room_id,
            "counts": {"unread": unread},
            "prio": if loud { "high" } else { "low" },
            "devices": [Self::device(pusher, tweaks)],
        });
        if pusher.data.get("format").and_then(Value::as_str) == Some("event_id_only") {
            return Some(json!({ "notification": notification }));
        }
        let sender = pdu.get("sender").and_then(Value::as_str).unwrap_or("");
        // `id`: the event ID under its old name, which Synapse still sends and older
        // gateways (and SyTest's) read.
        notification["id"] = json!(record.event_id);
        notification["type"] = json!(event_type);
        notification["sender"] = json!(sender);
        if let Some(content) = pdu.get("content") {
            notification["content"] = content.clone();
        }
        if let Some(name) = self.state_string(record, "m.room.member", sender, "displayname") {
            notification["sender_display_name"] = json!(name);
        }
        let alias = self.state_string(record, "m.room.canonical_alias", "", "alias");
        // A room without a name is named by its canonical alias, as Synapse names it.
        if let Some(name) = self
            .state_string(record, "m.room.name", "", "name")
            .or_else(|| alias.clone())
        {
            notification["room_name"] = json!(name);
        }
        if let Some(alias) = alias {
            notification["room_alias"] = json!(alias);
        }
        if event_type == "m.room.member" {
            let target = pdu.get("state_key").and_then(Value::as_str);
            notification["user_is_target"] = json!(target == Some(user_id.as_str()));
            // Not in the spec's notification, but Synapse sends it and gateways read it.
            if let Some(membership) = pdu.pointer("/content/membership") {
                notification["membership"] = membership.clone();
            }
        }
        Some(json!({ "notification": notification }))
    }

    /// A non-empty string field of a current state event of the notification's room.
    fn state_string(
        &self,
        record: &NotificationRecord,
        event_type: &str,
        state_key: &str,
        field: &str,
    ) -> Option<String> {
        let id = self
            .store
            .current_state_id(record.room_id.as_str(), event_type, state_key)
            .ok()??;
        let event = self.store.event_shared(id.as_str()).ok()??;
        event
            .record
            .pdu
            .get("content")?
            .get(field)?
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// Whether `signals` are still those of the pusher's current worker.
    pub(super) fn is_current(&self, user_id: &UserId, key: &[u8], signals: &Arc<Signals>) -> bool {
        lock(&self.workers)
            .get(user_id)
            .and_then(|w| w.get(key))
            .is_some_and(|w| Arc::ptr_eq(&w.signals, signals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(40), MAX_RETRY);
    }
}
