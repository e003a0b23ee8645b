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
    /// A validated email session (`threepid_creds`): password resets.
    EmailIdentity,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dummy => "m.login.dummy",
            Stage::Password => "m.login.password",
            Stage::RegistrationToken => "m.login.registration_token",
            Stage::EmailIdentity => "m.login.email.identity",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Stage::Dummy,
            Stage::Password,
            Stage::RegistrationToken,
            Stage::EmailIdentity,
        ]
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
    /// What the operation acts on (e.g. the device to delete): a session started for one
    /// target cannot authorise the same operation on another, as Synapse checks.
    pub target: Option<String>,
}

impl Requirement {
    /// The same requirement, bound to `target`.
    pub fn for_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }
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
    /// The parameters of the request that started the session (registration only):
    /// later requests of the session may leave them out.
    params: Map<String, Value>,
    /// Registration only: the account this session created, so that repeating the
    /// finished request answers with the same user (as Synapse does).
    registered: Option<OwnedUserId>,
}

/// The purpose of registration sessions, which remember their first request.
pub const REGISTER: &str = "register";

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
        self.start_with(requirement, Map::new())
    }

    fn start_with(&self, requirement: &Requirement, params: Map<String, Value>) -> String {
        let id = super::random_string(24);
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.created.elapsed() < SESSION_LIFETIME);
        sessions.insert(
            id.clone(),
            Session {
                requirement: requirement.clone(),
                completed: Vec::new(),
                created: Instant::now(),
                params,
                registered: None,
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
        // Authenticating as someone else is refused outright (403), not re-challenged:
        // the access token belongs to one user, the password to another.
        if stage == Stage::Password
            && let Some(user) = &requirement.user
            && super::users::identifier_user(auth, self.server_name()).is_ok_and(|c| c != *user)
        {
            return Err(Error::forbidden(
                "The identifier does not match the logged-in user",
            ));
        }
        if let Err(failure) = self
            .check_stage(stage, auth, requirement.user.as_deref())
            .await
        {
            let errcode = match failure.kind {
                ErrorKind::Forbidden => "M_FORBIDDEN",
                ErrorKind::InvalidParam => "M_INVALID_PARAM",
                ErrorKind::MissingParam => "M_MISSING_PARAM",
                ErrorKind::ThreepidAuthFailed => "M_THREEPID_AUTH_FAILED",
                _ => return Err(failure),
            };
            return Err(self
                .uia
                .challenge(&session_id, Some((errcode, failure.message.into()))));
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

    /// Registration's first step: the request's parameters (without `auth`) are merged
    /// with those remembered by its session, the first request's winning where both
    /// give one; a request without a session starts one remembering them. Answers the
    /// parameters to use, and the user the session registered already, if any.
    pub fn registration_params(
        &self,
        requirement: &Requirement,
        auth: Option<&Map<String, Value>>,
        mut params: Map<String, Value>,
    ) -> Result<(Map<String, Value>, Option<OwnedUserId>)> {
        let session_id = auth.and_then(|a| a.get("session")).and_then(Value::as_str);
        let Some(session_id) = session_id else {
            if auth.is_none() {
                let id = self.uia.start_with(requirement, params);
                return Err(self.uia.challenge(&id, None));
            }
            return Ok((params, None));
        };
        let mut sessions = self.uia.lock();
        let Some(session) = sessions.get_mut(session_id) else {
            return Err(Error::new(
                ErrorKind::Unknown,
                "Unknown or expired user-interactive auth session",
            ));
        };
        if session.requirement != *requirement {
            return Err(Error::forbidden(
                "This auth session was started for a different request",
            ));
        }
        for (key, value) in &session.params {
            params.insert(key.clone(), value.clone());
        }
        if session.params.is_empty() {
            session.params = params.clone();
        }
        Ok((params, session.registered.clone()))
    }

    /// The account a registration session created already, if it did.
    pub fn registered_by_session(&self, auth: Option<&Map<String, Value>>) -> Option<OwnedUserId> {
        let id = auth?.get("session")?.as_str()?;
        self.uia.lock().get(id)?.registered.clone()
    }

    /// Records the account a registration session created.
    pub fn registration_done(&self, auth: Option<&Map<String, Value>>, user_id: &UserId) {
        if let Some(id) = auth.and_then(|a| a.get("session")).and_then(Value::as_str)
            && let Some(session) = self.uia.lock().get_mut(id)
        {
            session.registered = Some(user_id.to_owned());
        }
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
            // A registration session stays until it expires, so that a retried request
            // answers with the account it created.
            if requirement.purpose != REGISTER {
                sessions.remove(session_id);
            }
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
            Stage::EmailIdentity => self.email_identity_user(auth).map(|_| ()),
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
