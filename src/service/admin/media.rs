//! Media quarantine: quarantined media is never served again (`404` from every download
//! and thumbnail endpoint, client and federation), by media ID, every upload of a user,
//! or every piece of media a room's events point at. The files stay, so unquarantining
//! serves them again (as in Synapse).

use ruma::{RoomId, UserId};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::{Services, now_ms};
use crate::store::QuarantineRecord;

/// Events read at once while collecting a room's media.
const ROOM_CHUNK: usize = 500;

/// `(server, media ID)` of an `mxc://` URI.
fn parse_mxc(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("mxc://")?;
    let (server, id) = rest.split_once('/')?;
    (!server.is_empty() && crate::service::media::valid_media_id(id))
        .then(|| (server.to_owned(), id.to_owned()))
}

/// Every `mxc://` URI anywhere in an event's content (`url`, `info.thumbnail_url`,
/// `file.url`, avatars, and any other field).
fn collect_mxc(value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => out.extend(parse_mxc(text)),
        Value::Array(items) => items.iter().for_each(|v| collect_mxc(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_mxc(v, out)),
        _ => {}
    }
}

impl Services {
    /// Quarantines (or releases) one piece of media, by server name and media ID.
    pub fn admin_quarantine_media(
        &self,
        admin: &UserId,
        server_name: &str,
        media_id: &str,
        quarantine: bool,
    ) -> Result<()> {
        if ruma::ServerName::parse(server_name).is_err()
            || !crate::service::media::valid_media_id(media_id)
        {
            return Err(Error::invalid_param("Invalid server name or media ID"));
        }
        let record = QuarantineRecord {
            quarantined_by: admin.to_string(),
            ts: now_ms(),
        };
        let mut batch = self.store.batch();
        batch.set_quarantined(server_name, media_id, quarantine.then_some(&record))?;
        let action = if quarantine {
            "media.quarantine"
        } else {
            "media.unquarantine"
        };
        self.stage_audit(
            &mut batch,
            admin,
            action,
            format!("mxc://{server_name}/{media_id}"),
            None,
        )?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Quarantines every upload of a local user. Answers how many.
    pub fn admin_quarantine_user_media(&self, admin: &UserId, user_id: &UserId) -> Result<usize> {
        self.check_local(user_id)?;
        let ours = self.server_name().to_string();
        let ids: Vec<String> = self
            .store
            .all_media()?
            .into_iter()
            .filter(|(_, record)| record.uploader == user_id.as_str())
            .map(|(id, _)| id)
            .collect();
        let pairs: Vec<(String, String)> = ids.into_iter().map(|id| (ours.clone(), id)).collect();
        self.quarantine_all(admin, &pairs, "media.quarantine_user", user_id.as_str())
    }

    /// Quarantines every piece of media the room's events point at, this server's or
    /// others'. Answers how many.
    pub fn admin_quarantine_room_media(&self, admin: &UserId, room_id: &RoomId) -> Result<usize> {
        if self.store.room(room_id.as_str())?.is_none() {
            return Err(Error::not_found("Room not found"));
        }
        let mut pairs = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .room_events_after(room_id.as_str(), after, ROOM_CHUNK)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = *last;
            for (_, event_id) in &page {
                if let Some(event) = self.store.event(event_id.as_str())? {
                    collect_mxc(&event.pdu["content"], &mut pairs);
                }
            }
        }
        pairs.sort();
        pairs.dedup();
        self.quarantine_all(admin, &pairs, "media.quarantine_room", room_id.as_str())
    }

    fn quarantine_all(
        &self,
        admin: &UserId,
        pairs: &[(String, String)],
        action: &str,
        target: &str,
    ) -> Result<usize> {
        let record = QuarantineRecord {
            quarantined_by: admin.to_string(),
            ts: now_ms(),
        };
        let mut batch = self.store.batch();
        for (server, id) in pairs {
            batch.set_quarantined(server, id, Some(&record))?;
        }
        self.stage_audit(
            &mut batch,
            admin,
            action,
            target,
            Some(format!("{} media", pairs.len())),
        )?;
        self.store.write(batch)?;
        Ok(pairs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mxc_uri_of_a_content_is_found() {
        let mut out = Vec::new();
        collect_mxc(
            &serde_json::json!({
                "url": "mxc://a.example/AAA",
                "info": { "thumbnail_url": "mxc://b.example/BBB" },
                "file": { "url": "mxc://a.example/CCC" },
                "body": "mxc://bad/with space",
                "other": ["https://x/y"]
            }),
            &mut out,
        );
        out.sort();
        assert_eq!(
            out,
            [
                ("a.example".to_owned(), "AAA".to_owned()),
                ("a.example".to_owned(), "CCC".to_owned()),
                ("b.example".to_owned(), "BBB".to_owned()),
            ]
        );
    }
}
