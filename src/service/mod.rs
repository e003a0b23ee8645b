//! The server's logic, between the HTTP handlers in `api/` and the store.

pub mod account_data;
pub mod admin;
pub mod backoff;
pub mod direct;
pub mod directory;
pub mod e2ee;
pub mod email;
pub mod erasure;
pub mod event_stream;
pub mod fanout;
pub mod federation;
pub mod filter;
pub mod gifs;
pub mod guests;
pub mod identity;
pub mod key_backup;
pub mod keys;
pub mod media;
pub mod notifications;
pub mod open_syncs;
pub mod openid;
pub mod password;
pub mod positions;
pub mod presence;
pub mod profile;
pub mod push_rules;
pub mod pushers;
pub mod ratelimit;
pub mod receipts;
pub mod relations;
pub mod reports;
pub mod rooms;
pub mod search;
pub mod sessions;
pub mod shared_secret;
pub mod sliding_sync;
pub mod spaces;
pub mod sync;
pub mod typing;
pub mod uia;
pub mod user_directory;
pub mod users;

use std::sync::Arc;

use rand::Rng;
use rand::distributions::Alphanumeric;
use ruma::ServerName;

use crate::config::Config;
use crate::store::Store;

pub struct Services {
    pub config: Arc<Config>,
    pub store: Store,
    pub keys: Arc<keys::ServerKeys>,
    /// Signed requests to other servers.
    pub federation: Arc<federation::FederationClient>,
    /// Requests to identity servers (third-party invites, 3PID bindings).
    pub identity: identity::IdentityClient,
    /// Other servers' keys, fetched and cached.
    pub server_keys: Arc<federation::ServerKeyStore>,
    /// The outgoing queue: what each other server is owed.
    pub sender: Arc<federation::sender::Sender>,
    /// Rooms joined with a partial state, and their resync workers.
    pub partial_states: federation::partial_state::PartialStates,
    /// Pulls of room history from other servers, one at a time per room.
    pub backfill: federation::backfill::BackfillAttempts,
    pub sessions: sessions::Sessions,
    pub uia: uia::UiaSessions,
    pub login_limiter: ratelimit::RateLimiter,
    /// Per-user (per-address for registration) limits on each endpoint family.
    pub limits: ratelimit::RequestLimits,
    /// Long-poll syncs and sync WebSockets held open, capped per user and address.
    pub open_syncs: open_syncs::OpenSyncs,
    /// Per-origin rate limits on incoming federation requests.
    pub inbound_limits: federation::inbound_limits::InboundLimits,
    pub nonces: shared_secret::Nonces,
    pub rooms: rooms::Rooms,
    pub account_data_locks: account_data::AccountDataLocks,
    pub directory: directory::Directory,
    /// `/hierarchy` walks waiting for their next page.
    pub hierarchy_sessions: spaces::HierarchySessions,
    /// Other servers' summaries of rooms in spaces, kept briefly.
    pub remote_spaces: spaces::RemoteSpaces,
    pub notifier: sync::Notifier,
    /// Member events sent to each device by lazy-loading syncs.
    pub lazy_members: sync::LazyMembersSent,
    /// Sliding sync's bump stamps, as far as each room's events were read.
    pub bump_stamps: sliding_sync::BumpStamps,
    pub typing: typing::Typing,
    pub presence: presence::Presence,
    pub receipts: receipts::Receipts,
    /// The outcome of push rules, recorded per event; unread counts.
    pub notifications: notifications::Notifications,
    /// HTTP pushers and their delivery workers.
    pub pushers: Arc<pushers::Pushers>,
    /// Mail: address verification, password resets, digests.
    pub email: Arc<email::Email>,
    pub media: media::Media,
    pub gifs: gifs::Gifs,
    pub profile_locks: profile::ProfileLocks,
    /// One lock per creator around finding or creating a direct chat, so that two
    /// `createRoom` calls for the same chat at once open one room (see `direct.rs`).
    pub direct_chat_locks: profile::ProfileLocks,
    /// Changes that reach many rooms, carried out from a durable intent.
    pub fanout: Arc<fanout::Fanout>,
    pub parsed_filters: filter::ParsedFilters,
    pub user_directory: user_directory::UserDirectory,
    pub reports: reports::Reports,
    pub e2ee: e2ee::E2ee,
    /// Server-side key backups (`/room_keys`).
    pub key_backup: key_backup::KeyBackup,
    pub admin: admin::Admin,
    /// Accounts deactivated with erasure, whose events others get redacted.
    pub erased_users: erasure::ErasedUsers,
    /// Rooms whose guest access changed, for the worker that makes guests leave.
    pub guest_kicks: guests::GuestKicks,
    server_name: ruma::OwnedServerName,
    shutting_down: tokio::sync::watch::Sender<bool>,
}

