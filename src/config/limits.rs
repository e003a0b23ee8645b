//! `[limits]`: how much one user (or, for registration and name availability, one
//! address) may ask of the
//! server per endpoint family, and the sizes `createRoom` and filters may reach.
//! Rates are token buckets (a burst, refilled per minute); a refused request gets
//! `429 M_LIMIT_EXCEEDED` with `retry_after_ms`. Server admins are exempt. See
//! spec/limits.md for every limit Hearth applies.

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Room events a user sends (messages, state, redactions).
    pub messages_burst: u32,
    pub messages_per_minute: f64,
    /// Joins and knocks a user makes.
    pub joins_burst: u32,
    pub joins_per_minute: f64,
    /// Invites a user sends.
    pub invites_burst: u32,
    pub invites_per_minute: f64,
    /// Accounts registered from one address.
    pub registrations_burst: u32,
    pub registrations_per_minute: f64,
    /// `/register/available` questions asked from one address.
    pub availability_burst: u32,
    pub availability_per_minute: f64,
    /// Registration token validity questions asked from one address.
    pub token_validity_burst: u32,
    pub token_validity_per_minute: f64,
    /// Server-side searches a user runs.
    pub search_burst: u32,
    pub search_per_minute: f64,
    /// Reports of events, rooms and users a user files.
    pub reports_burst: u32,
    pub reports_per_minute: f64,
    /// Most `initial_state` events one `createRoom` may carry.
    pub create_room_initial_state: usize,
    /// Most users one `createRoom` may invite.
    pub create_room_invites: usize,
    /// Largest filter (uploaded or inline in `/sync?filter=`), in bytes of JSON.
    pub filter_bytes: usize,
    /// Seconds a client may take to send a request's head (also how long an idle
    /// keep-alive connection stays open); then the connection is closed.
    pub header_read_secs: u64,
    /// Seconds a client may take to send a JSON request body; then `408`.
    pub body_read_secs: u64,
    /// Seconds a media upload may go without a byte arriving; then `408` and the part
    /// received is thrown away. (An upload as a whole has no time limit: a large file on
    /// a slow link takes as long as it takes.)
    pub upload_idle_secs: u64,
    /// Seconds the server waits for a sync WebSocket client to take one frame, plus one
    /// second for every 64 KiB of it; a client that reads no faster is cut off (close
    /// code 1013) and its socket's slot freed.
    pub socket_send_secs: u64,
    /// Seconds a sync WebSocket opened without a token may take to send its `auth`
    /// frame; then it is closed (code 1008).
    pub socket_auth_secs: u64,
    /// Bytes of timeline events one sync response (`/sync`, a WebSocket update) carries
    /// at most, over all its rooms: past it, each further room gets only its newest
    /// event, with `limited: true` (the client pages back for the rest).
    pub sync_timeline_bytes: usize,
    /// Bytes of rooms one sync response carries at most (their state, timelines,
    /// invites, receipts, account data): the rooms past it are deferred whole to the
    /// next response. The first room with news is always sent, however large.
    pub sync_response_bytes: usize,
    /// Milliseconds a long-poll `/sync` that has only to-device messages to give waits
    /// for a room event to give with them (a room key is shared just before the message
    /// it unlocks), so that both come in one response; 0 answers at once.
    pub to_device_hold_ms: u64,
    /// Most `/sync` requests one user may have open at once.
    pub syncs_per_user: usize,
    /// Most `/sync` requests open at once from one client address.
    pub syncs_per_address: usize,
    /// Most sync WebSockets one user may have open at once.
    pub sync_sockets_per_user: usize,
    /// Most sync WebSockets open at once from one client address.
    pub sync_sockets_per_address: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            // Ten a second with a hundred at once: far above a person typing, and
            // above the benchmark's 2.5 a second per user.
            messages_burst: 100,
            messages_per_minute: 600.0,
            joins_burst: 30,
            joins_per_minute: 60.0,
            invites_burst: 30,
            invites_per_minute: 60.0,
            registrations_burst: 10,
            registrations_per_minute: 10.0,
            // About Synapse's (one question every two seconds per address), after a
            // burst that lets a client check a name as its user types.
            availability_burst: 10,
            availability_per_minute: 30.0,
            // Synapse's `rc_registration_token_validity`: a burst of 5, one a 10 s.
            token_validity_burst: 5,
            token_validity_per_minute: 6.0,
            search_burst: 20,
            search_per_minute: 60.0,
            reports_burst: 10,
            reports_per_minute: 1.0,
            create_room_initial_state: 100,
            create_room_invites: 100,
            filter_bytes: 16 * 1024,
            header_read_secs: 30,
            body_read_secs: 60,
            upload_idle_secs: 60,
            socket_send_secs: 30,
            socket_auth_secs: 10,
            sync_timeline_bytes: 8 * 1024 * 1024,
            sync_response_bytes: 32 * 1024 * 1024,
            // Above the few milliseconds between a client's key share and its message.
            to_device_hold_ms: 10,
            // Generous: a person has a few devices, each with a tab or two; an address
            // may be a household's or an office's NAT.
            syncs_per_user: 50,
            syncs_per_address: 200,
            sync_sockets_per_user: 50,
            sync_sockets_per_address: 200,
        }
    }
}

