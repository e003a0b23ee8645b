//! What the single-server bench prints at the end: a table for reading, and one
//! `BENCH_JSON {...}` line per transport for comparing runs (optionally appended to a
//! file), with the machine, the commit and the load the figures belong to.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::run::{SLOW_MS, Summary};
use crate::transport::{Setup, Transport};

/// The prefix of the machine-readable line, for `grep`.
pub const JSON_PREFIX: &str = "BENCH_JSON ";

/// The conditions of a run: everything a reader needs to compare two of them.
pub struct Conditions {
    pub commit: String,
    /// The server binary the bench ran (its commit is `commit` only when it was built
    /// from the bench's checkout).
    pub server_bin: String,
    /// UTC, ISO 8601, when the bench started.
    pub date: String,
    pub cpus_online: usize,
    pub cpu_model: String,
    pub mem_total_mib: Option<u64>,
    /// 1-, 5- and 15-minute load average when the bench started, before the server.
    pub load_before: Option<[f64; 3]>,
    pub pinned: bool,
    /// The CPUs the server and the bench were allowed, as the kernel reports them.
    pub server_cpus: Option<String>,
    pub bench_cpus: Option<String>,
    pub profile: &'static str,
    /// Messages per room key, with `--e2ee`.
    pub key_rotation: Option<usize>,
    /// With `--pushers`: each client has an HTTP pusher at the bench's gateway.
    pub pushers: bool,
    /// `--quiet-rooms`: rooms every client is also in, with no messages.
    pub quiet_rooms: usize,
    pub accounts: &'static str,
    pub seed: Option<u64>,
    pub clients: usize,
    pub rooms: usize,
    pub rate: f64,
    pub duration: f64,
    pub drain: f64,
    pub messages: usize,
    pub setup_secs: f64,
}

impl Conditions {
    /// Reads what the machine says about itself (the CPU count online, not the bench's
    /// own affinity, which pinning narrows).
    pub fn machine() -> (usize, String, Option<u64>) {
        // SAFETY: sysconf has no preconditions.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let cpus = usize::try_from(online).unwrap_or(0);
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kib| kib / 1024);
        (cpus, model, memory)
    }
}

