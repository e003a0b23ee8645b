//! `hearthctl room ...`

use std::io::IsTerminal;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Paging, more_hint, query};
use crate::client::{Client, Failure, enc};
use crate::output::{self, cell, yes_no};

#[derive(Subcommand, Debug)]
pub enum RoomCommand {
    /// List and search rooms
    List {
        /// Only rooms whose name, canonical alias or ID contains this
        #[arg(long)]
        search: Option<String>,
        /// name, canonical_alias, joined_members, joined_local_members, version,
        /// creator, encryption, federatable, public, join_rules, guest_access,
        /// history_visibility or state_events
        #[arg(long)]
        order_by: Option<String>,
        /// Reverse the order
        #[arg(long)]
        reverse: bool,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a room (by ID or local alias)
    Show { room: String },
    /// List a room's joined members
    Members { room: String },
    /// List a room's current state events
    State { room: String },
    /// Block a room: nobody on this server can join, knock or be invited (members stay)
    Block { room: String },
    /// Lift a block
    Unblock { room: String },
    /// Make a local user an admin of a room that lost its admins: the local member with
    /// the most power issues the power levels (and invites the user if needed)
    MakeAdmin { room: String, user: String },
    /// Delete a room: every local member leaves, its aliases and directory entry go,
    /// and nobody on this server can join it again
    Delete {
        room: String,
        /// Also block the room (deleted rooms are closed to joins either way; the block
        /// shows in `room show` and can be lifted)
        #[arg(long)]
        block: bool,
        /// Purge the room's history from the store (every event's content pruned)
        #[arg(long)]
        purge: bool,
        /// Move the local members to a new room this local user creates
        #[arg(long, value_name = "USER")]
        new_room_user: Option<String>,
        /// The new room's name (with --new-room-user)
        #[arg(long, requires = "new_room_user")]
        room_name: Option<String>,
        /// The notice the new room starts with (with --new-room-user)
        #[arg(long, requires = "new_room_user")]
        message: Option<String>,
    },
}

pub fn run(client: &Client, command: &RoomCommand) -> Result<(), Failure> {
    match command {
        RoomCommand::List {
            search,
            order_by,
            reverse,
            paging,
        } => list(client, search, order_by, *reverse, paging),
        RoomCommand::Show { room } => show(client, room),
        RoomCommand::Members { room } => members(client, room),
        RoomCommand::State { room } => state(client, room),
        RoomCommand::Block { room } => block(client, room, true),
        RoomCommand::Unblock { room } => block(client, room, false),
        RoomCommand::MakeAdmin { room, user } => make_admin(client, room, user),
        RoomCommand::Delete {
            room,
            block,
            purge,
            new_room_user,
            room_name,
            message,
        } => {
            let mut body = json!({ "block": block, "purge": purge });
            if let Some(user) = new_room_user {
                body["new_room_user_id"] = json!(user);
            }
            if let Some(name) = room_name {
                body["room_name"] = json!(name);
            }
            if let Some(message) = message {
                body["message"] = json!(message);
            }
            delete(client, room, &body)
        }
    }
}

/// A room ID as given, or the room a local alias points to.
pub(crate) fn room_id(client: &Client, room: &str) -> Result<String, Failure> {
    if !room.starts_with('#') {
        return Ok(room.to_owned());
    }
    let answer = client.get(&format!("/_matrix/client/v3/directory/room/{}", enc(room)))?;
    answer["room_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure::Local(format!("the server did not resolve {room}")))
}

fn list(
    client: &Client,
    search: &Option<String>,
    order_by: &Option<String>,
    reverse: bool,
    paging: &Paging,
) -> Result<(), Failure> {
    let path = format!(
        "/_synapse/admin/v1/rooms{}",
        query(&[
            ("from", Some(paging.from.to_string())),
            ("limit", Some(paging.limit.to_string())),
            ("search_term", search.clone()),
            ("order_by", order_by.clone()),
            ("dir", reverse.then(|| "b".into())),
        ])
    );
    let answer = client.get(&path)?;
    if client.json {
        output::json(&answer);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = answer["rooms"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            vec![
                cell(&r["room_id"]),
                cell(&r["name"]),
                cell(&r["canonical_alias"]),
                cell(&r["joined_members"]),
                cell(&r["joined_local_members"]),
                cell(&r["version"]),
                cell(&r["creator"]),
                yes_no(&r["public"]),
                if r["deleted"].as_bool().unwrap_or(false) {
                    "deleted"
                } else {
                    ""
                }
                .into(),
            ]
        })
        .collect();
    output::table(
        &[
            "room", "name", "alias", "members", "local", "version", "creator", "public", "",
        ],
        &rows,
    );
    more_hint(&answer["next_batch"], &answer["total_rooms"]);
    Ok(())
}

fn show(client: &Client, room: &str) -> Result<(), Failure> {
    let room_id = room_id(client, room)?;
    let answer = client.get(&format!("/_synapse/admin/v1/rooms/{}", enc(&room_id)))?;
    if client.json {
        output::json(&answer);
        return Ok(());
    }
    let field = |key: &str| cell(&answer[key]);
    output::fields(&[
        ("room", field("room_id")),
        ("name", field("name")),
        ("topic", field("topic")),
        ("alias", field("canonical_alias")),
        ("version", field("version")),
        ("creator", field("creator")),
        ("members", field("joined_members")),
        ("local members", field("joined_local_members")),
        ("invited", field("invited_members")),
        ("public", yes_no(&answer["public"])),
        ("join rule", field("join_rules")),
        ("history", field("history_visibility")),
        ("encryption", field("encryption")),
        ("federatable", yes_no(&answer["federatable"])),
        ("state events", field("state_events")),
        ("blocked", yes_no(&answer["blocked"])),
        ("deleted", yes_no(&answer["deleted"])),
    ]);
    Ok(())
}

fn members(client: &Client, room: &str) -> Result<(), Failure> {
    let room_id = room_id(client, room)?;
    let answer = client.get(&format!(
        "/_synapse/admin/v1/rooms/{}/members",
        enc(&room_id)
    ))?;
    if client.json {
        output::json(&answer);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = answer["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| vec![cell(m)])
        .collect();
    output::table(&["member"], &rows);
    Ok(())
}

fn state(client: &Client, room: &str) -> Result<(), Failure> {
    let room_id = room_id(client, room)?;
    let answer = client.get(&format!("/_synapse/admin/v1/rooms/{}/state", enc(&room_id)))?;
    if client.json {
        output::json(&answer);
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = answer["state"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            vec![
                cell(&e["type"]),
                cell(&e["state_key"]),
                cell(&e["sender"]),
                e["content"].to_string(),
            ]
        })
        .collect();
    rows.sort();
    output::table(&["type", "state key", "sender", "content"], &rows);
    Ok(())
}

fn block(client: &Client, room: &str, block: bool) -> Result<(), Failure> {
    let room_id = room_id(client, room)?;
    let answer = client.send(
        Method::PUT,
        &format!("/_synapse/admin/v1/rooms/{}/block", enc(&room_id)),
        Some(&json!({ "block": block })),
    )?;
    if client.json {
        output::json(&answer);
    } else if block {
        println!("{room_id}: blocked");
    } else {
        println!("{room_id}: no longer blocked");
    }
    Ok(())
}

fn make_admin(client: &Client, room: &str, user: &str) -> Result<(), Failure> {
    let room_id = room_id(client, room)?;
    let user_id = client.user_id(user)?;
    client.send(
        Method::POST,
        &format!("/_synapse/admin/v1/rooms/{}/make_room_admin", enc(&room_id)),
        Some(&json!({ "user_id": user_id })),
    )?;
    if client.json {
        output::json(&json!({ "room_id": room_id, "user_id": user_id }));
    } else {
        println!("{room_id}: {user_id} is now an admin");
    }
    Ok(())
}

fn delete(client: &Client, room: &str, body: &Value) -> Result<(), Failure> {
    let room_id = room_id(client, room)?;
    let started = client.send(
        Method::DELETE,
        &format!("/_synapse/admin/v2/rooms/{}", enc(&room_id)),
        Some(body),
    )?;
    let delete_id = started["delete_id"].as_str().unwrap_or_default();
    let status_path = format!("/_synapse/admin/v2/rooms/delete_status/{}", enc(delete_id));
    // The server deletes in the background; on a terminal, a progress line while it does.
    let progress = std::io::stderr().is_terminal() && !client.json;
    let count = |v: &Value| v.as_array().map_or(0, Vec::len);
    let status = loop {
        let status = client.get(&status_path)?;
        if status["status"] != "shutting_down" {
            break status;
        }
        if progress {
            let shutdown = &status["shutdown_room"];
            eprint!(
                "\r{room_id}: deleting — {} members removed",
                count(&shutdown["kicked_users"]) + count(&shutdown["failed_to_kick_users"])
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
    let shutdown = &status["shutdown_room"];
    println!(
        "{room_id}: {} — {} members removed, {} could not be, {} aliases removed",
        cell(&status["status"]),
        count(&shutdown["kicked_users"]),
        count(&shutdown["failed_to_kick_users"]),
        count(&shutdown["local_aliases"]),
    );
    if let Some(new_room) = shutdown["new_room_id"].as_str() {
        println!("members moved to {new_room}");
    }
    Ok(())
}
