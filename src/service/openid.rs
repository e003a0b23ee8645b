//! OpenID tokens: a user asks for a short-lived token that proves who they are to a third
//! party (a widget, an integration manager), which checks it with this server's
//! `/_matrix/federation/v1/openid/userinfo`. The token is good for nothing else.

use ruma::{OwnedUserId, UserId};

use super::{Services, now_ms, random_string};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{OpenidTokenRecord, TokenHash};

/// How long a token is good for, as Synapse's default (one hour).
pub const OPENID_TOKEN_LIFETIME_MS: u64 = 3_600_000;

/// Expired tokens removed with each new one, so that they cannot pile up.
const SWEEP_PER_TOKEN: usize = 16;

/// What `request_token` answers.
pub struct OpenidToken {
    pub access_token: String,
    pub expires_in_secs: u64,
}

impl Services {
    /// A new token for `user_id`, stored (so it survives a restart) before it is given out.
    pub fn request_openid_token(&self, user_id: &UserId) -> Result<OpenidToken> {
        let token = random_string(32);
        let now = now_ms();
        let mut batch = self.store.batch();
        for key in self.store.expired_openid_tokens(now, SWEEP_PER_TOKEN)? {
            batch.delete_openid_token(&key);
        }
        batch.put_openid_token(
            &TokenHash::of(&token),
            &OpenidTokenRecord {
                user_id: user_id.to_string(),
                expires_ms: now + OPENID_TOKEN_LIFETIME_MS,
            },
        )?;
        self.store.write(batch)?;
        Ok(OpenidToken {
            access_token: token,
            expires_in_secs: OPENID_TOKEN_LIFETIME_MS / 1000,
        })
    }

    /// The user a token was made for; `401 M_UNKNOWN_TOKEN` when it is unknown or expired
    /// (an expired one is deleted).
    pub fn openid_userinfo(&self, token: &str) -> Result<OwnedUserId> {
        let unknown = || {
            Error::new(
                ErrorKind::UnknownToken { soft_logout: false },
                "Invalid or expired OpenID token",
            )
        };
        let hash = TokenHash::of(token);
        let record = self.store.openid_token(&hash)?.ok_or_else(unknown)?;
        if record.expires_ms <= now_ms() {
            let mut batch = self.store.batch();
            batch.delete_openid_token(hash.as_bytes());
            self.store.write(batch)?;
            return Err(unknown());
        }
        OwnedUserId::try_from(record.user_id).map_err(|_| unknown())
    }
}
