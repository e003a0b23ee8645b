//! The outgoing queue: one worker per destination server sends what this server owes it
//! as transactions of up to 50 PDUs and 100 EDUs.
//!
//! PDUs are queued in RocksDB in the same write as the event itself, so a restart loses
//! nothing: the queue is read back at start-up and each destination gets what it
//! missed, in order. EDUs that must not be lost (to-device messages, which carry room
//! keys) are queued in RocksDB the same way, in the write that accepts them; the
//! ephemeral ones (typing, receipts, presence) are queued in memory. A destination that fails is retried with exponential backoff up to
//! `federation.max_retry_interval_secs`, and at once when it contacts us. While it is
//! down, at most `federation.max_queued_pdus` PDUs are kept for it (the newest): it
//! fetches older ones itself when a newer event names them (`/get_missing_events`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::Method;
use ruma::{OwnedEventId, OwnedServerName, ServerName};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{FederationClient, OutboundError};
use crate::service::backoff::backoff;
use crate::service::now_ms;
use crate::store::{Batch, OutboxRecord, Store, StoreResult};

/// The spec's limits on one transaction.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;
/// PDU bytes per transaction, well below receivers' body limits (Hearth's is 4 MiB).
const MAX_TXN_BYTES: usize = 2 * 1024 * 1024;
/// EDUs kept for a destination that is down; older ones are dropped first.
const MAX_QUEUED_EDUS: usize = 1000;
/// Durable EDUs kept for a destination that is down; older ones are dropped first.
const MAX_QUEUED_DURABLE_EDUS: usize = 10_000;
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The shortest wait after a 429, whatever the remote asked, so that a `retry_after_ms` of
/// 0 does not turn the sender into a busy loop.
const MIN_RATE_LIMIT_WAIT: Duration = Duration::from_millis(100);

pub struct Sender {
    store: Store,
    client: Arc<FederationClient>,
    origin: OwnedServerName,
    max_retry: Duration,
    max_queued_pdus: usize,
    /// Queue positions, shared by every destination; resumed above the highest stored.
    seq: AtomicU64,
    /// Transaction IDs: unique across restarts by the start time.
    txn_prefix: u64,
    txn_counter: AtomicU64,
    queues: Mutex<HashMap<OwnedServerName, Arc<Queue>>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

#[derive(Default)]
struct Queue {
    /// New work was queued.
    work: Notify,
    /// The destination contacted us: it is up, retry now.
    contact: Notify,
    edus: Mutex<VecDeque<Value>>,
    /// How delivery to the destination is going, for the admin API.
    retry: Mutex<RetryState>,
}

/// The backoff record of a destination (in memory: it starts afresh with the server),
/// with Synapse's destination fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryState {
    /// Failed attempts in a row.
    pub failures: u32,
    /// When the current run of failures began (ms); `None` while delivery works.
    pub failure_ts: Option<u64>,
    /// The last failed attempt (ms), 0 while delivery works.
    pub retry_last_ts: u64,
    /// The wait before the next attempt (ms), 0 while delivery works.
    pub retry_interval: u64,
    /// The queue position of the last PDU delivered.
    pub last_successful_stream_ordering: Option<u64>,
}

