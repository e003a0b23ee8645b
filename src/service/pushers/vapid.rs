//! The server's VAPID key (RFC 8292): a P-256 key pair made on first start and kept in
//! the store (`meta` key `vapid_private_key`, PKCS#8 DER), so that subscriptions made
//! with its public key keep working across restarts. The private key is never logged.
//! Every Web Push request carries `Authorization: vapid t=<JWT>, k=<public key>`, the
//! JWT signed with ES256 for the push service's origin.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde::Serialize;

use crate::store::{Cf, Store};

const KEY: &[u8] = b"vapid_private_key";
/// How long a VAPID token is valid (RFC 8292 allows at most 24 hours).
const TOKEN_LIFETIME_SECS: u64 = 12 * 60 * 60;

pub struct Vapid {
    signing: EncodingKey,
    /// The uncompressed public point, URL-safe base64 without padding.
    public: String,
    /// `sub`: a `mailto:` or `https:` contact for the push service's operators.
    subject: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

impl Vapid {
    /// Reads the key pair from the store, or makes and stores one (synced) when there is
    /// none yet.
    pub fn load_or_create(store: &Store, subject: String) -> anyhow::Result<Self> {
        let secret = match store.get_raw(Cf::Meta, KEY)? {
            Some(der) => p256::SecretKey::from_pkcs8_der(&der)
                .map_err(|e| anyhow::anyhow!("the stored VAPID key cannot be read: {e}"))?,
            None => {
                let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
                let der = secret
                    .to_pkcs8_der()
                    .map_err(|e| anyhow::anyhow!("cannot encode a VAPID key: {e}"))?;
                let mut batch = store.batch();
                batch.put_raw(Cf::Meta, KEY, der.as_bytes());
                store.write(batch)?;
                tracing::info!("made the server's VAPID key for Web Push");
                secret
            }
        };
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("cannot encode the VAPID key: {e}"))?;
        let public = URL_SAFE_NO_PAD.encode(secret.public_key().to_sec1_bytes());
        Ok(Self {
            signing: EncodingKey::from_ec_der(der.as_bytes()),
            public,
            subject,
        })
    }

    /// The public key as `/capabilities` advertises it and `k=` carries it.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a request to `endpoint`, valid from `now_secs`.
    pub fn authorization(&self, endpoint: &reqwest::Url, now_secs: u64) -> Result<String, String> {
        let origin = endpoint.origin().ascii_serialization();
        let claims = Claims {
            aud: &origin,
            exp: now_secs + TOKEN_LIFETIME_SECS,
            sub: &self.subject,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".into());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|e| format!("cannot sign a VAPID token: {e}"))?;
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn the_key_is_kept_and_tokens_verify_with_the_advertised_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let first = Vapid::load_or_create(&store, "mailto:ops@example.org".into()).unwrap();
        let again = Vapid::load_or_create(&store, "mailto:ops@example.org".into()).unwrap();
        assert_eq!(first.public_key(), again.public_key());

        let url = reqwest::Url::parse("https://push.example.net:8443/sub/abc?x=1").unwrap();
        let header = first.authorization(&url, 1_000_000).unwrap();
        let (token, key) = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .unwrap();
        assert_eq!(key, first.public_key());
        let point = URL_SAFE_NO_PAD.decode(key).unwrap();
        assert_eq!(point.len(), 65);
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://push.example.net:8443"]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &DecodingKey::from_ec_components(
                &URL_SAFE_NO_PAD.encode(&point[1..33]),
                &URL_SAFE_NO_PAD.encode(&point[33..]),
            )
            .unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "mailto:ops@example.org");
        assert_eq!(decoded.claims["exp"], 1_000_000 + TOKEN_LIFETIME_SECS);
    }
}
