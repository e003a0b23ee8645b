//! `hearthctl server ...` and `hearthctl backup`

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Client, Failure, enc};
use crate::output::{self, cell, time};

#[derive(Subcommand, Debug)]
pub enum ServerCommand {
    /// The server's name and version
    Version,
    /// Accounts, active users, rooms, events, media bytes and open sync connections
    Stats,
    /// Send a server notice (from the `[server_notices]` account, into the user's
    /// notices room) to a local user, or to every local user with --all
    Notice {
        /// USER TEXT: the user (ID or local part) and the notice's text; with --all,
        /// only TEXT
        #[arg(required = true, num_args = 1..=2, value_names = ["USER", "TEXT"])]
        words: Vec<String>,
        /// Every local user (not deactivated)
        #[arg(long)]
        all: bool,
    },
    /// Other servers this one sends to, with their retry state
    Destinations {
        /// Forget this destination's failures and try it again now
        #[arg(long, value_name = "SERVER")]
        reset: Option<String>,
    },
}

pub fn run(client: &Client, command: &ServerCommand) -> Result<(), Failure> {
    match command {
        ServerCommand::Version => {
            let answer = client.get("/_synapse/admin/v1/server_version")?;
            if client.json {
                output::json(&answer);
            } else {
                println!("{}", cell(&answer["server_version"]));
            }
            Ok(())
        }
        ServerCommand::Stats => {
            let answer = client.get("/_hearth/admin/v1/statistics")?;
            if client.json {
                output::json(&answer);
                return Ok(());
            }
            let keys = [
                ("users", "users"),
                ("deactivated users", "deactivated_users"),
                ("active today", "daily_active_users"),
                ("active this month", "monthly_active_users"),
                ("rooms", "rooms"),
                ("events", "events"),
                ("local media bytes", "local_media_bytes"),
                ("remote media bytes", "remote_media_bytes"),
                ("sync connections", "sync_connections"),
            ];
            let pairs: Vec<(&str, String)> = keys
                .iter()
                .map(|(label, key)| (*label, cell(&answer[*key])))
                .collect();
            output::fields(&pairs);
            Ok(())
        }
        ServerCommand::Notice { words, all } => match (words.as_slice(), *all) {
            ([text], true) => notice(client, None, text, true),
            ([user, text], false) => notice(client, Some(user), text, false),
            (_, true) => Err(Failure::Usage("with --all give only the TEXT".into())),
            (_, false) => Err(Failure::Usage("give USER and TEXT (or --all TEXT)".into())),
        },
        ServerCommand::Destinations { reset } => destinations(client, reset.as_deref()),
    }
}

fn send_notice(client: &Client, user_id: &str, text: &str) -> Result<Value, Failure> {
    client.send(
        Method::POST,
        "/_synapse/admin/v1/send_server_notice",
        Some(&json!({
            "user_id": user_id,
            "content": { "msgtype": "m.text", "body": text },
        })),
    )
}

fn notice(client: &Client, user: Option<&str>, text: &str, all: bool) -> Result<(), Failure> {
    let users = if all {
        every_local_user(client)?
    } else {
        vec![client.user_id(user.unwrap_or_default())?]
    };
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    for user_id in users {
        match send_notice(client, &user_id, text) {
            Ok(answer) => sent.push(json!({ "user_id": user_id, "event_id": answer["event_id"] })),
            // With --all, a user who cannot get one (the notices account itself, say)
            // does not stop the rest.
            Err(e) if all => failed.push(json!({ "user_id": user_id, "error": e.to_string() })),
            Err(e) => return Err(e),
        }
    }
    if client.json {
        output::json(&json!({ "sent": sent, "failed": failed }));
    } else {
        for entry in &sent {
            println!(
                "{}: sent {}",
                cell(&entry["user_id"]),
                cell(&entry["event_id"])
            );
        }
        for entry in &failed {
            println!(
                "{}: not sent: {}",
                cell(&entry["user_id"]),
                cell(&entry["error"])
            );
        }
    }
    Ok(())
}

/// Every local account that is not deactivated, page by page.
fn every_local_user(client: &Client) -> Result<Vec<String>, Failure> {
    let mut users = Vec::new();
    let mut from = 0usize;
    loop {
        let page = client.get(&format!(
            "/_synapse/admin/v2/users?from={from}&limit=500&guests=false"
        ))?;
        let entries = page["users"].as_array().cloned().unwrap_or_default();
        users.extend(
            entries
                .iter()
                .filter_map(|u| u["name"].as_str().map(ToOwned::to_owned)),
        );
        match page["next_token"].as_str().and_then(|t| t.parse().ok()) {
            Some(next) if !entries.is_empty() => from = next,
            _ => return Ok(users),
        }
    }
}

fn destinations(client: &Client, reset: Option<&str>) -> Result<(), Failure> {
    if let Some(name) = reset {
        let answer = client.send(
            Method::POST,
            &format!(
                "/_synapse/admin/v1/federation/destinations/{}/reset_connection",
                enc(name)
            ),
            Some(&json!({})),
        )?;
        if client.json {
            output::json(&answer);
        } else {
            println!("{name}: retrying now");
        }
        return Ok(());
    }
    let mut all = Vec::new();
    let mut from = 0usize;
    loop {
        let page = client.get(&format!(
            "/_synapse/admin/v1/federation/destinations?from={from}&limit=500"
        ))?;
        let entries = page["destinations"].as_array().cloned().unwrap_or_default();
        all.extend(entries.iter().cloned());
        match page["next_token"].as_str().and_then(|t| t.parse().ok()) {
            Some(next) if !entries.is_empty() => from = next,
            _ => break,
        }
    }
    if client.json {
        output::json(&json!({ "destinations": all, "total": all.len() }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|d| {
            let failing = d["failure_ts"].is_u64();
            vec![
                cell(&d["destination"]),
                if failing {
                    "failing".into()
                } else {
                    "ok".into()
                },
                time(&d["failure_ts"]),
                if failing {
                    time(&d["retry_last_ts"])
                } else {
                    "-".into()
                },
                if failing {
                    format!("{} s", d["retry_interval"].as_u64().unwrap_or(0) / 1000)
                } else {
                    "-".into()
                },
                cell(&d["last_successful_stream_ordering"]),
            ]
        })
        .collect();
    output::table(
        &[
            "destination",
            "state",
            "failing since",
            "last try",
            "retry in",
            "last sent",
        ],
        &rows,
    );
    Ok(())
}

/// `hearthctl backup`: the path of the new backup on the server's machine.
pub fn backup(client: &Client) -> Result<(), Failure> {
    let answer = client.send(reqwest::Method::POST, "/_hearth/admin/v1/backup", None)?;
    if client.json {
        output::json(&answer);
    } else {
        println!("{}", cell(&answer["path"]));
    }
    Ok(())
}
