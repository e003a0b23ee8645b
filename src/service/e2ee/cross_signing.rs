//! Cross-signing: a user's master, self-signing and user-signing keys, and the
//! signatures clients upload for devices and keys.

use std::collections::BTreeMap;

use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::event::{PublicKeyMap, verify_json};
use crate::service::Services;

#[derive(Debug, Default, Deserialize)]
pub struct SigningKeysUpload {
    #[serde(default)]
    pub master_key: Option<Map<String, Value>>,
    #[serde(default)]
    pub self_signing_key: Option<Map<String, Value>>,
    #[serde(default)]
    pub user_signing_key: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct CrossSigningShape {
    user_id: OwnedUserId,
    usage: Vec<String>,
    keys: BTreeMap<String, String>,
}

/// `{user: {key id: signed object}}`.
pub type SignaturesUpload = BTreeMap<OwnedUserId, BTreeMap<String, Map<String, Value>>>;

/// The single `ed25519:<public key>` entry of a cross-signing key.
fn single_key(value: &Value, user_id: &UserId, usage: &str) -> Result<(String, String)> {
    let shape: CrossSigningShape = serde_json::from_value(value.clone())
        .map_err(|e| Error::bad_json(format!("invalid {usage} key: {e}")))?;
    if shape.user_id != user_id {
        return Err(Error::invalid_param(format!(
            "the {usage} key is for {}, not {user_id}",
            shape.user_id
        )));
    }
    if !shape.usage.iter().any(|u| u == usage) {
        return Err(Error::invalid_param(format!(
            "the {usage} key lacks usage {usage}"
        )));
    }
    let mut keys = shape.keys.into_iter();
    match (keys.next(), keys.next()) {
        (Some((id, key)), None) if id.starts_with("ed25519:") => Ok((id, key)),
        _ => Err(Error::invalid_param(format!(
            "the {usage} key must hold exactly one ed25519 key"
        ))),
    }
}

/// Whether `value` is a cross-signing key of `user_id` for `usage` (a remote user's,
/// from their server: its signatures are for clients to check).
pub(super) fn check_key(value: &Value, user_id: &UserId, usage: &str) -> bool {
    single_key(value, user_id, usage).is_ok()
}

fn public_keys(user_id: &UserId, id: &str, key: &str) -> PublicKeyMap {
    let mut map = PublicKeyMap::new();
    map.entry(user_id.to_string())
        .or_default()
        .insert(id.to_owned(), key.to_owned());
    map
}

/// Whether `value` carries a valid signature of `user_id` with the key `id`.
fn signed_with(value: &Value, user_id: &UserId, id: &str, key: &str) -> bool {
    value
        .get("signatures")
        .and_then(|s| s.get(user_id.as_str()))
        .and_then(|s| s.get(id))
        .is_some()
        && verify_json(value, user_id.as_str(), &public_keys(user_id, id, key)).is_ok()
}

/// Copies `from`'s signatures of `signer` into `into`.
fn merge_signatures(into: &mut Value, from: &Value, signer: &str) {
    let Some(new) = from
        .get("signatures")
        .and_then(|s| s.get(signer))
        .and_then(Value::as_object)
    else {
        return;
    };
    let Some(object) = into.as_object_mut() else {
        return;
    };
    let signatures = object.entry("signatures").or_insert_with(|| json!({}));
    if let Some(signatures) = signatures.as_object_mut() {
        let mine = signatures.entry(signer).or_insert_with(|| json!({}));
        if let Some(mine) = mine.as_object_mut() {
            for (id, sig) in new {
                mine.insert(id.clone(), sig.clone());
            }
        }
    }
}

impl Services {
    /// Whether the user has cross-signing keys already: replacing them needs UIA.
    pub fn has_master_key(&self, user_id: &UserId) -> Result<bool> {
        Ok(self
            .store
            .cross_signing_key(user_id.as_str(), "master")?
            .is_some())
    }

