//! Accounts: registration, passwords, JWT login, deactivation.

use ruma::{OwnedDeviceId, OwnedUserId, ServerName, UserId};
use serde_json::{Map, Value};

use super::sessions::IssuedTokens;
use super::{Services, now_ms, password};
use crate::config::JwtAlgorithm;
use crate::error::{Error, ErrorKind, Result};
use crate::service::fanout::FanoutKind;
use crate::store::UserRecord;

/// Longest password accepted, so hashing cost stays bounded.
const MAX_PASSWORD_BYTES: usize = 512;

/// The user a login or UIA `identifier` (or the legacy top-level `user`) names.
pub fn identifier_user(body: &Map<String, Value>, server_name: &ServerName) -> Result<OwnedUserId> {
    let user = match body.get("identifier") {
        Some(Value::Object(identifier)) => match identifier.get("type").and_then(Value::as_str) {
            Some("m.id.user") => {
                identifier
                    .get("user")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Error::bad_json("identifier of type m.id.user needs a string 'user'")
                    })?
            }
            Some("m.id.thirdparty" | "m.id.phone") => {
                return Err(Error::new(
                    ErrorKind::Unknown,
                    "This server has no third-party identifiers; log in with a user ID",
                ));
            }
            _ => return Err(Error::bad_json("Unknown identifier type")),
        },
        Some(_) => return Err(Error::bad_json("'identifier' must be an object")),
        None => body
            .get("user")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::missing_param("Missing identifier"))?,
    };
    resolve_user(user, server_name)
}

/// Accepts a full user ID or a localpart, case-insensitively as Synapse does.
pub fn resolve_user(user: &str, server_name: &ServerName) -> Result<OwnedUserId> {
    let text = if user.starts_with('@') {
        user.to_owned()
    } else {
        format!("@{}:{server_name}", user.to_lowercase())
    };
    let parsed = UserId::parse(&text).map_err(|_| Error::invalid_param("Invalid user ID"))?;
    if parsed.server_name() != server_name {
        return Err(Error::forbidden("That user is not on this server"));
    }
    // Localparts are stored lower-case; historical mixed-case IDs are matched as such.
    let lower = format!("@{}:{server_name}", parsed.localpart().to_lowercase());
    UserId::parse(&lower).map_err(|_| Error::invalid_param("Invalid user ID"))
}

/// Checks a requested localpart against the spec's grammar for new user IDs.
pub fn validate_localpart(localpart: &str, server_name: &ServerName) -> Result<OwnedUserId> {
    let invalid = |why: &str| Error::new(ErrorKind::InvalidUsername, why.to_owned());
    if localpart.is_empty() {
        return Err(invalid("User names must not be empty"));
    }
    if !localpart
        .chars()
        .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+'))
    {
        return Err(invalid(
            "User names may contain only a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
        ));
    }
    let user_id = format!("@{localpart}:{server_name}");
    if user_id.len() > 255 {
        return Err(invalid("User ID is longer than 255 characters"));
    }
    UserId::parse(&user_id).map_err(|_| invalid("Not a valid user ID"))
}

pub struct NewAccount {
    pub localpart: Option<String>,
    pub password: Option<String>,
    pub device_id: Option<OwnedDeviceId>,
    pub device_display_name: Option<String>,
    pub inhibit_login: bool,
    pub refreshable: bool,
    pub admin: bool,
    /// The registration token the user gave, whose use is counted with the account.
    pub registration_token: Option<String>,
    /// A guest account: a numeric localpart, no password, only the guest endpoints.
    pub guest: bool,
}

