//! argon2id password hashing with OWASP's recommended parameters, off the async threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

/// OWASP: m = 19 MiB, t = 2, p = 1.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid")
}

fn argon2() -> Argon2<'static> {
    #[cfg(test)]
    tests::ARGON2_RUNS.with(|runs| runs.set(runs.get() + 1));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
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

/// What a login for a user with no password is checked against: a PHC string with the
/// same algorithm, parameters, salt length and output length as real hashes, so verifying
/// against it costs exactly what verifying a real one does. Its output is random bytes,
/// not the hash of anything, so no password matches it and making it costs no argon2 run
/// (the first login for an unknown user costs what every later one does).
fn dummy_hash() -> &'static str {
    static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY_HASH.get_or_init(make_dummy_hash)
}

fn make_dummy_hash() -> String {
    use argon2::password_hash::{Output, ParamsString};
    use rand::RngCore;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut output);
    let params = params();
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("static argon2 parameters print"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).expect("32 bytes is a valid output length")),
    };
    phc.to_string()
}

#[cfg(test)]
mod tests {
    thread_local! {
        /// How many argon2 instances this thread made (each one runs one hash).
        pub(super) static ARGON2_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// The dummy an unknown user's login is checked against is made without running
    /// argon2, so the first such login after a start costs no more than later ones.
    #[test]
    fn the_dummy_is_made_without_running_argon2() {
        let before = ARGON2_RUNS.with(|runs| runs.get());
        let dummy = super::make_dummy_hash();
        assert_eq!(ARGON2_RUNS.with(|runs| runs.get()), before);
        assert!(
            dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{dummy}"
        );
        // Each start makes its own.
        assert_ne!(dummy, super::make_dummy_hash());
    }

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
