//! `hearthctl audit ...`

use clap::Subcommand;

use super::{Paging, more_hint, query};
use crate::client::{Client, Failure};
use crate::output::{self, cell, time};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List admin actions, newest first
    List {
        /// Only actions by this admin (full user ID)
        #[arg(long)]
        admin: Option<String>,
        /// Only this action, e.g. user.lock, room.delete
        #[arg(long)]
        action: Option<String>,
        /// Only actions on this user, room or report
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
}

pub fn run(client: &Client, command: &AuditCommand) -> Result<(), Failure> {
    let AuditCommand::List {
        admin,
        action,
        target,
        paging,
    } = command;
    let answer = client.get(&format!(
        "/_hearth/admin/v1/audit{}",
        query(&[
            ("from", Some(paging.from.to_string())),
            ("limit", Some(paging.limit.to_string())),
            ("admin", admin.clone()),
            ("action", action.clone()),
            ("target", target.clone()),
        ])
    ))?;
    if client.json {
        output::json(&answer);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = answer["entries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let admin = match &e["admin"] {
                serde_json::Value::Null => "(offline)".to_owned(),
                other => cell(other),
            };
            vec![
                cell(&e["id"]),
                time(&e["ts"]),
                admin,
                cell(&e["action"]),
                cell(&e["target"]),
                cell(&e["detail"]),
            ]
        })
        .collect();
    output::table(
        &["id", "when", "admin", "action", "target", "detail"],
        &rows,
    );
    more_hint(&answer["next_token"], &answer["total"]);
    Ok(())
}
