//! Profiles: one record per field, `user_id 0xFF field name` → the field's JSON value.
//! A search reads display names of many users, so one field is one small record; a whole
//! profile is one prefix scan.

use serde_json::{Map, Value};

use super::{Batch, Cf, Store, StoreResult, keys};

/// `user_id 0xFF`: the separator keeps `@a:x` from reading the profile of `@a:xy`.
fn user_prefix(user_id: &str) -> Vec<u8> {
    let mut key = user_id.as_bytes().to_vec();
    key.push(keys::SEP);
    key
}

/// `user_id 0xFF field`
fn field_key(user_id: &str, field: &str) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(field.as_bytes());
    key
}

impl Store {
    /// Every field of the user's profile; empty if they have set none.
    pub fn profile(&self, user_id: &str) -> StoreResult<Map<String, Value>> {
        let prefix = user_prefix(user_id);
        Ok(self
            .scan_prefix::<Value>(Cf::Profiles, &prefix)?
            .into_iter()
            .map(|(key, value)| {
                (
                    String::from_utf8_lossy(&key[prefix.len()..]).into_owned(),
                    value,
                )
            })
            .collect())
    }

    pub fn profile_field(&self, user_id: &str, field: &str) -> StoreResult<Option<Value>> {
        self.get_json(Cf::Profiles, &field_key(user_id, field))
    }

    /// A profile field that must be a string (`displayname`, `avatar_url`).
    pub fn profile_string(&self, user_id: &str, field: &str) -> StoreResult<Option<String>> {
        Ok(match self.profile_field(user_id, field)? {
            Some(Value::String(text)) => Some(text),
            _ => None,
        })
    }
}

impl Batch<'_> {
    pub fn put_profile_field(
        &mut self,
        user_id: &str,
        field: &str,
        value: &Value,
    ) -> StoreResult<()> {
        self.put_json(Cf::Profiles, &field_key(user_id, field), value)
    }

    pub fn delete_profile_field(&mut self, user_id: &str, field: &str) {
        self.delete(Cf::Profiles, &field_key(user_id, field));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn profiles_of_users_whose_ids_extend_each_other_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut batch = store.batch();
        batch
            .put_profile_field("@a:x", "displayname", &json!("A"))
            .unwrap();
        batch
            .put_profile_field("@a:x", "m.tz", &json!("Europe/Paris"))
            .unwrap();
        batch
            .put_profile_field("@a:xy", "displayname", &json!("other"))
            .unwrap();
        store.write(batch).unwrap();
        let profile = store.profile("@a:x").unwrap();
        assert_eq!(
            Value::Object(profile),
            json!({"displayname": "A", "m.tz": "Europe/Paris"})
        );
        assert_eq!(
            store
                .profile_string("@a:xy", "displayname")
                .unwrap()
                .as_deref(),
            Some("other")
        );
        let mut batch = store.batch();
        batch.delete_profile_field("@a:x", "displayname");
        store.write(batch).unwrap();
        assert_eq!(store.profile_field("@a:x", "displayname").unwrap(), None);
        assert_eq!(store.profile("@a:x").unwrap().len(), 1);
    }
}
