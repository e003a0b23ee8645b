//! Accounts without password hashing: the bench starts its server with JWT login on
//! (`jwt.create_users`) and logs each user in with an HS256 token naming it, which
//! creates the account. Registration with a password costs an argon2 hash (19 MiB and
//! tens of milliseconds of one core each), which for 1,000 users on a pinned server
//! would take most of a minute and leave those hashes in the server's peak memory.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The server settings that turn JWT login with account creation on, with `secret`.
pub fn server_env(secret: &str) -> Vec<(String, String)> {
    [
        ("HEARTH_JWT__ENABLED", "true"),
        ("HEARTH_JWT__SECRET", secret),
        ("HEARTH_JWT__CREATE_USERS", "true"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// A fresh secret for one server: 32 random bytes from the kernel, hex-encoded after a
/// prefix (so that the settings parser never takes it for a number).
pub fn new_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("bench-{hex}"))
}

/// An HS256 JWT whose `sub` claim is `localpart`, signed with `secret`.
pub fn token(secret: &str, localpart: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(serde_json::json!({ "sub": localpart }).to_string());
    let signed = format!("{header}.{claims}");
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_matches_an_independent_hs256() {
        // Computed with Python's hmac, hashlib and base64 modules over the same header
        // and claims.
        assert_eq!(
            super::token("secret", "bench7"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJiZW5jaDcifQ.jMlbdZ1g6H2-GnntbSy35L5tix2QDgzaqKrjYB_PRSk"
        );
        assert_eq!(super::new_secret().unwrap().len(), 70);
    }
}
