//! Tests that start the real server and speak HTTP to it.

mod harness;

mod account_data;
mod accounts;
mod devices;
mod directory;
mod durability;
mod ephemeral;
mod errors;
mod federation;
mod federation_rooms;
mod federation_serve;
mod federation_support;
mod gifs;
mod keys;
mod login;
mod media;
mod messages;
mod moderation;
mod profile;
mod push_rules;
mod registration;
mod relations;
mod reports;
mod room_membership;
mod room_paths;
mod room_send;
mod room_store;
mod room_support;
mod rooms;
mod search;
mod sync;
mod sync_ws;
mod tls;
mod user_directory;
mod web;