/// `/proc/loadavg`'s three averages.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// `git rev-parse --short HEAD` in the current directory (`scripts/bench` runs from the
/// checkout), with "-dirty" when tracked files differ from it; "unknown" without git.
pub fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|changes| !changes.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        _ => "unknown".to_owned(),
    }
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian).
fn utc_date(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Count from 1 March 0000 so that leap days fall at the end of each year; 146,097
    // days make 400 years.
    let from_march = days + 719_468;
    let era = from_march / 146_097;
    let day_of_era = from_march % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn percent(used: Duration, wall: Duration) -> f64 {
    100.0 * used.as_secs_f64() / wall.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn mib(kib: u64) -> f64 {
    round2(kib as f64 / 1024.0)
}

/// The machine-readable record of one transport's run.
pub fn json_line(
    conditions: &Conditions,
    setup: &Setup,
    transport: Transport,
    summary: &Summary,
) -> Value {
    let c = conditions;
    let members = (
        setup.members.iter().min().copied().unwrap_or(0),
        setup.members.iter().max().copied().unwrap_or(0),
    );
    let ms = |p: f64| summary.latency_ms(p).map(round2);
    let mut line = json!({
        "commit": c.commit,
        "server_bin": c.server_bin,
        "date": c.date,
        "machine": {
            "cpus": c.cpus_online,
            "model": c.cpu_model,
            "mem_total_mib": c.mem_total_mib,
        },
        "load_before": c.load_before,
        "pinned": c.pinned,
        "server_cpus": c.server_cpus,
        "bench_cpus": c.bench_cpus,
        "profile": c.profile,
        "accounts": c.accounts,
        "seed": c.seed,
        "clients": c.clients,
        "rooms": c.rooms,
        "members_per_room": if members.0 == members.1 { json!(members.0) } else { json!([members.0, members.1]) },
        "rate": c.rate,
        "duration_s": c.duration,
        "drain_s": c.drain,
        "transport": transport.name(),
        "sent": summary.sent,
        "refused": summary.refused,
        "unanswered": summary.unanswered,
        "expected": summary.expected,
        "received": summary.received,
        "lost": summary.lost,
        "duplicated": summary.duplicated,
        "limited": summary.limited,
        "superseded": summary.superseded,
        "errors": summary.errors,
        "p50_ms": ms(50.0),
        "p99_ms": ms(99.0),
        "max_ms": ms(100.0),
        "events_per_s": summary.deliveries_per_second.round(),
        "server_cpu_pct": percent(summary.cpu.server, summary.cpu.wall).round(),
        "bench_cpu_pct": percent(summary.cpu.bench, summary.cpu.wall).round(),
        "peak_rss_mib": summary.memory.as_ref().map(|m| mib(m.peak_kib)),
        "rss_after_mib": summary.memory.as_ref().map(|m| mib(m.now_kib)),
        "setup_rss_mib": setup.memory.as_ref().map(|m| mib(m.now_kib)),
        "setup_s": round2(c.setup_secs),
        "e2ee": e2ee_json(c, summary),
        "pushers": c.pushers,
    });
    // Added apart: one macro call with every field passes `json!`'s recursion limit.
    line["run_started_unix_ms"] = json!(summary.epoch_unix_ms);
    line["quiet_rooms"] = json!(c.quiet_rooms);
    line["slow_seconds"] = summary
        .slow_seconds
        .iter()
        .map(|s| json!({"second": s.second, "count": s.count, "max_ms": s.max_ms}))
        .collect();
    line
}

/// The encryption traffic of a run, or null without `--e2ee`.
fn e2ee_json(conditions: &Conditions, summary: &Summary) -> Value {
    let (Some(rotation), Some(e2ee)) = (conditions.key_rotation, &summary.e2ee) else {
        return Value::Null;
    };
    let ms = |p: f64| summary.to_device_ms(p).map(round2);
    json!({
        "key_rotation": rotation,
        "room_key_shares": e2ee.shares,
        "to_device_sent": e2ee.to_device_sent,
        "to_device_received": summary.to_device_received,
        "to_device_p50_ms": ms(50.0),
        "to_device_p99_ms": ms(99.0),
        "keys_claimed": e2ee.keys_claimed,
        "fallback_keys_claimed": e2ee.fallback_claimed,
        "otk_reuploads": e2ee.reuploads,
        "otks_reuploaded": e2ee.keys_reuploaded,
        "first_shares_done_ms": e2ee.first_shares_done_ms.map(round2),
        "after_first_shares_p50_ms": summary.after_first_shares_ms(50.0).map(round2),
        "after_first_shares_p99_ms": summary.after_first_shares_ms(99.0).map(round2),
        "share_steps_ms": {
            "keys_query": steps_json(&e2ee.steps[0]),
            "keys_claim": steps_json(&e2ee.steps[1]),
            "send_to_device": steps_json(&e2ee.steps[2]),
        },
    })
}

/// p50, p99 and max of one kind of a share's requests.
fn steps_json(times: &[Option<f64>; 3]) -> Value {
    json!({
        "p50": times[0].map(round2),
        "p99": times[1].map(round2),
        "max": times[2].map(round2),
    })
}

/// Prints a `BENCH_JSON` line per measured transport and appends the same JSON to
/// `json_out`, one object per line, when given.
pub fn emit_json(
    conditions: &Conditions,
    setup: &Setup,
    results: &[(Transport, Result<Summary>)],
    json_out: Option<&Path>,
) -> Result<()> {
    let lines: Vec<String> = results
        .iter()
        .filter_map(|(transport, result)| {
            let summary = result.as_ref().ok()?;
            Some(json_line(conditions, setup, *transport, summary).to_string())
        })
        .collect();
    for line in &lines {
        println!("{JSON_PREFIX}{line}");
    }
    if let Some(path) = json_out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        for line in &lines {
            writeln!(file, "{line}").with_context(|| format!("append to {}", path.display()))?;
        }
    }
    Ok(())
}

/// The table for reading, with the conditions above it.
pub fn print_table(
    conditions: &Conditions,
    setup: &Setup,
    results: &[(Transport, Result<Summary>)],
) {
    let c = conditions;
    let (fewest, most) = (
        setup.members.iter().min().copied().unwrap_or(0),
        setup.members.iter().max().copied().unwrap_or(0),
    );
    let members = if fewest == most {
        format!("{most}")
    } else {
        format!("{fewest}-{most}")
    };
    println!();
    let encryption = match c.key_rotation {
        Some(n) => format!(", encrypted (a room key every {n} messages)"),
        None => String::new(),
    };
    let encryption = match c.pushers {
        true => format!("{encryption}, an HTTP pusher per client"),
        false => encryption,
    };
    let encryption = match c.quiet_rooms {
        0 => encryption,
        n => format!("{encryption}, each client also in {n} quiet rooms"),
    };
    println!(
        "hearth-bench ({} profile{encryption}): {} clients in {} rooms ({members} members each), {} msg/s for {} s ({} messages per transport), drain {} s",
        c.profile, c.clients, c.rooms, c.rate, c.duration, c.messages, c.drain
    );
    println!(
        "Commit {}, {}; set-up took {:.1} s (accounts by {}).",
        c.commit, c.date, c.setup_secs, c.accounts
    );
    if let Some(memory) = &setup.memory {
        println!(
            "Server memory after set-up (accounts, rooms, joins): peak {:.1} MiB, now {:.1} MiB.",
            memory.peak_kib as f64 / 1024.0,
            memory.now_kib as f64 / 1024.0
        );
    }
    let load = c
        .load_before
        .map_or("unknown".to_owned(), |[one, five, fifteen]| {
            format!("{one:.2} {five:.2} {fifteen:.2}")
        });
    println!(
        "Machine: {} CPUs ({}), load average before the run {load}.",
        c.cpus_online, c.cpu_model
    );
    let cpus = |list: &Option<String>| list.clone().unwrap_or_else(|| "?".to_owned());
    if c.pinned {
        println!(
            "Pinned: the server on CPU {}, the bench on CPU {}.",
            cpus(&c.server_cpus),
            cpus(&c.bench_cpus)
        );
    } else {
        println!(
            "Not pinned: the server may use CPUs {} and the bench CPUs {}; the bench's own CPU use is in the table.",
            cpus(&c.server_cpus),
            cpus(&c.bench_cpus)
        );
    }
    println!();

    type Cell = fn(&Summary) -> String;
    fn ms(value: Option<f64>) -> String {
        value.map_or("-".to_owned(), |v| format!("{v:.2}"))
    }
    fn mib(kib: Option<u64>) -> String {
        kib.map_or("-".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
    }
    fn cpu(used: Duration, wall: Duration) -> String {
        format!("{:.0}", percent(used, wall))
    }
    let mut rows: Vec<(&str, Cell)> = vec![
        ("messages sent", |s| s.sent.to_string()),
        ("sends refused / unanswered", |s| {
            format!("{} / {}", s.refused, s.unanswered)
        }),
        ("deliveries expected", |s| s.expected.to_string()),
        ("deliveries received", |s| s.received.to_string()),
        ("lost", |s| s.lost.to_string()),
        ("duplicated", |s| s.duplicated.to_string()),
        ("limited timelines", |s| s.limited.to_string()),
        ("latency p50 (ms)", |s| ms(s.latency_ms(50.0))),
        ("latency p99 (ms)", |s| ms(s.latency_ms(99.0))),
        ("latency max (ms)", |s| ms(s.latency_ms(100.0))),
        ("delivered events/s", |s| {
            format!("{:.0}", s.deliveries_per_second)
        }),
        ("server CPU while sending (%)", |s| {
            cpu(s.cpu.server, s.cpu.wall)
        }),
        ("bench CPU while sending (%)", |s| {
            cpu(s.cpu.bench, s.cpu.wall)
        }),
        ("server peak RSS (MiB)", |s| {
            mib(s.memory.as_ref().map(|m| m.peak_kib))
        }),
        ("server RSS after run (MiB)", |s| {
            mib(s.memory.as_ref().map(|m| m.now_kib))
        }),
        ("errors", |s| s.errors.to_string()),
    ];
    if results.iter().any(|(t, _)| *t == Transport::Sliding) {
        rows.insert(
            5,
            ("superseded (timeline limit)", |s| s.superseded.to_string()),
        );
    }
    if c.key_rotation.is_some() {
        let e2ee: Vec<(&str, Cell)> = vec![
            ("room key shares", |s| {
                s.e2ee.as_ref().map_or("-".into(), |e| e.shares.to_string())
            }),
            ("to-device sent / received", |s| {
                let sent = s.e2ee.as_ref().map_or(0, |e| e.to_device_sent);
                format!("{sent} / {}", s.to_device_received)
            }),
            ("to-device p50 / p99 (ms)", |s| {
                // One decimal, so that both fit the column.
                let one = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
                format!(
                    "{} / {}",
                    one(s.to_device_ms(50.0)),
                    one(s.to_device_ms(99.0))
                )
            }),
            ("keys claimed (fallback)", |s| {
                s.e2ee.as_ref().map_or("-".into(), |e| {
                    format!("{} ({})", e.keys_claimed, e.fallback_claimed)
                })
            }),
            ("one-time key re-uploads", |s| {
                s.e2ee
                    .as_ref()
                    .map_or("-".into(), |e| e.reuploads.to_string())
            }),
            ("first shares done at (ms)", |s| {
                ms(s.e2ee.as_ref().and_then(|e| e.first_shares_done_ms))
            }),
            ("p99 after first shares (ms)", |s| {
                ms(s.after_first_shares_ms(99.0))
            }),
            ("query/claim/send p99 (ms)", |s| {
                let one = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
                s.e2ee.as_ref().map_or("-".into(), |e| {
                    format!(
                        "{}/{}/{}",
                        one(e.steps[0][1]),
                        one(e.steps[1][1]),
                        one(e.steps[2][1])
                    )
                })
            }),
        ];
        // Before the errors row.
        let at = rows.len() - 1;
        for (offset, row) in e2ee.into_iter().enumerate() {
            rows.insert(at + offset, row);
        }
    }
    let label_width = 30;
    let column_width = 14;
    print!("{:label_width$}", "");
    for (transport, _) in results {
        print!("{:>column_width$}", transport.name());
    }
    println!();
    for (label, cell) in rows {
        print!("{label:label_width$}");
        for (_, result) in results {
            let text = match result {
                Ok(summary) => cell(summary),
                Err(_) => "failed".to_owned(),
            };
            print!("{text:>column_width$}");
        }
        println!();
    }
    println!();
    println!(
        "Latency: from just before a message is sent to its arrival at each member of the room\n\
         (sender included); deliveries in limited timelines count. Sliding sync's list has a\n\
         timeline limit of 1: a message a client never saw but followed by one it saw is\n\
         superseded, not lost. CPU: user+system time over\n\
         wall time of the sending period, 100% = one core. Peak RSS is VmHWM, the server's peak\n\
         since it started (set-up included), read after each run; RSS after run is VmRSS at the\n\
         same moment."
    );
    for (transport, result) in results {
        match result {
            Ok(summary) => {
                let unusual = [
                    (
                        "deliveries to non-members or of refused sends",
                        summary.unexpected,
                    ),
                    ("deliveries of messages from an earlier run", summary.stale),
                    (
                        "to-device messages from an earlier run",
                        summary.to_device_stale,
                    ),
                ];
                for (what, count) in unusual {
                    if count > 0 {
                        println!("{}: {count} {what}", transport.name());
                    }
                }
                for sample in &summary.error_samples {
                    println!("{} error: {sample}", transport.name());
                }
                if !summary.slow_seconds.is_empty() {
                    let seconds: Vec<String> = summary
                        .slow_seconds
                        .iter()
                        .map(|s| {
                            let at = utc_date(summary.epoch_unix_ms / 1000 + s.second);
                            format!("{} ({at}): {}, max {} ms", s.second, s.count, s.max_ms)
                        })
                        .collect();
                    println!(
                        "{}: deliveries of {SLOW_MS} ms or more, by second sent: {}",
                        transport.name(),
                        seconds.join("; ")
                    );
                }
            }
            Err(error) => println!("{} failed: {error:#}", transport.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_iso_8601() {
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        // `date -u -d @951827696`: a leap day.
        assert_eq!(utc_date(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(utc_date(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(utc_now().len(), 20);
    }

    #[test]
    fn the_json_line_names_the_conditions_and_the_figures() {
        use std::sync::Arc;

        use crate::matrix::{Api, Client};
        use crate::profile::Profile;
        use crate::run::{CpuUse, Received, Run};
        use crate::server::Memory;

        let client = |room| Client {
            user_id: format!("@u{room}:h"),
            token: "t".into(),
            room,
        };
        let setup = Setup {
            api: Api {
                http: reqwest::Client::new(),
                base: String::new(),
            },
            server_pid: 1,
            port: 1,
            clients: Arc::new(vec![client(0), client(0)]),
            room_ids: vec!["!r".into()],
            members: vec![2],
            memory: None,
            profile: Profile::Element,
            filters: vec!["0".into(), "0".into()],
            e2ee: None,
        };
        let run = Run::new(0, vec![0]);
        run.answered(0, true);
        let mut received = Received::default();
        received.deliveries.push((0, 3_000_000));
        let cpu = CpuUse {
            server: Duration::from_millis(500),
            bench: Duration::from_millis(100),
            wall: Duration::from_secs(1),
        };
        let memory = Memory {
            peak_kib: 2048,
            now_kib: 1024,
        };
        let summary = Summary::compute(
            &run,
            &[1_000_000],
            &setup.clients,
            &setup.members,
            vec![received, Received::default()],
            cpu,
            Some(memory),
            false,
        );
        let conditions = Conditions {
            commit: "abc1234".into(),
            server_bin: "/tmp/hearth".into(),
            date: "2026-12-02T00:00:00Z".into(),
            cpus_online: 2,
            cpu_model: "CPU".into(),
            mem_total_mib: Some(1024),
            load_before: Some([0.1, 0.2, 0.3]),
            pinned: true,
            server_cpus: Some("0".into()),
            bench_cpus: Some("1".into()),
            profile: "element",
            key_rotation: None,
            pushers: false,
            quiet_rooms: 0,
            accounts: "jwt",
            seed: Some(1),
            clients: 2,
            rooms: 1,
            rate: 1.0,
            duration: 1.0,
            drain: 5.0,
            messages: 1,
            setup_secs: 0.5,
        };
        let line = json_line(&conditions, &setup, Transport::LongPoll, &summary);
        for key in [
            "commit",
            "server_bin",
            "date",
            "machine",
            "load_before",
            "pinned",
            "profile",
            "clients",
            "rooms",
            "rate",
            "duration_s",
            "lost",
            "duplicated",
            "limited",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "events_per_s",
            "server_cpu_pct",
            "bench_cpu_pct",
            "peak_rss_mib",
            "rss_after_mib",
            "setup_s",
        ] {
            assert!(line.get(key).is_some(), "no {key} in {line}");
        }
        assert_eq!(line["transport"], "long-poll");
        assert_eq!(line["members_per_room"], 2);
        assert_eq!(line["expected"], 2);
        assert_eq!(line["received"], 1);
        assert_eq!(line["lost"], 1);
        assert_eq!(line["p50_ms"], 2.0);
        assert_eq!(line["server_cpu_pct"], 50.0);
        assert_eq!(line["peak_rss_mib"], 2.0);
        assert_eq!(line["server_cpus"], "0");
        assert_eq!(line["machine"]["cpus"], 2);
    }

    #[test]
    fn load_average_and_machine_are_read() {
        assert!(load_average().is_some());
        let (cpus, _, memory) = Conditions::machine();
        assert!(cpus >= 1);
        assert!(memory.is_some_and(|m| m > 0));
    }
}
