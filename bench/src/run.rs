//! One measured run of one transport: what is shared between the sender and the
//! receivers while it goes, and the figures computed from it afterwards.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::e2ee::{Figures, RUN_KEY, SENT_KEY};
use crate::matrix::{Client, SyncBody, TimelineEvent, ToDeviceEvent};
use crate::server::Memory;

const PENDING: u8 = 0;
const ACCEPTED: u8 = 1;
const REFUSED: u8 = 2;

/// How many error messages are kept to show; the rest are only counted.
const ERROR_SAMPLES: usize = 5;

/// State shared by the sender and every receiver of a run.
pub struct Run {
    epoch: Instant,
    /// The same moment as `epoch`, in milliseconds since the Unix epoch: where the run's
    /// clock is on the server log's.
    pub epoch_unix_ms: u64,
    /// Bench ID of message 0 of this run; message `i` has ID `first_id + i`.
    pub first_id: u64,
    /// The room of each message.
    pub rooms: Vec<u32>,
    /// Whether the server accepted each message.
    answers: Vec<AtomicU8>,
    /// When each answer arrived (from [`Run::now`]); 0 while pending.
    answered_at: Vec<AtomicU64>,
    /// Deliveries of this run's messages seen so far, duplicates included.
    pub delivered: AtomicU64,
    /// To-device messages of this run accepted by the server, and seen by receivers.
    pub to_device_sent: AtomicU64,
    pub to_device_delivered: AtomicU64,
    /// With `--e2ee`: when the last sender's first room key share of the run ended (on
    /// the run's clock), 0 before; the messages scheduled after it are the run's steady
    /// part, which waits for no burst of shares.
    pub first_shares_done: AtomicU64,
    errors: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

impl Run {
    pub fn new(first_id: u64, rooms: Vec<u32>) -> Self {
        let answers = rooms.iter().map(|_| AtomicU8::new(PENDING)).collect();
        let answered_at = rooms.iter().map(|_| AtomicU64::new(0)).collect();
        let epoch_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            epoch: Instant::now(),
            epoch_unix_ms,
            first_id,
            rooms,
            answers,
            answered_at,
            delivered: AtomicU64::new(0),
            to_device_sent: AtomicU64::new(0),
            to_device_delivered: AtomicU64::new(0),
            first_shares_done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            error_samples: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the run began: the bench's clock for sends and deliveries.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// The message index of a bench ID, if the ID belongs to this run.
    fn index(&self, bench_id: u64) -> Option<u32> {
        let index = bench_id.checked_sub(self.first_id)?;
        (index < self.rooms.len() as u64).then_some(index as u32)
    }

    pub fn answered(&self, index: usize, accepted: bool) {
        let value = if accepted { ACCEPTED } else { REFUSED };
        self.answered_at[index].store(self.now(), Ordering::Relaxed);
        self.answers[index].store(value, Ordering::Relaxed);
    }

    /// Whether the server accepted message `index` (false while it has not answered).
    pub fn accepted(&self, index: usize) -> bool {
        self.answers[index].load(Ordering::Relaxed) == ACCEPTED
    }

    /// Whether message `index` is still waiting for the server's answer.
    pub fn pending(&self, index: usize) -> bool {
        self.answers[index].load(Ordering::Relaxed) == PENDING
    }

    /// When the answer to message `index` arrived, on the run's clock.
    pub fn answered_at(&self, index: usize) -> u64 {
        self.answered_at[index].load(Ordering::Relaxed)
    }

    pub fn all_answered(&self) -> bool {
        self.answers
            .iter()
            .all(|a| a.load(Ordering::Relaxed) != PENDING)
    }

    /// Counts an error seen by a sender or receiver; keeps the first few messages.
    pub fn error(&self, message: String) {
        if self.errors.fetch_add(1, Ordering::Relaxed) < ERROR_SAMPLES as u64 {
            self.error_samples.lock().unwrap().push(message);
        }
    }

    /// The number of errors counted and the first few messages, taken out of the run.
    pub fn take_errors(&self) -> (u64, Vec<String>) {
        (
            self.errors.load(Ordering::Relaxed),
            std::mem::take(&mut *self.error_samples.lock().unwrap()),
        )
    }

    /// Records the bench messages and to-device messages of one sync body received at
    /// `at` (from [`Run::now`]).
    pub fn record(&self, body: &SyncBody, at: u64, into: &mut Received) {
        for room in body.rooms.join.values() {
            self.record_timeline(&room.timeline.events, room.timeline.limited, at, into);
        }
        self.record_to_device(&body.to_device.events, at, into);
    }

    /// Records the bench messages (plain or encrypted) of one room's timeline.
    pub fn record_timeline(
        &self,
        events: &[TimelineEvent],
        limited: bool,
        at: u64,
        into: &mut Received,
    ) {
        if limited {
            into.limited += 1;
        }
        for event in events {
            if event.kind != "m.room.message" && event.kind != "m.room.encrypted" {
                continue;
            }
            let Some(bench_id) = event.content.bench_id else {
                continue;
            };
            match self.index(bench_id) {
                Some(index) => {
                    into.deliveries.push((index, at));
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                }
                None => into.stale += 1,
            }
        }
    }

    /// Records the bench's to-device messages among `events`.
    pub fn record_to_device(&self, events: &[ToDeviceEvent], at: u64, into: &mut Received) {
        for event in events {
            let Some(run) = event.content.get(RUN_KEY).and_then(|v| v.as_u64()) else {
                continue;
            };
            if run != self.first_id {
                into.to_device_stale += 1;
                continue;
            }
            let sent = event.content.get(SENT_KEY).and_then(|v| v.as_u64());
            into.to_device_latencies
                .push(at.saturating_sub(sent.unwrap_or(at)));
            self.to_device_delivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until every message has an answer and every expected delivery happened,
    /// or until the drain period after `sending_ended` is over, whichever is first.
    /// Answers are awaited for at least `answer_wait`, so a slow server's late answers
    /// are not mistaken for lost messages.
    pub async fn drain(
        &self,
        members: &[usize],
        sending_ended: Instant,
        drain: Duration,
        answer_wait: Duration,
    ) {
        loop {
            let answered = self.all_answered();
            let to_device_done = self.to_device_delivered.load(Ordering::Relaxed)
                >= self.to_device_sent.load(Ordering::Relaxed);
            if answered
                && to_device_done
                && self.delivered.load(Ordering::Relaxed) >= self.expected(members)
            {
                return;
            }
            let now = Instant::now();
            if now >= sending_ended + drain && (answered || now >= sending_ended + answer_wait) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deliveries expected: each accepted message, once to each member of its room.
    pub fn expected(&self, members: &[usize]) -> u64 {
        self.rooms
            .iter()
            .zip(&self.answers)
            .filter(|(_, a)| a.load(Ordering::Relaxed) == ACCEPTED)
            .map(|(&room, _)| members[room as usize] as u64)
            .sum()
    }
}

/// What one client saw during a run.
#[derive(Default)]
pub struct Received {
    /// (message index, delivery time) for every bench message seen, in arrival order.
    pub deliveries: Vec<(u32, u64)>,
    /// Timelines that came with `limited: true`.
    pub limited: u64,
    /// Bench messages from an earlier run (should not happen with fresh positions).
    pub stale: u64,
    /// Latency of each to-device message of this run seen (nanoseconds).
    pub to_device_latencies: Vec<u64>,
    /// To-device messages of an earlier run.
    pub to_device_stale: u64,
}

/// CPU time used by the server and by the bench while messages were being sent.
pub struct CpuUse {
    pub server: Duration,
    pub bench: Duration,
    pub wall: Duration,
}

/// A delivery this late or later counts in [`Summary::slow_seconds`].
pub const SLOW_MS: u64 = 50;

/// The slow deliveries of the messages sent in one second of a run.
#[derive(Debug, PartialEq)]
pub struct SlowSecond {
    /// The second of the run (0 is the first).
    pub second: u64,
    pub count: u64,
    pub max_ms: u64,
}

/// The figures of one run.
pub struct Summary {
    pub sent: usize,
    pub refused: usize,
    pub unanswered: usize,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub stale: u64,
    pub limited: u64,
    /// With a timeline limit of 1 (sliding sync): expected deliveries a client never saw
    /// because a later message of the room reached it first (not counted as lost).
    pub superseded: u64,
    /// Latency of each first delivery, nanoseconds, sorted.
    pub latencies: Vec<u64>,
    /// With `--e2ee`, the same for messages scheduled after every sender's first room
    /// key share had ended (`Run::first_shares_done`): the run without its opening burst.
    pub after_first_shares: Vec<u64>,
    /// The deliveries that took [`SLOW_MS`] or more, by the second of the run their
    /// message was sent in: where in the run a stall was, and how many it held up.
    pub slow_seconds: Vec<SlowSecond>,
    /// When the run's clock began, in milliseconds since the Unix epoch.
    pub epoch_unix_ms: u64,
    /// To-device messages of this run received, their latencies (sorted), and those of
    /// an earlier run.
    pub to_device_received: u64,
    pub to_device_latencies: Vec<u64>,
    pub to_device_stale: u64,
    /// The encryption traffic, with `--e2ee`.
    pub e2ee: Option<Figures>,
    pub deliveries_per_second: f64,
    pub cpu: CpuUse,
    /// The server's memory after the run.
    pub memory: Option<Memory>,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

/// Groups slow deliveries, (second sent, milliseconds taken), by second.
fn slow_seconds(mut slow: Vec<(u64, u64)>) -> Vec<SlowSecond> {
    slow.sort_unstable();
    let mut seconds: Vec<SlowSecond> = Vec::new();
    for (second, ms) in slow {
        match seconds.last_mut() {
            Some(last) if last.second == second => {
                last.count += 1;
                last.max_ms = last.max_ms.max(ms);
            }
            _ => seconds.push(SlowSecond {
                second,
                count: 1,
                max_ms: ms,
            }),
        }
    }
    seconds
}

impl Summary {
    /// Checks every client's deliveries against what was sent. With `superseding` (a
    /// timeline limit of 1), a message a client did not see is superseded rather than
    /// lost when the client saw a later message of its room.
    #[allow(clippy::too_many_arguments)]
    pub fn compute(
        run: &Run,
        sent_at: &[u64],
        clients: &[Client],
        members: &[usize],
        received: Vec<Received>,
        cpu: CpuUse,
        memory: Option<Memory>,
        superseding: bool,
    ) -> Self {
        let answers: Vec<u8> = run
            .answers
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        let count = |state: u8| answers.iter().filter(|&&a| a == state).count();
        let expected = run.expected(members);
        let mut summary = Summary {
            sent: sent_at.len(),
            refused: count(REFUSED),
            unanswered: count(PENDING),
            expected,
            received: 0,
            lost: 0,
            duplicated: 0,
            unexpected: 0,
            stale: 0,
            limited: 0,
            superseded: 0,
            latencies: Vec::with_capacity(expected as usize),
            after_first_shares: Vec::new(),
            slow_seconds: Vec::new(),
            epoch_unix_ms: run.epoch_unix_ms,
            to_device_received: 0,
            to_device_latencies: Vec::new(),
            to_device_stale: 0,
            e2ee: None,
            deliveries_per_second: 0.0,
            cpu,
            memory,
            errors: run.errors.load(Ordering::Relaxed),
            error_samples: std::mem::take(&mut *run.error_samples.lock().unwrap()),
        };
        // The accepted messages of each room, in order.
        let mut accepted_in_room = vec![Vec::new(); members.len()];
        for (i, &room) in run.rooms.iter().enumerate() {
            if answers[i] == ACCEPTED {
                accepted_in_room[room as usize].push(i as u32);
            }
        }
        let shares_done = run.first_shares_done.load(Ordering::Relaxed);
        let mut last_delivery = 0;
        // (second sent, milliseconds taken) of each slow delivery.
        let mut slow = Vec::new();
        for (client, mut seen) in clients.iter().zip(received) {
            summary.limited += seen.limited;
            summary.stale += seen.stale;
            summary.to_device_stale += seen.to_device_stale;
            summary.to_device_received += seen.to_device_latencies.len() as u64;
            summary
                .to_device_latencies
                .append(&mut seen.to_device_latencies);
            let received_before = summary.received;
            let mut latest = None;
            // Stable sort: the first delivery of each message stays first.
            seen.deliveries.sort_by_key(|&(index, _)| index);
            let mut previous = None;
            for (index, at) in seen.deliveries {
                let i = index as usize;
                if previous == Some(index) {
                    summary.duplicated += 1;
                } else if answers[i] != ACCEPTED || run.rooms[i] as usize != client.room {
                    summary.unexpected += 1;
                } else {
                    summary.received += 1;
                    let latency = at.saturating_sub(sent_at[i]);
                    summary.latencies.push(latency);
                    if latency >= SLOW_MS * 1_000_000 {
                        slow.push((sent_at[i] / 1_000_000_000, latency / 1_000_000));
                    }
                    if shares_done > 0 && sent_at[i] > shares_done {
                        summary
                            .after_first_shares
                            .push(at.saturating_sub(sent_at[i]));
                    }
                    last_delivery = last_delivery.max(at);
                    latest = Some(index);
                }
                previous = Some(index);
            }
            if let (true, Some(latest)) = (superseding, latest) {
                // The accepted messages of the room up to the latest this client saw,
                // less those it saw.
                let up_to = accepted_in_room[client.room].partition_point(|&i| i <= latest);
                let got = summary.received - received_before;
                summary.superseded += (up_to as u64).saturating_sub(got);
            }
        }
        summary.lost = expected.saturating_sub(summary.received + summary.superseded);
        summary.slow_seconds = slow_seconds(slow);
        summary.latencies.sort_unstable();
        summary.after_first_shares.sort_unstable();
        summary.to_device_latencies.sort_unstable();
        let first_send = sent_at.first().copied().unwrap_or(0);
        let span = last_delivery.saturating_sub(first_send) as f64 / 1e9;
        if span > 0.0 {
            summary.deliveries_per_second = summary.received as f64 / span;
        }
        summary
    }

    /// Nearest-rank percentile of the latencies, in milliseconds.
    pub fn latency_ms(&self, percentile: f64) -> Option<f64> {
        percentile_ms(&self.latencies, percentile)
    }

    /// The same for the messages after the first room key shares (`--e2ee`).
    pub fn after_first_shares_ms(&self, percentile: f64) -> Option<f64> {
        percentile_ms(&self.after_first_shares, percentile)
    }

    /// The same for the to-device messages.
    pub fn to_device_ms(&self, percentile: f64) -> Option<f64> {
        percentile_ms(&self.to_device_latencies, percentile)
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
pub fn percentile_ms(sorted: &[u64], percentile: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((percentile / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1] as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{JoinedRoom, MessageContent, Rooms, Timeline};
    use serde_json::{Value, json};

    #[test]
    fn slow_deliveries_are_counted_by_the_second_their_message_was_sent() {
        let slow = vec![(3, 60), (1, 120), (3, 296), (3, 51)];
        assert_eq!(
            slow_seconds(slow),
            vec![
                SlowSecond {
                    second: 1,
                    count: 1,
                    max_ms: 120
                },
                SlowSecond {
                    second: 3,
                    count: 3,
                    max_ms: 296
                },
            ]
        );
    }

    fn body(ids: &[u64], limited: bool) -> SyncBody {
        let events = ids
            .iter()
            .map(|&id| TimelineEvent {
                kind: "m.room.message".into(),
                content: MessageContent { bench_id: Some(id) },
            })
            .collect();
        let room = JoinedRoom {
            timeline: Timeline { events, limited },
        };
        SyncBody {
            next_batch: Some("t".into()),
            rooms: Rooms {
                join: [("!r".to_owned(), room)].into(),
            },
            event_id: None,
            ..Default::default()
        }
    }

    fn client(room: usize) -> Client {
        Client {
            user_id: "@u:h".into(),
            token: "t".into(),
            room,
        }
    }

    #[test]
    fn losses_duplicates_and_strangers_are_told_apart() {
        // Messages 0 and 1 in room 0, message 2 in room 1; message 1 was refused.
        let run = Run::new(100, vec![0, 0, 1]);
        run.answered(0, true);
        run.answered(1, false);
        run.answered(2, true);
        let clients = [client(0), client(0), client(1)];
        let members = [2, 1];
        let sent_at = [1_000_000, 2_000_000, 3_000_000];

        let mut first = Received::default();
        run.record(&body(&[100, 100, 7], false), 5_000_000, &mut first);
        let mut second = Received::default();
        run.record(&body(&[101], true), 6_000_000, &mut second);
        let mut third = Received::default();
        run.record(&body(&[102, 100], false), 4_000_000, &mut third);
        assert_eq!(run.delivered.load(Ordering::Relaxed), 5);

        let cpu = CpuUse {
            server: Duration::ZERO,
            bench: Duration::ZERO,
            wall: Duration::from_secs(1),
        };
        let summary = Summary::compute(
            &run,
            &sent_at,
            &clients,
            &members,
            vec![first, second, third],
            cpu,
            None,
            false,
        );
        assert_eq!(summary.refused, 1);
        assert_eq!(summary.expected, 3); // message 0 to two members, message 2 to one
        assert_eq!(summary.received, 2); // client 0 got 0; client 2 got 2
        assert_eq!(summary.lost, 1); // client 1 never got message 0
        assert_eq!(summary.duplicated, 1);
        assert_eq!(summary.unexpected, 2); // the refused message 1, message 0 in room 1
        assert_eq!(summary.stale, 1);
        assert_eq!(summary.limited, 1);
        assert_eq!(summary.latencies, vec![1_000_000, 4_000_000]);
        assert_eq!(summary.latency_ms(50.0), Some(1.0));
        assert_eq!(summary.latency_ms(100.0), Some(4.0));
    }

    #[test]
    fn superseded_messages_and_to_device_messages_are_counted() {
        // Five messages in room 0, one member, who saw messages 1 and 3 (encrypted).
        let run = Run::new(0, vec![0; 5]);
        for i in 0..5 {
            run.answered(i, true);
        }
        let encrypted = |id| TimelineEvent {
            kind: "m.room.encrypted".into(),
            content: MessageContent { bench_id: Some(id) },
        };
        let to_device = |content: Value| ToDeviceEvent {
            content: content.as_object().unwrap().clone(),
        };
        let received = || {
            let mut seen = Received::default();
            run.record_timeline(&[encrypted(1)], true, 2_000_000, &mut seen);
            run.record_timeline(&[encrypted(3)], true, 4_000_000, &mut seen);
            let events = [
                to_device(json!({RUN_KEY: 0, SENT_KEY: 1_000_000})),
                to_device(json!({RUN_KEY: 99, SENT_KEY: 1_000_000})),
                to_device(json!({"algorithm": "m.olm.v1.curve25519-aes-sha2"})),
            ];
            run.record_to_device(&events, 3_000_000, &mut seen);
            seen
        };
        let cpu = || CpuUse {
            server: Duration::ZERO,
            bench: Duration::ZERO,
            wall: Duration::from_secs(1),
        };
        let sent_at = [0, 1_000_000, 2_000_000, 3_000_000, 4_000_000];
        let compute = |superseding| {
            let received = vec![received()];
            Summary::compute(
                &run,
                &sent_at,
                &[client(0)],
                &[1],
                received,
                cpu(),
                None,
                superseding,
            )
        };
        let sliding = compute(true);
        assert_eq!(sliding.received, 2);
        assert_eq!(sliding.superseded, 2); // messages 0 and 2
        assert_eq!(sliding.lost, 1); // message 4: nothing later was seen
        assert_eq!(sliding.limited, 2);
        assert_eq!(sliding.to_device_received, 1);
        assert_eq!(sliding.to_device_stale, 1);
        assert_eq!(sliding.to_device_ms(50.0), Some(2.0));
        let long_poll = compute(false);
        assert_eq!((long_poll.superseded, long_poll.lost), (0, 3));
        assert_eq!(run.to_device_delivered.load(Ordering::Relaxed), 2);
    }
}
