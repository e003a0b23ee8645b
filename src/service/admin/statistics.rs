//! The server's statistics for its admins: accounts, active users (by their devices'
//! last use), rooms, events, media bytes and open sync connections. Counted from the
//! store when asked (full scans: an admin's occasional question, not a metric).

use serde::Serialize;

use crate::error::Result;
use crate::service::{Services, now_ms};
use crate::store::Cf;

const DAY_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Statistics {
    /// Local accounts that are not deactivated (guests included).
    pub users: u64,
    pub deactivated_users: u64,
    /// Accounts with a device used in the last 24 hours, and in the last 30 days.
    pub daily_active_users: u64,
    pub monthly_active_users: u64,
    /// Rooms this server has joined (deleted ones included).
    pub rooms: u64,
    /// Events in the store (outliers and rejected ones included).
    pub events: u64,
    /// Bytes of this server's media, and of other servers' media cached here.
    pub local_media_bytes: u64,
    pub remote_media_bytes: u64,
    /// Sync requests in progress (long polls included), sync WebSockets, sliding syncs
    /// and legacy event streams.
    pub sync_connections: u64,
    pub ts: u64,
}

impl Services {
    pub fn admin_statistics(&self) -> Result<Statistics> {
        let now = now_ms();
        let (mut users, mut deactivated, mut daily, mut monthly) = (0, 0, 0, 0);
        for (user_id, record) in self.store.all_users()? {
            if record.deactivated {
                deactivated += 1;
                continue;
            }
            users += 1;
            let last_seen = self
                .sessions
                .devices(&user_id)?
                .iter()
                .filter_map(|d| d.last_seen_ts)
                .max()
                .unwrap_or(0);
            if last_seen + DAY_MS >= now {
                daily += 1;
            }
            if last_seen + 30 * DAY_MS >= now {
                monthly += 1;
            }
        }
        let local_media_bytes = self
            .store
            .all_media()?
            .iter()
            .filter_map(|(_, record)| record.content.as_ref().map(|c| c.size))
            .sum();
        let remote_media_bytes = self
            .store
            .all_remote_media()?
            .iter()
            .map(|content| content.size)
            .sum();
        Ok(Statistics {
            users,
            deactivated_users: deactivated,
            daily_active_users: daily,
            monthly_active_users: monthly,
            rooms: self.store.all_room_ids()?.len() as u64,
            events: self.store.count_entries(Cf::Events)?,
            local_media_bytes,
            remote_media_bytes,
            sync_connections: self.notifier.open_connections() as u64,
            ts: now,
        })
    }
}
