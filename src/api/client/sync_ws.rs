//! Sync over a WebSocket (Hearth's extension; see `spec/websocket-sync.md`): the same
//! updates as `/sync` (or, with `?mode=sliding`, sliding sync answers; see
//! `sliding_sync_ws.rs`), pushed as they happen, and sends, typing, receipts and presence
//! from the client over the same socket.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::rooms::{parse_room_id, send::send_message, state::send_state_event};
use super::sliding_sync_ws::{Mode, ModeParams, SlidingSocket};
use super::sync::SyncParams;
use super::sync_ws_auth::{FirstFrameAuth, authenticate_first_frame, refuse};
use crate::api::AppState;
use crate::api::extract::{ClientAddr, MaybeAuthWithToken, Query};
use crate::error::{Error, ErrorKind, Result};
use crate::service::e2ee::MAX_TO_DEVICE_PER_SYNC;
use crate::service::open_syncs::{OpenSyncSlot, SyncKind};
use crate::service::presence::PresenceState;
use crate::service::sessions::Authed;
use crate::service::sliding_sync::{Body, SlidingAnswer};
use crate::service::sync::{SyncRequest, SyncSince};

pub const PATH: &str = "/_matrix/client/unstable/org.hearth.sync/ws";

/// How often the server pings, and how long a silent client is kept.
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENCE_LIMIT: Duration = Duration::from_secs(90);

/// The slowest reading a frame's send allows for, past `limits.socket_send_secs`.
const SLOWEST_READ_PER_SEC: usize = 64 * 1024;

/// How long the close frame may take: a client that stopped reading never takes it.
pub(super) const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The socket's read buffer. Clients send small frames (requests, pongs), and a larger one
/// grows the buffer as needed; the library's default (128 KiB, zero-filled before each read)
/// would keep 128 KiB resident per connection.
const READ_BUFFER_BYTES: usize = 8 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(upgrade))
}

/// With a token in the request (header or query), everything is checked before the
/// upgrade, so a bad token or parameter is an ordinary Matrix error response, as `/sync`
/// gives. Without one, the socket is upgraded and must authenticate with its first frame
/// (`sync_ws_auth.rs`); what needs the user is checked then, and refused with an `error`
/// frame and a close.
async fn upgrade(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    auth: MaybeAuthWithToken,
    params: SyncParams,
    Query(mode): Query<ModeParams>,
    upgrade: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let upgrade = upgrade.map_err(|e| match auth {
        // Only a socket can bring its token later: a plain request without one is
        // refused as on any authenticated endpoint.
        MaybeAuthWithToken::Later { .. } => {
            Error::new(ErrorKind::MissingToken, "Missing access token")
        }
        MaybeAuthWithToken::Authed(..) => Error::new(
            ErrorKind::Unrecognized {
                method_not_allowed: false,
            },
            format!("This endpoint needs a WebSocket upgrade: {e}"),
        ),
    })?;
    // A sliding socket has no `since`, filter or `full_state` (`mode` refuses them):
    // of the request only `set_presence` counts.
    let mode = mode.mode()?;
    // A client's frames are requests: no bigger than an HTTP request body may be.
    let upgrade = upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(state.config.max_request_bytes)
        .max_frame_size(state.config.max_request_bytes);
    // The address's share of the socket caps is taken before the upgrade, so that
    // sockets still waiting for their auth frame count toward it too.
    let slot = state
        .open_syncs
        .admit_address(SyncKind::Socket, addr.as_deref())?;
    match auth {
        MaybeAuthWithToken::Authed(authed, token) => {
            let opening = Opening::new(state, slot, authed, token, &params, mode)?;
            Ok(upgrade.on_upgrade(move |socket| opening.run(socket)))
        }
        MaybeAuthWithToken::Later { user_agent } => {
            Ok(upgrade.on_upgrade(move |mut socket| async move {
                let Some(FirstFrameAuth {
                    authed,
                    token,
                    request_id,
                }) = authenticate_first_frame(
                    &state,
                    &mut socket,
                    addr.as_deref(),
                    user_agent.as_deref(),
                )
                .await
                else {
                    return;
                };
                let body = json!({"user_id": authed.user_id, "device_id": authed.device_id});
                match Opening::new(state.clone(), slot, authed, token, &params, mode) {
                    Ok(opening) => {
                        let answer =
                            json!({"type": "response", "request_id": request_id, "body": body});
                        let sent = tokio::time::timeout(
                            Duration::from_secs(state.config.limits.socket_send_secs),
                            socket.send(Message::Text(answer.to_string().into())),
                        )
                        .await;
                        if matches!(sent, Ok(Ok(()))) {
                            opening.run(socket).await;
                        }
                    }
                    Err(error) => refuse(&state, &mut socket, request_id.as_deref(), &error).await,
                }
            }))
        }
    }
}

