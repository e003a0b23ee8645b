//! The one error type of the server, mapped once to the Matrix JSON error format.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::service::uia::UiaChallenge;

/// What went wrong, in the terms of the Matrix spec's error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Forbidden,
    UnknownToken {
        soft_logout: bool,
    },
    MissingToken,
    /// A federation request without a valid `X-Matrix` signature for this server (401).
    Unauthorized,
    BadJson,
    NotJson,
    NotFound,
    LimitExceeded {
        retry_after_ms: u64,
    },
    /// Unknown endpoint (404) or known endpoint with the wrong method (405).
    Unrecognized {
        method_not_allowed: bool,
    },
    UserInUse,
    InvalidUsername,
    InvalidParam,
    MissingParam,
    TooLarge,
    UserDeactivated,
    /// The account is locked by an admin: 401 with `soft_logout: true`.
    UserLocked,
    /// The account is suspended by an admin and may not do this (403).
    UserSuspended,
    WeakPassword,
    GuestAccessForbidden,
    UnsupportedRoomVersion,
    /// A server asked to join a room whose version it does not support (`room_version`).
    IncompatibleRoomVersion(String),
    RoomInUse,
    /// An `m.room.canonical_alias` event names an alias that does not point to the room.
    BadAlias,
    /// The resource already exists (409); the spec gives no better code than `M_UNKNOWN`.
    Conflict,
    InvalidRoomState,
    BadState,
    /// A second reaction with the same key from the same user to the same event.
    DuplicateAnnotation,
    /// `PUT /upload/{serverName}/{mediaId}` for an ID that already has content (409).
    CannotOverwriteMedia,
    /// Media reserved with `/create` whose content has not arrived in time (504).
    NotYetUploaded,
    /// Writing account data of a type the server manages: the spec answers 405 with
    /// `M_BAD_JSON`.
    ServerManagedType,
    /// Setting a profile field would make the profile exceed the spec's 64 KiB.
    ProfileTooLarge,
    /// A profile field name longer than the spec's 255 bytes.
    KeyTooLarge,
    /// A sliding sync `pos` this server does not know (any more): the client starts
    /// its connection afresh (400 `M_UNKNOWN_POS`, as Synapse answers).
    UnknownPos,
    /// A Web Push pusher's activation token that has expired (MSC4174, 400).
    ExpiredActivationToken,
    /// A Web Push pusher's activation token the server did not issue (MSC4174, 400).
    UnknownActivationToken,
    /// The homeserver does not take this third-party identifier (or email is off).
    ThreepidDenied,
    /// The email session was not validated, or its secret is wrong.
    ThreepidAuthFailed,
    /// The address belongs to another account already.
    ThreepidInUse,
    /// A request the server understood but cannot act on, with no better code.
    Unknown,
    /// A service the server relies on (Giphy, another homeserver) failed or answered
    /// nonsense (502).
    BadGateway,
    /// Another homeserver did not answer in time (504).
    GatewayTimeout,
    /// The client stopped sending its request body (408 `M_UNKNOWN`).
    RequestTimeout,
    /// A status and error code given as they are: another homeserver's refusal (a 4xx
    /// with a Matrix error) passed on to the client, as Synapse does, or a pairing the
    /// other kinds lack (a malformed `X-Matrix` header: 400 `M_UNAUTHORIZED`).
    Custom {
        status: u16,
        errcode: String,
    },
    /// Another homeserver's media is larger than this server takes (502 `M_TOO_LARGE`).
    RemoteTooLarge,
    /// User-interactive authentication must continue: answered with 401 and the flows.
    AuthRequired(Box<UiaChallenge>),
    /// Keys written to a key backup version that is not the current one (403).
    WrongRoomKeysVersion {
        current_version: String,
    },
    /// A fault on our side; the message is logged, never sent.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: Cow<'static, str>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn bad_json(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::BadJson, message)
    }

    pub fn invalid_param(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidParam, message)
    }

    pub fn missing_param(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::MissingParam, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Logs the cause and returns an error that tells the client nothing about our internals.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorKind::Internal, "Internal server error")
    }

    pub fn errcode(&self) -> &str {
        match &self.kind {
            ErrorKind::Custom { errcode, .. } => errcode,
            ErrorKind::Forbidden => "M_FORBIDDEN",
            ErrorKind::UnknownToken { .. } => "M_UNKNOWN_TOKEN",
            ErrorKind::MissingToken => "M_MISSING_TOKEN",
            ErrorKind::Unauthorized => "M_UNAUTHORIZED",
            ErrorKind::BadJson => "M_BAD_JSON",
            ErrorKind::NotJson => "M_NOT_JSON",
            ErrorKind::NotFound => "M_NOT_FOUND",
            ErrorKind::LimitExceeded { .. } => "M_LIMIT_EXCEEDED",
            ErrorKind::Unrecognized { .. } => "M_UNRECOGNIZED",
            ErrorKind::UserInUse => "M_USER_IN_USE",
            ErrorKind::InvalidUsername => "M_INVALID_USERNAME",
            ErrorKind::InvalidParam => "M_INVALID_PARAM",
            ErrorKind::MissingParam => "M_MISSING_PARAM",
            ErrorKind::TooLarge | ErrorKind::RemoteTooLarge => "M_TOO_LARGE",
            ErrorKind::UserDeactivated => "M_USER_DEACTIVATED",
            ErrorKind::UserLocked => "M_USER_LOCKED",
            ErrorKind::UserSuspended => "M_USER_SUSPENDED",
            ErrorKind::WeakPassword => "M_WEAK_PASSWORD",
            ErrorKind::GuestAccessForbidden => "M_GUEST_ACCESS_FORBIDDEN",
            ErrorKind::UnsupportedRoomVersion => "M_UNSUPPORTED_ROOM_VERSION",
            ErrorKind::IncompatibleRoomVersion(_) => "M_INCOMPATIBLE_ROOM_VERSION",
            ErrorKind::RoomInUse => "M_ROOM_IN_USE",
            ErrorKind::BadAlias => "M_BAD_ALIAS",
            ErrorKind::InvalidRoomState => "M_INVALID_ROOM_STATE",
            ErrorKind::BadState => "M_BAD_STATE",
            ErrorKind::DuplicateAnnotation => "M_DUPLICATE_ANNOTATION",
            ErrorKind::CannotOverwriteMedia => "M_CANNOT_OVERWRITE_MEDIA",
            ErrorKind::NotYetUploaded => "M_NOT_YET_UPLOADED",
            ErrorKind::ServerManagedType => "M_BAD_JSON",
            ErrorKind::ProfileTooLarge => "M_PROFILE_TOO_LARGE",
            ErrorKind::KeyTooLarge => "M_KEY_TOO_LARGE",
            ErrorKind::WrongRoomKeysVersion { .. } => "M_WRONG_ROOM_KEYS_VERSION",
            ErrorKind::UnknownPos => "M_UNKNOWN_POS",
            ErrorKind::ExpiredActivationToken => "M_EXPIRED_ACTIVATION_TOKEN",
            ErrorKind::UnknownActivationToken => "M_UNKNOWN_ACTIVATION_TOKEN",
            ErrorKind::ThreepidDenied => "M_THREEPID_DENIED",
            ErrorKind::ThreepidAuthFailed => "M_THREEPID_AUTH_FAILED",
            ErrorKind::ThreepidInUse => "M_THREEPID_IN_USE",
            ErrorKind::Unknown
            | ErrorKind::Conflict
            | ErrorKind::BadGateway
            | ErrorKind::GatewayTimeout
            | ErrorKind::RequestTimeout
            | ErrorKind::Internal => "M_UNKNOWN",
            // Inside a UIA response the errcode describes the failed stage, if any.
            ErrorKind::AuthRequired(_) => "M_FORBIDDEN",
        }
    }

    pub fn status(&self) -> StatusCode {
        match &self.kind {
            ErrorKind::Custom { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ErrorKind::Forbidden
            | ErrorKind::UserDeactivated
            | ErrorKind::UserSuspended
            | ErrorKind::WrongRoomKeysVersion { .. }
            | ErrorKind::ThreepidDenied
            | ErrorKind::GuestAccessForbidden => StatusCode::FORBIDDEN,
            ErrorKind::UnknownToken { .. }
            | ErrorKind::MissingToken
            | ErrorKind::Unauthorized
            | ErrorKind::UserLocked => StatusCode::UNAUTHORIZED,
            ErrorKind::AuthRequired(_) => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Unrecognized {
                method_not_allowed: false,
            } => StatusCode::NOT_FOUND,
            ErrorKind::Unrecognized {
                method_not_allowed: true,
            } => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::ServerManagedType => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::CannotOverwriteMedia => StatusCode::CONFLICT,
            ErrorKind::NotYetUploaded => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::BadGateway | ErrorKind::RemoteTooLarge => StatusCode::BAD_GATEWAY,
            ErrorKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::BadJson
            | ErrorKind::NotJson
            | ErrorKind::UserInUse
            | ErrorKind::ThreepidAuthFailed
            | ErrorKind::ThreepidInUse
            | ErrorKind::InvalidUsername
            | ErrorKind::InvalidParam
            | ErrorKind::MissingParam
            | ErrorKind::WeakPassword
            | ErrorKind::UnsupportedRoomVersion
            | ErrorKind::IncompatibleRoomVersion(_)
            | ErrorKind::RoomInUse
            | ErrorKind::BadAlias
            | ErrorKind::InvalidRoomState
            | ErrorKind::BadState
            | ErrorKind::DuplicateAnnotation
            | ErrorKind::ProfileTooLarge
            | ErrorKind::KeyTooLarge
            | ErrorKind::UnknownPos
            | ErrorKind::ExpiredActivationToken
            | ErrorKind::UnknownActivationToken
            | ErrorKind::Unknown => StatusCode::BAD_REQUEST,
        }
    }

    pub fn body(&self) -> Value {
        match &self.kind {
            ErrorKind::AuthRequired(challenge) => challenge.to_json(),
            ErrorKind::UnknownToken { soft_logout } => json!({
                "errcode": self.errcode(),
                "error": self.message,
                "soft_logout": soft_logout,
            }),
            ErrorKind::UserLocked => json!({
                "errcode": self.errcode(),
                "error": self.message,
                "soft_logout": true,
            }),
            ErrorKind::LimitExceeded { retry_after_ms } => json!({
                "errcode": self.errcode(),
                "error": self.message,
                "retry_after_ms": retry_after_ms,
            }),
            ErrorKind::WrongRoomKeysVersion { current_version } => json!({
                "errcode": self.errcode(),
                "error": self.message,
                "current_version": current_version,
            }),
            ErrorKind::IncompatibleRoomVersion(version) => json!({
                "errcode": self.errcode(),
                "error": self.message,
                "room_version": version,
            }),
            _ => json!({ "errcode": self.errcode(), "error": self.message }),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.errcode(), self.message)
    }
}

impl std::error::Error for Error {}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let ErrorKind::LimitExceeded { retry_after_ms } = self.kind {
            // Clients that ignore the body still learn when to come back.
            let seconds = retry_after_ms.div_ceil(1000).to_string();
            if let Ok(value) = seconds.parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(err: crate::store::StoreError) -> Self {
        Self::internal(err)
    }
}
