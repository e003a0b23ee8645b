//! Tests that start the real server and speak HTTP to it.

mod harness;

mod accounts;
mod devices;
mod directory;
mod durability;
mod errors;
mod keys;
mod login;
mod registration;
