//! `hearth-bench federation`: two servers, A and B, federating over TLS with a
//! certificate authority made for the run; users on both in rooms created on A; messages
//! at a fixed rate from users of both servers; and how long each message takes from the
//! send's answer to its arrival in the long-poll `/sync` of the room's members, on the
//! other server and, for comparison, on the sender's own. `spec/performance.md`
//! describes the method.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fed_summary::{FedSummary, print_report};
use crate::matrix::{Api, Client, FILTER};
use crate::profile::Schedule;
use crate::run::{Received, Run};
use crate::server::{self, Options, Server};
use crate::tls::TestCa;
use crate::transport::{ANSWER_WAIT, long_poll, pace};

#[derive(clap::Args)]
pub struct Args {
    /// The hearth binary to start, twice [default: `hearth` next to this program]
    #[arg(long)]
    pub hearth_bin: Option<PathBuf>,
    /// Users registered on each server, each with one long-poll /sync
    #[arg(long, default_value_t = 100)]
    pub clients_per_server: usize,
    /// Public rooms, all created on server A; user i of each server joins room i mod ROOMS
    /// (the users of B over federation)
    #[arg(long, default_value_t = 20)]
    pub rooms: usize,
    /// Messages sent per second in total, alternately by a user of A and a user of B
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of sending
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Seconds to wait after sending stops for the last deliveries; what has not
    /// arrived by then counts as lost
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Seconds of send time per window in the report's line of cross-server latency
    /// over the run
    #[arg(long, default_value_t = 5.0)]
    pub window: f64,
    /// Copy both servers' logs here (as A.log and B.log) after the run
    #[arg(long, value_name = "DIR")]
    pub logs: Option<PathBuf>,
    /// A setting for both servers, as NAME=VALUE (e.g. HEARTH_SYNC_WRITES=false); may be
    /// repeated; wins over the bench's own settings
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub server_env: Vec<(String, String)>,
    /// Pin server A to these CPUs (a `taskset -c` list, e.g. 0); unpinned by default
    #[arg(long, value_name = "CPUS")]
    pub pin_a: Option<String>,
    /// Pin server B to these CPUs (e.g. 1); unpinned by default
    #[arg(long, value_name = "CPUS")]
    pub pin_b: Option<String>,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

/// The pause between starting the receivers and the first message.
const SETTLE: Duration = Duration::from_secs(1);

/// Server A is side 0, server B side 1.
pub const SIDES: [&str; 2] = ["A", "B"];

/// One of the two servers with its users.
pub struct Node {
    pub server: Server,
    pub api: Api,
    pub clients: Arc<Vec<Client>>,
    /// Number of this server's users in each room.
    pub members: Vec<usize>,
    /// The rooms' IDs (the same on both servers).
    pub room_ids: Vec<String>,
}

/// Everything the report needs besides the run's figures.
pub struct Setting<'a> {
    pub args: &'a Args,
    pub messages: usize,
    pub set_up_secs: f64,
    pub converged_secs: f64,
    pub memory: [Option<server::Memory>; 2],
}

pub async fn main(args: Args) -> Result<()> {
    if args.rooms == 0 || args.clients_per_server < args.rooms {
        bail!("need at least one room and at least as many clients per server as rooms");
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !(positive(args.rate)
        && positive(args.duration)
        && (args.drain == 0.0 || positive(args.drain)))
    {
        bail!("--rate and --duration must be positive, --drain not negative");
    }
    if !positive(args.window) {
        bail!("--window must be positive");
    }
    let messages = (args.rate * args.duration).round() as usize;
    if messages < 2 {
        bail!("--rate × --duration is less than two messages");
    }
    let hearth_bin = match args.hearth_bin.clone() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("hearth"),
    };

    let certs = tempfile::tempdir().context("create a directory for the certificates")?;
    let ca = TestCa::new()?;
    let ca_file = ca.write_ca(certs.path())?;
    // Long-polls hold a connection each and sends need their own: no pool limit.
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes())?)
        .build()?;
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
        // A failed transaction is retried within 2 s, so it shows as latency, not loss.
        (
            "HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS".to_owned(),
            "2".to_owned(),
        ),
    ];
    env.extend(args.server_env.iter().cloned());
    let mut servers = Vec::new();
    for (side, cpus) in SIDES.iter().zip([&args.pin_a, &args.pin_b]) {
        eprintln!("starting server {side}: {}", hearth_bin.display());
        let options = Options {
            tls: Some(ca.issue(certs.path(), side)?),
            env: env.clone(),
            cpus: cpus.clone(),
        };
        servers.push(Server::start_with(&hearth_bin, &http, &options).await?);
    }
    let b = servers.pop().expect("two servers");
    let a = servers.pop().expect("two servers");
    eprintln!("A is {}, B is {}", a.server_name(), b.server_name());

    let node = |server: Server| Node {
        api: Api {
            http: http.clone(),
            base: server.url(""),
        },
        server,
        clients: Arc::new(Vec::new()),
        members: Vec::new(),
        room_ids: Vec::new(),
    };
    let mut nodes = [node(a), node(b)];
    let outcome = bench(&args, &mut nodes, messages).await;
    let [a, b] = nodes;
    let logs = [a.server.log_tail(), b.server.log_tail()];
    let mut clean = true;
    for (side, node) in SIDES.iter().zip([a, b]) {
        match node.server.stop().await {
            Ok(status) if status.success() => {
                eprintln!("server {side} stopped cleanly after SIGTERM")
            }
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
            eprintln!("server {side} log:\n{log}");
        }
        return Err(error);
    }
    if !clean {
        bail!("a server did not stop cleanly");
    }
    Ok(())
}