impl Services {
    pub fn check_password_rules(&self, password: &str) -> Result<()> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::invalid_param(format!(
                "Passwords may be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        let min = self.config.registration.min_password_length;
        if password.chars().count() < min {
            return Err(Error::new(
                ErrorKind::WeakPassword,
                format!("Passwords must be at least {min} characters long"),
            ));
        }
        Ok(())
    }

    /// Whether a localpart could be registered now.
    pub fn username_available(&self, localpart: &str) -> Result<OwnedUserId> {
        let user_id = validate_localpart(localpart, self.server_name())?;
        if self.store.user(user_id.as_str())?.is_some() {
            return Err(Error::new(ErrorKind::UserInUse, "User ID already taken"));
        }
        Ok(user_id)
    }

    /// Creates the account (and a first session unless `inhibit_login`).
    pub async fn create_account(
        &self,
        new: NewAccount,
    ) -> Result<(OwnedUserId, Option<IssuedTokens>)> {
        let password_hash = match new.password {
            Some(password) => {
                self.check_password_rules(&password)?;
                Some(password::hash(password).await?)
            }
            None => None,
        };
        let user_id = {
            let _guard = self.sessions.write_lock.lock().await;
            let user_id = match &new.localpart {
                Some(localpart) => self.username_available(localpart)?,
                None if new.guest => self.unused_guest_user_id()?,
                None => self.unused_generated_user_id()?,
            };
            let mut batch = self.store.batch();
            if let Some(token) = &new.registration_token {
                self.stage_registration_token_use(&mut batch, token)?;
            }
            batch.put_user(
                user_id.as_str(),
                &UserRecord {
                    password_hash,
                    created_ts: now_ms(),
                    deactivated: false,
                    admin: new.admin,
                    locked: false,
                    suspended: false,
                    shadow_banned: false,
                    erased: false,
                    ratelimit_override: None,
                    guest: new.guest,
                },
            )?;
            // Like Synapse: a new user is called by their localpart until they choose a
            // name, so clients and the user directory have something readable.
            batch.put_profile_field(
                user_id.as_str(),
                super::profile::DISPLAYNAME,
                &Value::String(user_id.localpart().to_owned()),
            )?;
            self.store.write(batch)?;
            user_id
        };
        tracing::info!(user_id = %user_id, "registered");
        if new.inhibit_login {
            return Ok((user_id, None));
        }
        let tokens = self
            .sessions
            .open_session(
                &user_id,
                new.device_id,
                new.device_display_name,
                new.refreshable,
            )
            .await?;
        Ok((user_id, Some(tokens)))
    }

    fn unused_generated_user_id(&self) -> Result<OwnedUserId> {
        loop {
            let localpart = format!("user{}", super::random_string(8).to_lowercase());
            match self.username_available(&localpart) {
                Err(e) if e.kind == ErrorKind::UserInUse => continue,
                other => return other,
            }
        }
    }

    /// A guest's user ID: a number, as Synapse gives guests (and refuses to anyone
    /// else registering, see [`validate_localpart`]'s caller in `/register`).
    fn unused_guest_user_id(&self) -> Result<OwnedUserId> {
        loop {
            let number = rand::random::<u32>() % 900_000_000 + 100_000_000;
            match self.username_available(&number.to_string()) {
                Err(e) if e.kind == ErrorKind::UserInUse => continue,
                other => return other,
            }
        }
    }

    /// Verifies a user's password, counting failures against the user and the address.
    pub async fn check_password(
        &self,
        user_id: &UserId,
        password: &str,
        address: Option<&str>,
    ) -> Result<()> {
        let keys: Vec<String> = std::iter::once(format!("user:{user_id}"))
            .chain(address.map(|a| format!("addr:{a}")))
            .collect();
        for key in &keys {
            if let Err(retry_after_ms) = self.login_limiter.check(key) {
                return Err(Error::new(
                    ErrorKind::LimitExceeded { retry_after_ms },
                    "Too many failed attempts; try again later",
                ));
            }
        }
        let user = self.store.user(user_id.as_str())?;
        let ok = password::verify(
            password.to_owned(),
            user.as_ref().and_then(|u| u.password_hash.clone()),
        )
        .await?;
        if let Some(user) = &user
            && user.deactivated
        {
            return Err(Error::new(
                ErrorKind::UserDeactivated,
                "This account has been deactivated",
            ));
        }
        if !ok {
            for key in &keys {
                self.login_limiter.consume(key);
            }
            return Err(Error::forbidden("Invalid username or password"));
        }
        Ok(())
    }

    /// Validates a JWT and returns the user it names, creating the account when
    /// `jwt.create_users` is on.
    pub async fn jwt_user(&self, token: &str) -> Result<OwnedUserId> {
        let jwt = &self.config.jwt;
        if !jwt.enabled {
            return Err(Error::new(ErrorKind::Unknown, "JWT login is not enabled"));
        }
        let (algorithm, key) = match jwt.algorithm {
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => {
                let alg = match jwt.algorithm {
                    JwtAlgorithm::HS384 => jsonwebtoken::Algorithm::HS384,
                    JwtAlgorithm::HS512 => jsonwebtoken::Algorithm::HS512,
                    _ => jsonwebtoken::Algorithm::HS256,
                };
                let secret = jwt.secret.as_deref().unwrap_or_default();
                (
                    alg,
                    jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                let path = jwt
                    .public_key_file
                    .as_ref()
                    .ok_or_else(|| Error::internal("jwt.public_key_file missing"))?;
                let pem = std::fs::read(path).map_err(Error::internal)?;
                if jwt.algorithm == JwtAlgorithm::RS256 {
                    let key =
                        jsonwebtoken::DecodingKey::from_rsa_pem(&pem).map_err(Error::internal)?;
                    (jsonwebtoken::Algorithm::RS256, key)
                } else {
                    let key =
                        jsonwebtoken::DecodingKey::from_ec_pem(&pem).map_err(Error::internal)?;
                    (jsonwebtoken::Algorithm::ES256, key)
                }
            }
        };
        let mut validation = jsonwebtoken::Validation::new(algorithm);
        // Like Synapse: `exp` and `nbf` are checked when present, not required.
        validation.required_spec_claims.clear();
        validation.validate_nbf = true;
        if let Some(issuer) = &jwt.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &jwt.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| Error::forbidden(format!("JWT validation failed: {e}")))?;
        let subject = data
            .claims
            .get(&jwt.subject_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::forbidden(format!("JWT has no string '{}' claim", jwt.subject_claim))
            })?;
        let user_id = resolve_user(subject, self.server_name())?;
        match self.store.user(user_id.as_str())? {
            Some(user) if user.deactivated => Err(Error::new(
                ErrorKind::UserDeactivated,
                "This account has been deactivated",
            )),
            Some(_) => Ok(user_id),
            None if jwt.create_users => {
                let (user_id, _) = self
                    .create_account(NewAccount {
                        localpart: Some(user_id.localpart().to_owned()),
                        password: None,
                        device_id: None,
                        device_display_name: None,
                        inhibit_login: true,
                        refreshable: false,
                        admin: false,
                        registration_token: None,
                        guest: false,
                    })
                    .await?;
                Ok(user_id)
            }
            None => Err(Error::forbidden("No account for this JWT's subject")),
        }
    }

