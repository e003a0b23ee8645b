//! `hearthctl user ...`

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Paging, PasswordArgs, more_hint, query};
use crate::client::{Client, Failure, enc};
use crate::output::{self, cell, time, yes_no};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// List and search accounts
    List {
        /// Only users whose ID or display name contains this
        #[arg(long)]
        name: Option<String>,
        /// Include deactivated accounts
        #[arg(long)]
        deactivated: bool,
        /// Only locked accounts
        #[arg(long)]
        locked: bool,
        /// Only server admins
        #[arg(long)]
        admins: bool,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one account: roles, state, devices and rooms
    Show { user: String },
    /// Create an account
    Create(CreateArgs),
    /// Set a new password (logging the user out everywhere unless --keep-devices)
    ResetPassword {
        user: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Keep the user's devices logged in
        #[arg(long)]
        keep_devices: bool,
    },
    /// Log the user out of every device
    Logout { user: String },
    /// Deactivate for good: leaves every room, removes devices and profile
    Deactivate {
        user: String,
        /// Also mark the account erased, as Synapse's GDPR erasure
        #[arg(long)]
        erase: bool,
    },
    /// Lock: every request of the user is refused until unlocked
    Lock { user: String },
    /// Lift a lock
    Unlock { user: String },
    /// Suspend: the user can read but not join, send or change their profile
    Suspend { user: String },
    /// Lift a suspension
    Unsuspend { user: String },
    /// Shadow-ban: the user's messages, invites and typing seem to work but reach nobody
    ShadowBan { user: String },
    /// Lift a shadow-ban
    UnshadowBan { user: String },
    /// Grant the server admin role
    MakeAdmin { user: String },
    /// Revoke the server admin role
    RevokeAdmin { user: String },
    /// Show or set the user's own request rate, in place of the server's `[limits]`
    Ratelimit(RatelimitArgs),
}

#[derive(clap::Args, Debug)]
pub struct RatelimitArgs {
    pub user: String,
    /// Requests a second, after the burst (0: not limited at all)
    #[arg(long, requires = "burst", conflicts_with_all = ["unlimited", "remove"])]
    pub per_second: Option<u32>,
    /// Requests allowed at once
    #[arg(long, requires = "per_second")]
    pub burst: Option<u32>,
    /// Never limit this user
    #[arg(long, conflicts_with = "remove")]
    pub unlimited: bool,
    /// Back to the server's limits
    #[arg(long)]
    pub remove: bool,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The new user's name (local part) or full user ID
    pub user: String,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Make the user a server admin
    #[arg(long)]
    pub admin: bool,
    /// The display name
    #[arg(long)]
    pub display_name: Option<String>,
}

pub fn run(client: &Client, command: &UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::List {
            name,
            deactivated,
            locked,
            admins,
            paging,
        } => list(client, name, *deactivated, *locked, *admins, paging),
        UserCommand::Show { user } => show(client, user),
        UserCommand::Create(args) => create(client, args),
        UserCommand::ResetPassword {
            user,
            password,
            keep_devices,
        } => {
            let user_id = client.user_id(user)?;
            let body = json!({ "new_password": password.read()?, "logout_devices": !keep_devices });
            client.send(
                Method::POST,
                &format!("/_synapse/admin/v1/reset_password/{}", enc(&user_id)),
                Some(&body),
            )?;
            done(client, &user_id, "password reset", json!({}))
        }
        UserCommand::Logout { user } => {
            let user_id = client.user_id(user)?;
            let answer = client.send(
                Method::POST,
                &format!("/_hearth/admin/v1/users/{}/logout", enc(&user_id)),
                Some(&json!({})),
            )?;
            let what = format!(
                "logged out of {} devices",
                cell(&answer["devices_logged_out"])
            );
            done(client, &user_id, &what, answer)
        }
        UserCommand::Deactivate { user, erase } => {
            let user_id = client.user_id(user)?;
            client.send(
                Method::POST,
                &format!("/_synapse/admin/v1/deactivate/{}", enc(&user_id)),
                Some(&json!({ "erase": erase })),
            )?;
            done(client, &user_id, "deactivated", json!({ "erased": erase }))
        }
        UserCommand::Lock { user } => flag(client, user, "lock", "locked", true),
        UserCommand::Unlock { user } => flag(client, user, "lock", "locked", false),
        UserCommand::Suspend { user } => flag(client, user, "suspend", "suspended", true),
        UserCommand::Unsuspend { user } => flag(client, user, "suspend", "suspended", false),
        UserCommand::ShadowBan { user } => shadow_ban(client, user, true),
        UserCommand::UnshadowBan { user } => shadow_ban(client, user, false),
        UserCommand::MakeAdmin { user } => role(client, user, true),
        UserCommand::RevokeAdmin { user } => role(client, user, false),
        UserCommand::Ratelimit(args) => ratelimit(client, args),
    }
}

