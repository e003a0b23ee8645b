//! Fan-out that survives a crash: a change that must reach many rooms (a new display name
//! or avatar re-sent as member events, leaving every room on deactivation, an admin's
//! room deletion) is recorded as
//! an intent in the same atomic batch as the change itself. A background worker per
//! subject then carries the intent out room by room and deletes it once done; intents left
//! over by a crash are resumed at start-up.
//!
//! Carrying out an intent is idempotent: a room that already has what the intent asks
//! for (a member event with the current profile, no membership left) gets nothing new,
//! so a pass cut short and repeated sends no duplicates. Intents of one subject are
//! carried out one at a time, and a later intent of the same subject and kind supersedes
//! the earlier ones: one pass for the latest covers them all, since a pass reads the
//! subject's current state (the newest profile) room by room.
//!
//! Workers follow the project's convention for background work: started by
//! [`Fanout::resume`] from `Services::start_workers`, ended when shutdown begins.

mod kinds;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::Result;
use crate::service::now_ms;
pub use crate::store::FanoutKind;
use crate::store::{Batch, FanoutRecord, Store, StoreResult};

/// One pass over the rooms of an intent.
pub type Work = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Carries out an intent (subject, kind), idempotently. A pass that stops early because
/// shutdown began may return `Ok`: the worker keeps the intent once shutdown has begun.
pub type Executor = Arc<dyn Fn(String, FanoutKind) -> Work + Send + Sync>;

/// The longest wait between passes that failed (the first is a second; it doubles).
const MAX_RETRY: Duration = Duration::from_secs(60);

pub struct Fanout {
    store: Store,
    /// Generations of new intents; resumed above the highest stored.
    generation: AtomicU64,
    /// Set once the workers may start.
    executor: OnceLock<Executor>,
    /// Subjects whose worker is running. A worker leaves only when it finds no intent
    /// left, checked under this lock, so an intent staged and then woken is never missed.
    running: Mutex<HashSet<String>>,
    /// Bumped whenever intents are carried out, for those waiting on them.
    progress: watch::Sender<u64>,
    shutdown: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn backoff(failures: u32) -> Duration {
    crate::service::backoff::backoff(failures, MAX_RETRY)
}

impl Fanout {
    pub fn new(store: Store, shutdown: watch::Receiver<bool>) -> StoreResult<Arc<Self>> {
        let (_, highest) = store.fanout_subjects()?;
        Ok(Arc::new(Self {
            store,
            generation: AtomicU64::new(highest),
            executor: OnceLock::new(),
            running: Mutex::new(HashSet::new()),
            progress: watch::channel(0).0,
            shutdown,
        }))
    }

    /// Adds an intent to the caller's batch, which must also hold the change it carries
    /// out; once the batch is written, call [`Self::wake`] (and [`Self::finished`] to
    /// answer only after every room has it). Answers the intent's generation.
    pub fn stage(
        &self,
        batch: &mut Batch<'_>,
        subject: &str,
        kind: FanoutKind,
    ) -> StoreResult<u64> {
        self.stage_with(batch, subject, kind, None)
    }

    /// [`Self::stage`] with what the kind needs to know besides the store (see
    /// [`FanoutRecord::payload`]).
    pub fn stage_with(
        &self,
        batch: &mut Batch<'_>,
        subject: &str,
        kind: FanoutKind,
        payload: Option<serde_json::Value>,
    ) -> StoreResult<u64> {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let record = FanoutRecord {
            created_ms: now_ms(),
            payload,
        };
        batch.put_fanout_intent(subject, kind, generation, &record)?;
        Ok(generation)
    }

    /// Starts the workers: one for every subject with intents left from before the start
    /// (a crash cut them short), and from now on one whenever [`Self::wake`] is called.
    pub fn resume(self: &Arc<Self>, executor: Executor) -> StoreResult<()> {
        if self.executor.set(executor).is_err() {
            return Ok(());
        }
        let (subjects, _) = self.store.fanout_subjects()?;
        if !subjects.is_empty() {
            tracing::info!(
                subjects = subjects.len(),
                "resuming fan-outs left unfinished"
            );
        }
        for subject in subjects {
            self.wake(&subject);
        }
        Ok(())
    }

    /// The subject has new intents written: its worker carries them out.
    pub fn wake(self: &Arc<Self>, subject: &str) {
        // Before the workers start, intents wait in the store for `resume`.
        let Some(executor) = self.executor.get() else {
            return;
        };
        let mut running = lock(&self.running);
        if running.insert(subject.to_owned()) {
            tokio::spawn(self.clone().run(subject.to_owned(), executor.clone()));
        }
    }

