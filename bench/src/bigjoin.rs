//! `hearth-bench bigjoin`: a big room on server A (members of A and of a third server C,
//! many messages), then one user of a fresh server B joins it over federation. Reports
//! how long until the join returns, until the user can send, and until B lists every
//! member, with B's CPU time and peak RSS over the join. `spec/performance.md`
//! describes the method.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::json;

use crate::jwt;
use crate::matrix::{Api, Client};
use crate::report;
use crate::server::{self, Options, Server};
use crate::tls::TestCa;

#[derive(clap::Args)]
pub struct Args {
    /// The hearth binary to start, three times [default: `hearth` next to this program]
    #[arg(long)]
    pub hearth_bin: Option<PathBuf>,
    /// Members of the room before B joins (users of A and of C)
    #[arg(long, default_value_t = 5_000)]
    pub members: usize,
    /// Of those, members on server C (they join over federation through A)
    #[arg(long, default_value_t = 200)]
    pub remote_members: usize,
    /// Events in the room before B joins: the members' joins and creation events, then
    /// messages from A's users up to this many
    #[arg(long, default_value_t = 50_000)]
    pub events: usize,
    /// Seconds B may take to list every member before the run fails
    #[arg(long, default_value_t = 600.0)]
    pub deadline: f64,
    /// Pin server A to these CPUs (a `taskset -c` list, e.g. 0); unpinned by default
    #[arg(long, value_name = "CPUS")]
    pub pin_a: Option<String>,
    /// Pin server B to these CPUs (e.g. 1); unpinned by default
    #[arg(long, value_name = "CPUS")]
    pub pin_b: Option<String>,
    /// Pin server C to these CPUs (e.g. 0); unpinned by default
    #[arg(long, value_name = "CPUS")]
    pub pin_c: Option<String>,
    /// A setting for every server, as NAME=VALUE; may be repeated
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub server_env: Vec<(String, String)>,
    /// Copy the servers' logs here (A.log, B.log, C.log) after the run
    #[arg(long, value_name = "DIR")]
    pub logs: Option<PathBuf>,
    /// Skip the fork: after the join, A's creator and B's user (made an admin) set the
    /// topic at the same moment, and the bench waits until both servers agree
    #[arg(long)]
    pub no_fork: bool,
    /// Wait this many seconds after set-up before B joins (e.g. to attach a profiler
    /// to B, whose PID the bench prints)
    #[arg(long, default_value_t = 0.0)]
    pub pause: f64,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

const SIDES: [&str; 3] = ["A", "B", "C"];

struct Node {
    server: Server,
    api: Api,
    secret: String,
}

/// What the join of B cost.
struct Figures {
    join_secs: f64,
    send_secs: f64,
    members_secs: f64,
    b_cpu_secs: f64,
    b_peak_rss_kib: Option<u64>,
    b_rss_after_kib: Option<u64>,
}

pub async fn main(args: Args) -> Result<()> {
    let load_before = report::load_average();
    if args.members < 2 || args.remote_members >= args.members {
        bail!("--members must be at least 2 and more than --remote-members");
    }
    let hearth_bin = match args.hearth_bin.clone() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("hearth"),
    };
    let certs = tempfile::tempdir().context("create a directory for the certificates")?;
    let ca = TestCa::new()?;
    let ca_file = ca.write_ca(certs.path())?;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(900))
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes())?)
        .build()?;
    let mut nodes = Vec::new();
    for (side, cpus) in SIDES.iter().zip([&args.pin_a, &args.pin_b, &args.pin_c]) {
        let secret = jwt::new_secret().context("read /dev/urandom")?;
        let mut env = vec![
            (
                "HEARTH_FEDERATION__EXTRA_CA_FILES".to_owned(),
                format!("[{:?}]", ca_file.display().to_string()),
            ),
            // Loopback is refused by default (the SSRF guard).
            (
                "HEARTH_FEDERATION__IP_RANGE_DENYLIST".to_owned(),
                "[]".to_owned(),
            ),
            (
                "HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS".to_owned(),
                "2".to_owned(),
            ),
        ];
        env.extend(jwt::server_env(&secret));
        env.extend(args.server_env.iter().cloned());
        eprintln!("starting server {side}: {}", hearth_bin.display());
        let options = Options {
            tls: Some(ca.issue(certs.path(), side)?),
            env,
            cpus: cpus.clone(),
        };
        let server = Server::start_with(&hearth_bin, &http, &options).await?;
        nodes.push(Node {
            api: Api {
                http: http.clone(),
                base: server.url(""),
            },
            server,
            secret,
        });
    }
    let outcome = bench(&args, &nodes, load_before).await;
    let logs: Vec<String> = nodes.iter().map(|n| n.server.log()).collect();
    if let Some(dir) = &args.logs {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        for (side, log) in SIDES.iter().zip(&logs) {
            let path = dir.join(format!("{side}.log"));
            std::fs::write(&path, log).with_context(|| format!("write {}", path.display()))?;
        }
    }
    let mut clean = true;
    for (side, node) in SIDES.iter().zip(nodes) {
        match node.server.stop().await {
            Ok(status) if status.success() => {}
            Ok(status) => {
                clean = false;
                eprintln!("server {side} exited with {status} after SIGTERM");
            }
            Err(error) => {
                clean = false;
                eprintln!("server {side}: {error:#}");
            }
        }
    }
    if let Err(error) = outcome {
        for (side, log) in SIDES.iter().zip(&logs) {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("server {side} log (last lines, newest first):");
            for line in tail {
                eprintln!("  {line}");
            }
        }
        return Err(error);
    }
    if !clean {
        bail!("a server did not stop cleanly");
    }
    Ok(())
}

