//! RocksDB storage: one column family per kind of record, big-endian keys, and one
//! atomic write batch per logical change. See `spec/storage.md` for the key layouts.

mod account_data;
mod accounts;
mod admin;
mod admin_jobs;
mod checkpoint;
mod dehydrated;
mod directory;
mod durable;
mod e2ee_keys;
mod event_cache;
mod fanout;
mod federation;
mod filters;
mod group_commit;
mod key_backup;
mod keys;
mod media;
mod membership_stream;
mod notifications;
mod openid;
mod partial_state;
mod presence;
mod profiles;
mod read_cache;
mod receipts;
mod record_cache;
mod registration_tokens;
mod relations;
mod remote_devices;
mod reports;
mod room_stream_cache;
mod rooms;
mod search;
mod server_keys;
mod sliding_sync;
mod threepids;
mod to_device;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use account_data::{AccountDataChange, AccountDataRecord};
pub use accounts::{
    AccessTokenRecord, DeviceRecord, RateLimitOverride, RefreshTokenRecord, TokenHash, UserRecord,
};
pub use admin::{AuditRecord, BlockedRoomRecord, DeletedRoomRecord, NewRoomRequest};
pub use admin_jobs::RedactionRecord;
pub use dehydrated::DehydratedDeviceRecord;
pub use directory::AliasRecord;
pub use durable::Applied;
pub use e2ee_keys::{DeviceListChange, FallbackKeyRecord, FirstOneTimeKey};
pub use event_cache::CachedEvent;
pub use fanout::{FanoutIntent, FanoutKind, FanoutRecord};
pub use federation::OutboxRecord;
pub use group_commit::GroupedWrite;
pub use key_backup::{BackedUpKey, BackupVersionRecord};
pub use media::{
    ImageKind, MediaContent, MediaRecord, QuarantineRecord, ThumbnailRecord, thumbnail_key,
};
pub use membership_stream::MembershipChange;
pub use notifications::{
    EventNotifications, NotificationCount, NotificationRecord, PushEventRecord, PusherActivation,
    PusherRecord, pusher_key,
};
pub use openid::OpenidTokenRecord;
pub use partial_state::PartialStateRecord;
pub use presence::PresenceRecord;
pub use receipts::{ReceiptChange, ReceiptRecord};
pub use registration_tokens::RegistrationTokenRecord;
pub use relations::{RelationRecord, ThreadRecord};
pub use remote_devices::{RemoteDeviceList, RemoteDeviceRecord};
pub use reports::{ReportRecord, ReportTarget};
pub use rooms::{
    Direction, EventRecord, EventStatus, RoomRecord, StateGroupRecord, TopoKey, TxnKey,
    UserRoomRecord, UserRooms,
};
pub use search::{Posting, PostingCursor};
pub use server_keys::{ServerKeysRecord, StoredKey};
pub use threepids::{
    BoundThreepid, DigestRecord, ThreepidPurpose, ThreepidRecord, ThreepidSessionRecord,
};
pub use to_device::{
    AcknowledgedMessages, ToDeviceRecord, to_device_client_txn, to_device_edu_txn,
};

/// Access tokens kept in memory (per cache generation): about one per active device.
const ACCESS_TOKEN_CACHE: usize = 4096;
/// Users whose room lists stay in memory, per cache generation.
const USER_ROOMS_CACHE: usize = 4096;