/// Synapse's `override_ratelimit`: GET shows it (`{}` when none), POST sets it, DELETE
/// removes it.
fn ratelimit(client: &Client, args: &RatelimitArgs) -> Result<(), Failure> {
    let user_id = client.user_id(&args.user)?;
    let path = format!(
        "/_synapse/admin/v1/users/{}/override_ratelimit",
        enc(&user_id)
    );
    let answer = if args.remove {
        client.send(Method::DELETE, &path, None)?
    } else if args.unlimited {
        let body = json!({ "messages_per_second": 0, "burst_count": 0 });
        client.send(Method::POST, &path, Some(&body))?
    } else if let (Some(per_second), Some(burst)) = (args.per_second, args.burst) {
        let body = json!({ "messages_per_second": per_second, "burst_count": burst });
        client.send(Method::POST, &path, Some(&body))?
    } else {
        client.get(&path)?
    };
    let what = match (
        answer["messages_per_second"].as_u64(),
        answer["burst_count"].as_u64(),
    ) {
        (Some(0), _) => "not rate-limited".to_owned(),
        (Some(rate), Some(burst)) => format!("limited to {rate} requests a second, burst {burst}"),
        _ => "the server's limits".to_owned(),
    };
    done(client, &user_id, &what, answer)
}

/// Synapse's shadow-ban: POST sets it, DELETE lifts it; both answer `{}`.
fn shadow_ban(client: &Client, user: &str, on: bool) -> Result<(), Failure> {
    let user_id = client.user_id(user)?;
    let method = if on { Method::POST } else { Method::DELETE };
    client.send(
        method,
        &format!("/_synapse/admin/v1/users/{}/shadow_ban", enc(&user_id)),
        None,
    )?;
    let what = if on {
        "shadow-banned"
    } else {
        "shadow-ban lifted"
    };
    done(client, &user_id, what, json!({ "shadow_banned": on }))
}

/// Reports a change: a line for people, the answer for `--json`.
fn done(client: &Client, user_id: &str, what: &str, answer: Value) -> Result<(), Failure> {
    if client.json {
        let mut answer = answer;
        if let Some(map) = answer.as_object_mut() {
            map.insert("user_id".into(), json!(user_id));
        }
        output::json(&answer);
    } else {
        println!("{user_id}: {what}");
    }
    Ok(())
}