/// An authenticated socket's session before it has its socket: its slot among the open
/// sockets and its parsed request.
struct Opening {
    slot: OpenSyncSlot,
    state: AppState,
    authed: Authed,
    token: String,
    request: SyncRequest,
    sliding: Option<SlidingSocket>,
}

impl Opening {
    /// Adds the user to the socket's slot (`429` past the user's cap) and reads the
    /// request's parameters.
    fn new(
        state: AppState,
        mut slot: OpenSyncSlot,
        authed: Authed,
        token: String,
        params: &SyncParams,
        mode: Mode,
    ) -> Result<Self> {
        state.open_syncs.add_user(&mut slot, &authed.user_id)?;
        let sliding = match mode {
            Mode::Classic => None,
            Mode::Sliding => Some(SlidingSocket::default()),
        };
        let request = params.to_request(&state, &authed.user_id)?;
        Ok(Self {
            slot,
            state,
            authed,
            token,
            request,
            sliding,
        })
    }

    async fn run(self, socket: WebSocket) {
        // The slot is held for the socket's life.
        let _slot = self.slot;
        let session = Session {
            state: self.state,
            authed: self.authed,
            token: self.token,
            request: self.request,
            sliding: self.sliding,
            socket,
        };
        session.run().await;
    }
}

/// A `sync` or `sliding_sync` frame: the answer written straight into the frame's text.
#[derive(Serialize)]
struct PushFrame<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    body: &'a T,
}

