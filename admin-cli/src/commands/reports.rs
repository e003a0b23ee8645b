//! `hearthctl report ...`

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Paging, more_hint, query};
use crate::client::{Client, Failure};
use crate::output::{self, cell, time};

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// List reports of events, rooms and users, newest first
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one report
    Show { id: u64 },
    /// Resolve (delete) a report
    Resolve { id: u64 },
}

pub fn run(client: &Client, command: &ReportCommand) -> Result<(), Failure> {
    match command {
        ReportCommand::List { paging } => {
            let answer = client.get(&format!(
                "/_hearth/admin/v1/reports{}",
                query(&[
                    ("from", Some(paging.from.to_string())),
                    ("limit", Some(paging.limit.to_string())),
                ])
            ))?;
            if client.json {
                output::json(&answer);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = answer["reports"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    vec![
                        cell(&r["id"]),
                        time(&r["received_ts"]),
                        cell(&r["kind"]),
                        target(r),
                        cell(&r["reporter"]),
                        cell(&r["reason"]),
                    ]
                })
                .collect();
            output::table(
                &["id", "received", "kind", "target", "reporter", "reason"],
                &rows,
            );
            more_hint(&answer["next_token"], &answer["total"]);
            Ok(())
        }
        ReportCommand::Show { id } => {
            let report = client.get(&format!("/_hearth/admin/v1/reports/{id}"))?;
            if client.json {
                output::json(&report);
                return Ok(());
            }
            output::fields(&[
                ("id", cell(&report["id"])),
                ("received", time(&report["received_ts"])),
                ("kind", cell(&report["kind"])),
                ("target", target(&report)),
                ("room", cell(&report["room_id"])),
                ("reporter", cell(&report["reporter"])),
                ("reason", cell(&report["reason"])),
            ]);
            Ok(())
        }
        ReportCommand::Resolve { id } => {
            client.send(
                Method::DELETE,
                &format!("/_hearth/admin/v1/reports/{id}"),
                Some(&json!({})),
            )?;
            if client.json {
                output::json(&json!({ "id": id, "resolved": true }));
            } else {
                println!("report {id}: resolved");
            }
            Ok(())
        }
    }
}

/// What the report is about: the event, room or user.
fn target(report: &Value) -> String {
    ["event_id", "user_id", "room_id"]
        .iter()
        .find_map(|k| report[*k].as_str())
        .unwrap_or("-")
        .to_owned()
}
