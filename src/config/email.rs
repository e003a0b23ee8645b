//! `[email]`: the SMTP server Hearth sends address verifications, password resets and
//! digests of missed messages through. Email is off while `smtp_host` is unset.

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (refused if the server does not offer it).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test server.
    None,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    pub smtp_host: Option<String>,
    /// Unset: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub smtp_port: Option<u16>,
    pub smtp_security: SmtpSecurity,
    pub smtp_user: Option<String>,
    pub smtp_password: Option<String>,
    /// The sender, e.g. `Hearth <hearth@example.org>`.
    pub from: Option<String>,
    /// How old an unread notification must be before a digest mentions it.
    pub notif_delay_secs: u64,
    /// The shortest time between two digests to one user.
    pub notif_interval_secs: u64,
    /// How long a verification link stays valid.
    pub token_lifetime_secs: u64,
}

/// By hand so that printing the configuration never prints the SMTP password.
impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_security", &self.smtp_security)
            .field("smtp_user", &self.smtp_user)
            .field(
                "smtp_password",
                &self.smtp_password.as_ref().map(|_| "<redacted>"),
            )
            .field("from", &self.from)
            .field("notif_delay_secs", &self.notif_delay_secs)
            .field("notif_interval_secs", &self.notif_interval_secs)
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .finish()
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: None,
            smtp_security: SmtpSecurity::Starttls,
            smtp_user: None,
            smtp_password: None,
            from: None,
            notif_delay_secs: 600,
            notif_interval_secs: 86400,
            token_lifetime_secs: 3600,
        }
    }
}

pub const EMAIL_OPTIONS: &[(&str, &str)] = &[
    (
        "email.smtp_host",
        "SMTP server for address verification, password resets and digests of missed messages [default: none, email is off]",
    ),
    (
        "email.smtp_port",
        "SMTP port [default: 587 for starttls, 465 for tls, 25 for none]",
    ),
    (
        "email.smtp_security",
        "starttls, tls or none (only for a relay on the same host) [default: starttls]",
    ),
    (
        "email.smtp_user",
        "SMTP user name, with smtp_password [default: none, no login]",
    ),
    ("email.smtp_password", "SMTP password [default: none]"),
    (
        "email.from",
        "Sender of the mails, e.g. \"Hearth <hearth@example.org>\" (required with smtp_host)",
    ),
    (
        "email.notif_delay_secs",
        "How long a highlight or direct message stays unread before a digest mentions it [default: 600]",
    ),
    (
        "email.notif_interval_secs",
        "Shortest time between two digests to one user [default: 86400]",
    ),
    (
        "email.token_lifetime_secs",
        "How long a verification link stays valid [default: 3600]",
    ),
];

impl EmailConfig {
    /// Whether mail can be sent.
    pub fn enabled(&self) -> bool {
        self.smtp_host.is_some()
    }

    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.smtp_security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let Some(host) = &self.smtp_host else {
            return Ok(());
        };
        if host.is_empty() {
            return Err(ConfigError::Invalid("email.smtp_host is empty".into()));
        }
        let Some(from) = &self.from else {
            return Err(ConfigError::Invalid(
                "email.from is required with email.smtp_host".into(),
            ));
        };
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "email.from {from:?} is not a mail address"
            )));
        }
        if self.smtp_user.is_some() != self.smtp_password.is_some() {
            return Err(ConfigError::Invalid(
                "email.smtp_user and email.smtp_password go together".into(),
            ));
        }
        if self.token_lifetime_secs == 0 {
            return Err(ConfigError::Invalid(
                "email.token_lifetime_secs must be above 0".into(),
            ));
        }
        Ok(())
    }
}
