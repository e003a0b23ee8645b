//! `hearthctl`: administer a Hearth server over its admin API. Every failure is one line
//! on stderr and a non-zero exit code.

mod client;
mod commands;
mod output;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use client::{Client, Failure};

/// Administer a Hearth server: users, rooms, content reports and the audit log.
///
/// Talks to a running server (`--server`, default from `hearthctl login`, else
/// http://127.0.0.1:8008) with a server admin's access token, taken from `--token-file`,
/// else `HEARTHCTL_TOKEN`, else the file `hearthctl login` writes. The very first admin
/// is made without a server: `hearthctl --data ./data user create alice --admin`.
#[derive(Parser)]
#[command(name = "hearthctl", version, propagate_version = true)]
pub struct Cli {
    /// The server's base URL, e.g. https://matrix.example.org
    #[arg(long, global = true, env = "HEARTHCTL_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Trust the certificate authorities in this PEM file besides the usual ones (for a
    /// server with a certificate from a private CA)
    #[arg(long, global = true, env = "HEARTHCTL_CA_FILE", value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Read the access token from this file
    #[arg(long, global = true, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    json: bool,
    /// Work on this data directory directly instead of a running server (only for
    /// `user create`; refused while a server holds it)
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    /// With --data: the server's configuration file, for its server name and settings
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With --data: the server's name, as in @user:NAME [default: localhost:8008]
    #[arg(long, global = true, value_name = "NAME")]
    server_name: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Log in as a server admin and keep the token for later commands
    Login(commands::session::LoginArgs),
    /// Forget the token `hearthctl login` kept
    Logout,
    /// Accounts
    #[command(subcommand)]
    User(commands::users::UserCommand),
    /// Rooms
    #[command(subcommand)]
    Room(commands::rooms::RoomCommand),
    /// Content reports
    #[command(subcommand)]
    Report(commands::reports::ReportCommand),
    /// Redact one event, or a user's events in bulk
    #[command(subcommand)]
    Redact(commands::redact::RedactCommand),
    /// Media quarantine
    #[command(subcommand)]
    Media(commands::media::MediaCommand),
    /// Registration tokens
    #[command(subcommand)]
    Token(commands::tokens::TokenCommand),
    /// The server itself
    #[command(subcommand)]
    Server(commands::server::ServerCommand),
    /// Take a live backup of the server's data directory (a RocksDB checkpoint and the
    /// signing key) into <data>/backups/ on the server's machine; prints its path
    Backup,
    /// The log of admin actions
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Print a shell completion script
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("hearthctl: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "hearthctl",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    if cli.data.is_some() {
        return match &cli.command {
            Command::User(commands::users::UserCommand::Create(args)) => {
                commands::offline::create_user(&cli, args)
            }
            _ => Err(Failure::Usage(
                "--data works only with `user create`; other commands need a running server".into(),
            )),
        };
    }
    match &cli.command {
        Command::Login(args) => commands::session::login(&cli, args),
        Command::Logout => commands::session::logout(),
        command => {
            let client = Client::new(&cli)?;
            match command {
                Command::User(c) => commands::users::run(&client, c),
                Command::Room(c) => commands::rooms::run(&client, c),
                Command::Report(c) => commands::reports::run(&client, c),
                Command::Redact(c) => commands::redact::run(&client, c),
                Command::Media(c) => commands::media::run(&client, c),
                Command::Token(c) => commands::tokens::run(&client, c),
                Command::Server(c) => commands::server::run(&client, c),
                Command::Audit(c) => commands::audit::run(&client, c),
                Command::Backup => commands::server::backup(&client),
                Command::Login(_) | Command::Logout | Command::Completions { .. } => Ok(()),
            }
        }
    }
}
