//! `hearthctl redact ...`: one event, or a user's events in bulk.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::rooms::room_id;
use crate::client::{Client, Failure, enc};
use crate::output::{self, cell};

#[derive(Subcommand, Debug)]
pub enum RedactCommand {
    /// Redact one event (sent by you if you are in the room with the power to redact,
    /// else by the room's creator or its most powerful local member)
    Event {
        event_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Redact a user's events: in the rooms given, or in every room they have been in;
    /// runs on the server in the background (survives a restart) and is waited for
    User {
        user: String,
        /// Only in this room (ID or alias); repeat for more
        #[arg(long = "room", value_name = "ROOM")]
        rooms: Vec<String>,
        /// Only events sent at or after this time, in ms since 1970
        #[arg(long, value_name = "MS")]
        since_ts: Option<u64>,
        /// At most this many of the user's latest events per room (server default 1000)
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long)]
        reason: Option<String>,
        /// Print the redact ID and return without waiting
        #[arg(long)]
        no_wait: bool,
    },
}

pub fn run(client: &Client, command: &RedactCommand) -> Result<(), Failure> {
    match command {
        RedactCommand::Event { event_id, reason } => {
            let mut body = Map::new();
            if let Some(reason) = reason {
                body.insert("reason".into(), json!(reason));
            }
            let answer = client.send(
                Method::POST,
                &format!("/_hearth/admin/v1/events/{}/redact", enc(event_id)),
                Some(&Value::Object(body)),
            )?;
            if client.json {
                output::json(&answer);
            } else {
                println!("{event_id}: redacted by {}", cell(&answer["event_id"]));
            }
            Ok(())
        }
        RedactCommand::User {
            user,
            rooms,
            since_ts,
            limit,
            reason,
            no_wait,
        } => {
            let user_id = client.user_id(user)?;
            let mut room_ids = Vec::new();
            for room in rooms {
                room_ids.push(room_id(client, room)?);
            }
            let mut body = Map::new();
            body.insert("rooms".into(), json!(room_ids));
            if let Some(reason) = reason {
                body.insert("reason".into(), json!(reason));
            }
            if let Some(limit) = limit {
                body.insert("limit".into(), json!(limit));
            }
            if let Some(since_ts) = since_ts {
                body.insert("since_ts".into(), json!(since_ts));
            }
            let started = client.send(
                Method::POST,
                &format!("/_synapse/admin/v1/user/{}/redact", enc(&user_id)),
                Some(&Value::Object(body)),
            )?;
            let redact_id = started["redact_id"].as_str().unwrap_or_default();
            if *no_wait {
                if client.json {
                    output::json(&started);
                } else {
                    println!("{redact_id}");
                }
                return Ok(());
            }
            wait(client, &user_id, redact_id)
        }
    }
}

fn wait(client: &Client, user_id: &str, redact_id: &str) -> Result<(), Failure> {
    let path = format!("/_synapse/admin/v1/user/redact_status/{}", enc(redact_id));
    let progress = std::io::stderr().is_terminal() && !client.json;
    let status = loop {
        let status = client.get(&path)?;
        if status["status"] != "active" && status["status"] != "scheduled" {
            break status;
        }
        if progress {
            eprint!(
                "\r{user_id}: redacting — {} so far",
                cell(&status["redacted"])
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if progress {
        eprintln!();
    }
    if client.json {
        output::json(&status);
        return Ok(());
    }
    let failed = status["failed_redactions"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    println!(
        "{user_id}: {} — {} events redacted, {} failed",
        cell(&status["status"]),
        cell(&status["redacted"]),
        failed.len()
    );
    for (event_id, why) in failed {
        println!("  {event_id}: {}", cell(&why));
    }
    Ok(())
}