fn list(
    client: &Client,
    name: &Option<String>,
    deactivated: bool,
    locked: bool,
    admins: bool,
    paging: &Paging,
) -> Result<(), Failure> {
    let path = format!(
        "/_synapse/admin/v2/users{}",
        query(&[
            ("from", Some(paging.from.to_string())),
            ("limit", Some(paging.limit.to_string())),
            ("name", name.clone()),
            ("deactivated", deactivated.then(|| "true".into())),
            ("locked", locked.then(|| "true".into())),
            ("admins", admins.then(|| "true".into())),
        ])
    );
    let answer = client.get(&path)?;
    if client.json {
        output::json(&answer);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = answer["users"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|u| {
            vec![
                cell(&u["name"]),
                cell(&u["displayname"]),
                yes_no(&u["admin"]),
                state(u),
                time(&u["creation_ts"]),
                time(&u["last_seen_ts"]),
            ]
        })
        .collect();
    output::table(
        &[
            "user",
            "display name",
            "admin",
            "state",
            "created",
            "last seen",
        ],
        &rows,
    );
    more_hint(&answer["next_token"], &answer["total"]);
    Ok(())
}

/// `active`, or what is unusual about the account.
fn state(user: &Value) -> String {
    let marks: Vec<&str> = [
        ("deactivated", "deactivated"),
        ("erased", "erased"),
        ("locked", "locked"),
        ("suspended", "suspended"),
        ("shadow_banned", "shadow-banned"),
    ]
    .into_iter()
    .filter(|(key, _)| user[*key].as_bool().unwrap_or(false))
    .map(|(_, label)| label)
    .collect();
    if marks.is_empty() {
        "active".into()
    } else {
        marks.join(", ")
    }
}

fn show(client: &Client, user: &str) -> Result<(), Failure> {
    let user_id = client.user_id(user)?;
    let account = client.get(&format!("/_synapse/admin/v2/users/{}", enc(&user_id)))?;
    let devices = client.get(&format!(
        "/_synapse/admin/v2/users/{}/devices",
        enc(&user_id)
    ))?;
    let rooms = client.get(&format!(
        "/_synapse/admin/v1/users/{}/joined_rooms",
        enc(&user_id)
    ))?;
    if client.json {
        output::json(&json!({
            "user": account,
            "devices": devices["devices"],
            "joined_rooms": rooms["joined_rooms"],
        }));
        return Ok(());
    }
    output::fields(&[
        ("user", cell(&account["name"])),
        ("display name", cell(&account["displayname"])),
        ("avatar", cell(&account["avatar_url"])),
        ("admin", yes_no(&account["admin"])),
        ("state", state(&account)),
        ("locked", yes_no(&account["locked"])),
        ("suspended", yes_no(&account["suspended"])),
        ("shadow-banned", yes_no(&account["shadow_banned"])),
        ("created", time(&account["creation_ts"])),
        ("last seen", time(&account["last_seen_ts"])),
    ]);
    println!();
    let rows: Vec<Vec<String>> = devices["devices"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            vec![
                cell(&d["device_id"]),
                cell(&d["display_name"]),
                time(&d["last_seen_ts"]),
                cell(&d["last_seen_ip"]),
            ]
        })
        .collect();
    output::table(&["device", "name", "last seen", "ip"], &rows);
    println!();
    let rows: Vec<Vec<String>> = rooms["joined_rooms"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| vec![cell(r)])
        .collect();
    output::table(&["joined room"], &rows);
    Ok(())
}

fn create(client: &Client, args: &CreateArgs) -> Result<(), Failure> {
    let user_id = client.user_id(&args.user)?;
    let path = format!("/_synapse/admin/v2/users/{}", enc(&user_id));
    // PUT also modifies; refuse to touch an account that exists.
    match client.get(&path) {
        Ok(_) => return Err(Failure::Local(format!("{user_id} already exists"))),
        Err(Failure::Server { errcode, .. }) if errcode == "M_NOT_FOUND" => {}
        Err(other) => return Err(other),
    }
    let mut body = json!({ "password": args.password.read()?, "admin": args.admin });
    if let Some(name) = &args.display_name {
        body["displayname"] = json!(name);
    }
    let answer = client.send(Method::PUT, &path, Some(&body))?;
    let what = if args.admin {
        "created (server admin)"
    } else {
        "created"
    };
    done(client, &user_id, what, answer)
}

fn flag(client: &Client, user: &str, endpoint: &str, field: &str, on: bool) -> Result<(), Failure> {
    let user_id = client.user_id(user)?;
    let answer = client.send(
        Method::PUT,
        &format!("/_matrix/client/v1/admin/{endpoint}/{}", enc(&user_id)),
        Some(&json!({ field: on })),
    )?;
    let what = if on {
        field.to_owned()
    } else {
        format!("no longer {field}")
    };
    done(client, &user_id, &what, answer)
}

fn role(client: &Client, user: &str, admin: bool) -> Result<(), Failure> {
    let user_id = client.user_id(user)?;
    client.send(
        Method::PUT,
        &format!("/_synapse/admin/v1/users/{}/admin", enc(&user_id)),
        Some(&json!({ "admin": admin })),
    )?;
    let what = if admin {
        "is now a server admin"
    } else {
        "is no longer a server admin"
    };
    done(client, &user_id, what, json!({ "admin": admin }))
}
