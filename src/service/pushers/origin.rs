//! The worker of one gateway origin (scheme, host and port): it serves every HTTP pusher
//! whose gateway is there, and sends the notify requests that are ready at one moment
//! together, pipelined on one connection ([`super::gateway::GatewayClient::post_batch`]).
//!
//! An event that notifies ten members whose pushers use one gateway is one wake of this
//! worker, one write of ten requests and the read of their answers, where a worker per
//! pusher made ten wakes and ten exchanges (each a `write` and a `read` through the
//! kernel's TCP, the larger part of what a push cost). Each pusher keeps its own queue,
//! order and backoff ([`Lane`]): it has at most one request in flight, so its
//! notifications still arrive one at a time, in order. Several batches may be in flight
//! at once, each on its own connection, so that one round trip does not hold the other
//! pushes back; and since a gateway answers pipelined requests one after the other, a
//! batch takes only as many as the gateway answers within a few milliseconds ([`Pace`]):
//! a gateway that waits on a phone vendor's service before it answers gets one request
//! per connection, as before.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use ruma::OwnedUserId;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::deliver::{Outcome, outcome};
use super::gateway::{Answer, Origin, Target};
use super::lane::{Lane, Next};
use super::{Pushers, Signals, lock};
use crate::store::PusherRecord;

/// The most requests written together on one connection.
const MAX_BATCH: usize = 64;
/// The most batches in flight at once per origin (one connection each): as many as the
/// pool keeps, so that a gateway that must be sent one request at a time (or is slow per
/// request) still gets a connection per pusher sending at once, as before batches.
const MAX_FLIGHTS: usize = 1024;
/// How much later than alone the last request of a batch may be answered: a gateway
/// answers pipelined requests one after the other, so a batch is at most as large as this
/// over the gateway's time per request.
const PIPELINE_BUDGET: Duration = Duration::from_millis(10);
/// How often a gateway too slow for batches is sent a batch of two, to see whether it
/// became faster.
const PROBE_EVERY: Duration = Duration::from_secs(10);

/// A pusher served by an origin's worker.
pub(super) struct Member {
    pub user_id: OwnedUserId,
    pub key: Vec<u8>,
    pub record: PusherRecord,
    pub signals: Arc<Signals>,
    pub target: Target,
    /// The progress of the worker it replaces.
    pub carried: u64,
}

/// What the pushers share with an origin's worker.
pub(super) struct OriginQueue {
    origin: Origin,
    work: Notify,
    shared: std::sync::Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The pushers served, by their worker ID.
    members: HashMap<u64, Arc<Member>>,
    /// Pushers with something new (woken, joined, left), not yet looked at.
    ready: Vec<u64>,
}

impl OriginQueue {
    pub(super) fn new(origin: Origin) -> Arc<Self> {
        Arc::new(Self {
            origin,
            work: Notify::new(),
            shared: Default::default(),
        })
    }

    /// The pusher has something new to send.
    pub(super) fn ready(&self, id: u64) {
        lock(&self.shared).ready.push(id);
        self.work.notify_one();
    }

    pub(super) fn join(&self, id: u64, member: Member) {
        let mut shared = lock(&self.shared);
        shared.members.insert(id, Arc::new(member));
        shared.ready.push(id);
        drop(shared);
        self.work.notify_one();
    }

    pub(super) fn origin(&self) -> &Origin {
        &self.origin
    }

    /// No pusher is served and none has anything new.
    pub(super) fn is_idle(&self) -> bool {
        let shared = lock(&self.shared);
        shared.members.is_empty() && shared.ready.is_empty()
    }

    pub(super) fn leave(&self, id: u64) {
        let mut shared = lock(&self.shared);
        shared.members.remove(&id);
        shared.ready.push(id);
        drop(shared);
        self.work.notify_one();
    }
}

/// A pusher as its origin's worker holds it.
struct Slot {
    lane: Lane,
    member: Arc<Member>,
    /// A request of it is in flight.
    busy: bool,
    /// Waiting for a retry: only its timer makes it send again.
    backing_off: bool,
    /// In the worker's list of pushers to look at.
    queued: bool,
}