/// Bumped whenever a key layout or record encoding changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {0} is in use by another hearth process (RocksDB holds its LOCK file); stop that process or choose another --data directory"
    )]
    Locked(PathBuf),
    #[error(
        "the data directory {path} holds schema version {found}, but this hearth understands version {expected}"
    )]
    SchemaMismatch {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("storage error: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record in {cf}: {detail}")]
    Corrupt { cf: &'static str, detail: String },
    /// The thread that commits synced writes is gone (it panicked, or the store is
    /// closing): the write was not made. Not a corrupt store.
    #[error("the store's commit thread stopped before writing")]
    CommitterStopped,
    #[error("cannot encode record: {0}")]
    Encode(#[from] serde_json::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The kinds of record, each in its own column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Meta,
    Users,
    Devices,
    AccessTokens,
    RefreshTokens,
    Events,
    Stream,
    RoomStream,
    RoomTopo,
    Rooms,
    StateGroups,
    RoomState,
    UserRooms,
    TxnIds,
    Aliases,
    RoomAliases,
    PublishedRooms,
    AccountData,
    AccountDataStream,
    Filters,
    Receipts,
    ReceiptStream,
    Presence,
    Relations,
    Annotations,
    Threads,
    ThreadActivity,
    Media,
    MediaPending,
    MediaThumbnails,
    MediaRemote,
    Profiles,
    Reports,
    SearchPostings,
    FederationOutbox,
    FederationTxns,
    ServerKeys,
    DeviceKeys,
    OneTimeKeys,
    FallbackKeys,
    CrossSigningKeys,
    DeviceListStream,
    DeviceListUsers,
    RemoteDeviceLists,
    ToDevice,
    ToDeviceTxns,
    AdminAudit,
    DeletedRooms,
    BlockedRooms,
    RegistrationTokens,
    QuarantinedMedia,
    BackupVersions,
    BackupKeys,
    FederationEduOutbox,
    Notifications,
    RoomNotifications,
    EventNotifications,
    PushEvents,
    Pushers,
    PusherProgress,
    SlidingSync,
    MembershipStream,
    FanoutIntents,
    ThreepidSessions,
    Threepids,
    EmailDigests,
    OpenidTokens,
    AdminRedactions,
    ServerNoticeRooms,
    PartialStateRooms,
    DehydratedDevices,
}

impl Cf {
    pub const ALL: [Cf; 71] = [
        Cf::Meta,
        Cf::Users,
        Cf::Devices,
        Cf::AccessTokens,
        Cf::RefreshTokens,
        Cf::Events,
        Cf::Stream,
        Cf::RoomStream,
        Cf::RoomTopo,
        Cf::Rooms,
        Cf::StateGroups,
        Cf::RoomState,
        Cf::UserRooms,
        Cf::TxnIds,
        Cf::Aliases,
        Cf::RoomAliases,
        Cf::PublishedRooms,
        Cf::AccountData,
        Cf::AccountDataStream,
        Cf::Filters,
        Cf::Receipts,
        Cf::ReceiptStream,
        Cf::Presence,
        Cf::Relations,
        Cf::Annotations,
        Cf::Threads,
        Cf::ThreadActivity,
        Cf::Media,
        Cf::MediaPending,
        Cf::MediaThumbnails,
        Cf::MediaRemote,
        Cf::Profiles,
        Cf::Reports,
        Cf::SearchPostings,
        Cf::FederationOutbox,
        Cf::FederationTxns,
        Cf::ServerKeys,
        Cf::DeviceKeys,
        Cf::OneTimeKeys,
        Cf::FallbackKeys,
        Cf::CrossSigningKeys,
        Cf::DeviceListStream,
        Cf::DeviceListUsers,
        Cf::RemoteDeviceLists,
        Cf::ToDevice,
        Cf::ToDeviceTxns,
        Cf::AdminAudit,
        Cf::DeletedRooms,
        Cf::BlockedRooms,
        Cf::RegistrationTokens,
        Cf::QuarantinedMedia,
        Cf::BackupVersions,
        Cf::BackupKeys,
        Cf::FederationEduOutbox,
        Cf::Notifications,
        Cf::RoomNotifications,
        Cf::EventNotifications,
        Cf::PushEvents,
        Cf::Pushers,
        Cf::PusherProgress,
        Cf::SlidingSync,
        Cf::MembershipStream,
        Cf::FanoutIntents,
        Cf::ThreepidSessions,
        Cf::Threepids,
        Cf::EmailDigests,
        Cf::OpenidTokens,
        Cf::AdminRedactions,
        Cf::ServerNoticeRooms,
        Cf::PartialStateRooms,
        Cf::DehydratedDevices,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Users => "users",
            Cf::Devices => "devices",
            Cf::AccessTokens => "access_tokens",
            Cf::RefreshTokens => "refresh_tokens",
            Cf::Events => "events",
            Cf::Stream => "stream",
            Cf::RoomStream => "room_stream",
            Cf::RoomTopo => "room_topo",
            Cf::Rooms => "rooms",
            Cf::StateGroups => "state_groups",
            Cf::RoomState => "room_state",
            Cf::UserRooms => "user_rooms",
            Cf::TxnIds => "txn_ids",
            Cf::Aliases => "aliases",
            Cf::RoomAliases => "room_aliases",
            Cf::PublishedRooms => "published_rooms",
            Cf::AccountData => "account_data",
            Cf::AccountDataStream => "account_data_stream",
            Cf::Filters => "filters",
            Cf::Receipts => "receipts",
            Cf::ReceiptStream => "receipt_stream",
            Cf::Presence => "presence",
            Cf::Relations => "relations",
            Cf::Annotations => "annotations",
            Cf::Threads => "threads",
            Cf::ThreadActivity => "thread_activity",
            Cf::Media => "media",
            Cf::MediaPending => "media_pending",
            Cf::MediaThumbnails => "media_thumbnails",
            Cf::MediaRemote => "media_remote",
            Cf::Profiles => "profiles",
            Cf::Reports => "reports",
            Cf::SearchPostings => "search_postings",
            Cf::FederationOutbox => "federation_outbox",
            Cf::FederationTxns => "federation_txns",
            Cf::ServerKeys => "server_keys",
            Cf::DeviceKeys => "device_keys",
            Cf::OneTimeKeys => "one_time_keys",
            Cf::FallbackKeys => "fallback_keys",
            Cf::CrossSigningKeys => "cross_signing_keys",
            Cf::DeviceListStream => "device_list_stream",
            Cf::DeviceListUsers => "device_list_users",
            Cf::RemoteDeviceLists => "remote_device_lists",
            Cf::ToDevice => "to_device",
            Cf::ToDeviceTxns => "to_device_txns",
            Cf::AdminAudit => "admin_audit",
            Cf::DeletedRooms => "deleted_rooms",
            Cf::BlockedRooms => "blocked_rooms",
            Cf::RegistrationTokens => "registration_tokens",
            Cf::QuarantinedMedia => "quarantined_media",
            Cf::BackupVersions => "backup_versions",
            Cf::BackupKeys => "backup_keys",
            Cf::FederationEduOutbox => "federation_edu_outbox",
            Cf::Notifications => "notifications",
            Cf::RoomNotifications => "room_notifications",
            Cf::EventNotifications => "event_notifications",
            Cf::PushEvents => "push_events",
            Cf::Pushers => "pushers",
            Cf::PusherProgress => "pusher_progress",
            Cf::SlidingSync => "sliding_sync",
            Cf::MembershipStream => "membership_stream",
            Cf::FanoutIntents => "fanout_intents",
            Cf::ThreepidSessions => "threepid_sessions",
            Cf::Threepids => "threepids",
            Cf::EmailDigests => "email_digests",
            Cf::OpenidTokens => "openid_tokens",
            Cf::AdminRedactions => "admin_redactions",
            Cf::ServerNoticeRooms => "server_notice_rooms",
            Cf::PartialStateRooms => "partial_state_rooms",
            Cf::DehydratedDevices => "dehydrated_devices",
        }
    }
}

