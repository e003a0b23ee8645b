//! User-interactive authentication (the spec's "legacy" UIA API): sessions, stages, flows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ruma::{OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use super::Services;
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Dummy,
    Password,
    RegistrationToken,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dummy => "m.login.dummy",
            Stage::Password => "m.login.password",
            Stage::RegistrationToken => "m.login.registration_token",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Stage::Dummy, Stage::Password, Stage::RegistrationToken]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What an operation asks for: sessions are bound to one purpose and, where a user is
/// known, to that user, so a session completed for one request cannot authorise another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub purpose: &'static str,
    pub flows: Vec<Vec<Stage>>,
    pub user: Option<OwnedUserId>,
}

/// The body of a 401 that asks the client to continue authenticating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiaChallenge {
    pub session: String,
    pub flows: Vec<Vec<Stage>>,
    pub completed: Vec<Stage>,
    pub error: Option<(&'static str, String)>,
}

impl UiaChallenge {
    pub fn to_json(&self) -> Value {
        let flows: Vec<Value> = self
            .flows
            .iter()
            .map(
                |stages| json!({ "stages": stages.iter().map(|s| s.as_str()).collect::<Vec<_>>() }),
            )
            .collect();
        let mut body = json!({
            "session": self.session,
            "flows": flows,
            "params": {},
            "completed": self.completed.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        });
        if let Some((errcode, error)) = &self.error {
            body["errcode"] = json!(errcode);
            body["error"] = json!(error);
        }
        body
    }
}

struct Session {
    requirement: Requirement,
    completed: Vec<Stage>,
    created: Instant,
}

const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct UiaSessions {
    sessions: Mutex<HashMap<String, Session>>,
}

impl UiaSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(&self, requirement: &Requirement) -> String {
        let id = super::random_string(24);
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.created.elapsed() < SESSION_LIFETIME);
        sessions.insert(
            id.clone(),
            Session {
                requirement: requirement.clone(),
                completed: Vec::new(),
                created: Instant::now(),
            },
        );
        id
    }

    fn challenge(&self, id: &str, error: Option<(&'static str, String)>) -> Error {
        let sessions = self.lock();
        let (flows, completed) = match sessions.get(id) {
            Some(s) => (s.requirement.flows.clone(), s.completed.clone()),
            None => (Vec::new(), Vec::new()),
        };
        Error::new(
            ErrorKind::AuthRequired(Box::new(UiaChallenge {
                session: id.to_owned(),
                flows,
                completed,
                error,
            })),
            "User-interactive authentication required",
        )
    }
}

impl Services {
    /// Runs one step of user-interactive auth for `requirement`. `Ok` means a flow is
    /// complete and the operation may go ahead; otherwise the error is the 401 to send.
    pub async fn authenticate(
        &self,
        requirement: Requirement,
        auth: Option<&Map<String, Value>>,
    ) -> Result<()> {
        let Some(auth) = auth else {
            let id = self.uia.start(&requirement);
            return Err(self.uia.challenge(&id, None));
        };
        let session_id = match auth.get("session").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            // Clients commonly send a dummy or token stage without first asking for a
            // session; accept that by starting one here.
            None => self.uia.start(&requirement),
        };
        {
            let sessions = self.uia.lock();
            match sessions.get(&session_id) {
                None => {
                    return Err(Error::new(
                        ErrorKind::Unknown,
                        "Unknown or expired user-interactive auth session",
                    ));
                }
                Some(s) if s.requirement != requirement => {
                    return Err(Error::forbidden(
                        "This auth session was started for a different request",
                    ));
                }
                Some(_) => {}
            }
        }
        let Some(stage_name) = auth.get("type").and_then(Value::as_str) else {
            // A request with only a session asks whether the flow is complete.
            return self.finish_if_complete(&session_id, &requirement);
        };
        let allowed = requirement
            .flows
            .iter()
            .flatten()
            .any(|s| s.as_str() == stage_name);
        let stage = match Stage::parse(stage_name) {
            Some(stage) if allowed => stage,
            _ => {
                return Err(self.uia.challenge(
                    &session_id,
                    Some((
                        "M_UNRECOGNIZED",
                        format!("Auth stage {stage_name} is not offered here"),
                    )),
                ));
            }
        };
        if let Err(failure) = self
            .check_stage(stage, auth, requirement.user.as_deref())
            .await
        {
            return match failure.kind {
                ErrorKind::Forbidden | ErrorKind::InvalidParam | ErrorKind::MissingParam => {
                    Err(self.uia.challenge(
                        &session_id,
                        Some((failure.errcode(), failure.message.into())),
                    ))
                }
                _ => Err(failure),
            };
        }
        {
            let mut sessions = self.uia.lock();
            if let Some(s) = sessions.get_mut(&session_id)
                && !s.completed.contains(&stage)
            {
                s.completed.push(stage);
            }
        }
        self.finish_if_complete(&session_id, &requirement)
    }

    fn finish_if_complete(&self, session_id: &str, requirement: &Requirement) -> Result<()> {
        let mut sessions = self.uia.lock();
        let done = sessions.get(session_id).is_some_and(|s| {
            requirement
                .flows
                .iter()
                .any(|flow| flow.iter().all(|stage| s.completed.contains(stage)))
        });
        if done {
            sessions.remove(session_id);
            Ok(())
        } else {
            drop(sessions);
            Err(self.uia.challenge(session_id, None))
        }
    }

    async fn check_stage(
        &self,
        stage: Stage,
        auth: &Map<String, Value>,
        user: Option<&UserId>,
    ) -> Result<()> {
        match stage {
            Stage::Dummy => Ok(()),
            Stage::RegistrationToken => {
                let given = auth
                    .get("token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::missing_param("Missing registration token"))?;
                if self.registration_token_valid(given)? {
                    Ok(())
                } else {
                    Err(Error::forbidden("Invalid registration token"))
                }
            }
            Stage::Password => {
                let user = user.ok_or_else(|| Error::internal("password stage without a user"))?;
                let claimed = super::users::identifier_user(auth, self.server_name())?;
                let password = auth
                    .get("password")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::missing_param("Missing password"))?;
                if claimed != user {
                    return Err(Error::forbidden(
                        "The identifier does not match the logged-in user",
                    ));
                }
                self.check_password(user, password, None).await
            }
        }
    }
}
