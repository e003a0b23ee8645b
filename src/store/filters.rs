//! Filters: `user_id 0xFF filter_id` → the filter's JSON as uploaded.

use serde_json::Value;

use super::{Cf, Store, StoreResult, keys};

impl Store {
    pub fn filter(&self, user_id: &str, filter_id: &str) -> StoreResult<Option<Value>> {
        self.get_json(Cf::Filters, &keys::device(user_id, filter_id))
    }

    pub fn put_filter(
        &self,
        user_id: &str,
        filter_id: &str,
        definition: &Value,
    ) -> StoreResult<()> {
        let mut batch = self.batch();
        batch.put_json(Cf::Filters, &keys::device(user_id, filter_id), definition)?;
        self.write(batch)
    }
}