/// The block cache all column families share: blocks read from table files (what the
/// memtables and Hearth's own caches do not hold).
const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// The first key after every key that begins with `prefix`, if there is one (not for an
/// empty prefix or one of only 0xFF bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<DB>,
    write_options: WriteOptions,
    sync_writes: bool,
    path: PathBuf,
    /// Recently read events (see [`event_cache`]).
    events: event_cache::EventCache,
    /// Recently used access tokens.
    access_tokens: read_cache::ReadCache<TokenHash, AccessTokenRecord>,
    /// Recently read room lists of users (see [`Store::user_rooms_shared`]).
    user_rooms: read_cache::ReadCache<String, rooms::UserRooms>,
    /// Records every sync reads (see [`record_cache`]).
    records: record_cache::RecordCaches,
    /// The latest entries of each room's stream (see [`room_stream_cache`]).
    room_streams: room_stream_cache::RoomStreamCache,
    /// The highest position on the membership stream, so that a sync with nothing
    /// newer skips the read (see [`Store::membership_changes`]).
    membership_stream_last: std::sync::atomic::AtomicU64,
    /// Sliding sync connections' latest states, decoded, written about once a second
    /// (see [`sliding_sync`]).
    sliding_states: sliding_sync::SlidingStates,
    /// Which writes applied under locks are durable (see [`durable`]).
    durability: Arc<durable::Durability>,
    /// The thread that commits grouped writes (see [`group_commit`]).
    committer: group_commit::Committer,
}

