//! Digests of missed messages: a background worker mails each user with an `email`
//! pusher (made when an address is added; removed by the unsubscribe link or
//! `/pushers/set` with `kind: null`) the highlights and direct messages that have stayed
//! unread for `email.notif_delay_secs`, at most once per `email.notif_interval_secs`.
//! Events of encrypted rooms are only counted. Every piece of user content is escaped
//! in the HTML part.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ruma::{OwnedEventId, OwnedRoomId, UserId};
use serde_json::Value;

use super::threepid::EMAIL_APP_ID;
use super::{escape, html};
use crate::error::{Error, Result};
use crate::service::notifications::read_up_to;
use crate::service::{Services, now_ms};
use crate::store::{DigestRecord, NotificationRecord};

/// The Hearth page the unsubscribe link opens.
pub const UNSUBSCRIBE_PATH: &str = "/_hearth/client/v1/email/unsubscribe";
/// The most notifications one pass reads per user.
const MAX_SCAN: usize = 1_000;
/// The most messages one digest shows (the rest are counted).
const MAX_SHOWN: usize = 20;
const PREVIEW_CHARS: usize = 200;

/// One missed message.
struct Missed {
    room: String,
    sender: String,
    preview: Option<String>,
}

impl Services {
    /// Runs for the server's life (ended by shutdown, like the presence loop), waking
    /// every `notif_delay_secs` (at most every minute, at least every second).
    pub async fn email_digest_loop(self: Arc<Self>) {
        if !self.email.enabled() {
            return;
        }
        let tick = Duration::from_secs(self.email.config.notif_delay_secs.clamp(1, 60));
        loop {
            tokio::time::sleep(tick).await;
            if let Err(e) = self.send_due_digests().await {
                tracing::warn!(error = %e.message, "email digests failed");
            }
        }
    }

    async fn send_due_digests(&self) -> Result<()> {
        let now = now_ms();
        let config = &self.email.config;
        let mut addresses: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (user_id, pusher) in self.store.all_pushers()? {
            if pusher.kind == "email" && pusher.app_id == EMAIL_APP_ID {
                addresses
                    .entry(user_id.to_string())
                    .or_default()
                    .push(pusher.pushkey);
            }
        }
        for (user, addresses) in addresses {
            let Ok(user_id) = UserId::parse(user.as_str()) else {
                continue;
            };
            let record = self.store.email_digest(&user)?.unwrap_or_default();
            if record.last_sent_ms != 0
                && now < record.last_sent_ms + config.notif_interval_secs * 1000
            {
                continue;
            }
            let cutoff = now.saturating_sub(config.notif_delay_secs * 1000);
            let (missed, encrypted, covered_to) =
                self.missed_messages(&user_id, record.covered_to, cutoff)?;
            if covered_to > record.covered_to && missed.is_empty() && encrypted == 0 {
                // Everything due was read: nothing to send, and no need to look again.
                let mut batch = self.store.batch();
                batch.put_email_digest(
                    &user,
                    &DigestRecord {
                        covered_to,
                        ..record
                    },
                )?;
                self.store.write_unsynced(batch)?;
                continue;
            }
            if missed.is_empty() && encrypted == 0 {
                continue;
            }
            let mut sent_any = false;
            for address in &addresses {
                // The address must still be the user's.
                if self.store.threepid_owner(address)?.as_deref() != Some(user.as_str()) {
                    continue;
                }
                match self.send_digest(&user, address, &missed, encrypted).await {
                    Ok(()) => sent_any = true,
                    Err(e) => tracing::warn!(error = %e.message, "cannot send an email digest"),
                }
            }
            if sent_any {
                let mut batch = self.store.batch();
                batch.put_email_digest(
                    &user,
                    &DigestRecord {
                        last_sent_ms: now,
                        covered_to,
                    },
                )?;
                self.store.write(batch)?;
            }
        }
        Ok(())
    }

    /// The user's unread highlights and direct messages after stream `after` and not
    /// newer than `cutoff` (ms), the number of those from encrypted rooms, and the
    /// newest stream position looked at.
    fn missed_messages(
        &self,
        user_id: &UserId,
        after: u64,
        cutoff: u64,
    ) -> Result<(Vec<Missed>, usize, u64)> {
        let records = crate::service::notifications::notifications_after(
            &self.store,
            user_id,
            after,
            u64::MAX,
            MAX_SCAN,
        )?;
        let direct = self.direct_rooms(user_id)?;
        // Per room and thread (`None`: the main timeline).
        let mut read: BTreeMap<(OwnedRoomId, Option<OwnedEventId>), Option<u64>> = BTreeMap::new();
        let mut missed = Vec::new();
        let mut encrypted = 0;
        let mut covered_to = after;
        for (stream, record) in records {
            if record.ts > cutoff {
                break;
            }
            covered_to = stream;
            if !record.highlight && !direct.contains(&record.room_id) {
                continue;
            }
            let key = (record.room_id.clone(), record.thread.clone());
            let read_to = match read.get(&key) {
                Some(r) => *r,
                None => {
                    let r = read_up_to(
                        &self.store,
                        user_id,
                        &record.room_id,
                        record.thread.as_deref(),
                    )?;
                    read.insert(key, r);
                    r
                }
            };
            if read_to.is_some_and(|r| r >= stream) {
                continue;
            }
            let Some(event) = self.store.event(record.event_id.as_str())? else {
                continue;
            };
            // Messages only: not invites and other state events.
            if event.redacted_because.is_some() || event.pdu.get("state_key").is_some() {
                continue;
            }
            let room_encrypted = self
                .store
                .current_state_id(record.room_id.as_str(), "m.room.encryption", "")?
                .is_some();
            let event_type = event.pdu.get("type").and_then(Value::as_str);
            if room_encrypted || event_type == Some("m.room.encrypted") {
                encrypted += 1;
                continue;
            }
            missed.push(self.describe(&record, &event.pdu)?);
        }
        Ok((missed, encrypted, covered_to))
    }

