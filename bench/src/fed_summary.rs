//! The figures of a federation run, by sending and receiving server, and their report.

use std::time::Duration;

use crate::federation::{Node, SIDES, Setting, side_of};
use crate::matrix::Client;
use crate::run::{Received, Run};
use crate::server::{DiskStats, MachineCpu, Memory};

/// Deliveries of messages sent on one server to the members on one server.
#[derive(Default, Clone)]
pub struct Group {
    pub expected: u64,
    pub received: u64,
    pub duplicated: u64,
    /// Messages that reached fewer of these members than expected.
    pub short_messages: u64,
    /// Arrival minus the arrival of the send's answer, nanoseconds, sorted. Negative
    /// when the delivery came first (a member of the sender's own server can be woken
    /// before the answer reaches the bench).
    pub from_answer: Vec<i64>,
    /// Arrival minus the moment just before the send, nanoseconds, sorted.
    pub from_send: Vec<i64>,
    /// (send time after the first send, latency from the answer) of every first
    /// delivery, in no order.
    pub timed: Vec<(u64, i64)>,
}

impl Group {
    fn merge(a: &Group, b: &Group) -> Group {
        let mut merged = Group {
            expected: a.expected + b.expected,
            received: a.received + b.received,
            duplicated: a.duplicated + b.duplicated,
            short_messages: a.short_messages + b.short_messages,
            from_answer: [&a.from_answer[..], &b.from_answer[..]].concat(),
            from_send: [&a.from_send[..], &b.from_send[..]].concat(),
            timed: [&a.timed[..], &b.timed[..]].concat(),
        };
        merged.from_answer.sort_unstable();
        merged.from_send.sort_unstable();
        merged
    }

    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
pub fn percentile_ms(sorted: &[i64], percentile: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((percentile / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1] as f64 / 1e6)
}

pub struct FedSummary {
    pub sent: usize,
    /// Per sending server: refused and unanswered sends.
    pub refused: [usize; 2],
    pub unanswered: [usize; 2],
    /// Per sending server: from just before each accepted send to its answer, sorted.
    pub send_answer: [Vec<i64>; 2],
    /// `groups[from][to]`: messages sent on server `from`, delivered on server `to`.
    pub groups: [[Group; 2]; 2],
    pub unexpected: u64,
    pub stale: u64,
    pub limited: u64,
    /// CPU time of A, B and the bench while sending, and the sending period.
    pub cpu: [Duration; 3],
    /// The whole machine's CPU time over the same period (all cores).
    pub machine: MachineCpu,
    /// The machine's disk activity over the same period.
    pub disk: DiskStats,
    pub wall: Duration,
    /// From the end of sending to the end of the drain.
    pub drained: Duration,
    pub memory: [Option<Memory>; 2],
    pub errors: u64,
    pub error_samples: Vec<String>,
}

impl FedSummary {
    /// Checks every user's deliveries against what was sent. `clients[side]` are the
    /// users of a server, `members[side][room]` how many of them are in each room, and
    /// `received[side][i]` what user `i` of that server saw.
    #[allow(clippy::too_many_arguments)]
    pub fn compute(
        run: &Run,
        sent_at: &[u64],
        clients: [&[Client]; 2],
        members: [&[usize]; 2],
        received: Vec<Vec<Received>>,
        cpu: [Duration; 3],
        machine: MachineCpu,
        disk: DiskStats,
        wall: Duration,
        drained: Duration,
        memory: [Option<Memory>; 2],
    ) -> Self {
        let mut groups: [[Group; 2]; 2] = Default::default();
        let mut refused = [0; 2];
        let mut unanswered = [0; 2];
        let mut send_answer: [Vec<i64>; 2] = Default::default();
        for (index, &sent) in sent_at.iter().enumerate() {
            let from = side_of(index);
            if run.pending(index) {
                unanswered[from] += 1;
            } else if !run.accepted(index) {
                refused[from] += 1;
            } else {
                send_answer[from].push(run.answered_at(index) as i64 - sent as i64);
                let room = run.rooms[index] as usize;
                for (to, members) in members.iter().enumerate() {
                    groups[from][to].expected += members[room] as u64;
                }
            }
        }
        for answers in &mut send_answer {
            answers.sort_unstable();
        }

        let (mut unexpected, mut stale, mut limited) = (0, 0, 0);
        // First deliveries of each message on each receiving server.
        let mut counts = vec![[0u32; 2]; sent_at.len()];
        for (to, (clients, seen)) in clients.iter().zip(received).enumerate() {
            for (client, mut seen) in clients.iter().zip(seen) {
                limited += seen.limited;
                stale += seen.stale;
                // Stable sort: the first delivery of each message stays first.
                seen.deliveries.sort_by_key(|&(index, _)| index);
                let mut previous = None;
                for (index, at) in seen.deliveries {
                    let i = index as usize;
                    let group = &mut groups[side_of(i)][to];
                    if previous == Some(index) {
                        group.duplicated += 1;
                    } else if !run.accepted(i) || run.rooms[i] as usize != client.room {
                        unexpected += 1;
                    } else {
                        group.received += 1;
                        counts[i][to] += 1;
                        let from_answer = at as i64 - run.answered_at(i) as i64;
                        group.from_answer.push(from_answer);
                        group.from_send.push(at as i64 - sent_at[i] as i64);
                        group.timed.push((sent_at[i] - sent_at[0], from_answer));
                    }
                    previous = Some(index);
                }
            }
        }
        for (index, count) in counts.iter().enumerate() {
            if !run.accepted(index) {
                continue;
            }
            let room = run.rooms[index] as usize;
            for (to, members) in members.iter().enumerate() {
                if (count[to] as usize) < members[room] {
                    groups[side_of(index)][to].short_messages += 1;
                }
            }
        }
        for group in groups.iter_mut().flatten() {
            group.from_answer.sort_unstable();
            group.from_send.sort_unstable();
        }
        let (errors, error_samples) = run.take_errors();
        FedSummary {
            sent: sent_at.len(),
            refused,
            unanswered,
            send_answer,
            groups,
            unexpected,
            stale,
            limited,
            cpu,
            machine,
            disk,
            wall,
            drained,
            memory,
            errors,
            error_samples,
        }
    }

