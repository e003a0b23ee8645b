//! Administration without a running server: `hearthctl --data DIR user create NAME
//! --admin` makes the first admin by opening the store directly. RocksDB's lock makes
//! this refuse while a server holds the data directory.

use ruma::{OwnedUserId, ServerName};
use serde_json::Value;

use crate::config::Config;
use crate::service::users::validate_localpart;
use crate::service::{now_ms, password, profile};
use crate::store::{AuditRecord, Store, StoreError, UserRecord};

/// Creates an account in the store of `config.data`. The error is one line for a person.
pub fn create_user(
    config: &Config,
    localpart: &str,
    password: &str,
    admin: bool,
) -> Result<OwnedUserId, String> {
    let server_name = ServerName::parse(&config.server_name)
        .map_err(|e| format!("invalid server name {}: {e}", config.server_name))?;
    let user_id = validate_localpart(&localpart.to_lowercase(), &server_name)
        .map_err(|e| e.message.into_owned())?;
    let min = config.registration.min_password_length;
    if password.chars().count() < min {
        return Err(format!("passwords must be at least {min} characters long"));
    }
    // Where `server::run` keeps the store.
    let store = match Store::open(&config.data.join("db"), config.sync_writes) {
        Ok(store) => store,
        Err(StoreError::Locked(_)) => {
            return Err(format!(
                "the data directory {} is in use by a running hearth; stop it first, or create the user through the admin API (hearthctl --server URL user create)",
                config.data.display()
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    if store
        .user(user_id.as_str())
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err(format!("{user_id} already exists"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let password_hash = runtime
        .block_on(password::hash(password.to_owned()))
        .map_err(|e| e.message.into_owned())?;
    let now = now_ms();
    let mut batch = store.batch();
    let write = |batch: &mut crate::store::Batch<'_>| -> crate::store::StoreResult<()> {
        batch.put_user(
            user_id.as_str(),
            &UserRecord {
                password_hash: Some(password_hash),
                created_ts: now,
                deactivated: false,
                admin,
                locked: false,
                suspended: false,
                shadow_banned: false,
                erased: false,
                ratelimit_override: None,
                guest: false,
            },
        )?;
        batch.put_profile_field(
            user_id.as_str(),
            profile::DISPLAYNAME,
            &Value::String(user_id.localpart().to_owned()),
        )
    };
    write(&mut batch).map_err(|e| e.to_string())?;
    store.write(batch).map_err(|e| e.to_string())?;
    super::audit::append_offline(
        &store,
        &AuditRecord {
            admin: None,
            action: "user.create".into(),
            target: user_id.to_string(),
            detail: Some(format!("offline, admin={admin}")),
            ts: now,
        },
    )
    .map_err(|e| e.to_string())?;
    store.flush().map_err(|e| e.to_string())?;
    Ok(user_id)
}