/// One request of a batch: whose, and which notification (`None`: a badge).
type Sent = (u64, Option<u64>);

/// How many requests an origin's batches take, from the time its gateway took per
/// pipelined request so far (a moving mean). Until it is known, batches of two.
struct Pace {
    per_request: Option<Duration>,
    probed: Instant,
}

impl Pace {
    fn batch_size(&mut self, pipelines: bool, now: Instant) -> usize {
        if !pipelines {
            return 1;
        }
        let Some(per_request) = self.per_request else {
            return 2;
        };
        let fits = PIPELINE_BUDGET.as_nanos() / per_request.as_nanos().max(1);
        let size = usize::try_from(fits)
            .unwrap_or(MAX_BATCH)
            .clamp(1, MAX_BATCH);
        if size == 1 && now.duration_since(self.probed) >= PROBE_EVERY {
            self.probed = now;
            return 2;
        }
        size
    }

    fn measured(&mut self, per_request: Duration) {
        self.per_request = Some(match self.per_request {
            Some(mean) => (mean * 3 + per_request) / 4,
            None => per_request,
        });
    }
}

/// The pushers an origin's worker serves, and which of them to look at.
#[derive(Default)]
struct Served {
    slots: HashMap<u64, Slot>,
    /// Pushers to look at, in the order they became ready.
    active: VecDeque<u64>,
    /// Pushers backing off, by the time of their next attempt.
    retries: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Served {
    /// A pusher became ready, joined or left.
    fn take_ready(&mut self, pushers: &Pushers, queue: &OriginQueue, id: u64) {
        let member = lock(&queue.shared).members.get(&id).cloned();
        let Some(member) = member else {
            // Left (removed, or replaced by a pusher with another ID).
            self.slots.remove(&id);
            return;
        };
        let slot = match self.slots.entry(id) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(vacant) => {
                let Some(lane) = Lane::open(
                    pushers,
                    member.user_id.clone(),
                    &member.key,
                    member.record.clone(),
                    member.signals.clone(),
                    member.carried,
                ) else {
                    return;
                };
                vacant.insert(Slot {
                    lane,
                    member,
                    busy: false,
                    backing_off: false,
                    queued: false,
                })
            }
        };
        enqueue(id, slot, &mut self.active);
    }

    /// Pushers whose backoff ended are looked at again.
    fn retry_due(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.retries.peek().copied()
            && at <= now
        {
            self.retries.pop();
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.backing_off = false;
                enqueue(id, slot, &mut self.active);
            }
        }
    }

    fn next_retry(&self) -> Option<Instant> {
        self.retries.peek().map(|Reverse((at, _))| *at)
    }

    /// The next request of up to `size` pushers that have one, and whose they are.
    fn batch(&mut self, pushers: &Pushers, size: usize) -> (Vec<Sent>, Vec<Vec<u8>>) {
        let mut sent = Vec::new();
        let mut requests = Vec::new();
        while sent.len() < size
            && let Some(id) = self.active.pop_front()
        {
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            slot.queued = false;
            if slot.busy || slot.backing_off {
                // Looked at again when its answer or its retry comes.
                continue;
            }
            let (body, stream) = match slot.lane.next(pushers) {
                Next::Notification(body, stream) => (body, Some(stream)),
                Next::Badge(body) => (body, None),
                Next::Idle => continue,
            };
            slot.busy = true;
            requests.push(slot.member.target.request(&body));
            sent.push((id, stream));
        }
        (sent, requests)
    }

    /// What a pusher's request came to.
    fn answered(
        &mut self,
        pushers: &Pushers,
        queue: &OriginQueue,
        (id, stream): Sent,
        answer: Result<Answer, String>,
    ) {
        let Some(slot) = self.slots.get_mut(&id) else {
            // It left while its request was in flight.
            return;
        };
        slot.busy = false;
        match answer.and_then(|answer| outcome(&answer, &slot.lane.pusher.pushkey)) {
            Ok(Outcome::Delivered) => slot.lane.delivered(stream),
            Ok(Outcome::Rejected) => {
                let lane = &slot.lane;
                pushers.forget_rejected(&lane.user_id, &lane.pusher, &lane.signals);
                lock(&queue.shared).members.remove(&id);
                self.slots.remove(&id);
                return;
            }
            Err(e) => {
                if let Some(wait) = slot.lane.failed(stream, &e) {
                    slot.backing_off = true;
                    self.retries.push(Reverse((Instant::now() + wait, id)));
                    return;
                }
            }
        }
        // Looked at again: more may be queued, or it was woken while busy.
        enqueue(id, slot, &mut self.active);
    }
}

