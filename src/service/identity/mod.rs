//! Identity servers: the client for the Identity Service API ([`client`]), inviting by
//! third-party identifier and turning the identity server's proof of a binding into an
//! invite ([`invite`]), and binding a user's 3PIDs at identity servers ([`bind`]).

pub mod bind;
pub mod client;
pub mod invite;

pub use client::{IdentityClient, IdentityError};
