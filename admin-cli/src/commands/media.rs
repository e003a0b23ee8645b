//! `hearthctl media ...`: quarantine and deletion.

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
    /// Delete this server's media for good (its file too, unless other media has the
    /// same bytes): one mxc:// URI, a user's uploads, or media uploaded before a time
    Delete {
        /// mxc://server/mediaId
        #[arg(required_unless_present_any = ["user", "before_ts"], conflicts_with_all = ["user", "before_ts"])]
        uri: Option<String>,
        /// The uploads of this local user, oldest first
        #[arg(long, conflicts_with = "before_ts")]
        user: Option<String>,
        /// With --user: at most this many (default 100)
        #[arg(long, requires = "user")]
        limit: Option<u64>,
        /// Media uploaded before this time, in ms since 1970
        #[arg(long)]
        before_ts: Option<u64>,
        /// With --before-ts: only media larger than this many bytes
        #[arg(long, requires = "before_ts")]
        size_gt: Option<u64>,
        /// With --before-ts: also media that is a user's or a room's avatar
        #[arg(long, requires = "before_ts")]
        include_avatars: bool,
    },
    /// Delete the cached copies of other servers' media fetched before a time (they are
    /// fetched again when asked for)
    PurgeRemote {
        /// Fetched before this time, in ms since 1970
        #[arg(long, value_name = "MS")]
        before_ts: u64,
    },
}

fn split_mxc(uri: &str) -> Result<(String, String), Failure> {
    uri.strip_prefix("mxc://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(server, id)| (server.to_owned(), id.to_owned()))
        .ok_or_else(|| Failure::Usage(format!("{uri} is not an mxc://server/mediaId URI")))
}

fn delete(client: &Client, command: &MediaCommand) -> Result<(), Failure> {
    let MediaCommand::Delete {
        uri,
        user,
        limit,
        before_ts,
        size_gt,
        include_avatars,
    } = command
    else {
        unreachable!("only called for delete");
    };
    let (method, path) = match (uri, user, before_ts) {
        (Some(uri), _, _) => {
            let (server, id) = split_mxc(uri)?;
            (
                Method::DELETE,
                format!("/_synapse/admin/v1/media/{}/{}", enc(&server), enc(&id)),
            )
        }
        (None, Some(user), _) => {
            let mut path = format!(
                "/_synapse/admin/v1/users/{}/media",
                enc(&client.user_id(user)?)
            );
            if let Some(limit) = limit {
                path.push_str(&format!("?limit={limit}"));
            }
            (Method::DELETE, path)
        }
        (None, None, Some(before_ts)) => (
            Method::POST,
            format!(
                "/_synapse/admin/v1/media/delete?before_ts={before_ts}&size_gt={}&keep_profiles={}",
                size_gt.unwrap_or(0),
                !include_avatars
            ),
        ),
        (None, None, None) => {
            return Err(Failure::Usage(
                "give an mxc:// URI, --user or --before-ts".into(),
            ));
        }
    };
    let body = json!({});
    let answer = client.send(
        method.clone(),
        &path,
        (method == Method::POST).then_some(&body),
    )?;
    if client.json {
        output::json(&answer);
    } else {
        println!("{} media deleted", cell(&answer["total"]));
        for id in answer["deleted_media"].as_array().into_iter().flatten() {
            println!("  {}", cell(id));
        }
    }
    Ok(())
}

pub fn run(client: &Client, command: &MediaCommand) -> Result<(), Failure> {
    let (path, what) = match command {
        MediaCommand::Delete { .. } => return delete(client, command),
        MediaCommand::PurgeRemote { before_ts } => {
            let answer = client.send(
                Method::POST,
                &format!("/_synapse/admin/v1/purge_media_cache?before_ts={before_ts}"),
                Some(&json!({})),
            )?;
            if client.json {
                output::json(&answer);
            } else {
                println!("{} cached remote media deleted", cell(&answer["deleted"]));
            }
            return Ok(());
        }
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
