//! The audit log: every admin action, with who, what, the target and when. Entries are
//! written after the action succeeded and are never changed.

use std::sync::atomic::Ordering;

use ruma::UserId;
use serde::Serialize;

use crate::error::Result;
use crate::service::{Services, now_ms};
use crate::store::{AuditRecord, Batch, Store, StoreResult};

/// Filters and paging for the audit log; newest first.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub admin: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub from: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: u64,
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// Appends an entry with the next ID after the last one stored; for `hearthctl --data`,
/// which has the store to itself.
pub fn append_offline(store: &Store, record: &AuditRecord) -> StoreResult<u64> {
    let id = store.last_u64_key(crate::store::Cf::AdminAudit)? + 1;
    let mut batch = store.batch();
    batch.put_audit(id, record)?;
    store.write(batch)?;
    Ok(id)
}

impl Services {
    /// Records an admin action. A failure to record is an error: an admin action that
    /// cannot be audited is reported as failed, though it took effect.
    pub fn audit(
        &self,
        admin: &UserId,
        action: &str,
        target: impl std::fmt::Display,
        detail: Option<String>,
    ) -> Result<()> {
        let mut batch = self.store.batch();
        self.stage_audit(&mut batch, admin, action, target, detail)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Adds an audit entry to the caller's batch, which holds the action's last write,
    /// so the action is recorded exactly when it completes.
    pub(crate) fn stage_audit(
        &self,
        batch: &mut Batch<'_>,
        admin: &UserId,
        action: &str,
        target: impl std::fmt::Display,
        detail: Option<String>,
    ) -> Result<()> {
        let id = self.admin.last_audit_id.fetch_add(1, Ordering::SeqCst) + 1;
        let record = AuditRecord {
            admin: Some(admin.to_owned()),
            action: action.to_owned(),
            target: target.to_string(),
            detail,
            ts: now_ms(),
        };
        batch.put_audit(id, &record)?;
        tracing::info!(audit_id = id, admin = %admin, action, target = %record.target, "admin action");
        Ok(())
    }

    /// One page of the log, newest first, and how many entries match in all.
    pub fn audit_log(&self, query: &AuditQuery) -> Result<(Vec<AuditEntry>, usize)> {
        let matches = |r: &AuditRecord| {
            query
                .admin
                .as_deref()
                .is_none_or(|a| r.admin.as_ref().is_some_and(|x| x.as_str() == a))
                && query.action.as_deref().is_none_or(|a| r.action == a)
                && query.target.as_deref().is_none_or(|t| r.target == t)
        };
        let all: Vec<AuditEntry> = self
            .store
            .audit_log()?
            .into_iter()
            .rev()
            .filter(|(_, r)| matches(r))
            .map(|(id, record)| AuditEntry { id, record })
            .collect();
        let total = all.len();
        let page = all.into_iter().skip(query.from).take(query.limit).collect();
        Ok((page, total))
    }
}
