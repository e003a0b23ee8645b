//! argon2id password hashing with OWASP's recommended parameters, off the async threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

/// OWASP: m = 19 MiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes run on this many dedicated threads. Each hash takes 19 MiB: on tokio's blocking
/// pool a burst of 40 logins ran 40 at once and took the server to 980 MB. Two threads
/// bound that and match the cores of a small server; more would only queue for the CPU.
const HASH_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

fn run_hashing<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> impl Future<Output = Result<T>> {
    static WORKERS: std::sync::OnceLock<std::sync::mpsc::Sender<Job>> = std::sync::OnceLock::new();
    let sender = WORKERS.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for i in 0..HASH_THREADS {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = match receiver.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panicking hash fails its request, not the thread.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                })
                .expect("spawn password hashing thread");
        }
        sender
    });
    let (done, result) = tokio::sync::oneshot::channel();
    let queued = sender.send(Box::new(move || {
        let _ = done.send(work());
    }));
    async move {
        queued.map_err(|_| Error::internal("password hashing threads are gone"))?;
        result
            .await
            .map_err(|_| Error::internal("password hashing failed"))?
    }
}

pub async fn hash(password: String) -> Result<String> {
    run_hashing(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(Error::internal)
    })
    .await
}

/// Constant-time check of `password` against a stored hash. With no stored hash the
/// same work is done against a dummy, so timing does not tell whether an account exists.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    run_hashing(move || {
        let (phc, real) = match &stored {
            Some(phc) => (phc.as_str(), true),
            None => (dummy_hash(), false),
        };
        let parsed = PasswordHash::new(phc).map_err(Error::internal)?;
        let ok = argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && real)
    })
    .await
}

/// What a login for a user with no password is checked against: a hash made with the
/// same parameters as real ones, so it costs the same to verify.
fn dummy_hash() -> &'static str {
    static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY_HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        argon2()
            .hash_password(b"no account has this password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let hash = super::hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            super::verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!super::verify("wrong".into(), Some(hash)).await.unwrap());
        assert!(!super::verify("anything".into(), None).await.unwrap());
    }

    /// Timing must not tell whether an account exists: a login for an unknown user (or
    /// one without a password) is verified against a dummy hash made with the very
    /// parameters of real hashes, so argon2 does the same work.
    #[tokio::test]
    async fn an_unknown_user_costs_a_full_verification() {
        use argon2::password_hash::PasswordHash;
        let real = super::hash("correct horse".into()).await.unwrap();
        let cost = |phc: &str| {
            let parsed = PasswordHash::new(phc).unwrap();
            (
                parsed.algorithm.to_string(),
                parsed.version,
                parsed.params.to_string(),
                parsed.hash.map(|h| h.len()),
            )
        };
        assert_eq!(cost(super::dummy_hash()), cost(&real));
        // Not even the dummy's own password lets anyone in.
        let dummy_password = "no account has this password".to_owned();
        assert!(!super::verify(dummy_password, None).await.unwrap());
    }
}