    pub async fn change_password(&self, user_id: &UserId, new_password: String) -> Result<()> {
        self.check_password_rules(&new_password)?;
        let hash = password::hash(new_password).await?;
        let _guard = self.sessions.write_lock.lock().await;
        let mut user = self
            .store
            .user(user_id.as_str())?
            .ok_or_else(|| Error::not_found("No such user"))?;
        user.password_hash = Some(hash);
        let mut batch = self.store.batch();
        batch.put_user(user_id.as_str(), &user)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Deactivates the account for good: no password, no devices, no key backup; the ID
    /// stays taken. With `leave_rooms`, the user also leaves every room they are joined
    /// to, invited to or knocking on: the intent to is written with the deactivation, so a
    /// crash part-way through the rooms is finished at the next start.
    pub async fn deactivate(&self, user_id: &UserId, leave_rooms: bool) -> Result<()> {
        let generation = {
            let _guard = self.sessions.write_lock.lock().await;
            let mut user = self
                .store
                .user(user_id.as_str())?
                .ok_or_else(|| Error::not_found("No such user"))?;
            user.deactivated = true;
            user.password_hash = None;
            let mut batch = self.store.batch();
            batch.put_user(user_id.as_str(), &user)?;
            // Its email addresses are freed and get no more mail (as Synapse does).
            for (address, _) in self.store.user_threepids(user_id.as_str())? {
                batch.delete_threepid(user_id.as_str(), &address);
                batch.delete_pusher(
                    user_id.as_str(),
                    crate::service::email::threepid::EMAIL_APP_ID,
                    &address,
                );
            }
            let generation = if leave_rooms {
                Some(
                    self.fanout
                        .stage(&mut batch, user_id.as_str(), FanoutKind::LeaveRooms)?,
                )
            } else {
                None
            };
            self.store.write(batch)?;
            generation
        };
        if generation.is_some() {
            self.fanout.wake(user_id.as_str());
        }
        self.remove_all_devices(user_id, None).await?;
        // The backed-up room keys are of no use to anyone any more (as Synapse does).
        self.key_backup.delete_all(user_id)?;
        self.erase_profile(user_id).await?;
        if let Some(generation) = generation {
            self.fanout
                .finished(user_id.as_str(), FanoutKind::LeaveRooms, generation)
                .await?;
        }
        tracing::info!(user_id = %user_id, "deactivated");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> &'static ServerName {
        <&ServerName>::try_from("example.org").unwrap()
    }

    #[test]
    fn localparts_follow_the_grammar() {
        assert!(validate_localpart("alice.b-c_d=e/f+g", server()).is_ok());
        for bad in ["", "Alice", "al ice", "al:ice", "ålice", "@alice"] {
            let err = validate_localpart(bad, server()).unwrap_err();
            assert_eq!(err.errcode(), "M_INVALID_USERNAME", "{bad:?}");
        }
        assert!(validate_localpart(&"a".repeat(300), server()).is_err());
    }

    #[test]
    fn identifiers_resolve_to_local_users() {
        let body = serde_json::json!({"identifier": {"type": "m.id.user", "user": "Alice"}});
        let user = identifier_user(body.as_object().unwrap(), server()).unwrap();
        assert_eq!(user.as_str(), "@alice:example.org");
        let legacy = serde_json::json!({"user": "@alice:example.org"});
        assert_eq!(
            identifier_user(legacy.as_object().unwrap(), server()).unwrap(),
            user
        );
        let remote = serde_json::json!({"user": "@alice:elsewhere.org"});
        assert!(identifier_user(remote.as_object().unwrap(), server()).is_err());
    }
}
