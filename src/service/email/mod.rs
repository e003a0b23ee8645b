//! Email: sending through the configured SMTP server (`[email]`), verified addresses
//! (`threepid.rs`), password resets by email, and digests of missed messages
//! (`digest.rs`). With no `email.smtp_host` nothing is sent and the endpoints that would
//! send answer `M_THREEPID_DENIED`.

pub mod digest;
mod html;
pub mod threepid;

use std::sync::Arc;

use hmac::{Hmac, Mac};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::Sha256;

use super::ratelimit::RateLimiter;
use crate::config::{EmailConfig, SmtpSecurity};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Cf, Store};

pub use html::{escape, page as html_page};

/// `meta` key of the secret unsubscribe links are signed with.
const LINK_KEY: &[u8] = b"email_link_key";
/// Verification mails one address may be sent: a burst, then one per 5 minutes
/// (Synapse's `rc_3pid_validation` allows a burst of 5, then about one per 5 minutes).
const MAILS_BURST: u32 = 5;
const MAILS_PER_MINUTE: f64 = 0.2;

/// What the email features need: the configuration, the SMTP client, the links' base.
pub struct Email {
    pub config: EmailConfig,
    /// Where the links in mails point (`public_baseurl`).
    pub base_url: String,
    pub server_name: String,
    mailer: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Option<Mailbox>,
    /// Verification mails per address.
    pub(crate) per_address: RateLimiter,
    link_key: Vec<u8>,
}

impl Email {
    pub fn new(
        config: &EmailConfig,
        base_url: String,
        server_name: String,
        store: &Store,
    ) -> anyhow::Result<Arc<Self>> {
        let mailer = match &config.smtp_host {
            None => None,
            Some(host) => {
                let builder = match config.smtp_security {
                    SmtpSecurity::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?
                    }
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
                    SmtpSecurity::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    }
                };
                let mut builder = builder
                    .port(config.port())
                    .timeout(Some(std::time::Duration::from_secs(30)));
                if let (Some(user), Some(password)) = (&config.smtp_user, &config.smtp_password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Some(builder.build())
            }
        };
        let from = match &config.from {
            Some(from) => Some(
                from.parse()
                    .map_err(|e| anyhow::anyhow!("email.from: {e}"))?,
            ),
            None => None,
        };
        let link_key = match store.get_raw(Cf::Meta, LINK_KEY)? {
            Some(key) => key,
            None => {
                let key: [u8; 32] = rand::random();
                let mut batch = store.batch();
                batch.put_raw(Cf::Meta, LINK_KEY, &key);
                store.write(batch)?;
                key.to_vec()
            }
        };
        Ok(Arc::new(Self {
            config: config.clone(),
            base_url,
            server_name,
            mailer,
            from,
            per_address: RateLimiter::new(MAILS_BURST, MAILS_PER_MINUTE),
            link_key,
        }))
    }

    pub fn enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// Refuses when email is off, as the spec's `M_THREEPID_DENIED`.
    pub fn require_enabled(&self) -> Result<()> {
        if self.enabled() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::ThreepidDenied,
                "Email is not configured on this server",
            ))
        }
    }

    /// Sends one mail with a text and an HTML part.
    pub async fn send(&self, to: &str, subject: &str, text: String, html: String) -> Result<()> {
        self.send_with(to, subject, text, html, None).await
    }

    /// Sends one mail; with `unsubscribe`, the `List-Unsubscribe` headers (RFC 2369,
    /// RFC 8058 one-click) point at that URL.
    pub async fn send_with(
        &self,
        to: &str,
        subject: &str,
        text: String,
        html: String,
        unsubscribe: Option<&str>,
    ) -> Result<()> {
        let (Some(mailer), Some(from)) = (&self.mailer, &self.from) else {
            return Err(Error::new(
                ErrorKind::ThreepidDenied,
                "Email is not configured on this server",
            ));
        };
        let to: Mailbox = to
            .parse()
            .map_err(|_| Error::invalid_param("Not a valid email address"))?;
        let mut builder = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject);
        if let Some(url) = unsubscribe {
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(Error::internal)?;
        mailer.send(message).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot send a mail");
            Error::new(ErrorKind::Unknown, "The mail could not be sent")
        })?;
        Ok(())
    }

    /// A signature of `parts` with the server's link key (hex HMAC-SHA256).
    pub fn sign(&self, parts: &[&str]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.link_key).expect("any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is that of `parts` (in constant time).
    pub fn verify(&self, parts: &[&str], signature: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.sign(parts)
            .as_bytes()
            .ct_eq(signature.as_bytes())
            .into()
    }
}

/// An address as stored and compared: trimmed and lower-cased (as Synapse does).
pub fn canonical_address(address: &str) -> Result<String> {
    let address = address.trim().to_lowercase();
    if address.len() > 254 || address.parse::<lettre::Address>().is_err() {
        return Err(Error::invalid_param("Not a valid email address"));
    }
    Ok(address)
}

/// The SHA-256 of a token, hex.
fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(token.as_bytes()))
}
