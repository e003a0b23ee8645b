//! A pusher's worker: sends the user's new notifications to the push gateway (or Web
//! Push service) one at a time, in order, retrying with exponential backoff, and to a
//! gateway a badge-only update when the user's unread count dropped because they read on
//! some device. A Web Push pusher waiting for its activation only gets its validation
//! push.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::Value;

use super::body::PusherPart;
use super::feed::Fed;
use super::gateway::Target;
use super::webpush::{self, Sent, is_webpush};
use super::{Pushers, Signals, lock};
use crate::service::notifications::notifications_after;
use crate::store::PusherRecord;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(600);
/// After this many failed attempts a notification is given up (about a day of retries).
const MAX_ATTEMPTS: u32 = 150;
/// The most notifications one read of the store takes into a worker's queue.
const READ_AT_ONCE: usize = 16;

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
        carried: u64,
    ) {
        let mut shutdown = self.shutdown.clone();
        if let Some(activation) = &pusher.activation {
            self.send_activation(&user_id, &pusher, activation, &signals)
                .await;
            // Nothing more until the client acks: that starts a new worker.
            let _ = shutdown.wait_for(|stopping| *stopping).await;
            return;
        }
        let stored = match self.store.pusher_progress(&key) {
            Ok(progress) => progress.unwrap_or(0),
            Err(e) => {
                tracing::error!(user = %user_id, error = %e, "cannot read a pusher's progress");
                return;
            }
        };
        // The progress is stored by `store_progress`, for every worker at once.
        let mut progress = stored.max(carried);
        signals.saved.store(stored, Ordering::SeqCst);
        signals.progress.store(progress, Ordering::SeqCst);
        // What every request of this pusher sends alike.
        let part = PusherPart::new(&pusher);
        let gateway = pusher
            .data
            .get("url")
            .and_then(Value::as_str)
            .filter(|_| !is_webpush(&pusher.kind))
            .map(|url| self.gateway.target(url));
        // Notifications taken (from the feed or the store) and not yet pushed, oldest first.
        let mut queue: VecDeque<Fed> = VecDeque::new();
        // Every notification up to this stream position is pushed or in the queue.
        let mut seen = progress;
        // Whether the last look found every notification up to the position it looked to:
        // then only a wake (`signals.new`) makes the worker look again.
        let mut caught_up = false;
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                // `store_progress` stores the progress at shutdown.
                return;
            }
            if queue.is_empty() && (signals.new.swap(false, Ordering::SeqCst) || !caught_up) {
                // Every notification up to here is written, and was fed before.
                let visible = self.visible.load(Ordering::SeqCst).max(seen);
                let fed = lock(&signals.feed).take(seen, visible);
                if let Some(fed) = fed {
                    queue.extend(fed);
                    seen = visible;
                    caught_up = true;
                } else {
                    // After a start, or having fallen behind the feed: the store.
                    match notifications_after(&self.store, &user_id, seen, visible, READ_AT_ONCE) {
                        Ok(next) => {
                            caught_up = next.len() < READ_AT_ONCE;
                            seen = match next.last() {
                                Some((stream, _)) if !caught_up => *stream,
                                _ => visible,
                            };
                            queue.extend(next.into_iter().map(|(s, r)| (s, Arc::new(r))));
                        }
                        Err(e) => {
                            tracing::error!(user = %user_id, error = %e, "cannot read notifications");
                            // Read again at the next wake.
                            caught_up = true;
                        }
                    }
                }
            }
            let (body, stream) = match queue.front() {
                Some((stream, record)) => {
                    let stream = *stream;
                    match self.notify_body(&user_id, &part, stream, record) {
                        Some(body) => (body, Some(stream)),
                        None => {
                            // Read already, or gone: nothing to push for it.
                            queue.pop_front();
                            progress = stream;
                            signals.progress.store(progress, Ordering::SeqCst);
                            continue;
                        }
                    }
                }
                None if signals.badge.swap(false, Ordering::SeqCst) => {
                    match self.badge_body(&user_id, &pusher, &part) {
                        Some(body) => (body, None),
                        None => continue,
                    }
                }
                None => {
                    tokio::select! {
                        () = signals.work.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            let sent = match &gateway {
                _ if is_webpush(&pusher.kind) => self.post_webpush(&pusher, &body).await,
                Some(Ok(target)) => self.post_gateway(&pusher, target, &body).await,
                Some(Err(e)) => Err(e.clone()),
                None => Err("the pusher has no URL".to_owned()),
            };
            match sent {
                Ok(outcome) => {
                    failures = 0;
                    if let Some(stream) = stream {
                        queue.pop_front();
                        progress = stream;
                        signals.progress.store(progress, Ordering::SeqCst);
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
                            queue.pop_front();
                            progress = stream;
                            signals.progress.store(progress, Ordering::SeqCst);
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

    /// Sends a notification to a Web Push service, as a message made from the notify
    /// request's `notification`.
    async fn post_webpush(&self, pusher: &PusherRecord, body: &[u8]) -> Result<Outcome, String> {
        let url = pusher
            .data
            .get("url")
            .and_then(Value::as_str)
            .ok_or("the pusher has no URL")?;
        let body: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
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
        Ok(match sent {
            Sent::Delivered => Outcome::Delivered,
            Sent::Gone(_) => Outcome::Rejected,
            Sent::Refused(status) => {
                tracing::warn!(app_id = %pusher.app_id, status, "the push service refused a message; dropping it");
                Outcome::Delivered
            }
        })
    }

    /// Posts a notify request to the pusher's gateway.
    async fn post_gateway(
        &self,
        pusher: &PusherRecord,
        target: &Target,
        body: &[u8],
    ) -> Result<Outcome, String> {
        let answer = self.gateway.post(target, body).await?;
        if !(200..300).contains(&answer.status) {
            return Err(format!("the gateway answered {}", answer.status));
        }
        let answer: GatewayResponse =
            serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
        if answer.rejected.contains(&pusher.pushkey) {
            Ok(Outcome::Rejected)
        } else {
            Ok(Outcome::Delivered)
        }
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