impl Store {
    /// Opens (creating if needed) the store under `path`. With `sync_writes`, every batch
    /// is fsynced before it is acknowledged, so it survives power loss, not only `kill -9`;
    /// RocksDB groups concurrent synced writes into one fsync.
    pub fn open(path: &Path, sync_writes: bool) -> StoreResult<Self> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::Corrupt {
            cf: "meta",
            detail: format!("cannot create {}: {e}", path.display()),
        })?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.set_keep_log_file_num(4);
        // One block cache for every column family: left unset, RocksDB gives each of them
        // its own 32 MiB cache (a bound of 2.3 GiB over the 72 families) and allocates
        // each one's shards at open, about 3.5 MiB of a fresh server's memory.
        let block_cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut table_options = rocksdb::BlockBasedOptions::default();
        table_options.set_block_cache(&block_cache);
        let descriptors = Cf::ALL.iter().map(|cf| {
            let mut cf_options = Options::default();
            cf_options.set_compression_type(rocksdb::DBCompressionType::Lz4);
            cf_options.set_block_based_table_factory(&table_options);
            ColumnFamilyDescriptor::new(cf.name(), cf_options)
        });
        let db = DB::open_cf_descriptors(&options, path, descriptors).map_err(|e| {
            if is_lock_error(&e) {
                StoreError::Locked(path.to_path_buf())
            } else {
                StoreError::Rocks(e)
            }
        })?;
        let db = Arc::new(db);
        let durability = Arc::new(durable::Durability::default());
        let mut write_options = WriteOptions::default();
        write_options.set_sync(sync_writes);
        let store = Store {
            inner: Arc::new(Inner {
                committer: group_commit::Committer::start(
                    db.clone(),
                    sync_writes,
                    durability.clone(),
                ),
                db,
                write_options,
                sync_writes,
                path: path.to_path_buf(),
                events: event_cache::EventCache::new(event_cache::EVENT_CACHE),
                access_tokens: read_cache::ReadCache::new(ACCESS_TOKEN_CACHE),
                user_rooms: read_cache::ReadCache::new(USER_ROOMS_CACHE),
                records: record_cache::RecordCaches::new(),
                room_streams: room_stream_cache::RoomStreamCache::new(),
                membership_stream_last: std::sync::atomic::AtomicU64::new(0),
                sliding_states: sliding_sync::SlidingStates::default(),
                durability,
            }),
        };
        store
            .inner
            .room_streams
            .start_after(store.last_u64_key(Cf::Stream)?);
        store.note_membership_stream_end()?;
        store.check_schema_version()?;
        store.fill_membership_stream()?;
        Ok(store)
    }

    fn check_schema_version(&self) -> StoreResult<()> {
        match self.get_raw(Cf::Meta, SCHEMA_VERSION_KEY)? {
            None => {
                let mut batch = self.batch();
                batch.put_raw(Cf::Meta, SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes());
                self.write(batch)
            }
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        cf: "meta",
                        detail: "schema_version is not 4 bytes".into(),
                    })?;
                if found == SCHEMA_VERSION {
                    Ok(())
                } else {
                    Err(StoreError::SchemaMismatch {
                        path: self.inner.path.clone(),
                        found,
                        expected: SCHEMA_VERSION,
                    })
                }
            }
        }
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        // Every column family in `Cf::ALL` is created at open, so the handle exists.
        self.inner
            .db
            .cf_handle(cf.name())
            .expect("column family created at open")
    }

    pub fn get_raw(&self, cf: Cf, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.inner.db.get_cf(self.cf(cf), key)?)
    }

    pub fn get_json<T: DeserializeOwned>(&self, cf: Cf, key: &[u8]) -> StoreResult<Option<T>> {
        match self.get_raw(cf, key)? {
            None => Ok(None),
            Some(bytes) => decode(cf, &bytes).map(Some),
        }
    }

    /// All records whose key starts with `prefix`, in key order.
    pub fn scan_prefix<T: DeserializeOwned>(
        &self,
        cf: Cf,
        prefix: &[u8],
    ) -> StoreResult<Vec<(Vec<u8>, T)>> {
        let mut out = Vec::new();
        for item in self.raw_iter_within(cf, prefix, prefix) {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_vec(), decode(cf, &value)?));
        }
        Ok(out)
    }

    pub(crate) fn raw_iter_from(
        &self,
        cf: Cf,
        start: &[u8],
    ) -> rocksdb::DBIteratorWithThreadMode<'_, DB> {
        self.inner.db.iterator_cf(
            self.cf(cf),
            rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward),
        )
    }

    /// Iterates forward from `start` over the keys that begin with `prefix` (`start`
    /// being one of them). The iterator's upper bound ends it at the prefix's end: a bare
    /// iterator, asked for the key after the prefix's last, walks every deleted key
    /// beyond it until it finds a live one, and a column family whose records are
    /// written and soon deleted (to-device messages, claimed keys, queues) holds many.
    pub(crate) fn raw_iter_within(
        &self,
        cf: Cf,
        start: &[u8],
        prefix: &[u8],
    ) -> rocksdb::DBIteratorWithThreadMode<'_, DB> {
        let mut options = rocksdb::ReadOptions::default();
        if let Some(end) = prefix_end(prefix) {
            options.set_iterate_upper_bound(end);
        }
        self.inner.db.iterator_cf_opt(
            self.cf(cf),
            options,
            rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward),
        )
    }

    /// Iterates backwards from the last key at or before `start`.
    pub(crate) fn raw_iter_rev_from(
        &self,
        cf: Cf,
        start: &[u8],
    ) -> rocksdb::DBIteratorWithThreadMode<'_, DB> {
        self.inner.db.iterator_cf(
            self.cf(cf),
            rocksdb::IteratorMode::From(start, rocksdb::Direction::Reverse),
        )
    }

    pub(crate) fn raw_iter_from_end(&self, cf: Cf) -> rocksdb::DBIteratorWithThreadMode<'_, DB> {
        self.inner
            .db
            .iterator_cf(self.cf(cf), rocksdb::IteratorMode::End)
    }

    pub fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            inner: WriteBatch::default(),
            notes: WrittenNotes::default(),
        }
    }

    /// Applies the batch atomically; once this returns, the change is in the write-ahead log.
    pub fn write(&self, batch: Batch<'_>) -> StoreResult<()> {
        let (inner, notes) = batch.split();
        let write = || self.inner.db.write_opt(inner, &self.inner.write_options);
        // A synced write waits for the disk. On a runtime worker that would stall every
        // task queued behind it (sync wake-ups included), so the worker hands its queue
        // to another thread for the duration.
        let on_worker = self.inner.sync_writes
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(write)?;
        } else {
            write()?;
        }
        self.note_written(notes);
        Ok(())
    }

    /// Applies the batch atomically without waiting for the disk: it survives the
    /// process dying (`kill -9`) but not power loss until a later synced write or
    /// [`Self::sync_wal`]. For writes whose loss only repeats work (a queue entry removed,
    /// an answer cached), and for runs of writes followed by one sync.
    pub fn write_unsynced(&self, batch: Batch<'_>) -> StoreResult<()> {
        let (inner, notes) = batch.split();
        let mut options = WriteOptions::default();
        options.set_sync(false);
        self.inner.db.write_opt(inner, &options)?;
        self.note_written(notes);
        Ok(())
    }

    /// Tells the in-memory caches what a batch just written changed.
    fn note_written(&self, notes: WrittenNotes) {
        self.inner.events.written(&notes.events);
        self.inner.access_tokens.written(&notes.access_tokens);
        self.inner.user_rooms.written(&notes.user_rooms);
        self.inner.records.written(&notes.touched);
        self.inner.room_streams.written(notes.room_stream);
        self.membership_stream_written(notes.membership_stream_max);
        if !notes.sliding.is_empty() {
            self.sliding_connections_dropped(notes.sliding);
        }
    }

    /// Makes every earlier write durable (one fsync of the write-ahead log), when writes
    /// are synced at all.
    pub fn sync_wal(&self) -> StoreResult<()> {
        if !self.inner.sync_writes {
            return Ok(());
        }
        let sync = || self.inner.db.flush_wal(true);
        if tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        {
            tokio::task::block_in_place(sync)?;
        } else {
            sync()?;
        }
        Ok(())
    }

    /// Writes the sliding sync states kept in memory, then flushes the write-ahead log
    /// and memtables; called on graceful shutdown.
    pub fn flush(&self) -> StoreResult<()> {
        self.flush_sliding_sync_states()?;
        self.inner.db.flush_wal(true)?;
        for cf in Cf::ALL {
            self.inner.db.flush_cf(self.cf(cf))?;
        }
        Ok(())
    }
}