    /// Whether the upload only repeats the keys stored (a retry, which needs no UIA).
    pub fn signing_keys_unchanged(
        &self,
        user_id: &UserId,
        upload: &SigningKeysUpload,
    ) -> Result<bool> {
        for (usage, key) in [
            ("master", &upload.master_key),
            ("self_signing", &upload.self_signing_key),
            ("user_signing", &upload.user_signing_key),
        ] {
            if let Some(key) = key {
                let stored = self.store.cross_signing_key(user_id.as_str(), usage)?;
                let same_key = stored
                    .as_ref()
                    .and_then(|s| s.get("keys"))
                    .is_some_and(|k| Some(k) == key.get("keys"));
                if !same_key {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// `/keys/device_signing/upload`, once authorised: the keys are checked (the
    /// self-signing and user-signing keys must be signed by the master key) and stored.
    pub fn upload_signing_keys(&self, user_id: &UserId, upload: SigningKeysUpload) -> Result<()> {
        let user = user_id.as_str();
        let master = match &upload.master_key {
            Some(key) => Value::Object(key.clone()),
            None => self
                .store
                .cross_signing_key(user, "master")?
                .ok_or_else(|| Error::invalid_param("Upload a master key first"))?,
        };
        let (master_id, master_key) = single_key(&master, user_id, "master")?;
        let mut batch = self.store.batch();
        if upload.master_key.is_some() {
            batch.put_cross_signing_key(user, "master", &master)?;
        }
        for (usage, key) in [
            ("self_signing", &upload.self_signing_key),
            ("user_signing", &upload.user_signing_key),
        ] {
            let Some(key) = key else { continue };
            let value = Value::Object(key.clone());
            single_key(&value, user_id, usage)?;
            if !signed_with(&value, user_id, &master_id, &master_key) {
                return Err(Error::invalid_param(format!(
                    "the {usage} key is not signed by the master key"
                )));
            }
            batch.put_cross_signing_key(user, usage, &value)?;
        }
        self.store.write(batch)?;
        // Others see the master and self-signing keys; the user-signing key only the user
        // themself does, so a change of it alone is news only to their other devices.
        if upload.master_key.is_some() || upload.self_signing_key.is_some() {
            self.signing_keys_changed(user_id)?;
        } else if upload.user_signing_key.is_some() {
            self.own_device_list_changed(user_id)?;
        }
        Ok(())
    }

    /// Tells local users sharing a room, and their servers (with an
    /// `m.signing_key_update` queued durably in the same write), that the user's
    /// cross-signing keys changed.
    pub(super) fn signing_keys_changed(&self, user_id: &UserId) -> Result<()> {
        let audience = self.co_members(user_id)?;
        let destinations = self.servers_of(&audience);
        let mut content = json!({ "user_id": user_id });
        for (usage, field) in [
            ("master", "master_key"),
            ("self_signing", "self_signing_key"),
        ] {
            if let Some(key) = self.store.cross_signing_key(user_id.as_str(), usage)? {
                content[field] = key;
            }
        }
        let edu = json!({"edu_type": "m.signing_key_update", "content": content});
        self.record_device_list_change(user_id, None, false, false, |batch, _, _| {
            self.sender.stage_edu(batch, &destinations, &edu)
        })?;
        self.sender.wake(&destinations);
        self.notifier.wake(audience.iter().map(|u| u.as_ref()));
        Ok(())
    }

    /// `/keys/signatures/upload`: each signed object checked and its new signatures
    /// stored; the answer's `failures` says which were refused and why.
    pub fn upload_signatures(&self, signer: &UserId, upload: SignaturesUpload) -> Result<Value> {
        let mut failures = Map::new();
        let self_signing = self.key_of(signer, "self_signing")?;
        let user_signing = self.key_of(signer, "user_signing")?;
        let mut changed: Vec<(OwnedUserId, Option<String>)> = Vec::new();
        for (user_id, objects) in upload {
            for (key_id, object) in objects {
                let value = Value::Object(object);
                match self.store_signature(
                    signer,
                    &user_id,
                    &key_id,
                    &value,
                    &self_signing,
                    &user_signing,
                ) {
                    Ok(device) => changed.push((user_id.clone(), device)),
                    Err(e) => {
                        failures
                            .entry(user_id.to_string())
                            .or_insert_with(|| json!({}))
                            .as_object_mut()
                            .map(|m| {
                                m.insert(
                                    key_id.clone(),
                                    json!({"errcode": e.errcode(), "error": e.message}),
                                )
                            });
                    }
                }
            }
        }
        for (user_id, device) in changed {
            if device.is_none() && user_id.as_str() == signer.as_str() {
                // A new signature of the user's own master key: others see it too.
                self.signing_keys_changed(&user_id)?;
            } else {
                self.device_list_changed(&user_id, device.as_deref(), false)?;
            }
        }
        Ok(json!({ "failures": failures }))
    }

    fn key_of(&self, user_id: &UserId, usage: &str) -> Result<Option<(String, String)>> {
        match self.store.cross_signing_key(user_id.as_str(), usage)? {
            Some(value) => single_key(&value, user_id, usage).map(Some),
            None => Ok(None),
        }
    }

    /// One signed object of a signatures upload; returns the device it was for, if any.
    fn store_signature(
        &self,
        signer: &UserId,
        user_id: &UserId,
        key_id: &str,
        value: &Value,
        self_signing: &Option<(String, String)>,
        user_signing: &Option<(String, String)>,
    ) -> Result<Option<String>> {
        let user = user_id.as_str();
        if user_id == signer {
            // The user's own device, signed by their self-signing key…
            if let Some(mut stored) = self.store.device_keys(user, key_id)? {
                let Some((id, key)) = self_signing else {
                    return Err(Error::invalid_param("No self-signing key to check with"));
                };
                check_same_object(&stored, value)?;
                if !signed_with(value, signer, id, key) {
                    return Err(Error::invalid_param(
                        "Invalid signature by the self-signing key",
                    ));
                }
                merge_signatures(&mut stored, value, signer.as_str());
                let mut batch = self.store.batch();
                batch.put_device_keys(user, key_id, &stored)?;
                self.store.write(batch)?;
                return Ok(Some(key_id.to_owned()));
            }
            // …or their master key, signed by one of their devices.
            if let Some(mut master) = self.store.cross_signing_key(user, "master")? {
                check_same_object(&master, value)?;
                let signed = value
                    .get("signatures")
                    .and_then(|s| s.get(user))
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter_map(|(id, _)| id.strip_prefix("ed25519:"))
                    .any(|device| {
                        self.store
                            .device_keys(user, device)
                            .ok()
                            .flatten()
                            .and_then(|d| {
                                d.pointer(&format!("/keys/ed25519:{device}"))
                                    .and_then(Value::as_str)
                                    .map(ToOwned::to_owned)
                            })
                            .is_some_and(|k| {
                                signed_with(value, signer, &format!("ed25519:{device}"), &k)
                            })
                    });
                if !signed {
                    return Err(Error::invalid_param(
                        "No valid device signature on the master key",
                    ));
                }
                merge_signatures(&mut master, value, signer.as_str());
                let mut batch = self.store.batch();
                batch.put_cross_signing_key(user, "master", &master)?;
                self.store.write(batch)?;
                return Ok(None);
            }
            return Err(Error::not_found(format!("No device or key {key_id}")));
        }
        // Another user's master key, signed by the signer's user-signing key.
        if user_id.server_name() != self.server_name() {
            return Err(Error::invalid_param(
                "Signatures of remote users' keys are not stored",
            ));
        }
        let Some((id, key)) = user_signing else {
            return Err(Error::invalid_param("No user-signing key to check with"));
        };
        let mut master = self
            .store
            .cross_signing_key(user, "master")?
            .ok_or_else(|| Error::not_found(format!("{user_id} has no master key")))?;
        check_same_object(&master, value)?;
        if !signed_with(value, signer, id, key) {
            return Err(Error::invalid_param(
                "Invalid signature by the user-signing key",
            ));
        }
        merge_signatures(&mut master, value, signer.as_str());
        let mut batch = self.store.batch();
        batch.put_cross_signing_key(user, "master", &master)?;
        self.store.write(batch)?;
        Ok(None)
    }
}

/// The signed object must be the stored one (but for signatures and `unsigned`).
fn check_same_object(stored: &Value, signed: &Value) -> Result<()> {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("signatures");
            o.remove("unsigned");
        }
        v
    };
    if strip(stored) == strip(signed) {
        Ok(())
    } else {
        Err(Error::invalid_param(
            "The signed object differs from the stored one",
        ))
    }
}