/// A transaction being sent, kept whole until it succeeds so that a retry repeats the
/// same transaction ID with the same content.
struct InFlight {
    txn_id: String,
    seqs: Vec<u64>,
    /// The queue positions of the durable EDUs it carries.
    edu_seqs: Vec<u64>,
    body: Value,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sender {
    pub fn new(
        store: Store,
        client: Arc<FederationClient>,
        max_retry: Duration,
        max_queued_pdus: usize,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> StoreResult<Arc<Self>> {
        let (_, highest) = store.outbox_destinations()?;
        Ok(Arc::new(Self {
            origin: client.server_name().to_owned(),
            store,
            client,
            max_retry: max_retry.max(FIRST_RETRY),
            max_queued_pdus: max_queued_pdus.max(1),
            seq: AtomicU64::new(highest),
            txn_prefix: now_ms(),
            txn_counter: AtomicU64::new(0),
            queues: Mutex::new(HashMap::new()),
            shutdown,
        }))
    }

    /// Starts a worker for every destination with PDUs or durable EDUs still queued
    /// from before.
    pub fn resume(self: &Arc<Self>) -> StoreResult<()> {
        let (destinations, _) = self.store.outbox_destinations()?;
        for destination in destinations {
            match ServerName::parse(&destination) {
                Ok(name) => {
                    self.queue(&name).work.notify_one();
                }
                Err(e) => {
                    tracing::warn!(%destination, error = %e, "dropping a queue for a bad server name")
                }
            }
        }
        Ok(())
    }

    /// Queues a PDU for each destination in the caller's batch; call [`Self::wake`]
    /// once the batch is written.
    pub fn stage_pdu(
        &self,
        batch: &mut Batch<'_>,
        destinations: &[OwnedServerName],
        event_id: &OwnedEventId,
    ) -> StoreResult<()> {
        for destination in destinations {
            let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
            batch.queue_pdu(
                destination.as_str(),
                seq,
                &OutboxRecord {
                    event_id: event_id.clone(),
                },
            )?;
        }
        Ok(())
    }

    /// Queues an EDU that must survive a restart (a to-device message) for each
    /// destination in the caller's batch; call [`Self::wake`] once the batch is written.
    pub fn stage_edu(
        &self,
        batch: &mut Batch<'_>,
        destinations: &[OwnedServerName],
        edu: &Value,
    ) -> StoreResult<()> {
        for destination in destinations {
            let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
            batch.queue_edu(destination.as_str(), seq, edu)?;
        }
        Ok(())
    }

    /// Tells the destinations' workers that PDUs or durable EDUs were queued.
    pub fn wake(self: &Arc<Self>, destinations: &[OwnedServerName]) {
        for destination in destinations {
            self.queue(destination).work.notify_one();
        }
    }

    /// Queues an EDU for each destination.
    pub fn send_edu(self: &Arc<Self>, destinations: &[OwnedServerName], edu: Value) {
        for destination in destinations {
            let queue = self.queue(destination);
            {
                let mut edus = lock(&queue.edus);
                if edus.len() >= MAX_QUEUED_EDUS {
                    edus.pop_front();
                }
                edus.push_back(edu.clone());
            }
            queue.work.notify_one();
        }
    }

    /// A request from `origin` arrived: if we were backing off from it, retry now.
    pub fn contacted(&self, origin: &ServerName) {
        if let Some(queue) = lock(&self.queues).get(origin) {
            queue.contact.notify_one();
        }
    }

    /// Every destination this server has sent to or queued for since it started, with
    /// its backoff record, by name.
    pub fn destinations(&self) -> Vec<(OwnedServerName, RetryState)> {
        let mut out: Vec<_> = lock(&self.queues)
            .iter()
            .map(|(name, queue)| (name.clone(), lock(&queue.retry).clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Forgets the destination's failures and wakes its worker to try again now, as
    /// when the destination contacts us. Answers false for a destination not known.
    pub fn reset_connection(&self, destination: &ServerName) -> bool {
        let Some(queue) = lock(&self.queues).get(destination).cloned() else {
            return false;
        };
        {
            let mut retry = lock(&queue.retry);
            *retry = RetryState {
                last_successful_stream_ordering: retry.last_successful_stream_ordering,
                ..RetryState::default()
            };
        }
        queue.contact.notify_one();
        queue.work.notify_one();
        true
    }

    /// The destination's queue, starting its worker the first time.
    fn queue(self: &Arc<Self>, destination: &ServerName) -> Arc<Queue> {
        let mut queues = lock(&self.queues);
        if let Some(queue) = queues.get(destination) {
            return queue.clone();
        }
        let queue = Arc::new(Queue::default());
        queues.insert(destination.to_owned(), queue.clone());
        tokio::spawn(self.clone().run(destination.to_owned(), queue.clone()));
        queue
    }

    async fn run(self: Arc<Self>, destination: OwnedServerName, queue: Arc<Queue>) {
        let mut shutdown = self.shutdown.clone();
        let mut in_flight: Option<InFlight> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if in_flight.is_none() {
                match self.next_transaction(&destination, &queue) {
                    Ok(next) => in_flight = next,
                    Err(e) => {
                        tracing::error!(%destination, error = %e, "cannot read the outgoing queue")
                    }
                }
            }
            let Some(txn) = &in_flight else {
                // Nothing to send: wait for work (or a contact, harmlessly).
                tokio::select! {
                    () = queue.work.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            match self.send(&destination, txn).await {
                Ok(()) => {
                    let mut batch = self.store.batch();
                    for seq in &txn.seqs {
                        batch.unqueue_pdu(destination.as_str(), *seq);
                    }
                    for seq in &txn.edu_seqs {
                        batch.unqueue_edu(destination.as_str(), *seq);
                    }
                    // Not waited for: should it be lost, the PDUs and EDUs are sent
                    // again, which the destination recognises (event and message IDs).
                    if let Err(e) = self.store.write_unsynced(batch) {
                        tracing::error!(%destination, error = %e, "cannot remove sent PDUs from the queue");
                    }
                    let mut retry = lock(&queue.retry);
                    *retry = RetryState {
                        last_successful_stream_ordering: txn
                            .seqs
                            .iter()
                            .max()
                            .copied()
                            .or(retry.last_successful_stream_ordering),
                        ..RetryState::default()
                    };
                    drop(retry);
                    in_flight = None;
                }
                Err(e) if e.retry_after().is_some() => {
                    // Up but rate-limiting us: wait as long as it asked (within the
                    // ceiling), without counting it as down or dropping queued PDUs. Its
                    // own requests to us do not cut the wait short.
                    let wait = rate_limit_wait(e.retry_after(), self.max_retry);
                    tracing::info!(%destination, retry_in = ?wait, "destination rate-limited the transaction");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    let wait = {
                        let mut retry = lock(&queue.retry);
                        retry.failures = retry.failures.saturating_add(1);
                        let wait = backoff(retry.failures, self.max_retry);
                        let now = now_ms();
                        retry.failure_ts.get_or_insert(now);
                        retry.retry_last_ts = now;
                        retry.retry_interval = wait.as_millis() as u64;
                        wait
                    };
                    if self.trim(&destination) > 0 {
                        // Rebuilt from what is left at the next attempt.
                        in_flight = None;
                    }
                    tracing::info!(%destination, error = %e, retry_in = ?wait, "transaction not delivered");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = queue.contact.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// Drops the oldest PDUs (and durable EDUs) queued for a destination that is down
    /// beyond `max_queued_pdus` (and [`MAX_QUEUED_DURABLE_EDUS`]); returns how many.
    fn trim(&self, destination: &ServerName) -> usize {
        let name = destination.as_str();
        let excess = self
            .store
            .outbox_excess(name, self.max_queued_pdus)
            .and_then(|pdus| {
                let edus = self
                    .store
                    .edu_outbox_excess(name, MAX_QUEUED_DURABLE_EDUS)?;
                Ok((pdus, edus))
            });
        let (pdus, edus) = match excess {
            Ok(excess) => excess,
            Err(e) => {
                tracing::error!(%destination, error = %e, "cannot read the outgoing queue");
                return 0;
            }
        };
        if pdus.is_empty() && edus.is_empty() {
            return 0;
        }
        let mut batch = self.store.batch();
        for seq in &pdus {
            batch.unqueue_pdu(name, *seq);
        }
        for seq in &edus {
            batch.unqueue_edu(name, *seq);
        }
        if let Err(e) = self.store.write(batch) {
            tracing::error!(%destination, error = %e, "cannot trim the outgoing queue");
            return 0;
        }
        if !pdus.is_empty() {
            tracing::warn!(
                %destination,
                dropped = pdus.len(),
                "destination down: dropped its oldest queued events (it can fetch them)"
            );
        }
        if !edus.is_empty() {
            tracing::warn!(
                %destination,
                dropped = edus.len(),
                "destination down: dropped its oldest queued to-device messages"
            );
        }
        pdus.len() + edus.len()
    }

    /// The next transaction: the oldest queued PDUs and EDUs, if any.
    fn next_transaction(
        &self,
        destination: &ServerName,
        queue: &Queue,
    ) -> StoreResult<Option<InFlight>> {
        let queued = self.store.outbox(destination.as_str(), MAX_PDUS)?;
        let mut seqs = Vec::with_capacity(queued.len());
        let mut pdus = Vec::with_capacity(queued.len());
        let mut bytes = 0;
        for (seq, record) in queued {
            // The stored copy: redacted by now if it was redacted.
            let pdu = self.store.event(record.event_id.as_str())?.map(|e| e.pdu);
            let size = pdu
                .as_ref()
                .map_or(0, |p| serde_json::to_vec(p).map_or(0, |v| v.len()));
            // Servers limit request bodies: the rest waits for the next transaction.
            if !seqs.is_empty() && bytes + size > MAX_TXN_BYTES {
                break;
            }
            bytes += size;
            seqs.push(seq);
            pdus.extend(pdu);
        }
        let durable = self.store.edu_outbox(destination.as_str(), MAX_EDUS)?;
        let mut edu_seqs = Vec::with_capacity(durable.len());
        let mut edus = Vec::with_capacity(durable.len());
        for (seq, edu) in durable {
            // To-device messages can be large (room keys for many devices): the same
            // byte budget as for PDUs, shared with them.
            let size = serde_json::to_vec(&edu).map_or(0, |v| v.len());
            if !(seqs.is_empty() && edu_seqs.is_empty()) && bytes + size > MAX_TXN_BYTES {
                break;
            }
            bytes += size;
            edu_seqs.push(seq);
            edus.push(edu);
        }
        {
            let mut memory = lock(&queue.edus);
            let n = memory.len().min(MAX_EDUS - edus.len());
            edus.extend(memory.drain(..n));
        }
        if seqs.is_empty() && edus.is_empty() {
            return Ok(None);
        }
        let txn_id = format!(
            "{}.{}",
            self.txn_prefix,
            self.txn_counter.fetch_add(1, Ordering::SeqCst)
        );
        let mut body = json!({
            "origin": self.origin,
            "origin_server_ts": now_ms(),
            "pdus": pdus,
        });
        if !edus.is_empty() {
            body["edus"] = Value::Array(edus);
        }
        Ok(Some(InFlight {
            txn_id,
            seqs,
            edu_seqs,
            body,
        }))
    }

    async fn send(&self, destination: &ServerName, txn: &InFlight) -> Result<(), OutboundError> {
        let path = format!("/_matrix/federation/v1/send/{}", txn.txn_id);
        let answer = self
            .client
            .send_json(destination, Method::PUT, &path, Some(&txn.body))
            .await?;
        // The transaction is delivered; the destination's verdict on each PDU is its own.
        if let Some(pdus) = answer.get("pdus").and_then(Value::as_object) {
            for (event_id, result) in pdus {
                if let Some(error) = result.get("error") {
                    tracing::info!(%destination, %event_id, %error, "destination refused a PDU");
                }
            }
        }
        Ok(())
    }
}

/// The wait a 429 asked for, at least [`MIN_RATE_LIMIT_WAIT`] and at most `max`.
fn rate_limit_wait(asked: Option<Duration>, max: Duration) -> Duration {
    asked
        .unwrap_or(FIRST_RETRY)
        .min(max)
        .max(MIN_RATE_LIMIT_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_waits_are_what_the_remote_asked_within_bounds() {
        let max = Duration::from_secs(3600);
        let ms = Duration::from_millis;
        assert_eq!(rate_limit_wait(Some(ms(2500)), max), ms(2500));
        assert_eq!(rate_limit_wait(Some(ms(0)), max), MIN_RATE_LIMIT_WAIT);
        assert_eq!(rate_limit_wait(Some(Duration::from_secs(86_400)), max), max);
    }
}