/// A set of changes applied together or not at all.
pub struct Batch<'a> {
    store: &'a Store,
    inner: WriteBatch,
    /// What writing it changes for the caches.
    notes: WrittenNotes,
}

/// What a batch changes for the caches, applied once it is written (see
/// [`Store::note_written`]).
#[derive(Default)]
struct WrittenNotes {
    /// Events this batch stores, whose cached copies go once it is written.
    events: Vec<String>,
    /// Access tokens this batch writes or deletes, likewise.
    access_tokens: Vec<TokenHash>,
    /// Users whose room records this batch writes, likewise.
    user_rooms: Vec<String>,
    /// Keys this batch writes or deletes in the column families of [`record_cache`].
    touched: Vec<(Cf, Vec<u8>)>,
    /// Room stream entries this batch writes, `(room, stream, event)`, noted in memory
    /// once it is written.
    room_stream: Vec<(String, u64, ruma::OwnedEventId)>,
    /// The highest membership-stream position this batch writes (0: none).
    membership_stream_max: u64,
    /// Devices whose sliding sync connections this batch deletes.
    sliding: sliding_sync::SlidingWrites,
}

impl Batch<'_> {
    /// The RocksDB batch, and what its writing changes for the caches.
    fn split(self) -> (WriteBatch, WrittenNotes) {
        (self.inner, self.notes)
    }

    pub fn put_raw(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.touch(cf, key);
        self.inner.put_cf(self.store.cf(cf), key, value);
    }

    pub fn put_json<T: Serialize>(&mut self, cf: Cf, key: &[u8], value: &T) -> StoreResult<()> {
        let bytes = serde_json::to_vec(value)?;
        self.put_raw(cf, key, &bytes);
        Ok(())
    }

    pub fn delete(&mut self, cf: Cf, key: &[u8]) {
        self.touch(cf, key);
        self.inner.delete_cf(self.store.cf(cf), key);
    }

    fn touch(&mut self, cf: Cf, key: &[u8]) {
        if record_cache::RecordCaches::tracks(cf) {
            self.notes.touched.push((cf, key.to_vec()));
        }
    }
}

fn decode<T: DeserializeOwned>(cf: Cf, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        cf: cf.name(),
        detail: e.to_string(),
    })
}

fn is_lock_error(err: &rocksdb::Error) -> bool {
    let text = err.to_string();
    text.contains("LOCK") && (text.contains("lock") || text.contains("Resource temporarily"))
}
