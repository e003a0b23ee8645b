//! Profiles: display name, avatar and custom fields, and carrying the display name and
//! avatar into the user's membership events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ruma::{MxcUri, OwnedEventId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;
use crate::service::fanout::FanoutKind;
use crate::service::rooms::EventTemplate;

pub const DISPLAYNAME: &str = "displayname";
pub const AVATAR_URL: &str = "avatar_url";
const TIME_ZONE: &str = "m.tz";

/// The spec: "the total profile MUST be under 64 KiB".
pub const MAX_PROFILE_BYTES: usize = 65_536;
/// The spec's limit on a field name; longer ones get `M_KEY_TOO_LARGE`.
const MAX_FIELD_NAME_BYTES: usize = 255;
/// Synapse's limits, which keep member events (and room lists) a sensible size.
const MAX_DISPLAYNAME_CHARS: usize = 256;
const MAX_AVATAR_URL_BYTES: usize = 1000;

/// Member content keys that belong to one particular join and must not be repeated
/// when the join is re-sent with a new display name or avatar.
const JOIN_ONLY_KEYS: [&str; 2] = ["reason", "join_authorised_via_users_server"];

/// One lock per user. A profile change and the member events that carry it happen under
/// it, and so does every join, invite and knock, which copy the profile: otherwise a join
/// racing a change could land in a room the propagation had already passed, with the
/// old name.
#[derive(Default)]
pub struct ProfileLocks {
    locks: Mutex<HashMap<OwnedUserId, Arc<tokio::sync::Mutex<()>>>>,
}

