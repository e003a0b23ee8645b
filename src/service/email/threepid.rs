//! Verified email addresses: `requestToken` sessions (a mailed link validates them),
//! adding, listing and removing a user's addresses, and the `m.login.email.identity`
//! stage that password resets use.
//!
//! Tokens are random, mailed once, stored only as their SHA-256, single use and expire
//! after `email.token_lifetime_secs`. Session IDs are derived from the purpose, client
//! secret and address, so a repeated request (same `send_attempt`) finds its session,
//! and a request for an address that cannot be used (owned by someone else, or unknown
//! for a password reset) gets an answer of the same shape while nothing is mailed: the
//! answer does not tell who has an account.

use ruma::UserId;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{canonical_address, escape, html, token_hash};
use crate::error::{Error, ErrorKind, Result};
use crate::service::ratelimit::limit_exceeded;
use crate::service::{Services, now_ms, random_string};
use crate::store::{PusherRecord, ThreepidPurpose, ThreepidRecord, ThreepidSessionRecord};

/// The app ID of email pushers (Synapse's).
pub const EMAIL_APP_ID: &str = "m.email";
/// The Hearth page the mailed link opens.
pub const VALIDATE_PATH: &str = "/_hearth/client/v1/email/validate";

/// A `requestToken` body.
pub struct TokenRequest {
    pub client_secret: String,
    pub email: String,
    pub send_attempt: u64,
    pub next_link: Option<String>,
}

fn auth_failed(message: &'static str) -> Error {
    Error::new(ErrorKind::ThreepidAuthFailed, message)
}

/// The spec's client secret: 1–255 characters of `[0-9a-zA-Z.=_-]`.
fn check_client_secret(secret: &str) -> Result<()> {
    let valid = !secret.is_empty()
        && secret.len() <= 255
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".=_-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_param(
            "client_secret must be 1 to 255 characters of [0-9a-zA-Z.=_-]",
        ))
    }
}

fn purpose_name(purpose: ThreepidPurpose) -> &'static str {
    match purpose {
        ThreepidPurpose::Add => "add",
        ThreepidPurpose::PasswordReset => "password_reset",
    }
}