/// A `response` frame, answering a client's request.
#[derive(Serialize)]
struct ResponseFrame {
    body: Reply,
    request_id: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// What a request is answered with.
#[derive(Serialize)]
#[serde(untagged)]
enum Reply {
    Tree(Value),
    /// A sliding sync answer, written straight from its events.
    Sliding(SlidingAnswer),
}

struct Session {
    state: AppState,
    authed: Authed,
    token: String,
    request: SyncRequest,
    /// A sliding socket's connection; `None` on a `/sync` socket.
    sliding: Option<SlidingSocket>,
    socket: WebSocket,
}

/// Why a session ends.
enum End {
    ClientGone,
    Close(u16, &'static str),
}

/// Why a frame was not sent.
enum SendFailed {
    /// The connection broke.
    Gone,
    /// The client did not take the frame in time (`send_frame`).
    TooSlow,
}

impl From<SendFailed> for End {
    fn from(failed: SendFailed) -> Self {
        match failed {
            SendFailed::Gone => End::ClientGone,
            SendFailed::TooSlow => End::Close(close_code::AGAIN, "client too slow to read updates"),
        }
    }
}

impl Session {
    async fn run(mut self) {
        let user_id = self.authed.user_id.clone();
        let _presence = self.state.begin_sync(&user_id, self.request.set_presence);
        // As for `/sync`: the token the socket opens with acknowledges the to-device
        // messages before it. Later updates on the socket do not (a frame in flight
        // when the socket drops would be lost); the next connection's token does.
        if let Some(since) = &self.request.since
            && let Err(e) = self.state.acknowledge_to_device(
                &user_id,
                &self.authed.device_id,
                since.token.to_device,
            )
        {
            tracing::warn!(error = %e, user = %user_id, "cannot drop acknowledged to-device messages");
        }
        let mut wakes = self.state.notifier.subscribe(&user_id);
        let mut revocations = self.state.sessions.revocations();
        let shutdown = self.state.shutdown_started();
        tokio::pin!(shutdown);
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let mut last_heard = Instant::now();
        let mut first = true;
        let mut sync_due = true;
        let end = loop {
            if sync_due {
                match self.push_update(first).await {
                    // More to-device messages than one update holds: send the rest next.
                    Ok(more) => sync_due = more,
                    Err(end) => break end,
                }
                first = false;
                if sync_due {
                    continue;
                }
            }
            tokio::select! {
                // A revoked token is checked before anything else that is ready: a
                // device logged out (which is also a device-list change that wakes
                // this socket) gets no further updates.
                biased;
                changed = revocations.changed() => {
                    if changed.is_ok()
                        && let Err(end) = self.check_token().await
                    {
                        break end;
                    }
                }
                changed = wakes.changed() => {
                    if changed.is_err() {
                        break End::Close(close_code::ERROR, "internal error");
                    }
                    sync_due = true;
                }
                frame = self.socket.recv() => {
                    last_heard = Instant::now();
                    match frame {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break End::ClientGone,
                        Some(Ok(Message::Text(text))) => {
                            let sent = match self.answer(text.as_str()).await {
                                Ok(response) => self.send_json(&response).await,
                                Err(error) => self.send_json(&error).await,
                            };
                            if let Err(failed) = sent {
                                break failed.into();
                            }
                            // A sliding request's answer may leave to-device messages.
                            sync_due |= self.sliding.as_ref().is_some_and(SlidingSocket::more_due);
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let error = error_frame(None, &Error::new(ErrorKind::NotJson, "Frames must be JSON text"));
                            if let Err(failed) = self.send_json(&error).await {
                                break failed.into();
                            }
                        }
                        // Pings are answered by the WebSocket layer; pongs only prove liveness.
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > SILENCE_LIMIT {
                        break End::Close(close_code::AWAY, "no answer to pings");
                    }
                    if let Err(end) = self.check_token().await {
                        break end;
                    }
                    if let Err(failed) = self.send_frame(Message::Ping(Default::default())).await {
                        break failed.into();
                    }
                }
                _ = &mut shutdown => break End::Close(close_code::AWAY, "server shutting down"),
            }
        };
        if let End::Close(code, reason) = end {
            let close = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = tokio::time::timeout(CLOSE_WAIT, self.socket.send(close)).await;
        }
    }

    async fn send_json<T: Serialize>(&mut self, value: &T) -> std::result::Result<(), SendFailed> {
        // `serde_json::to_string` writes straight into its buffer; `Value`'s `Display`
        // goes through a formatter and costs about half as much again. It cannot fail for
        // a `Value` or a sync response (every key is a string).
        let text = serde_json::to_string(value).map_err(|_| SendFailed::Gone)?;
        self.send_frame(Message::Text(text.into())).await
    }

    /// A client that stops reading fills its TCP window and then blocks the send. Each
    /// frame has `limits.socket_send_secs` to go, plus a second per 64 KiB of it (a
    /// client reading at 64 KiB/s keeps up with any frame); past that `SendFailed::TooSlow`
    /// ends the session (close code 1013, tried briefly), so the socket holds neither a
    /// task, a frame nor its slot.
    async fn send_frame(&mut self, message: Message) -> std::result::Result<(), SendFailed> {
        let bytes = match &message {
            Message::Text(text) => text.len(),
            Message::Binary(data) => data.len(),
            _ => 0,
        };
        let allowed = Duration::from_secs(self.state.config.limits.socket_send_secs)
            + Duration::from_secs((bytes / SLOWEST_READ_PER_SEC) as u64);
        match tokio::time::timeout(allowed, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendFailed::Gone),
            Err(_) => Err(SendFailed::TooSlow),
        }
    }

    /// Sends what changed since the last update (everything, the first time). Later
    /// updates are only sent when they hold something. Says whether to-device messages
    /// or rooms remain that did not fit (rooms past `limits.sync_response_bytes`).
    async fn push_update(&mut self, first: bool) -> std::result::Result<bool, End> {
        if self.sliding.is_some() {
            return self.push_sliding().await;
        }
        let result = self.state.sync_once(
            &self.authed.user_id,
            &self.authed.device_id,
            self.request.since.as_ref(),
            &self.request.filter,
            first && self.request.full_state,
        );
        match result {
            Ok((body, has_updates)) => {
                if !(first || has_updates) {
                    return Ok(false);
                }
                self.request.since = SyncSince::parse(body.next_batch());
                let more = body.to_device_count() >= MAX_TO_DEVICE_PER_SYNC
                    || self
                        .request
                        .since
                        .as_ref()
                        .is_some_and(|since| since.deferred.is_some());
                let frame = PushFrame {
                    kind: "sync",
                    body: &body,
                };
                self.send_json(&frame)
                    .await
                    .map(|()| more)
                    .map_err(End::from)
            }
            Err(e) => {
                tracing::warn!(error = %e, user = %self.authed.user_id, "socket sync failed");
                let _ = self.send_json(&error_frame(None, &e)).await;
                Err(End::Close(close_code::ERROR, "internal error"))
            }
        }
    }