    /// Same-server deliveries (A to A and B to B).
    pub fn same(&self) -> Group {
        Group::merge(&self.groups[0][0], &self.groups[1][1])
    }

    /// Cross-server deliveries (A to B and B to A).
    pub fn cross(&self) -> Group {
        Group::merge(&self.groups[0][1], &self.groups[1][0])
    }
}

/// Prints the figures; `logs` are the servers' logs (at `RUST_LOG=warn` unless set).
pub fn print_report(setting: &Setting, nodes: &[Node; 2], summary: &FedSummary, logs: &[String]) {
    let args = setting.args;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let members: Vec<String> = (0..2)
        .map(|side| {
            let m = &nodes[side].members;
            let (fewest, most) = (m.iter().min().unwrap_or(&0), m.iter().max().unwrap_or(&0));
            if fewest == most {
                format!("{most}")
            } else {
                format!("{fewest}-{most}")
            }
        })
        .collect();
    println!();
    println!(
        "hearth-bench federation: servers A ({}) and B ({}) over TLS; {} users on each; {} rooms created on A ({} members from A and {} from B each); {} msg/s for {} s ({} messages, alternately from A and B); drain {} s",
        nodes[0].server.server_name(),
        nodes[1].server.server_name(),
        args.clients_per_server,
        args.rooms,
        members[0],
        members[1],
        args.rate,
        args.duration,
        setting.messages,
        args.drain,
    );
    if !args.server_env.is_empty() {
        let settings: Vec<String> = args
            .server_env
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        println!("Both servers with {}.", settings.join(" "));
    }
    let placement = match (&setting.args.pin_a, &setting.args.pin_b) {
        (None, None) => format!("{cpus} CPUs shared by both servers and the bench"),
        (a, b) => format!(
            "{cpus} CPUs; A pinned to {}, B to {}, the bench unpinned",
            a.as_deref().unwrap_or("none"),
            b.as_deref().unwrap_or("none")
        ),
    };
    println!(
        "Set-up {:.1} s, then {:.1} s until both servers listed every member. {placement}.",
        setting.set_up_secs, setting.converged_secs
    );
    for (side, memory) in SIDES.iter().zip(&setting.memory) {
        if let Some(m) = memory {
            println!(
                "Server {side} memory after set-up: peak {:.1} MiB, now {:.1} MiB.",
                m.peak_kib as f64 / 1024.0,
                m.now_kib as f64 / 1024.0
            );
        }
    }
    println!();

    let same = summary.same();
    let cross = summary.cross();
    let g = &summary.groups;
    let columns: [(&str, &Group); 6] = [
        ("A to A", &g[0][0]),
        ("B to B", &g[1][1]),
        ("same-server", &same),
        ("A to B", &g[0][1]),
        ("B to A", &g[1][0]),
        ("cross-server", &cross),
    ];
    type Cell = fn(&Group) -> String;
    fn ms(value: Option<f64>) -> String {
        value.map_or("-".to_owned(), |v| format!("{v:.2}"))
    }
    let rows: [(&str, Cell); 11] = [
        ("deliveries expected", |g| g.expected.to_string()),
        ("deliveries received", |g| g.received.to_string()),
        ("lost", |g| g.lost().to_string()),
        ("messages short of a member", |g| {
            g.short_messages.to_string()
        }),
        ("duplicated", |g| g.duplicated.to_string()),
        ("from answer p50 (ms)", |g| {
            ms(percentile_ms(&g.from_answer, 50.0))
        }),
        ("from answer p99 (ms)", |g| {
            ms(percentile_ms(&g.from_answer, 99.0))
        }),
        ("from answer max (ms)", |g| {
            ms(percentile_ms(&g.from_answer, 100.0))
        }),
        ("from answer min (ms)", |g| {
            ms(percentile_ms(&g.from_answer, 0.0))
        }),
        ("from send p50 (ms)", |g| {
            ms(percentile_ms(&g.from_send, 50.0))
        }),
        ("from send p99 (ms)", |g| {
            ms(percentile_ms(&g.from_send, 99.0))
        }),
    ];
    let (label_width, column_width) = (28, 13);
    print!("{:label_width$}", "");
    for (name, _) in &columns {
        print!("{name:>column_width$}");
    }
    println!();
    for (label, cell) in rows {
        print!("{label:label_width$}");
        for (_, group) in &columns {
            print!("{:>column_width$}", cell(group));
        }
        println!();
    }
    println!();
    println!(
        "Latency \"from answer\": from the arrival of the send's 200 at the bench to the message's\n\
         arrival in a member's long-poll /sync; \"from send\": from just before the send. Every\n\
         member of the room counts once, the sender included (in \"same-server\")."
    );
    println!();

    let window = Duration::from_secs_f64(args.window);
    println!(
        "cross-server p50/p99 from answer (ms) by {} s of send time: {}",
        args.window,
        windowed(&cross, summary, window).join(", ")
    );
    println!("messages sent: {}", summary.sent);
    for (side, name) in SIDES.iter().enumerate() {
        let answers = &summary.send_answer[side];
        println!(
            "sends to {name}: {} refused, {} unanswered; answer p50 {} ms, p99 {} ms, max {} ms",
            summary.refused[side],
            summary.unanswered[side],
            ms(percentile_ms(answers, 50.0)),
            ms(percentile_ms(answers, 99.0)),
            ms(percentile_ms(answers, 100.0)),
        );
    }
    let percent = |used: Duration| 100.0 * used.as_secs_f64() / summary.wall.as_secs_f64();
    println!(
        "CPU while sending ({:.1} s): server A {:.0} %, server B {:.0} %, bench {:.0} % (100 % = one core)",
        summary.wall.as_secs_f64(),
        percent(summary.cpu[0]),
        percent(summary.cpu[1]),
        percent(summary.cpu[2]),
    );
    let ours: Duration = summary.cpu.iter().sum();
    let machine = &summary.machine;
    println!(
        "machine while sending: {:.0} % busy (other processes {:.0} %), {:.0} % waiting for I/O, of {:.0} % (all cores)",
        percent(machine.busy),
        percent(machine.busy.saturating_sub(ours)),
        percent(machine.iowait),
        percent(machine.total),
    );
    let disk = &summary.disk;
    let seconds = summary.wall.as_secs_f64();
    let mean = |ms: u64, count: u64| {
        if count == 0 {
            0.0
        } else {
            ms as f64 / count as f64
        }
    };
    println!(
        "disk while sending: {:.0} flushes/s ({:.2} ms each on average), {:.0} writes/s ({:.2} ms each), {:.1} MB/s written",
        disk.flushes as f64 / seconds,
        mean(disk.flush_ms, disk.flushes),
        disk.writes as f64 / seconds,
        mean(disk.write_ms, disk.writes),
        disk.sectors_written as f64 * 512.0 / 1e6 / seconds,
    );
    for (side, memory) in SIDES.iter().zip(&summary.memory) {
        if let Some(m) = memory {
            println!(
                "Server {side} memory after the run: peak {:.1} MiB, now {:.1} MiB",
                m.peak_kib as f64 / 1024.0,
                m.now_kib as f64 / 1024.0
            );
        }
    }
    println!(
        "drain: {:.1} s after sending; limited timelines {}; deliveries to non-members or of refused sends {}; stale {}; errors {}",
        summary.drained.as_secs_f64(),
        summary.limited,
        summary.unexpected,
        summary.stale,
        summary.errors
    );
    for sample in &summary.error_samples {
        println!("error: {sample}");
    }
    for (side, log) in SIDES.iter().zip(logs) {
        let lines: Vec<&str> = log.lines().collect();
        println!("server {side} logged {} lines", lines.len());
        for line in lines.iter().take(3) {
            let short: String = line.chars().take(240).collect();
            println!("  {short}");
        }
    }
    let p99 = percentile_ms(&cross.from_answer, 99.0);
    let met = p99.is_some_and(|p| p < 50.0)
        && cross.lost() == 0
        && same.lost() == 0
        && summary.refused == [0, 0]
        && summary.unanswered == [0, 0];
    println!(
        "target (cross-server p99 under 50 ms, nothing lost or refused): {}",
        if met { "met" } else { "MISSED" }
    );
}

/// p50/p99 of the cross-server latency for each `window` of send time.
fn windowed(cross: &Group, summary: &FedSummary, window: Duration) -> Vec<String> {
    let window = (window.as_nanos() as u64).max(1);
    let count = (summary.wall.as_nanos() as u64).div_ceil(window) as usize;
    let mut buckets: Vec<Vec<i64>> = vec![Vec::new(); count.max(1)];
    for &(sent, latency) in &cross.timed {
        let bucket = ((sent / window) as usize).min(buckets.len() - 1);
        buckets[bucket].push(latency);
    }
    buckets
        .iter_mut()
        .map(|latencies| {
            latencies.sort_unstable();
            match (
                percentile_ms(latencies, 50.0),
                percentile_ms(latencies, 99.0),
            ) {
                (Some(p50), Some(p99)) => format!("{p50:.1}/{p99:.1}"),
                _ => "-".to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{JoinedRoom, MessageContent, Rooms, SyncBody, Timeline, TimelineEvent};

    fn body(ids: &[u64]) -> SyncBody {
        let events = ids
            .iter()
            .map(|&id| TimelineEvent {
                kind: "m.room.message".into(),
                content: MessageContent { bench_id: Some(id) },
            })
            .collect();
        let room = JoinedRoom {
            timeline: Timeline {
                events,
                limited: false,
            },
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
    fn deliveries_are_grouped_by_sending_and_receiving_server() {
        // Message 0 from A and message 1 from B, both in room 0; message 2 from A in
        // room 1 is refused. One user of each server in each room.
        let run = Run::new(0, vec![0, 0, 1]);
        let sent_at = [1_000_000, 2_000_000, 3_000_000];
        run.answered(0, true);
        run.answered(1, true);
        run.answered(2, false);
        let at = |i: usize| run.answered_at(i) as i64;
        let (clients_a, clients_b) = ([client(0), client(1)], [client(0), client(1)]);
        let members = [1, 1];

        let t = at(1) as u64;
        let (mut a0, mut b0) = (Received::default(), Received::default());
        run.record(&body(&[0, 1]), t + 1_000_000, &mut a0);
        run.record(&body(&[0]), t + 5_000_000, &mut b0);
        run.record(&body(&[0]), t + 6_000_000, &mut b0);
        let mut b1 = Received::default();
        run.record(&body(&[2]), t + 1_000_000, &mut b1);
        let received = vec![vec![a0, Received::default()], vec![b0, b1]];

        let summary = FedSummary::compute(
            &run,
            &sent_at,
            [&clients_a, &clients_b],
            [&members, &members],
            received,
            [Duration::ZERO; 3],
            MachineCpu::default(),
            DiskStats::default(),
            Duration::from_secs(1),
            Duration::ZERO,
            [None, None],
        );
        let g = &summary.groups;
        assert_eq!(summary.refused, [1, 0]);
        assert_eq!((g[0][0].expected, g[0][0].received), (1, 1));
        assert_eq!((g[0][1].expected, g[0][1].received), (1, 1));
        assert_eq!(g[0][1].duplicated, 1);
        assert_eq!((g[1][0].expected, g[1][0].received), (1, 1));
        // B's own user never saw message 1.
        assert_eq!((g[1][1].expected, g[1][1].received), (1, 0));
        assert_eq!(g[1][1].short_messages, 1);
        assert_eq!(summary.same().lost(), 1);
        assert_eq!(summary.cross().lost(), 0);
        assert_eq!(summary.unexpected, 1); // the refused message 2
        assert_eq!(g[0][1].from_answer, vec![t as i64 + 5_000_000 - at(0)]);
        assert_eq!(g[1][0].from_answer, vec![1_000_000]);
        assert_eq!(g[0][1].from_send, vec![t as i64 + 5_000_000 - 1_000_000]);
    }
}
