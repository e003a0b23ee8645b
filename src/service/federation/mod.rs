//! Talking to other servers: discovery ([`resolve`]) with its `.well-known` cache
//! ([`wellknown`]) and the SSRF guard ([`guard`]), the signed HTTP client ([`client`])
//! and the `X-Matrix` request signatures ([`xmatrix`]), other servers' signing keys
//! ([`keys`]). Rooms shared with other servers: incoming transactions
//! ([`transactions`]), the outgoing queue ([`sender`]), joins, leaves and invites of
//! other servers' users ([`membership`], [`invite`]) and of ours in their rooms
//! ([`remote_join`]). What this server answers other servers (see
//! `spec/federation.md`): which events a server may see ([`visibility`]), the room's
//! server ACL ([`acl`]), single events, state and auth chains ([`events`]), walks back
//! through a room ([`history`]), alias lookups and device lists ([`queries`]).
//!
//! Outbound failures are [`OutboundError`]s, kept apart from the client-facing
//! [`Error`]; a client request that depends on a remote answer converts one with `?`
//! (502, 504 or the remote's own 403/404).

pub mod acl;
pub mod backfill;
pub mod client;
pub mod edus;
pub mod events;
pub mod fetch;
pub mod gaps;
pub mod guard;
pub mod history;
pub mod inbound_limits;
pub mod invite;
pub mod keys;
pub mod membership;
pub mod partial_state;
pub mod profile;
pub mod queries;
pub mod remote_join;
pub mod remote_knock;
pub mod resolve;
pub mod sender;
pub mod transactions;
pub mod visibility;
pub mod wellknown;
pub mod xmatrix;

use std::net::IpAddr;

use ruma::OwnedServerName;

pub use client::FederationClient;
pub use keys::ServerKeyStore;

use crate::error::{Error, ErrorKind};

/// Why a request to another server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("federation is disabled on this server")]
    Disabled,
    #[error("cannot resolve {server}: {detail}")]
    Unresolvable {
        server: OwnedServerName,
        detail: String,
    },
    #[error(
        "{server} resolves to {addr}, which this server may not contact (federation.ip_range_denylist)"
    )]
    Denied {
        server: OwnedServerName,
        addr: IpAddr,
    },
    #[error("cannot connect to {server}: {detail}")]
    Unreachable {
        server: OwnedServerName,
        detail: String,
    },
    #[error("TLS with {server} failed: {detail}")]
    Tls {
        server: OwnedServerName,
        detail: String,
    },
    #[error("{server} did not answer in time")]
    Timeout { server: OwnedServerName },
    #[error("{server} answered {status}{}", remote_detail(errcode, error))]
    Remote {
        server: OwnedServerName,
        status: u16,
        errcode: Option<String>,
        error: Option<String>,
        /// The `room_version` of an `M_INCOMPATIBLE_ROOM_VERSION` answer.
        room_version: Option<String>,
        /// How long a rate-limiting server (429) asked us to wait: its `Retry-After`
        /// header, else the `retry_after_ms` of its `M_LIMIT_EXCEEDED` body.
        retry_after: Option<std::time::Duration>,
    },
    #[error("{server} sent an invalid answer: {detail}")]
    BadResponse {
        server: OwnedServerName,
        detail: String,
    },
    #[error("the keys of {server} do not check out: {detail}")]
    BadKeys {
        server: OwnedServerName,
        detail: String,
    },
}

fn remote_detail(errcode: &Option<String>, error: &Option<String>) -> String {
    match (errcode, error) {
        (Some(code), Some(text)) => format!(" {code}: {text}"),
        (Some(code), None) => format!(" {code}"),
        (None, Some(text)) => format!(": {text}"),
        (None, None) => String::new(),
    }
}

impl OutboundError {
    /// The server the failed request was for, if any.
    pub fn server(&self) -> Option<&OwnedServerName> {
        match self {
            OutboundError::Disabled => None,
            OutboundError::Unresolvable { server, .. }
            | OutboundError::Denied { server, .. }
            | OutboundError::Unreachable { server, .. }
            | OutboundError::Tls { server, .. }
            | OutboundError::Timeout { server }
            | OutboundError::Remote { server, .. }
            | OutboundError::BadResponse { server, .. }
            | OutboundError::BadKeys { server, .. } => Some(server),
        }
    }

    /// Whether the remote answered with an error status (as opposed to not answering
    /// properly at all).
    pub fn remote_status(&self) -> Option<u16> {
        match self {
            OutboundError::Remote { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long to wait before asking again, when the remote rate-limited us (429) and
    /// said for how long.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            OutboundError::Remote {
                status: 429,
                retry_after,
                ..
            } => *retry_after,
            _ => None,
        }
    }
}

/// For client requests that depend on a remote answer: a remote 404 or 403 is passed on
/// as such, a timeout is 504, anything else 502, each with a message naming the server.
impl From<OutboundError> for Error {
    fn from(err: OutboundError) -> Self {
        let kind = match &err {
            OutboundError::Disabled => ErrorKind::Forbidden,
            OutboundError::Remote { status: 404, .. } => ErrorKind::NotFound,
            OutboundError::Remote { status: 403, .. } => ErrorKind::Forbidden,
            OutboundError::Timeout { .. } => ErrorKind::GatewayTimeout,
            _ => ErrorKind::BadGateway,
        };
        Error::new(kind, err.to_string())
    }
}

/// An error and its causes, one line, for logs and messages.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> OwnedServerName {
        "remote.example".try_into().unwrap()
    }

    #[test]
    fn outbound_errors_become_gateway_errors_for_clients() {
        let status = |e: OutboundError| Error::from(e).status().as_u16();
        assert_eq!(status(OutboundError::Timeout { server: server() }), 504);
        assert_eq!(
            status(OutboundError::Denied {
                server: server(),
                addr: "127.0.0.1".parse().unwrap()
            }),
            502
        );
        assert_eq!(
            status(OutboundError::Unreachable {
                server: server(),
                detail: "connection refused".into()
            }),
            502
        );
        let remote = |status| OutboundError::Remote {
            server: server(),
            status,
            errcode: Some("M_NOT_FOUND".into()),
            error: Some("no such user".into()),
            room_version: None,
            retry_after: None,
        };
        assert_eq!(status(remote(404)), 404);
        assert_eq!(status(remote(500)), 502);
        let message = Error::from(remote(404)).message;
        assert!(message.contains("remote.example"), "{message}");
        assert!(message.contains("no such user"), "{message}");
    }
}
