//! The client-server API (`/_matrix/client/...`).

mod account;
mod account_data;
mod dehydrated_device;
mod devices;
mod directory;
mod discovery;
mod events;
mod gifs;
mod initial_sync;
mod key_backup;
mod keys;
mod login;
pub(crate) mod media;
mod notifications;
mod openid;
mod presence;
mod profile;
mod push_rules;
mod register;
mod reports;
mod rooms;
pub mod search;
mod sliding_sync;
mod sliding_sync_ws;
mod sync;
pub mod sync_ws;
mod sync_ws_auth;
mod threepid;
mod to_device;
mod user_directory;

use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(discovery::routes())
        .merge(register::routes())
        .merge(login::routes())
        .merge(media::routes())
        .merge(account::routes())
        .merge(threepid::routes())
        .merge(account_data::routes())
        .merge(devices::routes())
        .merge(dehydrated_device::routes())
        .merge(rooms::routes())
        .merge(directory::routes())
        .merge(sync::routes())
        .merge(initial_sync::routes())
        .merge(events::routes())
        .merge(sync_ws::routes())
        .merge(sliding_sync::routes())
        .merge(presence::routes())
        .merge(profile::routes())
        .merge(push_rules::routes())
        .merge(notifications::routes())
        .merge(user_directory::routes())
        .merge(reports::routes())
        .merge(search::routes())
        .merge(gifs::routes())
        .merge(keys::routes())
        .merge(key_backup::routes())
        .merge(to_device::routes())
        .merge(openid::routes())
}
