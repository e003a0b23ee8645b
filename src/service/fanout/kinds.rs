//! What each kind of fan-out does, and the executor the workers call.

use std::sync::{Arc, Weak};

use ruma::{RoomId, UserId};

use super::{Executor, FanoutKind};
use crate::error::Result;
use crate::service::Services;

impl Services {
    /// The executor handed to the fan-out workers. It holds the services weakly so that
    /// the workers do not keep them alive.
    pub(crate) fn fanout_executor(self: &Arc<Self>) -> Executor {
        let services: Weak<Self> = Arc::downgrade(self);
        Arc::new(move |subject, kind| {
            let services = services.clone();
            Box::pin(async move {
                match services.upgrade() {
                    Some(services) => services.carry_out_fanout(&subject, kind).await,
                    None => Ok(()),
                }
            })
        })
    }

    /// One pass of an intent over every room concerned; rooms already done are skipped.
    async fn carry_out_fanout(&self, subject: &str, kind: FanoutKind) -> Result<()> {
        // Only this server writes intents; one it cannot read is dropped, loudly.
        let unreadable = |e: ruma::IdParseError| {
            tracing::error!(%subject, kind = kind.name(), error = %e, "dropping a fan-out intent whose subject is not of its kind");
            Ok(())
        };
        match kind {
            FanoutKind::MemberProfile => match UserId::parse(subject) {
                Ok(user_id) => self.send_profile_to_rooms(&user_id).await,
                Err(e) => unreadable(e),
            },
            FanoutKind::LeaveRooms => match UserId::parse(subject) {
                Ok(user_id) => {
                    self.leave_all_rooms(&user_id).await;
                    Ok(())
                }
                Err(e) => unreadable(e),
            },
            FanoutKind::DeleteRoom => match RoomId::parse(subject) {
                Ok(room_id) => self.carry_out_room_deletion(&room_id).await,
                Err(e) => unreadable(e),
            },
            FanoutKind::CreateRoom => match RoomId::parse(subject) {
                Ok(room_id) => self.resume_room_creation(&room_id).await,
                Err(e) => unreadable(e),
            },
            FanoutKind::UpgradeRoom => match RoomId::parse(subject) {
                Ok(room_id) => self.resume_room_upgrade(&room_id).await,
                Err(e) => unreadable(e),
            },
            FanoutKind::RedactUser => self.carry_out_user_redaction(subject).await,
        }
    }

    /// Whether shutdown has begun: a pass stops between rooms, and is resumed at the
    /// next start.
    pub(crate) fn stopping(&self) -> bool {
        *self.shutting_down.borrow()
    }
}
