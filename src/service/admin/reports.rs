//! Content reports for admins: list, show, resolve (resolving deletes the report, as
//! Synapse's `DELETE /event_reports/{id}` does).

use ruma::UserId;

use crate::error::{Error, Result};
use crate::service::Services;
use crate::store::ReportRecord;

impl Services {
    /// Every report, newest first.
    pub fn admin_reports(&self) -> Result<Vec<(u64, ReportRecord)>> {
        let mut reports = self.store.reports()?;
        reports.reverse();
        Ok(reports)
    }

    pub fn admin_report(&self, id: u64) -> Result<ReportRecord> {
        self.store
            .reports()?
            .into_iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| r)
            .ok_or_else(|| Error::not_found("Report not found"))
    }

    pub fn admin_resolve_report(&self, admin: &UserId, id: u64) -> Result<()> {
        self.admin_report(id)?;
        let mut batch = self.store.batch();
        batch.delete_report(id);
        self.store.write(batch)?;
        self.audit(admin, "report.resolve", id, None)
    }
}
