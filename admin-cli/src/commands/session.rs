//! `hearthctl login` and `logout`: keeping a server admin's access token.

use reqwest::Method;
use serde_json::json;

use super::PasswordArgs;
use crate::Cli;
use crate::client::{Failure, call, http_client, server_url};
use crate::token::{self, Session};

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The admin's user name or user ID
    #[arg(long)]
    pub user: String,
    #[command(flatten)]
    pub password: PasswordArgs,
}

pub fn login(cli: &Cli, args: &LoginArgs) -> Result<(), Failure> {
    let password = args.password.read()?;
    let http = http_client(cli)?;
    let server = server_url(cli, None);
    let body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": args.user },
        "password": password,
        "initial_device_display_name": "hearthctl",
    });
    let answer = call(
        &http,
        &server,
        Method::POST,
        "/_matrix/client/v3/login",
        None,
        Some(&body),
    )?;
    let access_token = answer["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let user_id = answer["user_id"].as_str().unwrap_or_default().to_owned();
    // Only an admin's token is worth keeping.
    let check = call(
        &http,
        &server,
        Method::GET,
        "/_synapse/admin/v1/server_version",
        Some(&access_token),
        None,
    );
    if let Err(failure) = check {
        let _ = call(
            &http,
            &server,
            Method::POST,
            "/_matrix/client/v3/logout",
            Some(&access_token),
            Some(&json!({})),
        );
        return Err(match failure {
            Failure::Server { errcode, .. } if errcode == "M_FORBIDDEN" => {
                Failure::Local(format!("{user_id} is not a server admin"))
            }
            other => other,
        });
    }
    let path = token::save(&Session {
        server: server.clone(),
        user_id: user_id.clone(),
        access_token,
    })?;
    println!(
        "Logged in to {server} as {user_id}; token kept in {}",
        path.display()
    );
    Ok(())
}

pub fn logout() -> Result<(), Failure> {
    if token::remove()? {
        println!("Forgot the kept token");
    } else {
        println!("No token was kept");
    }
    Ok(())
}
