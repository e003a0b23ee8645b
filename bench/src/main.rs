//! `hearth-bench`: starts a `hearth` server, makes many clients in a few rooms, sends
//! messages at a given rate and measures how fast and how completely every member of
//! each room receives them, over long-poll `/sync`, the sync WebSocket or sliding sync,
//! with or without encryption (`--e2ee`); or, with
//! the `federation` subcommand, how fast messages cross from one server to another.
//! `spec/performance.md` describes the method.

mod bigjoin;
mod e2ee;
mod fed_summary;
mod federation;
mod gateway;
mod jwt;
mod matrix;
mod pin;
mod profile;
mod report;
mod run;
mod server;
mod sliding;
mod tls;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;

use matrix::{Api, Client};
use pin::Placement;
use profile::Profile;
use report::Conditions;
use server::{Options, Server};
use transport::{Load, Setup, Transport};

/// The most members a room may have (`--members-per-room`).
const MAX_MEMBERS_PER_ROOM: usize = 1_000;

#[derive(Parser)]
#[command(
    name = "hearth-bench",
    about = "Measures message delivery latency of a hearth server over long-poll /sync, the sync WebSocket and sliding sync",
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
    /// Members in each room (at most 1000): makes ROOMS × N clients, instead of --clients
    #[arg(long, value_name = "N", conflicts_with = "clients")]
    members_per_room: Option<usize>,
    /// Rooms every client is also in and nobody writes to during the run (the first
    /// client makes them, the others join each): a user's other rooms, which a sliding
    /// sync list sorts and every sync looks at
    #[arg(long, value_name = "N", default_value_t = 0)]
    quiet_rooms: usize,
    /// Messages sent per second, in total
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
    /// The clients' behaviour: basic (inline filter, timeline limit 1000, messages evenly
    /// spaced, round-robin over the clients) or element (each client uploads Element
    /// Web's filter with lazy-loaded members and timeline limit 50 and syncs with its
    /// ID; Poisson arrivals from random clients)
    #[arg(long, value_enum, default_value_t = Profile::Basic)]
    profile: Profile,
    /// Seed of the element profile's arrivals: the same seed, the same schedule
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Encryption, with any profile: rooms with m.room.encryption; each device uploads
    /// keys (50 one-time keys, a fallback key) and re-uploads below half; each sender
    /// shares a room key by to-device before its first message and every
    /// --key-rotation messages, and sends m.room.encrypted events
    #[arg(long)]
    e2ee: bool,
    /// Messages per room key with --e2ee (Element's rotation_period_msgs)
    #[arg(long, value_name = "N", default_value_t = e2ee::DEFAULT_ROTATION, requires = "e2ee")]
    key_rotation: usize,
    /// Every client sets an HTTP pusher (`POST /pushers/set`, kind http) at a push gateway
    /// in this process that answers at once, so the server's pusher deliveries are part of
    /// the load (issue 13's "pushers on for every user")
    #[arg(long)]
    pushers: bool,
    /// Server on the first CPU this process may use (CPU 0), the bench on the second
    /// (CPU 1) [default when there are at least two]
    #[arg(long, conflicts_with = "no_pin")]
    pin: bool,
    /// Leave the server and the bench free to use every CPU
    #[arg(long)]
    no_pin: bool,
    /// How the accounts are made: jwt (JWT login that creates the account, no password
    /// hash) or password (registration with a password, an argon2 hash each)
    #[arg(long, value_enum, default_value_t = Accounts::Jwt)]
    accounts: Accounts,
    /// Also append each transport's JSON record (one object per line) to FILE
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Mode {
    /// Two federating servers over TLS, users of both in rooms created on the first:
    /// measures delivery from one server to the other (long-poll /sync)
    Federation(federation::Args),
    /// A big room on server A (members of A and of a third server), joined by a user of
    /// a fresh server B: time until the join returns, until the user can send and until
    /// B lists every member, B's CPU and peak RSS
    Bigjoin(bigjoin::Args),
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Longpoll,
    Ws,
    /// Simplified sliding sync (MSC4186) as Element X's room list
    Sliding,
    /// Long-poll and WebSocket
    Both,
    /// Long-poll, WebSocket and sliding sync
    All,
}