    /// Rooms the user's `m.direct` lists.
    fn direct_rooms(&self, user_id: &UserId) -> Result<Vec<OwnedRoomId>> {
        let Some(Value::Object(direct)) = self.account_data(user_id, None, "m.direct")? else {
            return Ok(Vec::new());
        };
        Ok(direct
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|r| r.as_str()?.parse().ok())
            .collect())
    }

    fn describe(&self, record: &NotificationRecord, pdu: &Value) -> Result<Missed> {
        let sender = pdu.get("sender").and_then(Value::as_str).unwrap_or("");
        let sender_name = self
            .state_field(&record.room_id, "m.room.member", sender, "displayname")?
            .unwrap_or_else(|| sender.to_owned());
        let room = match self.state_field(&record.room_id, "m.room.name", "", "name")? {
            Some(name) => name,
            None => {
                match self.state_field(&record.room_id, "m.room.canonical_alias", "", "alias")? {
                    Some(alias) => alias,
                    None => format!("a chat with {sender_name}"),
                }
            }
        };
        let preview = pdu
            .pointer("/content/body")
            .and_then(Value::as_str)
            .map(|body| {
                let mut text: String = body.chars().take(PREVIEW_CHARS).collect();
                if body.chars().count() > PREVIEW_CHARS {
                    text.push('…');
                }
                text
            });
        Ok(Missed {
            room,
            sender: sender_name,
            preview,
        })
    }

    /// A non-empty string in the content of a current state event.
    fn state_field(
        &self,
        room_id: &ruma::RoomId,
        event_type: &str,
        state_key: &str,
        field: &str,
    ) -> Result<Option<String>> {
        let Some(id) = self
            .store
            .current_state_id(room_id.as_str(), event_type, state_key)?
        else {
            return Ok(None);
        };
        Ok(self.store.event(id.as_str())?.and_then(|e| {
            e.pdu
                .get("content")?
                .get(field)?
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        }))
    }

    async fn send_digest(
        &self,
        user: &str,
        address: &str,
        missed: &[Missed],
        encrypted: usize,
    ) -> Result<()> {
        let server = &self.email.server_name;
        let total = missed.len() + encrypted;
        let subject = if total == 1 {
            format!("You have 1 unread message on {server}")
        } else {
            format!("You have {total} unread messages on {server}")
        };
        let unsubscribe = format!(
            "{}{UNSUBSCRIBE_PATH}?{}",
            self.email.base_url,
            serde_urlencoded::to_string([
                ("user", user),
                ("address", address),
                ("sig", &self.email.sign(&["unsubscribe", user, address])),
            ])
            .map_err(Error::internal)?
        );
        let mut text = format!("You have unread messages on {server} ({user}):\n\n");
        let mut body = format!(
            "<p>You have unread messages on {} ({}):</p>\n<ul>\n",
            escape(server),
            escape(user)
        );
        for item in missed.iter().take(MAX_SHOWN) {
            let preview = item.preview.as_deref().unwrap_or("(a message)");
            text.push_str(&format!("{} in {}: {}\n", item.sender, item.room, preview));
            body.push_str(&format!(
                "<li><b>{}</b> in <b>{}</b>: {}</li>\n",
                escape(&item.sender),
                escape(&item.room),
                escape(preview)
            ));
        }
        body.push_str("</ul>\n");
        if missed.len() > MAX_SHOWN {
            let more = missed.len() - MAX_SHOWN;
            text.push_str(&format!("… and {more} more.\n"));
            body.push_str(&format!("<p>… and {more} more.</p>\n"));
        }
        if encrypted > 0 {
            let line = if encrypted == 1 {
                "You have 1 encrypted message.".to_owned()
            } else {
                format!("You have {encrypted} encrypted messages.")
            };
            text.push_str(&format!("\n{line}\n"));
            body.push_str(&format!("<p>{line}</p>\n"));
        }
        text.push_str(&format!("\nTo stop these mails, open: {unsubscribe}\n"));
        body.push_str(&format!(
            "<p style=\"font-size: small\"><a href=\"{}\">Unsubscribe</a> from these mails.</p>\n",
            escape(&unsubscribe)
        ));
        self.email
            .send_with(
                address,
                &subject,
                text,
                html::page(&subject, &body),
                Some(&unsubscribe),
            )
            .await
    }

    /// Checks an unsubscribe link's signature.
    pub fn check_unsubscribe(&self, user: &str, address: &str, sig: &str) -> Result<()> {
        if self.email.verify(&["unsubscribe", user, address], sig) {
            Ok(())
        } else {
            Err(Error::forbidden("This unsubscribe link is not valid"))
        }
    }

    /// Follows an unsubscribe link: the user's email pusher for the address goes.
    pub fn unsubscribe_email(&self, user: &str, address: &str, sig: &str) -> Result<()> {
        self.check_unsubscribe(user, address, sig)?;
        let mut batch = self.store.batch();
        batch.delete_pusher(user, EMAIL_APP_ID, address);
        self.store.write(batch)?;
        Ok(())
    }
}