async fn bench(args: &Args, nodes: &[Node], load_before: Option<[f64; 3]>) -> Result<()> {
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let started = Instant::now();
    let local = args.members - args.remote_members;
    eprintln!(
        "logging in {local} users on A and {} on C by JWT",
        args.remote_members
    );
    let (a_users, c_users) =
        tokio::join!(log_in(a, "a", local), log_in(c, "c", args.remote_members));
    let (a_users, c_users) = (a_users?, c_users?);
    let room_id = a
        .api
        .create_room(&a_users[0].token, "big room")
        .await
        .context("create the room")?;
    let via = a.server.server_name();
    eprintln!("joining {} users of A to {room_id}", local - 1);
    join_all(&a_users[1..], 8, |u| a.api.join(&u.token, &room_id)).await?;
    if let Some((first, rest)) = c_users.split_first() {
        eprintln!("joining {} users of C over federation", c_users.len());
        first_join(c, first, &room_id, &via).await?;
        join_all(rest, 8, |u| c.api.join_via(&u.token, &room_id, &via)).await?;
    }
    // createRoom's events (create, creator's join, power levels, join rules, history
    // visibility, name) and the other joins.
    let state_events = 6 + args.members - 1;
    // And one last message, to know when C has them all.
    let messages = args.events.saturating_sub(state_events + 1);
    eprintln!("sending {messages} messages from A's users");
    let sent: Vec<Result<String>> = futures_util::stream::iter(0..messages)
        .map(|i| {
            let user = &a_users[i % a_users.len()];
            let (api, room_id) = (&a.api, &room_id);
            async move { api.send_message(&user.token, room_id, i as u64).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    sent.into_iter().collect::<Result<Vec<_>>>()?;
    if let Some(user) = c_users.first() {
        // C's joins after its first are C's own events, pushed to A by C's queue: a join
        // on C returns before A has it. Until A has them all, A's room is forked (C's
        // branch of joins) and a server joining now would start from a state without
        // C's late members, which nobody pushes to it (C sends them to the servers it
        // knew in the room). A's last message, sent after, follows C's last join.
        eprintln!("waiting until A lists every member (C's queue to A drained)");
        wait_for_members(a, &a_users[0], &room_id, args.members).await?;
        eprintln!("waiting until C has every message (A's queue to C drained)");
        let last = a
            .api
            .send_message(&a_users[0].token, &room_id, messages as u64)
            .await?;
        wait_for_event(c, user, &room_id, &last).await?;
    }
    let set_up_secs = started.elapsed().as_secs_f64();
    eprintln!("set up in {set_up_secs:.1} s");

    let joiner = log_in(b, "b", 1).await?.remove(0);
    if args.pause > 0.0 {
        eprintln!(
            "B is PID {}; pausing {} s before the join",
            b.server.pid(),
            args.pause
        );
        tokio::time::sleep(Duration::from_secs_f64(args.pause)).await;
    }
    let figures = measure_join(args, b, &joiner, &room_id, &via).await?;
    let fork = if args.no_fork {
        None
    } else {
        Some(measure_fork(a, b, &a_users[0], &joiner, &room_id).await?)
    };
    let pins = [
        server_cpus(&a.server),
        server_cpus(&b.server),
        server_cpus(&c.server),
    ];
    print_report(args, &figures, set_up_secs, &pins);
    if let Some(fork) = &fork {
        println!(
            "  fork converged      {:>8.2} s  (A + B CPU meanwhile: {:.2} s; topic kept: {})",
            fork.converged_secs, fork.cpu_secs, fork.winner
        );
        let longest = fork.resolutions.iter().map(|r| r.ms).fold(0.0, f64::max);
        println!(
            "  state resolutions   {:>8}  (the longest {longest:.1} ms on the server; ms/events each: {})",
            fork.resolutions.len(),
            fork.resolutions
                .iter()
                .map(|r| format!("{:.1}/{}", r.ms, r.events))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let line = json!({
        "bench": "bigjoin",
        "commit": report::commit(),
        "date": report::utc_now(),
        "load_before": load_before,
        "server_cpus": pins,
        "members": args.members,
        "remote_members": args.remote_members,
        "events": args.events.max(state_events),
        "set_up_secs": set_up_secs,
        "join_secs": figures.join_secs,
        "send_secs": figures.send_secs,
        "members_secs": figures.members_secs,
        "b_cpu_secs": figures.b_cpu_secs,
        "b_peak_rss_kib": figures.b_peak_rss_kib,
        "b_rss_after_kib": figures.b_rss_after_kib,
        "fork_converged_secs": fork.as_ref().map(|f| f.converged_secs),
        "fork_cpu_secs": fork.as_ref().map(|f| f.cpu_secs),
        "fork_resolutions": fork.as_ref().map(|f| &f.resolutions),
    });
    println!("{}{line}", report::JSON_PREFIX);
    Ok(())
}

fn server_cpus(server: &Server) -> String {
    crate::pin::cpus_allowed_list(Some(server.pid())).unwrap_or_else(|| "?".to_owned())
}

/// B's user joins through A, sends a message, and waits until B lists every member.
async fn measure_join(
    args: &Args,
    b: &Node,
    joiner: &Client,
    room_id: &str,
    via: &str,
) -> Result<Figures> {
    let pid = b.server.pid();
    // The peak RSS from here on, not B's start (Linux: "5" resets VmHWM).
    if let Err(error) = std::fs::write(format!("/proc/{pid}/clear_refs"), "5") {
        eprintln!("could not reset B's peak RSS ({error}); it counts from B's start");
    }
    let cpu_before = server::cpu_time(Some(pid))?;
    eprintln!("B's user joins");
    let start = Instant::now();
    b.api
        .join_via(&joiner.token, room_id, via)
        .await
        .context("B's user joining the big room")?;
    let join_secs = start.elapsed().as_secs_f64();
    eprintln!("joined after {join_secs:.2} s; sending");
    b.api
        .send_message(&joiner.token, room_id, 1 << 40)
        .await
        .context("B's user sending after the join")?;
    let send_secs = start.elapsed().as_secs_f64();
    let want = args.members + 1;
    let deadline = start + Duration::from_secs_f64(args.deadline);
    loop {
        // While B's state is partial it may refuse or answer short; both mean "not yet".
        let seen = b
            .api
            .joined_member_count(&joiner.token, room_id)
            .await
            .unwrap_or(0);
        if seen >= want {
            break;
        }
        if Instant::now() > deadline {
            bail!("B lists {seen} of {want} members after {} s", args.deadline);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let members_secs = start.elapsed().as_secs_f64();
    let b_cpu_secs = server::cpu_time(Some(pid))?
        .saturating_sub(cpu_before)
        .as_secs_f64();
    let memory = server::memory(pid).ok();
    Ok(Figures {
        join_secs,
        send_secs,
        members_secs,
        b_cpu_secs,
        b_peak_rss_kib: memory.as_ref().map(|m| m.peak_kib),
        b_rss_after_kib: memory.as_ref().map(|m| m.now_kib),
    })
}

/// A fork of the big room's state and its resolution.
struct Fork {
    /// From just before the two topic changes to both servers showing the same topic.
    converged_secs: f64,
    /// CPU time of A and B over that period.
    cpu_secs: f64,
    winner: String,
    /// The state resolutions A and B logged meanwhile (`hearth::state_res`): how long
    /// each took on the server, in ms, and how many events it loaded.
    resolutions: Vec<Resolution>,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Resolution {
    ms: f64,
    events: u64,
}

/// The state resolutions a server logged in `log` (its `hearth::state_res` lines).
fn resolutions_in(log: &str) -> Vec<Resolution> {
    let field = |line: &str, name: &str| -> Option<f64> {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        let value: String = line[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        value.parse().ok()
    };
    log.lines()
        .filter(|line| line.contains("state resolved"))
        .filter_map(|line| {
            Some(Resolution {
                ms: field(line, "elapsed_ms")?,
                events: field(line, "loaded")? as u64,
            })
        })
        .collect()
}

/// Makes B's user an admin, then has A's creator and B's user change the topic at the
/// same moment: each server gets the other's change on top of a state it did not build
/// on, and must resolve the two forks (state resolution v2 over the room's state of
/// 5,000 members) to the same topic as the other.
async fn measure_fork(
    a: &Node,
    b: &Node,
    creator: &Client,
    joiner: &Client,
    room_id: &str,
) -> Result<Fork> {
    let mut power = a
        .api
        .get_state(&creator.token, room_id, "m.room.power_levels", "")
        .await?
        .context("the room has no power levels")?;
    power["users"][joiner.user_id.as_str()] = json!(100);
    a.api
        .put_state(&creator.token, room_id, "m.room.power_levels", "", &power)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = b
            .api
            .get_state(&joiner.token, room_id, "m.room.power_levels", "")
            .await?;
        if seen.is_some_and(|p| p["users"][joiner.user_id.as_str()] == json!(100)) {
            break;
        }
        if Instant::now() > deadline {
            bail!("B does not see its user's power after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pids = [a.server.pid(), b.server.pid()];
    let logged_before = [a.server.log().len(), b.server.log().len()];
    let cpu_before = server::cpu_time(Some(pids[0]))? + server::cpu_time(Some(pids[1]))?;
    let (topic_a, topic_b) = (json!({"topic": "from A"}), json!({"topic": "from B"}));
    let start = Instant::now();
    let (from_a, from_b) = tokio::join!(
        a.api
            .put_state(&creator.token, room_id, "m.room.topic", "", &topic_a),
        b.api
            .put_state(&joiner.token, room_id, "m.room.topic", "", &topic_b),
    );
    from_a.context("A's topic")?;
    from_b.context("B's topic")?;
    let deadline = start + Duration::from_secs(120);
    let winner = loop {
        let on_a = a
            .api
            .get_state(&creator.token, room_id, "m.room.topic", "")
            .await?;
        let on_b = b
            .api
            .get_state(&joiner.token, room_id, "m.room.topic", "")
            .await?;
        // Each side shows its own topic until it has the other's.
        if on_a.is_some() && on_a == on_b {
            break on_a.map(|t| t["topic"].to_string()).unwrap_or_default();
        }
        if Instant::now() > deadline {
            bail!("A and B disagree on the topic after 120 s: {on_a:?} and {on_b:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let converged_secs = start.elapsed().as_secs_f64();
    let cpu_after = server::cpu_time(Some(pids[0]))? + server::cpu_time(Some(pids[1]))?;
    let resolutions = [&a.server, &b.server]
        .iter()
        .zip(logged_before)
        .flat_map(|(server, before)| resolutions_in(server.log().get(before..).unwrap_or("")))
        .collect();
    Ok(Fork {
        converged_secs,
        cpu_secs: cpu_after.saturating_sub(cpu_before).as_secs_f64(),
        winner,
        resolutions,
    })
}

fn print_report(args: &Args, f: &Figures, set_up_secs: f64, pins: &[String; 3]) {
    let mib = |kib: Option<u64>| {
        kib.map(|k| format!("{:.0} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".to_owned())
    };
    println!(
        "bigjoin: {} members ({} on C), {} events; A on CPU {}, B on CPU {}, C on CPU {}; set up in {:.1} s",
        args.members, args.remote_members, args.events, pins[0], pins[1], pins[2], set_up_secs
    );
    println!("  join returned       {:>8.2} s", f.join_secs);
    println!("  message accepted    {:>8.2} s", f.send_secs);
    println!("  member list on B    {:>8.2} s", f.members_secs);
    println!("  B CPU               {:>8.2} s", f.b_cpu_secs);
    println!(
        "  B peak RSS          {:>8}  (after: {})",
        mib(f.b_peak_rss_kib),
        mib(f.b_rss_after_kib)
    );
}

/// Logs `n` users of a server in by JWT (creating them): `{prefix}{i}`.
async fn log_in(node: &Node, prefix: &str, n: usize) -> Result<Vec<Client>> {
    let users: Vec<(String, String)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let token = jwt::token(&node.secret, &format!("{prefix}{i}"));
            async move { node.api.login_jwt(&token).await }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    Ok(users
        .into_iter()
        .map(|(user_id, token)| Client {
            user_id,
            token,
            room: 0,
        })
        .collect())
}

async fn first_join(node: &Node, user: &Client, room_id: &str, via: &str) -> Result<()> {
    node.api
        .join_via(&user.token, room_id, via)
        .await
        .with_context(|| format!("{} joining over federation", user.user_id))
}

async fn join_all<'a, F, Fut>(users: &'a [Client], parallel: usize, join: F) -> Result<()>
where
    F: Fn(&'a Client) -> Fut,
    Fut: Future<Output = Result<()>> + 'a,
{
    let results: Vec<Result<()>> = futures_util::stream::iter(users)
        .map(|user| {
            let joined = join(user);
            async move {
                joined
                    .await
                    .with_context(|| format!("{} joining", user.user_id))
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Waits until C has event `event_id` (A's last message: A sends to C in order, so the
/// rest came before it).
async fn wait_for_event(node: &Node, user: &Client, room_id: &str, event_id: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while !node.api.has_event(&user.token, room_id, event_id).await? {
        if Instant::now() > deadline {
            bail!("C does not have A's last message after 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Waits until `node` lists `want` joined members of the room.
async fn wait_for_members(node: &Node, user: &Client, room_id: &str, want: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let seen = node.api.joined_member_count(&user.token, room_id).await?;
        if seen >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("A lists {seen} of {want} members after 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_lines_are_read_from_the_log() {
        let log = "2026-12-04T16:22:01.1Z  WARN hearth::x: something elapsed_ms=9\n\
                   2026-12-04T16:22:01.2Z  INFO hearth::state_res: state resolved conflicted=1 loaded=5210 elapsed_ms=12.5\n\
                   2026-12-04T16:22:01.3Z  INFO hearth::state_res: state resolved conflicted=2 loaded=7 elapsed_ms=0.25\n";
        let found = resolutions_in(log);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].ms, found[0].events), (12.5, 5210));
        assert_eq!((found[1].ms, found[1].events), (0.25, 7));
    }
}
