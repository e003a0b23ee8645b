use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hearth::config::{Config, LogFormat, Overrides, options_help};

/// Hearth: a self-hosted Matrix homeserver. With no arguments it serves on
/// http://127.0.0.1:8008 as `localhost:8008`, keeping its data in ./data.
#[derive(Parser)]
#[command(version, after_long_help = options_help())]
struct Args {
    /// TOML configuration file
    #[arg(long, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8008]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory [default: ./data]
    #[arg(long)]
    data: Option<PathBuf>,
    /// The server's Matrix name, as in @user:NAME [default: localhost:8008]
    #[arg(long)]
    server_name: Option<String>,
    /// PEM certificate chain; with --tls-key the listener serves HTTPS
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the --tls-cert certificate
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Check the configuration (file, environment, flags, and the files it names), print
    /// one line saying what is wrong or what would be served, and exit
    #[arg(long)]
    check_config: bool,
}

/// Rust's allocations (request and event JSON, above all) go to mimalloc: under the
/// benchmark's load glibc's malloc and free took about a fifth of the server's CPU.
/// RocksDB, in C++, keeps using glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// glibc raises its mmap threshold after freeing a large block, after which blocks like
/// argon2's 19 MiB or a thumbnail's pixels come from arenas that hold on to the memory:
/// measured here, 40 registrations left the server at 240 MB instead of 29 MB. A fixed
/// threshold keeps large, short-lived buffers mapped and returned on free.
#[cfg(target_env = "gnu")]
fn keep_large_allocations_mapped() {
    // SAFETY: mallopt only adjusts allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(target_env = "gnu"))]
fn keep_large_allocations_mapped() {}

/// mimalloc by default commits the memory of each arena it reserves at once, which cost
/// about 8 MiB of resident memory at idle and 50 MiB under the benchmark's load.
/// Committing on demand keeps the resident size at glibc's, but mimalloc reads that
/// option when the process starts, before `main`: so the server starts itself again
/// (same process ID, arguments and environment) with the option set, unless it is set.
#[cfg(target_os = "linux")]
fn commit_allocator_memory_on_demand() {
    use std::os::unix::process::CommandExt;
    const OPTION: &str = "MIMALLOC_ARENA_EAGER_COMMIT";
    if std::env::var_os(OPTION).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // `exec` only returns on failure; the server then runs with mimalloc's default.
    let _ = std::process::Command::new(exe)
        .args(args)
        .env(OPTION, "0")
        .exec();
}

#[cfg(not(target_os = "linux"))]
fn commit_allocator_memory_on_demand() {}

fn main() -> ExitCode {
    commit_allocator_memory_on_demand();
    keep_large_allocations_mapped();
    let args = Args::parse();
    let config = match Config::load(Overrides {
        config_file: args.config,
        listen: args.listen,
        data: args.data,
        server_name: args.server_name,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
    }) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hearth: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        return match hearth::server::check_config(&config) {
            Ok(summary) => {
                println!("hearth: {summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hearth: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hearth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hearth::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hearth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