impl TransportArg {
    fn transports(self) -> Vec<Transport> {
        match self {
            TransportArg::Longpoll => vec![Transport::LongPoll],
            TransportArg::Ws => vec![Transport::WebSocket],
            TransportArg::Sliding => vec![Transport::Sliding],
            TransportArg::Both => vec![Transport::LongPoll, Transport::WebSocket],
            TransportArg::All => vec![
                Transport::LongPoll,
                Transport::WebSocket,
                Transport::Sliding,
            ],
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Accounts {
    Jwt,
    Password,
}

impl Accounts {
    fn name(self) -> &'static str {
        match self {
            Accounts::Jwt => "jwt",
            Accounts::Password => "password",
        }
    }
}

fn main() -> Result<()> {
    // Before anything of the bench's own runs.
    let load_before = report::load_average();
    let mut args = Args::parse();
    raise_open_files_limit();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("start the async runtime")
    };
    match args.mode.take() {
        Some(Mode::Federation(federation)) => {
            return runtime()?.block_on(federation::main(federation));
        }
        Some(Mode::Bigjoin(bigjoin)) => return runtime()?.block_on(bigjoin::main(bigjoin)),
        None => {}
    }
    if let Some(per_room) = args.members_per_room {
        if !(1..=MAX_MEMBERS_PER_ROOM).contains(&per_room) {
            bail!("--members-per-room must be 1 to {MAX_MEMBERS_PER_ROOM}");
        }
        args.clients = args.rooms * per_room;
    }
    let choice = match (args.pin, args.no_pin) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let placement = Placement::choose(&pin::allowed_cpus()?, choice)?;
    // Pinned before the runtime exists, so that every thread it starts inherits the CPU
    // (and its worker count, from the CPUs available, is one).
    if let Some(cpu) = placement.bench {
        pin::pin_self(cpu)?;
    }
    runtime()?.block_on(single(args, placement, load_before))
}

/// Lets the bench (and the server, which inherits it) hold a socket per client: the soft
/// limit on open files is often 1024, the hard one much higher.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The single-server bench.
async fn single(args: Args, placement: Placement, load_before: Option<[f64; 3]>) -> Result<()> {
    if args.rooms == 0 || args.clients < args.rooms {
        bail!("need at least one room and at least as many clients as rooms");
    }
    if args.key_rotation == 0 {
        bail!("--key-rotation must be at least 1");
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !(positive(args.rate)
        && positive(args.duration)
        && (args.drain == 0.0 || positive(args.drain)))
    {
        bail!("--rate and --duration must be positive, --drain not negative");
    }
    let schedule = args
        .profile
        .schedule(args.rate, args.duration, args.clients, args.seed);
    if schedule.len() == 0 {
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
    let jwt_secret = match args.accounts {
        Accounts::Jwt => Some(jwt::new_secret().context("read /dev/urandom")?),
        Accounts::Password => None,
    };
    let gateway = match args.pushers {
        true => Some(gateway::Gateway::start().await?),
        false => None,
    };
    let mut env = jwt_secret
        .as_deref()
        .map(jwt::server_env)
        .unwrap_or_default();
    if gateway.is_some() {
        // The gateway listens on loopback, which the server refuses for pushers by default.
        env.push((
            "HEARTH_FEDERATION__IP_RANGE_DENYLIST".to_owned(),
            "[]".to_owned(),
        ));
    }
    let options = Options {
        tls: None,
        env,
        cpus: placement.server_cpus(),
    };
    eprintln!("starting {}", hearth_bin.display());
    let server = Server::start_with(&hearth_bin, &http, &options).await?;
    let (server_cpus, bench_cpus) = (
        pin::cpus_allowed_list(Some(server.pid())),
        pin::cpus_allowed_list(None),
    );
    let show = |cpus: &Option<String>| cpus.clone().unwrap_or_else(|| "?".to_owned());
    if placement.pinned() {
        eprintln!(
            "pinned: server on CPU {}, bench on CPU {}",
            show(&server_cpus),
            show(&bench_cpus)
        );
    } else {
        eprintln!(
            "not pinned: server on CPUs {}, bench on CPUs {}",
            show(&server_cpus),
            show(&bench_cpus)
        );
    }
    let api = Api {
        http,
        base: server.url(""),
    };
    let (cpus_online, cpu_model, mem_total_mib) = Conditions::machine();
    let (commit, date) = (report::commit(), report::utc_now());
    let conditions = |setup_secs: f64| Conditions {
        commit: commit.clone(),
        server_bin: hearth_bin.display().to_string(),
        date: date.clone(),
        cpus_online,
        cpu_model: cpu_model.clone(),
        mem_total_mib,
        load_before,
        pinned: placement.pinned(),
        server_cpus: server_cpus.clone(),
        bench_cpus: bench_cpus.clone(),
        profile: args.profile.name(),
        key_rotation: args.e2ee.then_some(args.key_rotation),
        pushers: args.pushers,
        quiet_rooms: args.quiet_rooms,
        accounts: args.accounts.name(),
        seed: (args.profile == Profile::Element).then_some(args.seed),
        clients: args.clients,
        rooms: args.rooms,
        rate: args.rate,
        duration: args.duration,
        drain: args.drain,
        messages: schedule.len(),
        setup_secs,
    };
    let load = Load {
        rate: args.rate,
        schedule: schedule.clone(),
        drain: Duration::from_secs_f64(args.drain),
    };
    let pusher_url = gateway.as_ref().map(|g| g.url.clone());
    let outcome = bench(
        &args,
        api,
        &server,
        jwt_secret.as_deref(),
        pusher_url,
        load,
        conditions,
    )
    .await;
    if let Some(gateway) = &gateway {
        eprintln!(
            "push gateway: {} notify requests answered",
            gateway.notifies()
        );
    }
    // Stalls the server noticed (a runtime that ran no task, a slow fsync) and anything
    // else it warned of: the server's side of a slow second in the table.
    let log = server.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    for line in warnings.iter().take(20) {
        eprintln!("server warned: {line}");
    }
    if warnings.len() > 20 {
        eprintln!("server warned {} more times", warnings.len() - 20);
    }
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

/// Sets up users and rooms, measures each transport and prints the table and the JSON
/// lines. Returns whether a transport could not be measured.
async fn bench(
    args: &Args,
    api: Api,
    server: &Server,
    jwt_secret: Option<&str>,
    pusher_url: Option<String>,
    load: Load,
    conditions: impl Fn(f64) -> Conditions,
) -> Result<bool> {
    let started = Instant::now();
    let setup = set_up(args, api, server, jwt_secret, pusher_url.as_deref()).await?;
    let setup_secs = started.elapsed().as_secs_f64();
    eprintln!("set up in {setup_secs:.1} s");
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
    let conditions = conditions(setup_secs);
    report::print_table(&conditions, &setup, &results);
    report::emit_json(&conditions, &setup, &results, args.json_out.as_deref())?;
    Ok(results.iter().any(|(_, r)| r.is_err()))
}

/// Makes the accounts, uploads their filters, creates the rooms and joins each client
/// to its room.
/// Makes `--quiet-rooms` rooms (the first client) and joins every other client to each.
async fn join_quiet_rooms(
    args: &Args,
    api: &Api,
    clients: &[Client],
    rotation: Option<usize>,
) -> Result<()> {
    let Some((creator, others)) = clients.split_first() else {
        return Ok(());
    };
    eprintln!(
        "creating {} quiet rooms and joining every client to each",
        args.quiet_rooms
    );
    let rooms: Vec<String> = futures_util::stream::iter(0..args.quiet_rooms)
        .map(|q| async move {
            api.create_room_with(&creator.token, &format!("quiet {q}"), rotation)
                .await
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let pairs = others
        .iter()
        .flat_map(|client| rooms.iter().map(move |room_id| (client, room_id)));
    join_all(api, pairs).await
}

/// Joins each client to its room, eight at a time.
async fn join_all<'a>(
    api: &Api,
    pairs: impl Iterator<Item = (&'a Client, &'a String)>,
) -> Result<()> {
    let joins: Vec<Result<()>> = futures_util::stream::iter(pairs)
        .map(|(client, room_id)| async move {
            api.join(&client.token, room_id)
                .await
                .with_context(|| format!("{} joining {room_id}", client.user_id))
        })
        .buffer_unordered(8)
        .collect()
        .await;
    joins.into_iter().collect()
}

async fn set_up(
    args: &Args,
    api: Api,
    server: &Server,
    jwt_secret: Option<&str>,
    pusher_url: Option<&str>,
) -> Result<Setup> {
    let started = Instant::now();
    let users: Vec<(String, String, String)> = match jwt_secret {
        Some(secret) => {
            eprintln!("logging {} users in by JWT (creates them)", args.clients);
            // No password hash: the server's work per account is a few writes.
            futures_util::stream::iter(0..args.clients)
                .map(|i| {
                    let api = &api;
                    let token = jwt::token(secret, &format!("bench{i}"));
                    async move { api.login_jwt_device(&token).await }
                })
                .buffered(16)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_>>()?
        }
        None => {
            eprintln!("registering {} users", args.clients);
            // Registration hashes a password (argon2): a few at a time is all two cores
            // take.
            futures_util::stream::iter(0..args.clients)
                .map(|i| {
                    let api = &api;
                    async move { api.register_device(&format!("bench{i}")).await }
                })
                .buffered(4)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_>>()?
        }
    };
    eprintln!(
        "{} accounts in {:.1} s",
        users.len(),
        started.elapsed().as_secs_f64()
    );
    let mut device_ids = Vec::with_capacity(users.len());
    let clients: Vec<Client> = users
        .into_iter()
        .enumerate()
        .map(|(i, (user_id, token, device_id))| {
            device_ids.push(device_id);
            Client {
                user_id,
                token,
                room: i % args.rooms,
            }
        })
        .collect();

    let filters: Vec<String> = match args.profile.uploaded_filter() {
        Some(filter) => {
            eprintln!("uploading each client's sync filter");
            futures_util::stream::iter(&clients)
                .map(|client| {
                    let (api, filter) = (&api, &filter);
                    async move {
                        api.upload_filter(&client.token, &client.user_id, filter)
                            .await
                    }
                })
                .buffered(16)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_>>()?
        }
        None => vec![args.profile.inline_filter().to_owned(); clients.len()],
    };

    eprintln!("creating {} rooms", args.rooms);
    let rotation = args.e2ee.then_some(args.key_rotation);
    let room_ids: Vec<String> = futures_util::stream::iter(&clients[..args.rooms])
        .enumerate()
        .map(|(r, creator)| {
            let api = &api;
            let name = format!("bench {r}");
            async move { api.create_room_with(&creator.token, &name, rotation).await }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;

    eprintln!("joining the other clients to their rooms");
    let pairs = clients[args.rooms..]
        .iter()
        .map(|client| (client, &room_ids[client.room]));
    join_all(&api, pairs).await?;

    if args.quiet_rooms > 0 {
        join_quiet_rooms(args, &api, &clients, rotation).await?;
    }

    if let Some(url) = pusher_url {
        eprintln!("setting an HTTP pusher for each client");
        futures_util::stream::iter(&clients)
            .map(|client| {
                let api = &api;
                async move {
                    api.set_http_pusher(&client.token, &client.user_id, url)
                        .await
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<()>>()?;
    }

    let e2ee = match args.e2ee {
        true => {
            eprintln!("uploading each device's keys");
            let keys = e2ee::Keys::new(&clients, device_ids, args.key_rotation)?;
            keys.upload_all(&api, &clients).await?;
            Some(Arc::new(keys))
        }
        false => None,
    };

    let mut members = vec![0; args.rooms];
    for client in &clients {
        members[client.room] += 1;
    }
    Ok(Setup {
        api,
        server_pid: server.pid(),
        port: server.port,
        clients: Arc::new(clients),
        room_ids,
        members,
        memory: server::memory(server.pid()).ok(),
        profile: args.profile,
        filters,
        e2ee,
    })
}
