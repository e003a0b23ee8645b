//! `hearthctl media ...`: quarantine.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use crate::client::{Client, Failure, enc};
use crate::output::{self, cell};

#[derive(Subcommand, Debug)]
pub enum MediaCommand {
    /// Quarantine media (never served again): one mxc:// URI, a user's uploads or a
    /// room's media
    Quarantine {
        /// mxc://server/mediaId
        #[arg(required_unless_present_any = ["user", "room"], conflicts_with_all = ["user", "room"])]
        uri: Option<String>,
        /// Every upload of this local user
        #[arg(long, conflicts_with = "room")]
        user: Option<String>,
        /// Every piece of media the room's events point at
        #[arg(long)]
        room: Option<String>,
    },
    /// Serve quarantined media again
    Unquarantine { uri: String },
}

fn split_mxc(uri: &str) -> Result<(String, String), Failure> {
    uri.strip_prefix("mxc://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(server, id)| (server.to_owned(), id.to_owned()))
        .ok_or_else(|| Failure::Usage(format!("{uri} is not an mxc://server/mediaId URI")))
}

pub fn run(client: &Client, command: &MediaCommand) -> Result<(), Failure> {
    let (path, what) = match command {
        MediaCommand::Quarantine { uri: Some(uri), .. } => {
            let (server, id) = split_mxc(uri)?;
            (
                format!(
                    "/_synapse/admin/v1/media/quarantine/{}/{}",
                    enc(&server),
                    enc(&id)
                ),
                format!("{uri}: quarantined"),
            )
        }
        MediaCommand::Quarantine {
            user: Some(user), ..
        } => (
            format!(
                "/_synapse/admin/v1/user/{}/media/quarantine",
                enc(&client.user_id(user)?)
            ),
            format!("{user}:"),
        ),
        MediaCommand::Quarantine {
            room: Some(room), ..
        } => (
            format!("/_synapse/admin/v1/room/{}/media/quarantine", enc(room)),
            format!("{room}:"),
        ),
        MediaCommand::Quarantine { .. } => {
            return Err(Failure::Usage(
                "give an mxc:// URI, --user or --room".into(),
            ));
        }
        MediaCommand::Unquarantine { uri } => {
            let (server, id) = split_mxc(uri)?;
            (
                format!(
                    "/_synapse/admin/v1/media/unquarantine/{}/{}",
                    enc(&server),
                    enc(&id)
                ),
                format!("{uri}: no longer quarantined"),
            )
        }
    };
    let answer = client.send(Method::POST, &path, Some(&json!({})))?;
    if client.json {
        output::json(&answer);
    } else if answer.get("num_quarantined").is_some() {
        println!(
            "{what} {} media quarantined",
            cell(&answer["num_quarantined"])
        );
    } else {
        println!("{what}");
    }
    Ok(())
}
