//! The server's ed25519 signing key: created on first start, kept in the data directory
//! with mode 0600, and published self-signed at `/_matrix/key/v2/server`.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ruma::CanonicalJsonObject;
use ruma::signatures::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

const KEY_FILE: &str = "signing.key";

/// How long other servers may cache our published key before asking again.
const VALIDITY_MS: u64 = 7 * 24 * 60 * 60 * 1000;

pub struct ServerKeys {
    server_name: String,
    key_pair: Ed25519KeyPair,
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
        let key_pair = parse_key_file(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a valid signing key: {e}", path.display()))?;
        Ok(Self {
            server_name: server_name.to_owned(),
            key_pair,
        })
    }

    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.key_pair.version())
    }

    pub fn public_key_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.key_pair.public_key())
    }

    /// Adds our signature to `object`'s `signatures`.
    pub fn sign_json(&self, object: &mut CanonicalJsonObject) -> anyhow::Result<()> {
        ruma::signatures::sign_json(&self.server_name, &self.key_pair, object)?;
        Ok(())
    }

    /// The body of `GET /_matrix/key/v2/server`, signed by the key it publishes.
    pub fn server_keys_response(&self, now_ms: u64) -> anyhow::Result<Value> {
        let body = json!({
            "server_name": self.server_name,
            "valid_until_ts": now_ms + VALIDITY_MS,
            "verify_keys": { self.key_id(): { "key": self.public_key_base64() } },
            "old_verify_keys": {},
        });
        let mut object: CanonicalJsonObject = serde_json::from_value(body)?;
        self.sign_json(&mut object)?;
        Ok(serde_json::to_value(object)?)
    }

    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.key_pair.sign(message).as_bytes().to_vec()
    }
}

/// The file holds one line, `ed25519 <version> <base64 PKCS#8 document>`.
fn new_key_file_contents() -> String {
    let document = Ed25519KeyPair::generate();
    let version = super::random_string(6);
    format!("ed25519 {version} {}\n", STANDARD_NO_PAD.encode(&*document))
}

fn parse_key_file(text: &str) -> anyhow::Result<Ed25519KeyPair> {
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("ed25519"), Some(version), Some(document), None) => {
            let der = STANDARD_NO_PAD.decode(document)?;
            Ok(Ed25519KeyPair::from_der(&der, version.to_owned())?)
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
        let object: CanonicalJsonObject = serde_json::from_value(body).unwrap();
        let mut key_map = ruma::signatures::PublicKeyMap::new();
        let mut set = ruma::signatures::PublicKeySet::new();
        set.insert(
            keys.key_id(),
            ruma::serde::Base64::parse(keys.public_key_base64()).unwrap(),
        );
        key_map.insert("example.org".into(), set);
        ruma::signatures::verify_json(&key_map, &object).unwrap();
    }
}
