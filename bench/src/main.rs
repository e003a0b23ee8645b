//! `hearth-bench`: starts a `hearth` server, registers many clients in a few rooms, sends
//! messages at a fixed rate and measures how fast and how completely every member of
//! each room receives them, over long-poll `/sync` and over the sync WebSocket; or, with
//! the `federation` subcommand, how fast messages cross from one server to another.
//! `spec/performance.md` describes the method.

mod fed_summary;
mod federation;
mod matrix;
mod run;
mod server;
mod tls;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;

use matrix::{Api, Client};
use run::Summary;
use server::Server;
use transport::{Load, Setup, Transport};

#[derive(Parser)]
#[command(
    name = "hearth-bench",
    about = "Measures message delivery latency of a hearth server over long-poll /sync and the sync WebSocket",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// The hearth binary to start [default: `hearth` next to this program]
    #[arg(long)]
    hearth_bin: Option<PathBuf>,
    /// Number of clients (users), each with one sync connection
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Number of rooms; client i joins room i mod ROOMS
    #[arg(long, default_value_t = 20)]
    rooms: usize,
    /// Messages sent per second, in total, round-robin over the clients
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seconds of sending per transport
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds to wait after sending stops for the last deliveries
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Which transport(s) to measure, one after the other on the same server
    #[arg(long, value_enum, default_value_t = TransportArg::Both)]
    transport: TransportArg,
}

#[derive(Subcommand)]
enum Mode {
    /// Two federating servers over TLS, users of both in rooms created on the first:
    /// measures delivery from one server to the other (long-poll /sync)
    Federation(federation::Args),
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Longpoll,
    Ws,
    Both,
}