fn enqueue(id: u64, slot: &mut Slot, active: &mut VecDeque<u64>) {
    if !slot.queued {
        slot.queued = true;
        active.push_back(id);
    }
}

impl Pushers {
    pub(super) async fn serve_origin(self: Arc<Self>, queue: Arc<OriginQueue>) {
        let mut shutdown = self.shutdown.clone();
        let mut served = Served::default();
        let mut flights = FuturesUnordered::new();
        let mut pace = Pace {
            per_request: None,
            probed: Instant::now(),
        };
        loop {
            if *shutdown.borrow() {
                // `store_progress` stores the progress at shutdown.
                return;
            }
            let ready = std::mem::take(&mut lock(&queue.shared).ready);
            for id in ready {
                served.take_ready(&self, &queue, id);
            }
            // The last pusher left and nothing is in flight: the worker ends (the next
            // pusher of this origin starts another).
            if served.slots.is_empty() && flights.is_empty() && self.retire_origin(&queue) {
                return;
            }
            let now = Instant::now();
            served.retry_due(now);
            while flights.len() < MAX_FLIGHTS && !served.active.is_empty() {
                let size = pace.batch_size(self.gateway.pipelines(&queue.origin), now);
                let (sent, requests) = served.batch(&self, size);
                if sent.is_empty() {
                    break;
                }
                let pushers = self.clone();
                let origin = queue.origin.clone();
                flights.push(async move {
                    let answers = pushers.gateway.post_batch(&origin, &requests).await;
                    (sent, answers)
                });
            }
            tokio::select! {
                Some((sent, (answers, per_request))) = flights.next(), if !flights.is_empty() => {
                    if let Some(per_request) = per_request {
                        pace.measured(per_request);
                    }
                    for (sent, answer) in sent.into_iter().zip(answers) {
                        served.answered(&self, &queue, sent, answer);
                    }
                }
                () = queue.work.notified() => {}
                () = sleep_until(served.next_retry()) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_as_large_as_the_gateway_answers_within_the_budget() {
        let start = Instant::now();
        let mut pace = Pace {
            per_request: None,
            probed: start,
        };
        // Unknown yet: two, to learn; never more than one where pipelining broke.
        assert_eq!(pace.batch_size(true, start), 2);
        assert_eq!(pace.batch_size(false, start), 1);
        // A gateway on the same machine: the most a batch takes.
        pace.measured(Duration::from_micros(40));
        assert_eq!(pace.batch_size(true, start), MAX_BATCH);
        // One that takes a millisecond per request: ten fit in the budget.
        pace.per_request = Some(Duration::from_millis(1));
        assert_eq!(pace.batch_size(true, start), 10);
        // A slow one (waiting on a phone vendor's service): one at a time, but a batch
        // of two every so often in case it became faster.
        pace.measured(Duration::from_millis(400));
        assert_eq!(pace.per_request, Some(Duration::from_micros(100_750)));
        assert_eq!(pace.batch_size(true, start), 1);
        let later = start + PROBE_EVERY;
        assert_eq!(pace.batch_size(true, later), 2);
        assert_eq!(pace.batch_size(true, later), 1);
    }
}