impl ProfileLocks {
    pub async fn lock(&self, user_id: &UserId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(user_id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// Field names follow the spec's Common Namespaced Identifier Grammar, which covers
/// `displayname`, `avatar_url`, `m.tz` and custom keys like `us.cloke.pronouns`.
pub fn check_field_name(name: &str) -> Result<()> {
    if name.len() > MAX_FIELD_NAME_BYTES {
        return Err(Error::new(
            ErrorKind::KeyTooLarge,
            format!("Profile field names may be at most {MAX_FIELD_NAME_BYTES} bytes"),
        ));
    }
    let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'));
    if !well_formed {
        return Err(Error::invalid_param(format!(
            "Invalid profile field name {name:?}: names start with a-z and contain only a-z, 0-9, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Checks a new value for `field`; `None` means the value clears the field, as an empty
/// display name or avatar URL does in Synapse.
fn normalize(field: &str, value: Value) -> Result<Option<Value>> {
    // The spec lets servers refuse null; storing it would make "unset" ambiguous.
    if value.is_null() {
        return Err(Error::invalid_param(format!(
            "'{field}' cannot be null; use DELETE to remove a profile field"
        )));
    }
    let must_be_string = || Error::invalid_param(format!("'{field}' must be a string"));
    match field {
        DISPLAYNAME => {
            let text = value.as_str().ok_or_else(must_be_string)?.trim();
            if text.chars().count() > MAX_DISPLAYNAME_CHARS {
                return Err(Error::invalid_param(format!(
                    "Display names may be at most {MAX_DISPLAYNAME_CHARS} characters"
                )));
            }
            Ok((!text.is_empty()).then(|| Value::String(text.to_owned())))
        }
        AVATAR_URL => {
            let text = value.as_str().ok_or_else(must_be_string)?;
            if text.is_empty() {
                return Ok(None);
            }
            check_mxc_uri(text)?;
            Ok(Some(value))
        }
        TIME_ZONE => {
            value.as_str().ok_or_else(must_be_string)?;
            Ok(Some(value))
        }
        _ => Ok(Some(value)),
    }
}

/// `mxc://<server name>/<media ID>`, the media ID made of `A-Za-z0-9_-`.
fn check_mxc_uri(text: &str) -> Result<()> {
    if text.len() > MAX_AVATAR_URL_BYTES {
        return Err(Error::invalid_param(format!(
            "Avatar URLs may be at most {MAX_AVATAR_URL_BYTES} bytes"
        )));
    }
    let uri = <&MxcUri>::from(text);
    let media_id_present = uri.media_id().is_ok_and(|id| !id.is_empty());
    if uri.validate().is_err() || !media_id_present {
        return Err(Error::invalid_param(format!(
            "avatar_url must be an mxc:// URI (mxc://<server name>/<media ID>), not {text:?}"
        )));
    }
    Ok(())
}

fn encoded_len(profile: &Map<String, Value>) -> usize {
    serde_json::to_vec(profile).map_or(usize::MAX, |bytes| bytes.len())
}

/// The user's member event content with their current display name and avatar.
fn with_profile(
    mut content: Map<String, Value>,
    displayname: Option<String>,
    avatar_url: Option<String>,
) -> Map<String, Value> {
    for (key, value) in [(DISPLAYNAME, displayname), (AVATAR_URL, avatar_url)] {
        match value {
            Some(text) => {
                content.insert(key.into(), Value::String(text));
            }
            None => {
                content.remove(key);
            }
        }
    }
    content
}

impl Services {
    /// A local user's profile; `M_NOT_FOUND` for users this server does not have, and
    /// for deactivated ones, whose profile is erased.
    pub fn profile(&self, user_id: &UserId) -> Result<Map<String, Value>> {
        self.check_profile_exists(user_id)?;
        Ok(self.store.profile(user_id.as_str())?)
    }

    pub fn profile_field(&self, user_id: &UserId, field: &str) -> Result<Value> {
        check_field_name(field)?;
        self.check_profile_exists(user_id)?;
        self.store
            .profile_field(user_id.as_str(), field)?
            .ok_or_else(|| Error::not_found(format!("{user_id} has no profile field {field:?}")))
    }

    fn check_profile_exists(&self, user_id: &UserId) -> Result<()> {
        if user_id.server_name() != self.server_name() {
            return Err(Error::not_found(
                "Profiles of users on other servers need federation, which this server does not offer yet",
            ));
        }
        match self.store.user(user_id.as_str())? {
            Some(user) if !user.deactivated => Ok(()),
            _ => Err(Error::not_found(format!("Unknown user {user_id}"))),
        }
    }

    /// The display name and avatar URL a local user's membership events carry.
    pub fn member_profile(&self, user_id: &UserId) -> Result<(Option<String>, Option<String>)> {
        if user_id.server_name() != self.server_name() {
            return Ok((None, None));
        }
        Ok((
            self.store.profile_string(user_id.as_str(), DISPLAYNAME)?,
            self.store.profile_string(user_id.as_str(), AVATAR_URL)?,
        ))
    }

    /// Sets (or, for an empty display name or avatar URL, clears) one of the user's own
    /// profile fields. A new display name or avatar is then sent to every room the user
    /// is joined to.
    pub async fn set_profile_field(
        &self,
        requester: &UserId,
        user_id: &UserId,
        field: &str,
        value: Value,
    ) -> Result<()> {
        check_field_name(field)?;
        check_own_profile(requester, user_id)?;
        let value = normalize(field, value)?;
        self.change_profile(user_id, field, value).await
    }

    pub async fn delete_profile_field(
        &self,
        requester: &UserId,
        user_id: &UserId,
        field: &str,
    ) -> Result<()> {
        check_field_name(field)?;
        check_own_profile(requester, user_id)?;
        self.change_profile(user_id, field, None).await
    }

    async fn change_profile(
        &self,
        user_id: &UserId,
        field: &str,
        value: Option<Value>,
    ) -> Result<()> {
        let fans_out = matches!(field, DISPLAYNAME | AVATAR_URL);
        let generation = {
            let _guard = self.profile_locks.lock(user_id).await;
            // Under the lock: a change racing deactivation must not outlive the erasure.
            self.check_profile_exists(user_id)?;
            let mut profile = self.store.profile(user_id.as_str())?;
            let previous = match &value {
                Some(value) => profile.insert(field.to_owned(), value.clone()),
                None => profile.remove(field),
            };
            if value.is_some() && encoded_len(&profile) >= MAX_PROFILE_BYTES {
                return Err(Error::new(
                    ErrorKind::ProfileTooLarge,
                    format!("The profile would exceed its limit of {MAX_PROFILE_BYTES} bytes"),
                ));
            }
            let mut batch = self.store.batch();
            if previous != value {
                match &value {
                    Some(value) => batch.put_profile_field(user_id.as_str(), field, value)?,
                    None => batch.delete_profile_field(user_id.as_str(), field),
                }
            }
            // The new name and the intent to carry it into every joined room are one
            // write: a crash part-way through the rooms leaves the intent, resumed at
            // the next start. Even when nothing changed: setting the same name again
            // repairs rooms that missed it, and rooms already up to date are skipped.
            let generation = if fans_out {
                Some(
                    self.fanout
                        .stage(&mut batch, user_id.as_str(), FanoutKind::MemberProfile)?,
                )
            } else {
                None
            };
            self.store.write(batch)?;
            generation
        };
        if let Some(generation) = generation {
            self.fanout.wake(user_id.as_str());
            // Answered once every room has it, as clients expect of a profile change.
            self.fanout
                .finished(user_id.as_str(), FanoutKind::MemberProfile, generation)
                .await?;
        }
        Ok(())
    }

    /// One pass of a [`FanoutKind::MemberProfile`] intent: re-sends the user's join in
    /// every room they are joined to, with their current display name and avatar and the
    /// rest of the member content kept. A room whose member event already has them gets
    /// nothing, so the pass can be repeated after a crash without duplicates. Each room
    /// is done under the user's profile lock, reading the profile afresh: a change made
    /// meanwhile is in the rooms that follow, and its own intent covers those before. A
    /// room that refuses the event does not stop the others.
    pub(crate) async fn send_profile_to_rooms(&self, user_id: &UserId) -> Result<()> {
        for (room_id, record) in self.store.user_rooms(user_id.as_str())? {
            if self.stopping() {
                return Ok(());
            }
            if record.membership != "join" {
                continue;
            }
            let _guard = self.profile_locks.lock(user_id).await;
            // Read again under the lock: the membership may have changed since the list.
            let Some(record) = self.store.user_room(user_id.as_str(), room_id.as_str())? else {
                continue;
            };
            if record.membership != "join" {
                continue;
            }
            let (displayname, avatar_url) = self.member_profile(user_id)?;
            let current = self
                .store
                .event(record.event_id.as_str())?
                .and_then(|event| match event.pdu.get("content") {
                    Some(Value::Object(content)) => Some(content.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            let mut content = current.clone();
            for key in JOIN_ONLY_KEYS {
                content.remove(key);
            }
            content.insert("membership".into(), Value::from("join"));
            let content = with_profile(content, displayname, avatar_url);
            if content == current {
                continue;
            }
            let template =
                EventTemplate::state("m.room.member", user_id.as_str(), Value::Object(content))
                    .only_while_sender_joined();
            if let Err(e) = self.append_event(&room_id, user_id, template, None).await {
                tracing::warn!(room_id = %room_id, user_id = %user_id, error = %e, "profile change not sent to room");
            }
        }
        Ok(())
    }

    /// Appends a membership event about `target`. Joins, invites and knocks carry the
    /// target's display name and avatar, as the spec asks and Synapse does.
    pub async fn append_member_event(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        target: &UserId,
        mut content: Map<String, Value>,
    ) -> Result<OwnedEventId> {
        let carries_profile = matches!(
            content.get("membership").and_then(Value::as_str),
            Some("join" | "invite" | "knock")
        );
        let _guard = if carries_profile {
            Some(self.profile_locks.lock(target).await)
        } else {
            None
        };
        if carries_profile {
            let (displayname, avatar_url) = self.member_profile(target)?;
            content = with_profile(content, displayname, avatar_url);
        }
        self.append_event(
            room_id,
            sender,
            EventTemplate::state("m.room.member", target.as_str(), Value::Object(content)),
            None,
        )
        .await
    }

    /// Deactivation erases the profile, as Synapse does with erasure: every field goes,
    /// and with the display name the user leaves the user directory.
    pub async fn erase_profile(&self, user_id: &UserId) -> Result<()> {
        let _guard = self.profile_locks.lock(user_id).await;
        let profile = self.store.profile(user_id.as_str())?;
        if profile.is_empty() {
            return Ok(());
        }
        let mut batch = self.store.batch();
        for field in profile.keys() {
            batch.delete_profile_field(user_id.as_str(), field);
        }
        self.store.write(batch)?;
        Ok(())
    }
}

fn check_own_profile(requester: &UserId, user_id: &UserId) -> Result<()> {
    if requester != user_id {
        return Err(Error::forbidden("You may only change your own profile"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn field_names_follow_the_namespaced_grammar() {
        for good in [
            "displayname",
            "avatar_url",
            "m.tz",
            "us.cloke.pronouns",
            "a-b_c.9",
        ] {
            assert!(check_field_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Displayname", "9lives", ".x", "a b", "ü.x", "a/b"] {
            assert_eq!(
                check_field_name(bad).unwrap_err().errcode(),
                "M_INVALID_PARAM",
                "{bad:?}"
            );
        }
        let long = format!("a.{}", "b".repeat(254));
        assert_eq!(
            check_field_name(&long).unwrap_err().errcode(),
            "M_KEY_TOO_LARGE"
        );
    }

    #[test]
    fn values_are_checked_by_field() {
        assert_eq!(
            normalize(DISPLAYNAME, json!("  Alice ")).unwrap(),
            Some(json!("Alice"))
        );
        assert_eq!(normalize(DISPLAYNAME, json!("   ")).unwrap(), None);
        assert_eq!(normalize(AVATAR_URL, json!("")).unwrap(), None);
        assert!(normalize(AVATAR_URL, json!("mxc://example.org:8448/Ab_9-z")).is_ok());
        for bad in [
            "https://example.org/a.png",
            "mxc://example.org/",
            "mxc://example.org",
            "mxc://exa mple.org/abc",
            "mxc://example.org/a/b",
            "mxc://example.org/a.png",
        ] {
            assert!(normalize(AVATAR_URL, json!(bad)).is_err(), "{bad}");
        }
        assert!(normalize(DISPLAYNAME, json!(5)).is_err());
        assert!(normalize(TIME_ZONE, json!({"tz": 1})).is_err());
        assert!(normalize("org.example.any", json!({"nested": [1, 2]})).is_ok());
        assert!(normalize("org.example.any", Value::Null).is_err());
        assert!(normalize(DISPLAYNAME, json!("x".repeat(257))).is_err());
    }

    #[test]
    fn the_profile_replaces_name_and_avatar_and_keeps_the_rest() {
        let content = json!({"membership": "join", "displayname": "old", "avatar_url": "mxc://a/b", "org.example": 1});
        let Value::Object(content) = content else {
            unreachable!()
        };
        let updated = with_profile(content, Some("new".into()), None);
        assert_eq!(
            Value::Object(updated),
            json!({"membership": "join", "displayname": "new", "org.example": 1})
        );
    }
}
