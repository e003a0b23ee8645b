//! `hearthctl token ...`: registration tokens.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{Client, Failure, enc};
use crate::output::{self, cell, time};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// List registration tokens
    List {
        /// Only tokens that still admit a registration
        #[arg(long, conflicts_with = "invalid")]
        valid: bool,
        /// Only tokens that are used up or expired
        #[arg(long)]
        invalid: bool,
    },
    /// Show one token
    Show { token: String },
    /// Make a token (random unless --token is given)
    Create {
        /// The token itself: A-Z, a-z, 0-9, '.', '_', '~', '-', at most 64
        #[arg(long, conflicts_with = "length")]
        token: Option<String>,
        /// Length of a random token (default 16)
        #[arg(long)]
        length: Option<usize>,
        /// How many registrations it admits (default: no limit)
        #[arg(long)]
        uses: Option<u64>,
        /// How long it stays valid, e.g. 30m, 12h, 7d (default: forever)
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// Change a token's uses or expiry
    Update {
        token: String,
        #[arg(long, conflicts_with = "unlimited_uses")]
        uses: Option<u64>,
        /// Remove the limit on uses
        #[arg(long)]
        unlimited_uses: bool,
        #[arg(long, value_parser = parse_duration, conflicts_with = "no_expiry")]
        expires_in: Option<Duration>,
        /// Never expire
        #[arg(long)]
        no_expiry: bool,
    },
    /// Revoke (delete) a token
    Revoke { token: String },
}

/// `30m`, `12h`, `7d`, or seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30m, 12h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{text:?} is not a duration like 30m, 12h or 7d")),
    };
    Ok(Duration::from_secs(secs))
}

fn expiry(after: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now + after).as_millis() as u64
}

pub fn run(client: &Client, command: &TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::List { valid, invalid } => {
            let filter = match (valid, invalid) {
                (true, _) => "?valid=true",
                (_, true) => "?valid=false",
                _ => "",
            };
            let answer = client.get(&format!("/_synapse/admin/v1/registration_tokens{filter}"))?;
            if client.json {
                output::json(&answer);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = answer["registration_tokens"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    vec![
                        cell(&t["token"]),
                        cell(&t["completed"]),
                        uses(&t["uses_allowed"]),
                        time(&t["expiry_time"]),
                    ]
                })
                .collect();
            output::table(&["token", "used", "allowed", "expires"], &rows);
            Ok(())
        }
        TokenCommand::Show { token } => {
            let answer = client.get(&one(token))?;
            show(client, &answer);
            Ok(())
        }
        TokenCommand::Create {
            token,
            length,
            uses,
            expires_in,
        } => {
            let mut body = Map::new();
            if let Some(token) = token {
                body.insert("token".into(), json!(token));
            }
            if let Some(length) = length {
                body.insert("length".into(), json!(length));
            }
            if let Some(uses) = uses {
                body.insert("uses_allowed".into(), json!(uses));
            }
            if let Some(after) = expires_in {
                body.insert("expiry_time".into(), json!(expiry(*after)));
            }
            let answer = client.send(
                Method::POST,
                "/_synapse/admin/v1/registration_tokens/new",
                Some(&Value::Object(body)),
            )?;
            show(client, &answer);
            Ok(())
        }
        TokenCommand::Update {
            token,
            uses,
            unlimited_uses,
            expires_in,
            no_expiry,
        } => {
            let mut body = Map::new();
            if let Some(uses) = uses {
                body.insert("uses_allowed".into(), json!(uses));
            } else if *unlimited_uses {
                body.insert("uses_allowed".into(), Value::Null);
            }
            if let Some(after) = expires_in {
                body.insert("expiry_time".into(), json!(expiry(*after)));
            } else if *no_expiry {
                body.insert("expiry_time".into(), Value::Null);
            }
            if body.is_empty() {
                return Err(Failure::Usage(
                    "nothing to change: give --uses, --unlimited-uses, --expires-in or --no-expiry"
                        .into(),
                ));
            }
            let answer = client.send(Method::PUT, &one(token), Some(&Value::Object(body)))?;
            show(client, &answer);
            Ok(())
        }
        TokenCommand::Revoke { token } => {
            client.send(Method::DELETE, &one(token), None)?;
            if client.json {
                output::json(&json!({}));
            } else {
                println!("{token}: revoked");
            }
            Ok(())
        }
    }
}

fn one(token: &str) -> String {
    format!("/_synapse/admin/v1/registration_tokens/{}", enc(token))
}

fn uses(value: &Value) -> String {
    if value.is_null() {
        "unlimited".into()
    } else {
        cell(value)
    }
}

fn show(client: &Client, token: &Value) {
    if client.json {
        output::json(token);
        return;
    }
    output::fields(&[
        ("token", cell(&token["token"])),
        ("used", cell(&token["completed"])),
        ("allowed", uses(&token["uses_allowed"])),
        ("expires", time(&token["expiry_time"])),
    ]);
}
