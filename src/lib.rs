//! Hearth: a Matrix homeserver.
//!
//! `api/` holds the HTTP handlers, `service/` the logic, `store/` the RocksDB layout;
//! dependencies point only that way.

pub mod api;
pub mod cache;
pub mod config;
pub mod error;
pub mod event;
pub mod server;
pub mod service;
pub mod store;
