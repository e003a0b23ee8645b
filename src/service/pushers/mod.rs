//! Pushers: the push gateways (`http`) and Web Push subscriptions (`webpush`, MSC4174)
//! a user's devices registered with `/pushers/set`, and the background delivery to them.
//!
//! Each pusher has its queue (the user's recorded notifications after the pusher's stored
//! progress, [`lane`]), served from when the pusher is set or from start-up until shutdown
//! or the pusher's removal: the HTTP pushers of one gateway origin by that origin's
//! worker, which sends their requests together ([`origin`]), the others (Web Push, a
//! gateway URL that cannot be posted to) each by a worker of its own ([`deliver`]).
//! Sending an event hands its notifications to the queues of the users it notifies
//! ([`feed`]) once they are written, and wakes their workers once the event is visible:
//! it never waits for a gateway. The queues' progress is stored for all of them
//! together, once a second.

mod activation;
mod body;
mod deliver;
mod feed;
mod gateway;
mod http1;
mod lane;
mod origin;
mod set;
mod vapid;
mod webpush;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ruma::{OwnedUserId, UserId};
use tokio::sync::Notify;

pub use activation::AckPusher;
pub use set::SetPusher;
pub use webpush::KINDS as WEBPUSH_KINDS;

use crate::config::IpRange;
use crate::service::notifications::UnreadCounts;
use crate::service::positions::Watermarks;
use crate::store::{NotificationRecord, PusherRecord, Store, StoreResult, pusher_key};

/// What the pushers need of the configuration.
pub struct PushersConfig {
    /// `federation.ip_range_denylist`: gateways and push services are refused those
    /// addresses.
    pub denylist: Vec<IpRange>,
    /// `federation.extra_ca_files`, trusted for push services too.
    pub extra_ca_files: Vec<std::path::PathBuf>,
    /// The VAPID `sub` claim (a `mailto:` or `https:` URI).
    pub vapid_subject: String,
}

/// The kind of the pushers that get email digests (`service/email/digest.rs`).
pub const EMAIL_KIND: &str = "email";

/// How long one request to a gateway may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the workers' progress is stored: a crash repeats the pushes of about this
/// long (at least once, never lost).
const SAVE_EVERY: Duration = Duration::from_secs(1);

pub struct Pushers {
    store: Store,
    /// The badge (`counts.unread`): the unread counts sync keeps too.
    counts: Arc<UnreadCounts>,
    /// The event stream: a new feed holds every notification after the position
    /// allocated when it is made.
    events: Arc<dyn Watermarks>,
    gateway: gateway::GatewayClient,
    webpush: webpush::WebPushClient,
    /// The event stream position up to which every notification is written.
    visible: AtomicU64,
    workers: Mutex<HashMap<OwnedUserId, HashMap<Vec<u8>, Worker>>>,
    /// The workers of the gateway origins, started with their first pusher.
    origins: Mutex<HashMap<gateway::Origin, Arc<origin::OriginQueue>>>,
    /// The ID of the next pusher served by an origin's worker.
    next_id: AtomicU64,
    /// The newest events' notification parts, shared by their pushers.
    parts: Mutex<body::EventParts>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

struct Worker {
    signals: Arc<Signals>,
    serving: Serving,
}

/// Who serves a pusher.
enum Serving {
    /// A worker of its own.
    Task(tokio::task::JoinHandle<()>),
    /// Its gateway origin's worker, which knows it by this ID.
    Origin(Arc<origin::OriginQueue>, u64),
}

impl Worker {
    /// Something to do (the flags say what).
    fn notify(&self) {
        match &self.serving {
            Serving::Task(_) => self.signals.work.notify_one(),
            Serving::Origin(queue, id) => queue.ready(*id),
        }
    }

