//! The server's ed25519 signing key: created on first start, kept in the data directory
//! with mode 0600, and published self-signed at `/_matrix/key/v2/server`.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ruma::signatures::Ed25519KeyPair;
use serde_json::{Value, json};

use crate::event::SigningKey;

const KEY_FILE: &str = "signing.key";

/// How long other servers may cache our published key before asking again.
const VALIDITY_MS: u64 = 7 * 24 * 60 * 60 * 1000;

pub struct ServerKeys {
    key: SigningKey,
}

impl ServerKeys {
    /// Loads the key from `data_dir`, generating it on first start.
    pub fn load_or_create(data_dir: &Path, server_name: &str) -> anyhow::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = new_key_file_contents();
                write_private(&path, &text)?;
                tracing::info!(path = %path.display(), "created the server signing key");
                text
            }
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        let key = parse_key_file(&text, server_name)
            .map_err(|e| anyhow::anyhow!("{} is not a valid signing key: {e}", path.display()))?;
        Ok(Self { key })
    }

    /// The key that signs this server's events and requests.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn key_id(&self) -> &str {
        self.key.key_id()
    }

    pub fn public_key_base64(&self) -> String {
        self.key.public_key_base64()
    }

    /// The body of `GET /_matrix/key/v2/server`, signed by the key it publishes.
    pub fn server_keys_response(&self, now_ms: u64) -> anyhow::Result<Value> {
        let mut body = json!({
            "server_name": self.key.server_name(),
            "valid_until_ts": now_ms + VALIDITY_MS,
            "verify_keys": { self.key_id(): { "key": self.public_key_base64() } },
            "old_verify_keys": {},
        });
        crate::event::sign_json(&mut body, &self.key)?;
        Ok(body)
    }
}

/// The file holds one line, `ed25519 <version> <base64 PKCS#8 document>`.
fn new_key_file_contents() -> String {
    let document = Ed25519KeyPair::generate();
    let version = super::random_string(6);
    format!("ed25519 {version} {}\n", STANDARD_NO_PAD.encode(&*document))
}

fn parse_key_file(text: &str, server_name: &str) -> anyhow::Result<SigningKey> {
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("ed25519"), Some(version), Some(document), None) => {
            let der = STANDARD_NO_PAD.decode(document)?;
            Ok(SigningKey::from_pkcs8_der(
                server_name,
                &format!("ed25519:{version}"),
                &der,
            )?)
        }
        _ => anyhow::bail!("expected one line: ed25519 <version> <key>"),
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_is_created_private_and_reloads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServerKeys::load_or_create(dir.path(), "example.org").unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = ServerKeys::load_or_create(dir.path(), "example.org").unwrap();
        assert_eq!(first.key_id(), second.key_id());
        assert_eq!(first.public_key_base64(), second.public_key_base64());
    }

    #[test]
    fn published_keys_verify_against_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ServerKeys::load_or_create(dir.path(), "example.org").unwrap();
        let body = keys.server_keys_response(1_000).unwrap();
        let key_map = keys.signing_key().public_key_map();
        crate::event::verify_json(&body, "example.org", &key_map).unwrap();
    }
}
