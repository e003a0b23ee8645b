//! `hearthctl server ...` and `hearthctl backup`

use clap::Subcommand;

use crate::client::{Client, Failure};
use crate::output::{self, cell};

#[derive(Subcommand, Debug)]
pub enum ServerCommand {
    /// The server's name and version
    Version,
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
    }
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