impl Services {
    /// `/account/3pid/email/requestToken` and `/account/password/email/requestToken`:
    /// answers the session ID.
    pub async fn request_email_token(
        &self,
        purpose: ThreepidPurpose,
        request: TokenRequest,
    ) -> Result<String> {
        self.email.require_enabled()?;
        check_client_secret(&request.client_secret)?;
        let address = canonical_address(&request.email)?;
        if let Some(link) = &request.next_link {
            let ok =
                reqwest::Url::parse(link).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(Error::invalid_param("next_link must be an http(s) URL"));
            }
        }
        let sid = self.email.sign(&[
            "sid",
            purpose_name(purpose),
            &request.client_secret,
            &address,
        ])[..32]
            .to_owned();
        if let Some(existing) = self.store.threepid_session(&sid)?
            && existing.send_attempt >= request.send_attempt
            && existing.expires_ms > now_ms()
        {
            // A retry: the mail went already.
            return Ok(sid);
        }
        self.email
            .per_address
            .take(&address)
            .map_err(|wait| limit_exceeded(wait, "sending mails to this address"))?;
        let owner = self.store.threepid_owner(&address)?;
        let usable = match purpose {
            ThreepidPurpose::Add => owner.is_none(),
            ThreepidPurpose::PasswordReset => owner.is_some(),
        };
        if !usable {
            tracing::info!(
                purpose = purpose_name(purpose),
                "no mail sent for an address that cannot be used"
            );
            return Ok(sid);
        }
        let token = random_string(32);
        let now = now_ms();
        let record = ThreepidSessionRecord {
            purpose,
            client_secret: request.client_secret.clone(),
            address: address.clone(),
            send_attempt: request.send_attempt,
            token_sha256: Some(token_hash(&token)),
            next_link: request.next_link,
            created_ms: now,
            expires_ms: now + self.email.config.token_lifetime_secs * 1000,
            validated_ms: None,
        };
        let mut batch = self.store.batch();
        // Expired sessions can no longer be used: a few go with each new one, so that
        // they cannot pile up.
        for expired in self.store.expired_threepid_sessions(now, 16)? {
            batch.delete_threepid_session(&expired);
        }
        batch.put_threepid_session(&sid, &record)?;
        self.store.write(batch)?;
        let link = format!(
            "{}{VALIDATE_PATH}?{}",
            self.email.base_url,
            serde_urlencoded::to_string([
                ("sid", sid.as_str()),
                ("client_secret", request.client_secret.as_str()),
                ("token", token.as_str()),
            ])
            .map_err(Error::internal)?
        );
        let server = &self.email.server_name;
        let (subject, intro) = match purpose {
            ThreepidPurpose::Add => (
                format!("Verify your email address on {server}"),
                format!("Someone asked to add this address to an account on {server}."),
            ),
            ThreepidPurpose::PasswordReset => (
                format!("Reset your password on {server}"),
                format!("Someone asked to reset the password of your account on {server}."),
            ),
        };
        let text = format!(
            "{intro}\n\nIf it was you, open this link:\n\n{link}\n\nIf it was not you, ignore this mail.\n"
        );
        let body = format!(
            "<p>{}</p><p>If it was you, <a href=\"{}\">open this link</a>.</p><p>If it was not you, ignore this mail.</p>",
            escape(&intro),
            escape(&link)
        );
        self.email
            .send(&address, &subject, text, html::page(&subject, &body))
            .await?;
        Ok(sid)
    }

    /// The session behind a mailed link, if the link is right and still usable.
    pub fn email_link_session(
        &self,
        sid: &str,
        client_secret: &str,
        token: &str,
    ) -> Result<ThreepidSessionRecord> {
        let record = self
            .store
            .threepid_session(sid)?
            .ok_or_else(|| auth_failed("Unknown verification session"))?;
        let secret_ok: bool = record
            .client_secret
            .as_bytes()
            .ct_eq(client_secret.as_bytes())
            .into();
        let token_ok = record
            .token_sha256
            .as_ref()
            .is_some_and(|hash| bool::from(hash.as_bytes().ct_eq(token_hash(token).as_bytes())));
        if !secret_ok || !token_ok {
            return Err(auth_failed("This link is wrong or was used already"));
        }
        if record.expires_ms <= now_ms() {
            return Err(auth_failed("This link has expired"));
        }
        Ok(record)
    }

    /// Follows a mailed link: the session is validated and its token used up. Answers
    /// the session's `next_link`.
    pub fn validate_email_link(
        &self,
        sid: &str,
        client_secret: &str,
        token: &str,
    ) -> Result<Option<String>> {
        let mut record = self.email_link_session(sid, client_secret, token)?;
        record.token_sha256 = None;
        record.validated_ms = Some(now_ms());
        let mut batch = self.store.batch();
        batch.put_threepid_session(sid, &record)?;
        self.store.write(batch)?;
        Ok(record.next_link)
    }

    /// A validated session for `purpose`, checked against its client secret.
    fn validated_session(
        &self,
        sid: &str,
        client_secret: &str,
        purpose: ThreepidPurpose,
    ) -> Result<ThreepidSessionRecord> {
        let record = self
            .store
            .threepid_session(sid)?
            .filter(|r| r.purpose == purpose)
            .ok_or_else(|| auth_failed("Unknown email verification session"))?;
        let secret_ok: bool = record
            .client_secret
            .as_bytes()
            .ct_eq(client_secret.as_bytes())
            .into();
        if !secret_ok {
            return Err(auth_failed("Unknown email verification session"));
        }
        let lifetime = self.email.config.token_lifetime_secs * 1000;
        match record.validated_ms {
            Some(at) if at + lifetime > now_ms() => Ok(record),
            Some(_) => Err(auth_failed("The email verification has expired")),
            None => Err(auth_failed("The email address has not been verified yet")),
        }
    }

    /// `/account/3pid/add` (after UIA): the validated address joins the user's, and
    /// digests of missed messages go to it (an `email` pusher, as Synapse makes).
    pub fn add_threepid(&self, user_id: &UserId, sid: &str, client_secret: &str) -> Result<()> {
        check_client_secret(client_secret)?;
        let session = self.validated_session(sid, client_secret, ThreepidPurpose::Add)?;
        let address = session.address;
        match self.store.threepid_owner(&address)? {
            Some(owner) if owner == user_id.as_str() => {}
            Some(_) => {
                return Err(Error::new(
                    ErrorKind::ThreepidInUse,
                    "This address is in use by another account",
                ));
            }
            None => {}
        }
        let now = now_ms();
        let mut batch = self.store.batch();
        batch.put_threepid(
            user_id.as_str(),
            &address,
            &ThreepidRecord {
                validated_at: session.validated_ms.unwrap_or(now),
                added_at: now,
            },
        )?;
        batch.delete_threepid_session(sid);
        if self
            .store
            .pusher(user_id.as_str(), EMAIL_APP_ID, &address)?
            .is_none()
        {
            batch.put_pusher(user_id.as_str(), &email_pusher(&address))?;
        }
        self.store.write(batch)?;
        Ok(())
    }

    /// `GET /account/3pid`.
    pub fn list_threepids(&self, user_id: &UserId) -> Result<Value> {
        let threepids: Vec<Value> = self
            .store
            .user_threepids(user_id.as_str())?
            .into_iter()
            .map(|(address, record)| {
                json!({
                    "medium": "email",
                    "address": address,
                    "validated_at": record.validated_at,
                    "added_at": record.added_at,
                })
            })
            .collect();
        Ok(json!({ "threepids": threepids }))
    }

    /// `/account/3pid/delete`: removes the address and its email pusher. Removing an
    /// address the user does not have is not an error (as Synapse answers).
    pub fn delete_threepid(&self, user_id: &UserId, medium: &str, address: &str) -> Result<()> {
        if medium != "email" {
            return Err(Error::invalid_param("Only email addresses are supported"));
        }
        let address = address.trim().to_lowercase();
        if self.store.threepid_owner(&address)?.as_deref() != Some(user_id.as_str()) {
            return Ok(());
        }
        let mut batch = self.store.batch();
        batch.delete_threepid(user_id.as_str(), &address);
        batch.delete_pusher(user_id.as_str(), EMAIL_APP_ID, &address);
        self.store.write(batch)?;
        Ok(())
    }

    /// The `m.login.email.identity` stage of a password reset: the user owning the
    /// address of the validated session in `threepid_creds`.
    pub fn email_identity_user(&self, auth: &serde_json::Map<String, Value>) -> Result<String> {
        let creds = auth
            .get("threepid_creds")
            .or_else(|| auth.get("threepidCreds"))
            .and_then(Value::as_object)
            .ok_or_else(|| Error::missing_param("Missing threepid_creds"))?;
        let field = |name: &str| {
            creds
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::missing_param(format!("Missing threepid_creds.{name}")))
        };
        let sid = field("sid")?;
        let secret = field("client_secret")?;
        let session = self.validated_session(sid, secret, ThreepidPurpose::PasswordReset)?;
        self.store
            .threepid_owner(&session.address)?
            .ok_or_else(|| auth_failed("The address no longer belongs to an account"))
    }

    /// Uses up a password reset session once the password is changed.
    pub fn consume_email_session(&self, auth: &serde_json::Map<String, Value>) -> Result<()> {
        let sid = auth
            .get("threepid_creds")
            .or_else(|| auth.get("threepidCreds"))
            .and_then(|c| c.get("sid"))
            .and_then(Value::as_str);
        if let Some(sid) = sid {
            let mut batch = self.store.batch();
            batch.delete_threepid_session(sid);
            self.store.write(batch)?;
        }
        Ok(())
    }
}

/// The pusher that sends a user's digests to `address`.
pub fn email_pusher(address: &str) -> PusherRecord {
    PusherRecord {
        kind: "email".into(),
        app_id: EMAIL_APP_ID.into(),
        pushkey: address.into(),
        app_display_name: "Email Notifications".into(),
        device_display_name: address.into(),
        profile_tag: None,
        lang: "en".into(),
        data: json!({}),
        ts: now_ms(),
        device_id: None,
        activation: None,
    }
}