    /// Sends the sliding connection's next answer, when it holds anything new (nothing
    /// before the first `sliding_sync` request). Says whether the next is due at once.
    async fn push_sliding(&mut self) -> std::result::Result<bool, End> {
        let Some(sliding) = self.sliding.as_mut() else {
            return Ok(false);
        };
        match sliding.push(&self.state, &self.authed) {
            Ok(None) => Ok(false),
            Ok(Some(body)) => {
                let more = sliding.more_due();
                let frame = PushFrame {
                    kind: "sliding_sync",
                    body: &body,
                };
                self.send_json(&frame)
                    .await
                    .map(|()| more)
                    .map_err(End::from)
            }
            Err(e) => {
                tracing::warn!(error = %e, user = %self.authed.user_id, "socket sliding sync failed");
                let _ = self.send_json(&error_frame(None, &e)).await;
                Err(End::Close(close_code::ERROR, "internal error"))
            }
        }
    }

    /// A logged-out or expired token ends the session as it would fail a `/sync`.
    async fn check_token(&mut self) -> std::result::Result<(), End> {
        let checked = match self.state.sessions.authenticate(&self.token, None).await {
            // A lock ends the socket as it fails a `/sync`.
            Ok(authed) => self
                .state
                .check_login_allowed(&authed.user_id)
                .map(|()| authed),
            Err(e) => Err(e),
        };
        match checked {
            Ok(authed) if authed.device_id == self.authed.device_id => Ok(()),
            Ok(_) => Err(End::Close(close_code::POLICY, "access token changed")),
            Err(e) => {
                let _ = self.send_json(&error_frame(None, &e)).await;
                Err(End::Close(
                    close_code::POLICY,
                    "access token no longer valid",
                ))
            }
        }
    }

    /// One client request frame, answered with a `response` frame or (as `Err`) an
    /// `error` frame.
    async fn answer(&mut self, text: &str) -> std::result::Result<ResponseFrame, Value> {
        let (request_id, request) = parse_frame(text)?;
        match self.handle(request).await {
            Ok(body) => Ok(ResponseFrame {
                body,
                request_id,
                kind: "response",
            }),
            Err(e) => Err(error_frame(Some(&request_id), &e)),
        }
    }