    /// Resolves once the intent `generation` of the subject and kind, and every earlier
    /// one, is carried out; or once shutdown begins (the intent is then resumed at the
    /// next start), or at once if the workers have not started.
    pub async fn finished(&self, subject: &str, kind: FanoutKind, generation: u64) -> Result<()> {
        let mut progress = self.progress.subscribe();
        let mut shutdown = self.shutdown.clone();
        loop {
            if *shutdown.borrow() || self.executor.get().is_none() {
                return Ok(());
            }
            let pending = self
                .store
                .fanout_intents(subject)?
                .iter()
                .any(|i| i.kind == kind && i.generation <= generation);
            if !pending {
                return Ok(());
            }
            tokio::select! {
                changed = progress.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
    }

    /// The subject's worker: carries out its intents, latest of each kind, until none is
    /// left.
    async fn run(self: Arc<Self>, subject: String, executor: Executor) {
        let mut shutdown = self.shutdown.clone();
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let intents = {
                let mut running = lock(&self.running);
                match self.store.fanout_intents(&subject) {
                    Ok(intents) if intents.is_empty() => {
                        running.remove(&subject);
                        return;
                    }
                    Ok(intents) => Ok(intents),
                    Err(e) => Err(e),
                }
            };
            let failed = match intents {
                Ok(intents) => {
                    let mut by_kind: BTreeMap<FanoutKind, Vec<u64>> = BTreeMap::new();
                    for intent in intents {
                        by_kind
                            .entry(intent.kind)
                            .or_default()
                            .push(intent.generation);
                    }
                    let mut failed = false;
                    for (kind, generations) in by_kind {
                        if !self
                            .carry_out(&subject, kind, &generations, &executor)
                            .await
                        {
                            failed = true;
                        }
                        if *shutdown.borrow() {
                            return;
                        }
                    }
                    failed
                }
                Err(e) => {
                    tracing::error!(%subject, error = %e, "cannot read fan-out intents");
                    true
                }
            };
            if !failed {
                failures = 0;
                continue;
            }
            failures = failures.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(backoff(failures)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One pass for the subject and kind, covering all of `generations`; deletes them
    /// when it succeeds. Answers whether it did.
    async fn carry_out(
        &self,
        subject: &str,
        kind: FanoutKind,
        generations: &[u64],
        executor: &Executor,
    ) -> bool {
        let started = std::time::Instant::now();
        if let Err(e) = executor(subject.to_owned(), kind).await {
            tracing::warn!(%subject, kind = kind.name(), error = %e, "fan-out pass failed; retrying");
            return false;
        }
        if *self.shutdown.borrow() {
            // The pass may have stopped early: keep the intent for the next start.
            return true;
        }
        let mut batch = self.store.batch();
        for generation in generations {
            batch.delete_fanout_intent(subject, kind, *generation);
        }
        // Not waited for: should the deletion be lost, the intent is carried out again
        // and finds every room done.
        if let Err(e) = self.store.write_unsynced(batch) {
            tracing::error!(%subject, kind = kind.name(), error = %e, "cannot delete a carried-out fan-out intent");
            return false;
        }
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
        tracing::debug!(%subject, kind = kind.name(), intents = generations.len(), elapsed = ?started.elapsed(), "fan-out done");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Calls = Arc<Mutex<Vec<(String, FanoutKind)>>>;

    fn recording(calls: &Calls) -> Executor {
        let calls = calls.clone();
        Arc::new(move |subject, kind| {
            lock(&calls).push((subject, kind));
            Box::pin(async { Ok(()) })
        })
    }

    #[tokio::test]
    async fn intents_left_over_are_resumed_and_the_latest_covers_the_earlier() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let (_shutdown, stopped) = watch::channel(false);
        // Written before a crash: two profile changes and a deactivation.
        let before = Fanout::new(store.clone(), stopped.clone()).unwrap();
        let mut batch = store.batch();
        let first = before
            .stage(&mut batch, "@a:x", FanoutKind::MemberProfile)
            .unwrap();
        let second = before
            .stage(&mut batch, "@a:x", FanoutKind::MemberProfile)
            .unwrap();
        before
            .stage(&mut batch, "@b:x", FanoutKind::LeaveRooms)
            .unwrap();
        store.write(batch).unwrap();
        assert!(second > first);

        let fanout = Fanout::new(store.clone(), stopped).unwrap();
        // Before the workers start, nothing waits on them.
        fanout
            .finished("@a:x", FanoutKind::MemberProfile, second)
            .await
            .unwrap();
        let calls = Calls::default();
        fanout.resume(recording(&calls)).unwrap();
        fanout
            .finished("@a:x", FanoutKind::MemberProfile, second)
            .await
            .unwrap();
        fanout
            .finished("@b:x", FanoutKind::LeaveRooms, second + 1)
            .await
            .unwrap();
        let mut done = lock(&calls).clone();
        done.sort();
        // One pass for both profile changes.
        assert_eq!(
            done,
            [
                ("@a:x".to_owned(), FanoutKind::MemberProfile),
                ("@b:x".to_owned(), FanoutKind::LeaveRooms),
            ]
        );
        assert_eq!(store.fanout_subjects().unwrap(), (vec![], 0));

        // New intents continue above the generations left over.
        let mut batch = store.batch();
        let third = fanout
            .stage(&mut batch, "@a:x", FanoutKind::MemberProfile)
            .unwrap();
        store.write(batch).unwrap();
        assert!(third > second + 1);
        fanout.wake("@a:x");
        fanout
            .finished("@a:x", FanoutKind::MemberProfile, third)
            .await
            .unwrap();
        assert_eq!(lock(&calls).len(), 3);
        assert!(store.fanout_intents("@a:x").unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_pass_keeps_the_intent_until_one_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let (_shutdown, stopped) = watch::channel(false);
        let fanout = Fanout::new(store.clone(), stopped).unwrap();
        let attempts = Arc::new(AtomicU64::new(0));
        let executor: Executor = {
            let attempts = attempts.clone();
            Arc::new(move |_, _| {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    if attempt == 0 {
                        Err(crate::error::Error::internal("the first pass fails"))
                    } else {
                        Ok(())
                    }
                })
            })
        };
        fanout.resume(executor).unwrap();
        let mut batch = store.batch();
        let generation = fanout
            .stage(&mut batch, "@a:x", FanoutKind::MemberProfile)
            .unwrap();
        store.write(batch).unwrap();
        fanout.wake("@a:x");
        fanout
            .finished("@a:x", FanoutKind::MemberProfile, generation)
            .await
            .unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert!(store.fanout_intents("@a:x").unwrap().is_empty());
    }

    #[test]
    fn retries_back_off_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(40), MAX_RETRY);
    }
}
