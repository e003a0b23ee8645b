//! Reports of events, rooms and users, stored for the server's moderators.

use std::sync::atomic::{AtomicU64, Ordering};

use ruma::{EventId, RoomId, UserId};

use crate::error::{Error, Result};
use crate::service::ratelimit::Family;
use crate::service::rooms::ClientView;
use crate::service::{Services, now_ms};
use crate::store::{Cf, ReportRecord, ReportTarget, Store, StoreResult};

/// The longest reason kept; a moderator reads a paragraph, not a book.
const MAX_REASON_BYTES: usize = 4096;

pub struct Reports {
    /// Report IDs resume from the highest one stored.
    last_id: AtomicU64,
}

impl Reports {
    pub fn new(store: &Store) -> StoreResult<Self> {
        Ok(Self {
            last_id: AtomicU64::new(store.last_u64_key(Cf::Reports)?),
        })
    }
}

impl Services {
    /// Counts a report request against the reporter, whatever its outcome, so that
    /// reports cannot be used to probe for events or users at speed either.
    fn admit_report(&self, reporter: &UserId, reason: Option<&str>) -> Result<()> {
        // `[limits] reports_*`: plenty for someone reporting a wave of spam, too few to
        // flood the moderators' list.
        self.rate_limit(Family::Reports, reporter)?;
        // Checked before anything about the target, which it must not reveal.
        if reason.is_some_and(|r| r.len() > MAX_REASON_BYTES) {
            return Err(Error::invalid_param(format!(
                "A report's reason may be at most {MAX_REASON_BYTES} bytes"
            )));
        }
        Ok(())
    }

    fn store_report(
        &self,
        reporter: &UserId,
        target: ReportTarget,
        reason: Option<String>,
    ) -> Result<()> {
        let id = self.reports.last_id.fetch_add(1, Ordering::SeqCst) + 1;
        let record = ReportRecord {
            reporter: reporter.to_owned(),
            target,
            reason,
            received_ts: now_ms(),
        };
        let mut batch = self.store.batch();
        batch.put_report(id, &record)?;
        self.store.write(batch)?;
        tracing::info!(report_id = id, reporter = %reporter, target = ?record.target, "content reported");
        Ok(())
    }

    /// The spec: the reporter must be joined to the room, and an event they cannot see
    /// (history visibility included) gets the same 404 as one that does not exist.
    /// Redacted events answer 404 too, as in Synapse: there is nothing left to review.
    pub fn report_event(
        &self,
        reporter: ClientView<'_>,
        room_id: &RoomId,
        event_id: &EventId,
        reason: Option<String>,
    ) -> Result<()> {
        self.admit_report(reporter.user_id, reason.as_deref())?;
        let not_found =
            || Error::not_found("The event was not found or you are not joined to the room");
        if !self.is_joined(room_id, reporter.user_id)? {
            return Err(not_found());
        }
        let record = self.store.event(event_id.as_str())?.ok_or_else(not_found)?;
        if record.room_id != room_id
            || record.redacted_because.is_some()
            || !self.history_reader(room_id, reporter)?.can_see(&record)?
        {
            return Err(not_found());
        }
        let reporter = reporter.user_id;
        self.store_report(
            reporter,
            ReportTarget::Event {
                room_id: room_id.to_owned(),
                event_id: event_id.to_owned(),
            },
            reason,
        )
    }

    /// Anyone may report a room they know of, joined or not (the spec forbids requiring
    /// membership). Unknown rooms get 404, as in Synapse.
    pub fn report_room(&self, reporter: &UserId, room_id: &RoomId, reason: String) -> Result<()> {
        self.admit_report(reporter, Some(&reason))?;
        if self.store.room(room_id.as_str())?.is_none() {
            return Err(Error::not_found("The room was not found"));
        }
        self.store_report(
            reporter,
            ReportTarget::Room {
                room_id: room_id.to_owned(),
            },
            Some(reason),
        )
    }

    /// Anyone may report any user. A local user who does not exist is answered like one
    /// who does, and nothing is stored, so reports do not reveal which users exist (the
    /// spec allows this). Users of other servers are stored as reported: this server
    /// cannot tell whether they exist.
    pub fn report_user(&self, reporter: &UserId, user_id: &UserId, reason: String) -> Result<()> {
        self.admit_report(reporter, Some(&reason))?;
        if user_id.server_name() == self.server_name()
            && self.store.user(user_id.as_str())?.is_none()
        {
            tracing::info!(reporter = %reporter, user_id = %user_id, "report of an unknown user dropped");
            return Ok(());
        }
        self.store_report(
            reporter,
            ReportTarget::User {
                user_id: user_id.to_owned(),
            },
            Some(reason),
        )
    }
}
