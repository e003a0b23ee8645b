//! Simplified sliding sync (MSC4186) over the sync WebSocket (`?mode=sliding`; see
//! `spec/websocket-sync.md`): the client sends the long-poll's body in a `sliding_sync`
//! request frame, and the server answers it, then pushes each further answer as soon as
//! it holds something, as a client re-polling at once with each new `pos` would see.
//! The connection's state is the long-poll's (`crate::service::sliding_sync`): the same
//! `pos` works on either.

use serde::Deserialize;

use crate::api::AppState;
use crate::error::{Error, Result};
use crate::service::sessions::Authed;
use crate::service::sliding_sync::{Body, SlidingAnswer, SlidingConnection};

/// What the socket carries, from its `mode` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/sync` responses (the default).
    Classic,
    /// Sliding sync answers.
    Sliding,
}

#[derive(Debug, Default, Deserialize)]
pub struct ModeParams {
    mode: Option<String>,
    since: Option<String>,
    filter: Option<String>,
    full_state: Option<String>,
}

impl ModeParams {
    /// The socket's mode; the `/sync` parameters mean nothing to a sliding socket (its
    /// requests say what they want) and are refused there.
    pub fn mode(&self) -> Result<Mode> {
        match self.mode.as_deref() {
            None | Some("") | Some("sync") => Ok(Mode::Classic),
            Some("sliding") => {
                let classic = [
                    ("since", &self.since),
                    ("filter", &self.filter),
                    ("full_state", &self.full_state),
                ];
                if let Some((name, _)) = classic.iter().find(|(_, value)| value.is_some()) {
                    return Err(Error::invalid_param(format!(
                        "{name} is a /sync parameter: a sliding socket takes the position \
                         and what to sync in its sliding_sync requests"
                    )));
                }
                Ok(Mode::Sliding)
            }
            Some(other) => Err(Error::invalid_param(format!(
                "mode must be sync or sliding, not {other:?}"
            ))),
        }
    }
}

/// A sliding socket's connection: none until the first `sliding_sync` request.
#[derive(Default)]
pub struct SlidingSocket {
    connection: Option<SlidingConnection>,
    /// The last answer held as many to-device messages as one may: the next is due at once.
    more: bool,
}

impl SlidingSocket {
    /// Answers a `sliding_sync` request, always (with the same `pos` when nothing is new),
    /// and makes its connection the one the socket pushes for. Without a `pos`, a
    /// request for the connection (`conn_id`) the socket already serves continues from
    /// the socket's last answer; for another, it starts that connection afresh, as the
    /// long-poll does. A request that fails leaves the socket's connection as it was.
    pub fn request(
        &mut self,
        state: &AppState,
        authed: &Authed,
        pos: Option<String>,
        body: Body,
    ) -> Result<SlidingAnswer> {
        let conn_id = body.conn_id.clone().unwrap_or_default();
        let current = self
            .connection
            .as_ref()
            .filter(|c| pos.is_none() && c.conn_id() == conn_id);
        let pos = pos.or_else(|| current.and_then(|c| c.pos().map(str::to_owned)));
        let mut connection =
            state.sliding_connection(&authed.user_id, &authed.device_id, pos.as_deref(), body)?;
        if let Some(current) = current {
            connection.continue_to_device_from(current);
        }
        let answer = state
            .sliding_answer(&authed.user_id, &authed.device_id, &mut connection, true)?
            .unwrap_or_default();
        self.more = connection.more_waiting(&answer);
        self.connection = Some(connection);
        Ok(answer)
    }

    /// The connection's next answer, if it holds anything new.
    pub fn push(&mut self, state: &AppState, authed: &Authed) -> Result<Option<SlidingAnswer>> {
        self.more = false;
        let Some(connection) = self.connection.as_mut() else {
            return Ok(None);
        };
        let answer = state.sliding_answer(&authed.user_id, &authed.device_id, connection, false)?;
        self.more = answer.as_ref().is_some_and(|a| connection.more_waiting(a));
        Ok(answer)
    }

    /// Whether the next answer is due without waiting for news.
    pub fn more_due(&self) -> bool {
        self.more
    }
}
