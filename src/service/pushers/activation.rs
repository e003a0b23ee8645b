//! The activation of Web Push pushers (MSC4174): a new or changed pusher first gets one
//! push carrying `{app_id, ack_token}`; only once the client sends that token back with
//! `POST /pushers/ack` (within 5 minutes) are notifications pushed to it, starting then.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use ruma::UserId;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::webpush::{Sent, is_webpush};
use super::{Pushers, Signals};
use crate::error::{Error, ErrorKind, Result};
use crate::service::{Services, now_ms};
use crate::store::{PusherActivation, PusherRecord, pusher_key};

/// The body of `POST /pushers/ack`.
#[derive(Debug, Deserialize)]
pub struct AckPusher {
    pub app_id: String,
    pub ack_token: String,
}

/// A UUIDv4 in the hyphenated form, as the MSC recommends.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl Services {
    /// Activates the user's Web Push pusher whose validation push carried `ack_token`.
    pub fn ack_pusher(&self, user_id: &UserId, body: AckPusher) -> Result<()> {
        let candidates: Vec<PusherRecord> = self
            .store
            .pushers(user_id.as_str())?
            .into_iter()
            .filter(|p| p.app_id == body.app_id && is_webpush(&p.kind))
            .collect();
        if candidates.is_empty() {
            return Err(Error::not_found(format!(
                "You have no Web Push pusher with app_id {:?}",
                body.app_id
            )));
        }
        let matching = candidates.into_iter().find(|p| {
            p.activation
                .as_ref()
                .is_some_and(|a| bool::from(a.token.as_bytes().ct_eq(body.ack_token.as_bytes())))
        });
        let Some(mut record) = matching else {
            return Err(Error::new(
                ErrorKind::UnknownActivationToken,
                "This activation token is not known for this app_id",
            ));
        };
        if record
            .activation
            .as_ref()
            .is_some_and(|a| a.expires_ms < now_ms())
        {
            return Err(Error::new(
                ErrorKind::ExpiredActivationToken,
                "This activation token has expired; set the pusher again for a new one",
            ));
        }
        record.activation = None;
        let key = pusher_key(user_id.as_str(), &record.app_id, &record.pushkey);
        let mut batch = self.store.batch();
        batch.put_pusher(user_id.as_str(), &record)?;
        // Notifications are pushed from the activation on.
        batch.put_pusher_progress(&key, self.rooms.stream_position());
        self.store.write(batch)?;
        Pushers::start(&self.pushers, user_id, record);
        Ok(())
    }
}

impl Pushers {
    /// Sends a pusher's validation push, retrying with the usual backoff until it is
    /// delivered, the token expires or shutdown begins.
    pub(super) async fn send_activation(
        &self,
        user_id: &UserId,
        pusher: &PusherRecord,
        activation: &PusherActivation,
        signals: &Arc<Signals>,
    ) {
        let mut shutdown = self.shutdown.clone();
        let message = json!({"app_id": pusher.app_id, "ack_token": activation.token});
        let url = pusher
            .data
            .get("url")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let auth = pusher
            .data
            .get("auth")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let mut failures: u32 = 0;
        while activation.expires_ms > now_ms() && !*shutdown.borrow() {
            match self
                .webpush
                .send(url, &pusher.pushkey, auth, &message, true)
                .await
            {
                Ok(Sent::Delivered) => return,
                Ok(Sent::Gone(status)) => {
                    // `forget_rejected` says at info that the pusher goes.
                    tracing::debug!(user = %user_id, app_id = %pusher.app_id, status, "the push service answered the validation push: no such subscription");
                    self.forget_rejected(user_id, pusher, signals);
                    return;
                }
                Ok(Sent::Refused(status)) => {
                    tracing::warn!(user = %user_id, app_id = %pusher.app_id, status, "the push service refused the validation push");
                    return;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = crate::service::backoff::backoff(failures, Duration::from_secs(60));
                    tracing::info!(user = %user_id, error = %e, retry_in = ?wait, "validation push not delivered");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_version_4_uuids() {
        let token = new_token();
        assert_eq!(token.len(), 36);
        let parts: Vec<&str> = token.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(token, new_token());
    }
}
