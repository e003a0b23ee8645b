//! A sync socket opened without a token in its URL or headers authenticates with its
//! first frame, `{"type": "auth", "request_id": "…", "access_token": "…"}` (see
//! "Authentication" in `spec/websocket-sync.md`), so that a browser, which cannot set
//! headers on a WebSocket, need not put the token in the URL, where proxies log it.
//! Until that frame has been checked the socket serves nothing: any other frame, a bad
//! token or no frame within `limits.socket_auth_secs` gets an `error` frame and a 1008
//! close.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use serde_json::Value;

use super::sync_ws::{CLOSE_WAIT, PATH};
use crate::api::AppState;
use crate::api::extract::authenticate_token;
use crate::error::{Error, ErrorKind};
use crate::service::guests::guest_forbidden;
use crate::service::sessions::Authed;

/// A socket authenticated by its first frame: the session, its token, and the
/// `request_id` of the `auth` frame, which the answer names.
pub struct FirstFrameAuth {
    pub authed: Authed,
    pub token: String,
    pub request_id: Option<String>,
}

/// Waits for the `auth` frame and checks its token as an `Authorization` header would
/// be checked. `None` when the socket was refused (the client has been told why and the
/// socket closed) or the client went away.
pub async fn authenticate_first_frame(
    state: &AppState,
    socket: &mut WebSocket,
    addr: Option<&str>,
    user_agent: Option<&str>,
) -> Option<FirstFrameAuth> {
    let wait = Duration::from_secs(state.config.limits.socket_auth_secs);
    let text = match tokio::time::timeout(wait, first_text(socket)).await {
        Ok(Some(Ok(text))) => text,
        Ok(Some(Err(()))) => {
            let error = Error::new(
                ErrorKind::MissingToken,
                "The socket's first frame must be an auth request (JSON text)",
            );
            refuse(state, socket, None, &error).await;
            return None;
        }
        Ok(None) => return None,
        Err(_) => {
            let error = Error::new(
                ErrorKind::MissingToken,
                format!("No auth frame within {} s", wait.as_secs()),
            );
            refuse(state, socket, None, &error).await;
            return None;
        }
    };
    let (request_id, token) = match parse_auth_frame(&text) {
        Ok(parsed) => parsed,
        Err((request_id, error)) => {
            refuse(state, socket, request_id.as_deref(), &error).await;
            return None;
        }
    };
    let checked = match authenticate_token(state, &token, addr, user_agent, PATH).await {
        // Guests may not use the socket, as with a token in the request.
        Ok(authed) if authed.is_guest => Err(guest_forbidden()),
        other => other,
    };
    match checked {
        Ok(authed) => Some(FirstFrameAuth {
            authed,
            token,
            request_id,
        }),
        Err(error) => {
            refuse(state, socket, request_id.as_deref(), &error).await;
            None
        }
    }
}

/// The first text frame; `Err` for a binary frame, `None` when the client went away.
/// Protocol pings and pongs are skipped.
async fn first_text(socket: &mut WebSocket) -> Option<Result<String, ()>> {
    loop {
        match socket.recv().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Text(text))) => return Some(Ok(text.as_str().to_owned())),
            Some(Ok(Message::Binary(_))) => return Some(Err(())),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
        }
    }
}

/// The `auth` frame's `request_id` (when it has a string one) and token, or why it is
/// not one (with the `request_id`, if any, to answer).
type Refused = (Option<String>, Error);

fn parse_auth_frame(text: &str) -> Result<(Option<String>, String), Refused> {
    let frame: Value = serde_json::from_str(text).map_err(|e| {
        (
            None,
            Error::new(ErrorKind::NotJson, format!("Frame is not JSON: {e}")),
        )
    })?;
    let request_id = frame
        .get("request_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if frame.get("type").and_then(Value::as_str) != Some("auth") {
        return Err((
            request_id,
            Error::new(
                ErrorKind::MissingToken,
                "The socket's first frame must be an auth request with the access token",
            ),
        ));
    }
    match frame.get("access_token").and_then(Value::as_str) {
        Some(token) if !token.trim().is_empty() => Ok((request_id, token.trim().to_owned())),
        _ => Err((
            request_id,
            Error::new(
                ErrorKind::MissingToken,
                "The auth request has no access_token",
            ),
        )),
    }
}

/// Answers the `auth` frame (or the frame that should have been one) with `error` and
/// closes the socket: 1013 ("try again later") for a limit, 1008 otherwise.
pub async fn refuse(
    state: &AppState,
    socket: &mut WebSocket,
    request_id: Option<&str>,
    error: &Error,
) {
    // The error's whole body, so that `soft_logout` comes with `M_UNKNOWN_TOKEN`.
    let mut frame = error.body();
    if let Value::Object(fields) = &mut frame {
        fields.insert("type".into(), "error".into());
        fields.insert("request_id".into(), request_id.into());
    }
    let send_wait = Duration::from_secs(state.config.limits.socket_send_secs);
    let text = frame.to_string();
    if !matches!(
        tokio::time::timeout(send_wait, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let (code, reason) = match error.kind {
        ErrorKind::LimitExceeded { .. } => (close_code::AGAIN, "too many sockets open"),
        _ => (close_code::POLICY, "not authenticated"),
    };
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(close)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_auth_frame_with_a_token_passes() {
        assert_eq!(
            parse_auth_frame(r#"{"type":"auth","request_id":"a1","access_token":"syt_x"}"#)
                .unwrap(),
            (Some("a1".to_owned()), "syt_x".to_owned())
        );
        assert_eq!(
            parse_auth_frame(r#"{"type":"auth","access_token":"syt_x"}"#).unwrap(),
            (None, "syt_x".to_owned())
        );
        for (text, request_id) in [
            (r#"{"type":"ping","request_id":"r1"}"#, Some("r1")),
            (r#"{"type":"auth","request_id":"a1"}"#, Some("a1")),
            (
                r#"{"type":"auth","request_id":"a1","access_token":""}"#,
                Some("a1"),
            ),
            (r#"{"type":"auth","access_token":7}"#, None),
            (r#"["auth"]"#, None),
        ] {
            let (id, error) = parse_auth_frame(text).unwrap_err();
            assert_eq!(id.as_deref(), request_id, "{text}");
            assert_eq!(error.body()["errcode"], "M_MISSING_TOKEN", "{text}");
        }
        let (_, error) = parse_auth_frame("not json").unwrap_err();
        assert_eq!(error.body()["errcode"], "M_NOT_JSON");
    }
}
