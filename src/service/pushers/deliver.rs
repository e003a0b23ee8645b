//! The worker of a pusher that has one of its own: a Web Push subscription, or an HTTP
//! pusher whose gateway URL cannot be posted to (its attempts fail, with backoff, until
//! it is set again). It sends its lane's requests ([`super::lane`]) one at a time, in
//! order. A Web Push pusher waiting for its activation only gets its validation push.
//! The HTTP pushers of a gateway that can be posted to are served by its origin's worker
//! ([`super::origin`]), which also uses [`outcome`] to read the gateway's answers.

use std::sync::Arc;

use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::Value;

use super::gateway::Target;
use super::lane::{Lane, Next};
use super::webpush::{self, Sent, is_webpush};
use super::{Pushers, Signals, lock};
use crate::store::PusherRecord;

#[derive(Debug)]
pub(super) enum Outcome {
    Delivered,
    /// The gateway rejected this pusher's pushkey: the pusher is removed.
    Rejected,
}

#[derive(Deserialize)]
struct GatewayResponse {
    #[serde(default)]
    rejected: Vec<String>,
}

/// What a gateway's answer to a notify request for `pushkey` says.
pub(super) fn outcome(answer: &super::gateway::Answer, pushkey: &str) -> Result<Outcome, String> {
    if !(200..300).contains(&answer.status) {
        return Err(format!("the gateway answered {}", answer.status));
    }
    let answer: GatewayResponse =
        serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    if answer.rejected.iter().any(|k| k == pushkey) {
        Ok(Outcome::Rejected)
    } else {
        Ok(Outcome::Delivered)
    }
}

impl Pushers {
    /// The worker of one pusher that is not served with the others of its gateway's
    /// origin: a Web Push subscription, or a gateway URL that cannot be posted to.
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
        let gateway = pusher
            .data
            .get("url")
            .and_then(Value::as_str)
            .filter(|_| !is_webpush(&pusher.kind))
            .map(|url| self.gateway.target(url));
        let Some(mut lane) = Lane::open(&self, user_id, &key, pusher, signals, carried) else {
            return;
        };
        loop {
            if *shutdown.borrow() {
                // `store_progress` stores the progress at shutdown.
                return;
            }
            let (body, stream) = match lane.next(&self) {
                Next::Notification(body, stream) => (body, Some(stream)),
                Next::Badge(body) => (body, None),
                Next::Idle => {
                    tokio::select! {
                        () = lane.signals.work.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            let sent = match &gateway {
                _ if is_webpush(&lane.pusher.kind) => self.post_webpush(&lane.pusher, &body).await,
                Some(Ok(target)) => self.post_gateway(&lane.pusher, target, &body).await,
                Some(Err(e)) => Err(e.clone()),
                None => Err("the pusher has no URL".to_owned()),
            };
            match sent {
                Ok(Outcome::Delivered) => lane.delivered(stream),
                Ok(Outcome::Rejected) => {
                    self.forget_rejected(&lane.user_id, &lane.pusher, &lane.signals);
                    return;
                }
                Err(e) => {
                    if let Some(wait) = lane.failed(stream, &e) {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            _ = shutdown.changed() => {}
                        }
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
        outcome(&self.gateway.post(target, body).await?, &pusher.pushkey)
    }

    /// Whether `signals` are still those of the pusher's current worker.
    pub(super) fn is_current(&self, user_id: &UserId, key: &[u8], signals: &Arc<Signals>) -> bool {
        lock(&self.workers)
            .get(user_id)
            .and_then(|w| w.get(key))
            .is_some_and(|w| Arc::ptr_eq(&w.signals, signals))
    }
}