    /// Ends the serving of the pusher.
    fn end(&self) {
        match &self.serving {
            Serving::Task(task) => task.abort(),
            Serving::Origin(queue, id) => queue.leave(*id),
        }
    }
}

struct Signals {
    /// Something to do: see the flags.
    work: Notify,
    /// The user has new notifications (set before `work` is notified): the worker takes
    /// them from its feed (or the store). Without it, a worker that has taken everything
    /// up to the visible position does not look.
    new: AtomicBool,
    /// The user's unread count changed without a new notification (they read).
    badge: AtomicBool,
    /// The worker's progress (the stream position of the last notification it is done
    /// with), also before it is stored: a worker that replaces it starts from there.
    progress: AtomicU64,
    /// The progress last stored (0: none yet by this worker).
    saved: AtomicU64,
    /// The user's notifications as the send path writes them.
    feed: Mutex<feed::Feed>,
}

impl Signals {
    fn new(allocated: u64) -> Self {
        Self {
            work: Notify::new(),
            new: AtomicBool::new(false),
            badge: AtomicBool::new(false),
            progress: AtomicU64::new(0),
            saved: AtomicU64::new(0),
            feed: Mutex::new(feed::Feed::new(allocated)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pushers {
    /// Loads (or makes, on first start) the server's VAPID key.
    pub fn new(
        store: Store,
        counts: Arc<UnreadCounts>,
        events: Arc<dyn Watermarks>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        config: PushersConfig,
    ) -> anyhow::Result<Arc<Self>> {
        let vapid = vapid::Vapid::load_or_create(&store, config.vapid_subject)?;
        Ok(Arc::new(Self {
            gateway: gateway::GatewayClient::new(
                config.denylist.clone(),
                &config.extra_ca_files,
                REQUEST_TIMEOUT,
            )?,
            webpush: webpush::WebPushClient::new(
                config.denylist,
                &config.extra_ca_files,
                REQUEST_TIMEOUT,
                vapid,
            )?,
            store,
            counts,
            events,
            visible: AtomicU64::new(0),
            workers: Mutex::new(HashMap::new()),
            origins: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            parts: Mutex::default(),
            shutdown,
        }))
    }

    /// Starts a worker for every stored pusher; `visible` is the event stream position
    /// at start-up.
    pub fn resume(self: &Arc<Self>, visible: u64) -> StoreResult<()> {
        self.visible_to(visible);
        for (user_id, record) in self.store.all_pushers()? {
            self.start(&user_id, record);
        }
        let pushers = self.clone();
        tokio::spawn(async move {
            let mut shutdown = pushers.shutdown.clone();
            let mut every = tokio::time::interval(SAVE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => pushers.store_progress(),
                    _ = shutdown.wait_for(|stopping| *stopping) => return,
                }
            }
        });
        Ok(())
    }

    /// The VAPID public key push subscriptions are made with (`/capabilities`).
    pub fn vapid_public_key(&self) -> &str {
        self.webpush.vapid_public_key()
    }

    /// Every notification up to `position` is written.
    pub fn visible_to(&self, position: u64) {
        self.visible.fetch_max(position, Ordering::SeqCst);
    }

    /// Stores the progress of every worker that moved on since it was last stored, in
    /// one write: once a second, and at shutdown once requests are done.
    pub fn store_progress(&self) {
        let mut batch = self.store.batch();
        let mut moved = Vec::new();
        for workers in lock(&self.workers).values() {
            for (key, worker) in workers {
                // 0: a worker that has not read its progress yet, or waits for activation.
                let progress = worker.signals.progress.load(Ordering::SeqCst);
                if progress > worker.signals.saved.load(Ordering::SeqCst) {
                    batch.put_pusher_progress(key, progress);
                    moved.push((worker.signals.clone(), progress));
                }
            }
        }
        if moved.is_empty() {
            return;
        }
        match self.store.write_unsynced(batch) {
            Ok(()) => {
                for (signals, progress) in moved {
                    signals.saved.fetch_max(progress, Ordering::SeqCst);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot store the pushers' progress"),
        }
    }

    /// An event's notifications are written (and not yet visible): each user's record
    /// goes to the feeds of their pushers' workers. `records` are in the order of
    /// `users`.
    pub fn feed(
        &self,
        stream: u64,
        users: &[(OwnedUserId, bool)],
        records: &[Arc<NotificationRecord>],
    ) {
        if users.is_empty() {
            return;
        }
        let workers = lock(&self.workers);
        for ((user_id, _), record) in users.iter().zip(records) {
            for worker in workers.get(user_id).into_iter().flat_map(|w| w.values()) {
                lock(&worker.signals.feed).push(stream, record.clone());
            }
        }
    }

    /// Notifications of these users were withdrawn or evaluated again: their workers
    /// read them from the store.
    pub fn records_changed(&self, users: &[OwnedUserId]) {
        let workers = lock(&self.workers);
        let allocated = self.events.allocated();
        for user_workers in users.iter().filter_map(|u| workers.get(u)) {
            for worker in user_workers.values() {
                lock(&worker.signals.feed).reset(allocated);
            }
        }
    }

    /// The users have new notifications.
    pub fn wake(&self, users: &[OwnedUserId]) {
        if users.is_empty() {
            return;
        }
        let workers = lock(&self.workers);
        for user_id in users {
            for worker in workers.get(user_id).into_iter().flat_map(|w| w.values()) {
                // A worker is woken once until it looks: one that has not looked since
                // the last wake (busy pushing) takes these notifications with those.
                if !worker.signals.new.swap(true, Ordering::SeqCst) {
                    worker.notify();
                }
            }
        }
    }

    /// The user read something: their gateways get the new unread count.
    pub fn badge(&self, user_id: &UserId) {
        let workers = lock(&self.workers);
        for worker in workers.get(user_id).into_iter().flat_map(|w| w.values()) {
            worker.signals.badge.store(true, Ordering::SeqCst);
            worker.notify();
        }
    }

    /// Starts (or restarts, after a change) the worker of a stored pusher. A restarted
    /// one goes on from where the worker it replaces was, stored or not.
    fn start(self: &Arc<Self>, user_id: &UserId, record: PusherRecord) {
        if record.kind == EMAIL_KIND {
            // Email pushers have no worker of their own: the digest worker reads them.
            return;
        }
        let key = pusher_key(user_id.as_str(), &record.app_id, &record.pushkey);
        let mut workers = lock(&self.workers);
        // Under the lock the send path feeds workers with: every notification of an
        // event allocated after this reaches the new feed.
        let signals = Arc::new(Signals::new(self.events.allocated()));
        let user_workers = workers.entry(user_id.to_owned()).or_default();
        let mut carried = 0;
        if let Some(previous) = user_workers.remove(&key) {
            previous.end();
            carried = previous.signals.progress.load(Ordering::SeqCst);
        }
        let target = match record.data.get("url").and_then(serde_json::Value::as_str) {
            Some(url) if record.activation.is_none() && !webpush::is_webpush(&record.kind) => {
                self.gateway.target(url).ok()
            }
            _ => None,
        };
        let serving = match target {
            Some(target) => {
                let id = self.next_id.fetch_add(1, Ordering::SeqCst);
                let origin = target.origin.clone();
                let member = origin::Member {
                    user_id: user_id.to_owned(),
                    key: key.clone(),
                    record,
                    signals: signals.clone(),
                    target,
                    carried,
                };
                Serving::Origin(self.join_origin(&origin, id, member), id)
            }
            None => Serving::Task(tokio::spawn(self.clone().run(
                user_id.to_owned(),
                key.clone(),
                record,
                signals.clone(),
                carried,
            ))),
        };
        user_workers.insert(key, Worker { signals, serving });
    }

    /// Adds a pusher to its origin's worker, which is started with its first pusher, and
    /// returns the worker's queue. Under the lock of `origins`, which a worker with no
    /// pusher left takes to end ([`Self::retire_origin`]): a pusher joins a worker that
    /// goes on, or starts a new one.
    fn join_origin(
        self: &Arc<Self>,
        origin: &gateway::Origin,
        id: u64,
        member: origin::Member,
    ) -> Arc<origin::OriginQueue> {
        let mut origins = lock(&self.origins);
        let queue = match origins.get(origin) {
            Some(queue) => queue.clone(),
            None => {
                let queue = origin::OriginQueue::new(origin.clone());
                origins.insert(origin.clone(), queue.clone());
                tokio::spawn(self.clone().serve_origin(queue.clone()));
                queue
            }
        };
        queue.join(id, member);
        queue
    }

    /// Whether the worker of `queue` may end: no pusher is left in it, nor anything
    /// left to look at. If so its queue leaves `origins`, so that the next pusher of its
    /// origin starts a new worker.
    fn retire_origin(&self, queue: &Arc<origin::OriginQueue>) -> bool {
        let mut origins = lock(&self.origins);
        if !queue.is_idle() {
            return false;
        }
        if origins
            .get(queue.origin())
            .is_some_and(|kept| Arc::ptr_eq(kept, queue))
        {
            origins.remove(queue.origin());
        }
        true
    }

    /// Ends the worker of a removed pusher.
    pub(crate) fn stop(&self, user_id: &UserId, app_id: &str, pushkey: &str) {
        let key = pusher_key(user_id.as_str(), app_id, pushkey);
        let mut workers = lock(&self.workers);
        if let Some(user_workers) = workers.get_mut(user_id) {
            if let Some(worker) = user_workers.remove(&key) {
                worker.end();
            }
            if user_workers.is_empty() {
                workers.remove(user_id);
            }
        }
    }

    /// Removes a pusher from the store and ends its worker (the gateway rejected it),
    /// from within that worker: it is not aborted but returns.
    fn forget_rejected(&self, user_id: &UserId, record: &PusherRecord, signals: &Arc<Signals>) {
        let key = pusher_key(user_id.as_str(), &record.app_id, &record.pushkey);
        if !self.is_current(user_id, &key, signals) {
            // Replaced meanwhile: the new pusher is not this one.
            return;
        }
        tracing::info!(user = %user_id, app_id = %record.app_id, "the gateway rejected the pushkey (or the push service has no such subscription); removing the pusher");
        let mut batch = self.store.batch();
        batch.delete_pusher(user_id.as_str(), &record.app_id, &record.pushkey);
        if let Err(e) = self.store.write(batch) {
            tracing::error!(user = %user_id, error = %e, "cannot remove a rejected pusher");
            return;
        }
        let mut workers = lock(&self.workers);
        if let Some(user_workers) = workers.get_mut(user_id) {
            user_workers.remove(&key);
            if user_workers.is_empty() {
                workers.remove(user_id);
            }
        }
    }
}
