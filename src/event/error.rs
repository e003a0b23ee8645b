//! The single error type of the event module.

/// Everything that can go wrong while handling events.
///
/// Authorisation failures carry a human-readable reason, e.g.
/// `sender lacks power to kick: needs 50, has 0`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The room version string is not one Hearth supports.
    #[error("unsupported room version {0:?}")]
    UnsupportedRoomVersion(String),

    /// The value cannot be encoded as canonical JSON (floats, out-of-range integers, ...).
    #[error("invalid canonical JSON: {0}")]
    CanonicalJson(String),

    /// The event does not have the shape required by its room version.
    #[error("invalid event: {0}")]
    InvalidEvent(String),

    /// A signing key or public key could not be decoded or has a malformed identifier.
    #[error("invalid key: {0}")]
    InvalidKey(String),

    /// The event is over the spec's 65,536-byte limit for PDUs.
    #[error("event is too large: {0}")]
    TooLarge(String),

    /// A signature is missing, malformed or does not verify.
    #[error("signature verification failed: {0}")]
    Signature(String),

    /// The `hashes.sha256` of the event does not match its content.
    #[error("content hash mismatch: expected {expected}, computed {computed}")]
    ContentHashMismatch {
        /// The hash carried by the event.
        expected: String,
        /// The hash computed from the event.
        computed: String,
    },

    /// The event is rejected by the authorisation rules.
    #[error("event not authorised: {0}")]
    Unauthorized(String),

    /// An event needed for the computation was not supplied.
    #[error("missing event {0}")]
    MissingEvent(String),
}

impl EventError {
    /// The authorisation failure reason, if this is an authorisation error.
    pub fn auth_reason(&self) -> Option<&str> {
        match self {
            Self::Unauthorized(reason) => Some(reason),
            _ => None,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidEvent(msg.into())
    }
}
