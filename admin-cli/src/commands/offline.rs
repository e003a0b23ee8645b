//! `hearthctl --data DIR user create NAME --admin`: the first admin, made in the store
//! directly. Refused with one line while a server holds the data directory.

use hearth::config::{Config, Overrides};

use super::users::CreateArgs;
use crate::Cli;
use crate::client::Failure;
use crate::output;

pub fn create_user(cli: &Cli, args: &CreateArgs) -> Result<(), Failure> {
    if args.display_name.is_some() {
        return Err(Failure::Usage(
            "--display-name needs a running server; set it later with the client".into(),
        ));
    }
    let config = Config::load(Overrides {
        config_file: cli.config.clone(),
        listen: None,
        data: cli.data.clone(),
        server_name: cli.server_name.clone(),
        tls_cert: None,
        tls_key: None,
    })
    .map_err(|e| Failure::Local(e.to_string()))?;
    let password = args.password.read()?;
    let localpart = args
        .user
        .strip_prefix('@')
        .map(|id| id.split(':').next().unwrap_or_default())
        .unwrap_or(&args.user);
    let user_id =
        hearth::service::admin::offline::create_user(&config, localpart, &password, args.admin)
            .map_err(Failure::Local)?;
    if cli.json {
        output::json(&serde_json::json!({ "user_id": user_id, "admin": args.admin }));
    } else {
        let role = if args.admin { " (server admin)" } else { "" };
        println!("{user_id}: created{role} in {}", config.data.display());
    }
    Ok(())
}