async fn bench(args: &Args, nodes: &mut [Node; 2], messages: usize) -> Result<()> {
    let started = Instant::now();
    set_up(args, nodes).await?;
    let set_up_secs = started.elapsed().as_secs_f64();
    eprintln!("set up in {set_up_secs:.1} s; waiting until both servers see every member");
    let converging = Instant::now();
    converge(nodes).await?;
    let converged_secs = converging.elapsed().as_secs_f64();
    let setting = Setting {
        args,
        messages,
        set_up_secs,
        converged_secs,
        memory: [0, 1].map(|side| server::memory(nodes[side].server.pid()).ok()),
    };
    let summary = measure(args, nodes, messages).await?;
    let logs = [0, 1].map(|side| nodes[side].server.log());
    if let Some(dir) = &args.logs {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        for (side, log) in SIDES.iter().zip(&logs) {
            let path = dir.join(format!("{side}.log"));
            std::fs::write(&path, log).with_context(|| format!("write {}", path.display()))?;
        }
    }
    print_report(&setting, nodes, &summary, &logs);
    Ok(())
}

/// Registers the users on both servers, creates the rooms on A and joins every user to
/// its room: A's locally, B's through A.
async fn set_up(args: &Args, nodes: &mut [Node; 2]) -> Result<()> {
    let n = args.clients_per_server;
    eprintln!("registering {n} users on each server");
    let (a, b) = tokio::join!(
        register_all(&nodes[0].api, n, args.rooms),
        register_all(&nodes[1].api, n, args.rooms)
    );
    for (node, clients) in nodes.iter_mut().zip([a?, b?]) {
        let mut members = vec![0; args.rooms];
        for client in &clients {
            members[client.room] += 1;
        }
        node.members = members;
        node.clients = Arc::new(clients);
    }
    let [a, b] = &*nodes;

    eprintln!("creating {} rooms on A", args.rooms);
    let room_ids: Vec<String> = futures_util::stream::iter(&a.clients[..args.rooms])
        .enumerate()
        .map(|(r, creator)| {
            let api = &a.api;
            async move { api.create_room(&creator.token, &format!("bench {r}")).await }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let via = a.server.server_name();

    eprintln!("joining A's other users to their rooms");
    join_all(&a.clients[args.rooms..], 8, |client| {
        a.api.join(&client.token, &room_ids[client.room])
    })
    .await?;
    // The first user of B in each room makes B a member server of it; the others follow
    // once it is.
    eprintln!("joining B's users to their rooms over federation");
    for (clients, parallel) in [(&b.clients[..args.rooms], 4), (&b.clients[args.rooms..], 8)] {
        join_all(clients, parallel, |client| {
            b.api.join_via(&client.token, &room_ids[client.room], &via)
        })
        .await?;
    }

    for node in nodes.iter_mut() {
        node.room_ids = room_ids.clone();
    }
    Ok(())
}

async fn register_all(api: &Api, n: usize, rooms: usize) -> Result<Vec<Client>> {
    // Registration hashes a password (argon2): a few at a time is all two cores take.
    let users: Vec<(String, String)> = futures_util::stream::iter(0..n)
        .map(|i| async move { api.register(&format!("bench{i}")).await })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    Ok(users
        .into_iter()
        .enumerate()
        .map(|(i, (user_id, token))| Client {
            user_id,
            token,
            room: i % rooms,
        })
        .collect())
}

/// Runs `join` for each client, `parallel` at a time; fails with the first error.
async fn join_all<'a, F, Fut>(clients: &'a [Client], parallel: usize, join: F) -> Result<()>
where
    F: Fn(&'a Client) -> Fut,
    Fut: Future<Output = Result<()>> + 'a,
{
    let results: Vec<Result<()>> = futures_util::stream::iter(clients)
        .map(|client| {
            let joined = join(client);
            async move {
                joined
                    .await
                    .with_context(|| format!("{} joining room {}", client.user_id, client.room))
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Waits until each server lists every member of every room, those of the other server
/// included, so that no message is sent before its recipients are known to its server.
async fn converge(nodes: &[Node; 2]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let rooms = nodes[0].members.len();
    for room in 0..rooms {
        let want = nodes[0].members[room] + nodes[1].members[room];
        for (side, node) in SIDES.iter().zip(nodes) {
            // Client `room` of each server is in room `room` (i mod rooms, i < rooms).
            let asker = &node.clients[room];
            loop {
                let seen = node
                    .api
                    .joined_member_count(&asker.token, &node.room_ids[room])
                    .await?;
                if seen == want {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("server {side} sees {seen} of {want} members of room {room} after 120 s");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

/// The sender's side of message `index`: A for even, B for odd.
pub fn side_of(index: usize) -> usize {
    index % 2
}

/// The sender of message `index` within its server's users.
fn client_of(index: usize, per_server: usize) -> usize {
    (index / 2) % per_server
}

/// Sends the messages at the fixed rate while every user long-polls its own server,
/// waits for the deliveries, and computes the figures.
async fn measure(args: &Args, nodes: &[Node; 2], messages: usize) -> Result<FedSummary> {
    let n = args.clients_per_server;
    eprintln!("initial sync of each user");
    let mut since = Vec::new();
    for node in nodes {
        since.push(initial_syncs(node).await?);
    }
    let rooms = (0..messages)
        .map(|i| nodes[side_of(i)].clients[client_of(i, n)].room as u32)
        .collect();
    let run = Arc::new(Run::new(0, rooms));
    let (stop, stopped) = watch::channel(false);

    eprintln!("starting {} long-poll receivers", 2 * n);
    let mut receivers: Vec<Vec<JoinHandle<Received>>> = Vec::new();
    for (node, since) in nodes.iter().zip(since) {
        let mut handles = Vec::with_capacity(n);
        for (index, since) in since.into_iter().enumerate() {
            handles.push(tokio::spawn(long_poll(
                node.api.clone(),
                node.clients.clone(),
                index,
                since,
                FILTER.to_owned(),
                run.clone(),
                None,
                stopped.clone(),
            )));
        }
        receivers.push(handles);
    }

    // Every long-poll is waiting in its server before the first message.
    tokio::time::sleep(SETTLE).await;
    eprintln!("sending {messages} messages at {} msg/s", args.rate);
    let pids = [nodes[0].server.pid(), nodes[1].server.pid()];
    let machine_before = server::machine_cpu()?;
    let disk_before = server::disk_stats()?;
    let cpu_before = [
        server::cpu_time(Some(pids[0]))?,
        server::cpu_time(Some(pids[1]))?,
        server::cpu_time(None)?,
    ];
    let started = Instant::now();
    let schedule = Schedule::fixed(args.rate, args.duration, 1);
    let sent_at = pace(&run, &schedule.at, |index, bench_id| {
        let node = &nodes[side_of(index)];
        let client = &node.clients[client_of(index, n)];
        let api = node.api.clone();
        let token = client.token.clone();
        let room_id = node.room_ids[client.room].clone();
        let run = run.clone();
        tokio::spawn(async move {
            let result = api.send_message(&token, &room_id, bench_id).await;
            if let Err(error) = &result {
                run.error(format!("send: {error:#}"));
            }
            run.answered(index, result.is_ok());
        });
    })
    .await;
    let sending_ended = Instant::now();
    let cpu_after = [
        server::cpu_time(Some(pids[0]))?,
        server::cpu_time(Some(pids[1]))?,
        server::cpu_time(None)?,
    ];
    let machine = server::machine_cpu()?.since(machine_before);
    let disk = server::disk_stats()?.since(disk_before);
    let cpu = [0, 1, 2].map(|i| cpu_after[i].saturating_sub(cpu_before[i]));
    let wall = sending_ended - started;

    eprintln!("draining (at most {} s)", args.drain);
    let total: Vec<usize> = (0..args.rooms)
        .map(|r| nodes[0].members[r] + nodes[1].members[r])
        .collect();
    run.drain(
        &total,
        sending_ended,
        Duration::from_secs_f64(args.drain),
        ANSWER_WAIT,
    )
    .await;
    let drained = sending_ended.elapsed();
    let _ = stop.send(true);
    let mut received = Vec::new();
    for handles in receivers {
        let mut side = Vec::with_capacity(handles.len());
        for handle in handles {
            side.push(handle.await.context("receiver task")?);
        }
        received.push(side);
    }
    let memory = [0, 1].map(|side| server::memory(pids[side]).ok());
    Ok(FedSummary::compute(
        &run,
        &sent_at,
        [&nodes[0].clients, &nodes[1].clients],
        [&nodes[0].members, &nodes[1].members],
        received,
        cpu,
        machine,
        disk,
        wall,
        drained,
        memory,
    ))
}

/// One sync without `since` per user of a server, all at once: each opens its own TLS
/// connection, which the client's pool keeps for the long-polls, so that no handshakes
/// are left for the measured period.
async fn initial_syncs(node: &Node) -> Result<Vec<String>> {
    futures_util::stream::iter(node.clients.iter())
        .map(|client| async move {
            node.api
                .initial_sync(&client.token)
                .await
                .with_context(|| format!("for {}", client.user_id))
        })
        .buffered(node.clients.len())
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}