impl Services {
    pub fn new(config: Config, store: Store, keys: keys::ServerKeys) -> anyhow::Result<Self> {
        let server_name = ServerName::parse(&config.server_name)?;
        search::index_existing_events(&store)?;
        let keys = Arc::new(keys);
        let federation = Arc::new(federation::FederationClient::new(&config, keys.clone())?);
        let server_keys = Arc::new(federation::ServerKeyStore::new(
            &config,
            keys.clone(),
            store.clone(),
            federation.clone(),
        ));
        let shutting_down = tokio::sync::watch::channel(false).0;
        let media = media::Media::new(&config, store.clone(), federation.clone())?;
        let sender = federation::sender::Sender::new(
            store.clone(),
            federation.clone(),
            std::time::Duration::from_secs(config.federation.max_retry_interval_secs),
            config.federation.max_queued_pdus,
            shutting_down.subscribe(),
        )?;
        let identity = identity::IdentityClient::new(&config, keys.clone())?;
        let rooms = rooms::Rooms::new(&store)?;
        let receipts = receipts::Receipts::new(&store)?;
        // Sync and the pushers' workers count unread notifications with the same cache.
        let counts = Arc::new(notifications::UnreadCounts::new(
            store.clone(),
            rooms.positions.clone(),
            receipts.positions.clone(),
        ));
        let event_positions = rooms.positions.clone();
        Ok(Self {
            federation,
            identity,
            server_keys,
            sender,
            backfill: Default::default(),
            partial_states: federation::partial_state::PartialStates::load(&store)?,
            sessions: sessions::Sessions::new(store.clone(), &config),
            uia: uia::UiaSessions::default(),
            nonces: shared_secret::Nonces::default(),
            rooms,
            account_data_locks: account_data::AccountDataLocks::default(),
            directory: directory::Directory::default(),
            hierarchy_sessions: Default::default(),
            remote_spaces: Default::default(),
            notifier: sync::Notifier::default(),
            lazy_members: sync::LazyMembersSent::default(),
            bump_stamps: sliding_sync::BumpStamps::default(),
            typing: typing::Typing::default(),
            presence: presence::Presence::load(&store)?,
            receipts,
            notifications: notifications::Notifications::new(counts.clone()),
            pushers: pushers::Pushers::new(
                store.clone(),
                counts,
                event_positions,
                shutting_down.subscribe(),
                pushers::PushersConfig {
                    denylist: config.federation.ip_range_denylist.clone(),
                    extra_ca_files: config.federation.extra_ca_files.clone(),
                    vapid_subject: config.vapid_subject(),
                },
            )?,
            email: email::Email::new(
                &config.email,
                config.public_baseurl(),
                config.server_name.clone(),
                &store,
            )?,
            media,
            gifs: gifs::Gifs::new(config.federation.ip_range_denylist.clone())?,
            profile_locks: profile::ProfileLocks::default(),
            direct_chat_locks: profile::ProfileLocks::default(),
            fanout: fanout::Fanout::new(store.clone(), shutting_down.subscribe())?,
            parsed_filters: filter::ParsedFilters::new(filter::PARSED_FILTERS),
            user_directory: user_directory::UserDirectory::load(&store)?,
            reports: reports::Reports::new(&store)?,
            e2ee: e2ee::E2ee::new(&store)?,
            key_backup: key_backup::KeyBackup::new(store.clone()),
            admin: admin::Admin::new(&store)?,
            erased_users: erasure::ErasedUsers::load(&store)?,
            guest_kicks: guests::GuestKicks::default(),
            login_limiter: ratelimit::RateLimiter::new(
                config.login.failures_burst,
                config.login.failures_per_minute,
            ),
            inbound_limits: federation::inbound_limits::InboundLimits::new(&config.federation),
            limits: ratelimit::RequestLimits::new(&config.limits),
            open_syncs: open_syncs::OpenSyncs::new(&config.limits),
            config: Arc::new(config),
            store,
            keys,
            server_name,
            shutting_down,
        })
    }

    pub fn server_name(&self) -> &ServerName {
        &self.server_name
    }

    /// Starts the background workers: presence idleness, the sliding sync state writes,
    /// the outgoing federation queue (its destinations with PDUs queued before a
    /// restart), email digests, the pushers, the fan-outs (those a crash cut short first)
    /// and the resyncs of partially joined rooms (those a restart left partial too). Each
    /// ends when shutdown begins.
    pub fn start_workers(self: &Arc<Self>) -> anyhow::Result<()> {
        self.spawn_until_shutdown(self.clone().presence_idle_loop());
        self.spawn_until_shutdown(self.clone().sliding_sync_writer());
        self.spawn_until_shutdown(self.clone().email_digest_loop());
        self.sender.resume()?;
        self.pushers.resume(self.rooms.stream_position())?;
        self.fanout.resume(self.fanout_executor())?;
        self.start_guest_kicks();
        self.start_partial_state_workers()?;
        Ok(())
    }

    /// Runs `work` in its own task until it ends or shutdown begins.
    fn spawn_until_shutdown(&self, work: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown_started();
        tokio::spawn(async move {
            tokio::select! {
                () = work => {}
                () = shutdown => {}
            }
        });
    }

    /// Ends waiting syncs and open sockets so the server can stop.
    pub fn begin_shutdown(&self) {
        self.shutting_down.send_replace(true);
    }

    /// Resolves once shutdown has begun.
    pub fn shutdown_started(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutting_down.subscribe();
        async move {
            let _ = rx.wait_for(|down| *down).await;
        }
    }

    /// Persists what is kept in memory between writes, then flushes the store.
    pub fn shutdown(&self) {
        self.pushers.store_progress();
        if let Err(e) = self.write_acknowledged_to_device() {
            tracing::warn!(error = %e, "could not delete acknowledged to-device messages");
        }
        if let Err(e) = self.sessions.persist_last_seen() {
            tracing::warn!(error = %e, "could not persist device last-seen times");
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "could not flush the store");
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