impl TransportArg {
    fn transports(self) -> Vec<Transport> {
        match self {
            TransportArg::Longpoll => vec![Transport::LongPoll],
            TransportArg::Ws => vec![Transport::WebSocket],
            TransportArg::Both => vec![Transport::LongPoll, Transport::WebSocket],
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = Args::parse();
    if let Some(Mode::Federation(federation)) = args.mode.take() {
        return federation::main(federation).await;
    }
    if args.rooms == 0 || args.clients < args.rooms {
        bail!("need at least one room and at least as many clients as rooms");
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !(positive(args.rate)
        && positive(args.duration)
        && (args.drain == 0.0 || positive(args.drain)))
    {
        bail!("--rate and --duration must be positive, --drain not negative");
    }
    let messages = (args.rate * args.duration).round() as usize;
    if messages == 0 {
        bail!("--rate × --duration is less than one message");
    }
    let hearth_bin = match args.hearth_bin.clone() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("hearth"),
    };

    // Long-polls hold a connection each and sends need their own: no pool limit.
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()?;
    eprintln!("starting {}", hearth_bin.display());
    let server = Server::start(&hearth_bin, &http).await?;
    let api = Api {
        http,
        base: server.url(""),
    };
    let outcome = bench(&args, api, &server, messages).await;
    let log_tail = server.log_tail();
    let stopped = server.stop().await;
    let failed = outcome?;
    match stopped {
        Ok(status) if status.success() => eprintln!("hearth stopped cleanly after SIGTERM"),
        Ok(status) => bail!("hearth exited with {status} after SIGTERM:\n{log_tail}"),
        Err(error) => return Err(error),
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Sets up users and rooms, measures each transport and prints the table. Returns
/// whether a transport could not be measured.
async fn bench(args: &Args, api: Api, server: &Server, messages: usize) -> Result<bool> {
    let setup = set_up(args, api, server).await?;
    let load = Load {
        rate: args.rate,
        messages,
        drain: Duration::from_secs_f64(args.drain),
    };
    let mut results = Vec::new();
    for (number, transport) in args.transport.transports().into_iter().enumerate() {
        // Bench IDs never repeat across runs, so a late delivery is not counted twice.
        let first_id = (number as u64) << 32;
        let result = transport::measure(&setup, transport, &load, first_id).await;
        if let Err(error) = &result {
            eprintln!("[{}] failed: {error:#}", transport.name());
            eprintln!("server log:\n{}", server.log_tail());
        }
        results.push((transport, result));
    }
    print_report(args, &setup, messages, &results);
    Ok(results.iter().any(|(_, r)| r.is_err()))
}

/// Registers the clients, creates the rooms and joins each client to its room.
async fn set_up(args: &Args, api: Api, server: &Server) -> Result<Setup> {
    let started = Instant::now();
    eprintln!("registering {} users", args.clients);
    // Registration hashes a password (argon2): a few at a time is all two cores take.
    let users: Vec<(String, String)> = futures_util::stream::iter(0..args.clients)
        .map(|i| {
            let api = &api;
            async move { api.register(&format!("bench{i}")).await }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let clients: Vec<Client> = users
        .into_iter()
        .enumerate()
        .map(|(i, (user_id, token))| Client {
            user_id,
            token,
            room: i % args.rooms,
        })
        .collect();

    eprintln!("creating {} rooms", args.rooms);
    let room_ids: Vec<String> = futures_util::stream::iter(&clients[..args.rooms])
        .enumerate()
        .map(|(r, creator)| {
            let api = &api;
            async move { api.create_room(&creator.token, &format!("bench {r}")).await }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;

    eprintln!("joining the other clients to their rooms");
    let joins: Vec<Result<()>> = futures_util::stream::iter(&clients[args.rooms..])
        .map(|client| {
            let (api, room_id) = (&api, &room_ids[client.room]);
            async move {
                api.join(&client.token, room_id)
                    .await
                    .with_context(|| format!("{} joining {room_id}", client.user_id))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    joins.into_iter().collect::<Result<()>>()?;

    let mut members = vec![0; args.rooms];
    for client in &clients {
        members[client.room] += 1;
    }
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());
    Ok(Setup {
        api,
        server_pid: server.pid(),
        port: server.port,
        clients: Arc::new(clients),
        room_ids,
        members,
        memory: server::memory(server.pid()).ok(),
    })
}

fn print_report(
    args: &Args,
    setup: &Setup,
    messages: usize,
    results: &[(Transport, Result<Summary>)],
) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
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
    println!(
        "hearth-bench: {} clients in {} rooms ({members} members each), {} msg/s for {} s ({messages} messages per transport), drain {} s",
        args.clients, args.rooms, args.rate, args.duration, args.drain
    );
    if let Some(memory) = &setup.memory {
        println!(
            "Server memory after set-up (registrations, rooms, joins): peak {:.1} MiB, now {:.1} MiB.",
            memory.peak_kib as f64 / 1024.0,
            memory.now_kib as f64 / 1024.0
        );
    }
    println!(
        "The bench and the server share this machine ({cpus} CPUs, {model}); the bench's own CPU use is in the table."
    );
    println!();

    type Cell = fn(&Summary) -> String;
    fn ms(value: Option<f64>) -> String {
        value.map_or("-".to_owned(), |v| format!("{v:.2}"))
    }
    fn mib(kib: Option<u64>) -> String {
        kib.map_or("-".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
    }
    fn percent(used: Duration, wall: Duration) -> String {
        format!("{:.0}", 100.0 * used.as_secs_f64() / wall.as_secs_f64())
    }
    let rows: Vec<(&str, Cell)> = vec![
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
            percent(s.cpu.server, s.cpu.wall)
        }),
        ("bench CPU while sending (%)", |s| {
            percent(s.cpu.bench, s.cpu.wall)
        }),
        ("server peak RSS (MiB)", |s| {
            mib(s.memory.as_ref().map(|m| m.peak_kib))
        }),
        ("server RSS after run (MiB)", |s| {
            mib(s.memory.as_ref().map(|m| m.now_kib))
        }),
        ("errors", |s| s.errors.to_string()),
    ];
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
         (sender included). CPU: user+system time over wall time of the sending period, 100% =\n\
         one core. Peak RSS is VmHWM, the server's peak since it started (set-up included), read\n\
         after each run; RSS after run is VmRSS at the same moment."
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
                ];
                for (what, count) in unusual {
                    if count > 0 {
                        println!("{}: {count} {what}", transport.name());
                    }
                }
                for sample in &summary.error_samples {
                    println!("{} error: {sample}", transport.name());
                }
            }
            Err(error) => println!("{} failed: {error:#}", transport.name()),
        }
    }
}
