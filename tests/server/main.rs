//! Tests that start the real server and speak HTTP to it.

mod harness;

mod account_data;
mod accounts;
mod devices;
mod durability;
mod errors;
mod keys;
mod login;
mod registration;