/// `hearth --help`'s lines for `[limits]`.
pub const LIMITS_OPTIONS: &[(&str, &str)] = &[
    (
        "limits.messages_burst",
        "Room events (messages, state, redactions) a user may send at once before M_LIMIT_EXCEEDED [default: 100]",
    ),
    (
        "limits.messages_per_minute",
        "Rate at which that allowance refills [default: 600]",
    ),
    (
        "limits.joins_burst",
        "Joins and knocks a user may make at once [default: 30]",
    ),
    (
        "limits.joins_per_minute",
        "Rate at which that allowance refills [default: 60]",
    ),
    (
        "limits.invites_burst",
        "Invites a user may send at once [default: 30]",
    ),
    (
        "limits.invites_per_minute",
        "Rate at which that allowance refills [default: 60]",
    ),
    (
        "limits.registrations_burst",
        "Accounts one address may register at once [default: 10]",
    ),
    (
        "limits.registrations_per_minute",
        "Rate at which that allowance refills [default: 10]",
    ),
    (
        "limits.availability_burst",
        "/register/available questions one address may ask at once [default: 10]",
    ),
    (
        "limits.availability_per_minute",
        "Rate at which that allowance refills [default: 30]",
    ),
    (
        "limits.token_validity_burst",
        "Registration token validity questions one address may ask at once [default: 5]",
    ),
    (
        "limits.token_validity_per_minute",
        "Rate at which that allowance refills [default: 6]",
    ),
    (
        "limits.search_burst",
        "Searches a user may run at once [default: 20]",
    ),
    (
        "limits.search_per_minute",
        "Rate at which that allowance refills [default: 60]",
    ),
    (
        "limits.reports_burst",
        "Reports a user may file at once [default: 10]",
    ),
    (
        "limits.reports_per_minute",
        "Rate at which that allowance refills [default: 1]",
    ),
    (
        "limits.create_room_initial_state",
        "Most initial_state events in one createRoom [default: 100]",
    ),
    (
        "limits.create_room_invites",
        "Most invites in one createRoom [default: 100]",
    ),
    (
        "limits.filter_bytes",
        "Largest filter accepted, uploaded or inline [default: 16384]",
    ),
    (
        "limits.header_read_secs",
        "Seconds a client may take to send a request's head, and that an idle connection stays open [default: 30]",
    ),
    (
        "limits.body_read_secs",
        "Seconds a client may take to send a JSON request body before 408 [default: 60]",
    ),
    (
        "limits.upload_idle_secs",
        "Seconds a media upload may go without a byte arriving before 408 [default: 60]",
    ),
    (
        "limits.socket_send_secs",
        "Seconds a sync WebSocket client may take to read one update, plus one per 64 KiB of it, before it is cut off [default: 30]",
    ),
    (
        "limits.socket_auth_secs",
        "Seconds a sync WebSocket opened without a token may take to send its auth frame before it is closed [default: 10]",
    ),
    (
        "limits.sync_timeline_bytes",
        "Bytes of timeline events in one sync response; further rooms get their newest event, limited [default: 8388608]",
    ),
    (
        "limits.sync_response_bytes",
        "Bytes of rooms in one sync response; further rooms are deferred whole to the next response [default: 33554432]",
    ),
    (
        "limits.to_device_hold_ms",
        "Milliseconds a long-poll /sync with only to-device messages waits for a room event to send with them; 0 answers at once [default: 10]",
    ),
    (
        "limits.syncs_per_user",
        "Long-poll /sync requests one user may hold open at once before M_LIMIT_EXCEEDED [default: 50]",
    ),
    (
        "limits.syncs_per_address",
        "Long-poll /sync requests one client address may hold open at once [default: 200]",
    ),
    (
        "limits.sync_sockets_per_user",
        "Sync WebSockets one user may hold open at once (more are refused with 429) [default: 50]",
    ),
    (
        "limits.sync_sockets_per_address",
        "Sync WebSockets one client address may hold open at once [default: 200]",
    ),
];

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rates = [
            (self.messages_burst, self.messages_per_minute),
            (self.joins_burst, self.joins_per_minute),
            (self.invites_burst, self.invites_per_minute),
            (self.registrations_burst, self.registrations_per_minute),
            (self.availability_burst, self.availability_per_minute),
            (self.token_validity_burst, self.token_validity_per_minute),
            (self.search_burst, self.search_per_minute),
            (self.reports_burst, self.reports_per_minute),
        ];
        if rates
            .iter()
            .any(|&(burst, rate)| burst == 0 || !rate.is_finite() || rate <= 0.0)
        {
            return Err(ConfigError::Invalid(
                "limits: every *_burst and *_per_minute must be positive".into(),
            ));
        }
        if [
            self.syncs_per_user,
            self.syncs_per_address,
            self.sync_sockets_per_user,
            self.sync_sockets_per_address,
        ]
        .contains(&0)
        {
            return Err(ConfigError::Invalid(
                "limits: syncs_* and sync_sockets_* must be positive".into(),
            ));
        }
        if [
            self.filter_bytes as u64,
            self.header_read_secs,
            self.body_read_secs,
            self.upload_idle_secs,
            self.socket_send_secs,
            self.socket_auth_secs,
            self.sync_timeline_bytes as u64,
            self.sync_response_bytes as u64,
        ]
        .contains(&0)
        {
            return Err(ConfigError::Invalid(
                "limits.filter_bytes, header_read_secs, body_read_secs, upload_idle_secs, \
                 socket_send_secs, socket_auth_secs, sync_timeline_bytes and sync_response_bytes \
                 must be positive"
                    .into(),
            ));
        }
        if self.to_device_hold_ms > 1000 {
            return Err(ConfigError::Invalid(
                "limits.to_device_hold_ms must be at most 1000".into(),
            ));
        }
        Ok(())
    }
}