    async fn handle(&mut self, request: ClientRequest) -> Result<Reply> {
        let state = &self.state;
        let authed = &self.authed;
        match request {
            ClientRequest::Send {
                room_id,
                event_type,
                txn_id,
                content,
            } => {
                let event_id =
                    send_message(state, authed, &room_id, &event_type, txn_id, content).await?;
                Ok(Reply::Tree(json!({"event_id": event_id})))
            }
            ClientRequest::State {
                room_id,
                event_type,
                state_key,
                content,
            } => {
                let event_id =
                    send_state_event(state, authed, &room_id, &event_type, &state_key, content)
                        .await?;
                Ok(Reply::Tree(json!({"event_id": event_id})))
            }
            ClientRequest::Typing {
                room_id,
                typing,
                timeout,
            } => {
                let room_id = parse_room_id(&room_id)?;
                let timeout = typing.then(|| Duration::from_millis(timeout.unwrap_or(30_000)));
                state.set_typing(&room_id, &authed.user_id, timeout)?;
                Ok(Reply::Tree(json!({})))
            }
            ClientRequest::Receipt {
                room_id,
                receipt_type,
                event_id,
                thread_id,
            } => {
                let room_id = parse_room_id(&room_id)?;
                state.set_receipt(
                    &authed.user_id,
                    &room_id,
                    &receipt_type,
                    &event_id,
                    thread_id.as_deref(),
                )?;
                Ok(Reply::Tree(json!({})))
            }
            ClientRequest::Presence {
                presence,
                status_msg,
            } => {
                let presence = PresenceState::parse(&presence).ok_or_else(|| {
                    Error::invalid_param(format!(
                        "presence must be online, unavailable or offline, not {presence:?}"
                    ))
                })?;
                state.set_presence(&authed.user_id, presence, status_msg)?;
                Ok(Reply::Tree(json!({})))
            }
            ClientRequest::Ping {} => Ok(Reply::Tree(json!({}))),
            ClientRequest::SlidingSync { pos, body } => match self.sliding.as_mut() {
                Some(sliding) => sliding_body(&body)
                    .and_then(|body| sliding.request(state, authed, pos, body))
                    .map(Reply::Sliding),
                None => Err(Error::new(
                    ErrorKind::Unrecognized {
                        method_not_allowed: false,
                    },
                    "sliding_sync requests need a socket opened with mode=sliding",
                )),
            },
        }
    }
}

/// A client's text frame as its `request_id` and typed request, or the `error` frame that
/// answers it (not JSON, not an object, no string `request_id`, an unknown `type`, or the
/// wrong fields for its type).
pub fn parse_frame(text: &str) -> std::result::Result<(String, ClientRequest), Value> {
    let frame: Value = match serde_json::from_str(text) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => {
            return Err(error_frame(
                None,
                &Error::bad_json("A frame must be a JSON object"),
            ));
        }
        Err(e) => {
            return Err(error_frame(
                None,
                &Error::new(ErrorKind::NotJson, format!("Frame is not JSON: {e}")),
            ));
        }
    };
    let request_id = match frame.get("request_id") {
        Some(Value::String(id)) => id.clone(),
        _ => {
            return Err(error_frame(
                None,
                &Error::bad_json("Every request needs a string request_id"),
            ));
        }
    };
    let request: ClientRequest = serde_json::from_value(frame).map_err(|e| {
        let text = e.to_string();
        let error = if text.starts_with("unknown variant") {
            Error::new(
                ErrorKind::Unrecognized {
                    method_not_allowed: false,
                },
                format!("Unknown request type: {text}"),
            )
        } else {
            Error::bad_json(format!("Invalid request: {text}"))
        };
        error_frame(Some(&request_id), &error)
    })?;
    Ok((request_id, request))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientRequest {
    Send {
        room_id: String,
        event_type: String,
        txn_id: String,
        content: Map<String, Value>,
    },
    State {
        room_id: String,
        event_type: String,
        #[serde(default)]
        state_key: String,
        content: Map<String, Value>,
    },
    Typing {
        room_id: String,
        typing: bool,
        timeout: Option<u64>,
    },
    Receipt {
        room_id: String,
        receipt_type: String,
        event_id: String,
        thread_id: Option<String>,
    },
    Presence {
        presence: String,
        status_msg: Option<String>,
    },
    Ping {},
    /// Only on a socket opened with `mode=sliding`: `body` is the long-poll's body and
    /// `pos` its query parameter (see `sliding_sync_ws.rs` for a `pos` left out). The
    /// body is read into a [`Body`] from its text (its lists are kept as JSON, which a
    /// frame read as a whole does not keep).
    SlidingSync {
        pos: Option<String>,
        #[serde(default = "empty_object")]
        body: Box<Value>,
    },
}

/// A `sliding_sync` frame without a `body`: `{}`, as for the long-poll.
fn empty_object() -> Box<Value> {
    Box::new(Value::Object(Map::new()))
}

/// A `sliding_sync` frame's body as the long-poll reads it.
fn sliding_body(body: &Value) -> Result<Body> {
    if !body.is_object() {
        return Err(Error::bad_json("A sliding_sync body must be a JSON object"));
    }
    serde_json::from_str(&body.to_string())
        .map_err(|e| Error::bad_json(format!("Invalid sliding_sync body: {e}")))
}

fn error_frame(request_id: Option<&str>, error: &Error) -> Value {
    let body = error.body();
    json!({
        "type": "error",
        "request_id": request_id,
        "errcode": body["errcode"],
        "error": body["error"],
    })
}
