//! Password hashing with argon2id. Hashing is deliberately slow, so it runs off the async threads.

use crate::error::CommandError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use cinelog_domain::values::{InvalidField, check_password};

/// argon2id cost: 19 MiB of memory, 2 passes, 1 lane (OWASP's minimum recommendation).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// argon2id passes over memory (time cost).
pub const PASSES: u32 = 2;
/// argon2id lanes (parallelism).
pub const LANES: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes running at once: each takes [`MEMORY_KIB`] and a core, so a burst of signups or logins
/// waits here instead of growing the process by 19 MiB a request.
fn hashing() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// Runs `work` on the blocking pool once a hashing slot is free.
async fn with_slot<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _slot = hashing().acquire().await.ok()?;
    tokio::task::spawn_blocking(work).await.ok()
}

/// Hashes a password into a PHC string.
pub async fn hash(password: String) -> Result<String, CommandError> {
    with_slot(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| CommandError::Service(format!("password hashing failed: {e}")))
    })
    .await
    .unwrap_or_else(|| Err(CommandError::Service("password hashing stopped".into())))
}

/// Checks a password against a PHC string; a malformed stored hash never matches.
pub async fn verify(password: String, phc: String) -> bool {
    with_slot(move || {
        PasswordHash::new(&phc).is_ok_and(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// The lowest zxcvbn score (0–4) a new password must reach: "safely unguessable".
const MIN_STRENGTH: zxcvbn::Score = zxcvbn::Score::Three;

/// Whether a new password may be used: the length policy, then an estimate of how guessable it
/// is (common passwords, words, dates, keyboard patterns, and the user's own details), with a
/// message that says why it was refused.
pub fn check_strength(password: &str, user_inputs: &[&str]) -> Result<(), InvalidField> {
    check_password(password)?;
    // An address counts whole, by its local part and by each word in it.
    let mut inputs: Vec<&str> = Vec::new();
    for input in user_inputs {
        inputs.push(input);
        inputs.extend(input.split('@').next());
        inputs.extend(
            input
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 2),
        );
    }
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    if estimate.score() >= MIN_STRENGTH {
        return Ok(());
    }
    let mut why = match estimate.feedback().and_then(|f| f.warning()) {
        Some(warning) => format!("is too easy to guess: {warning}"),
        None => "is too easy to guess".to_string(),
    };
    if let Some(tip) = estimate
        .feedback()
        .and_then(|f| f.suggestions().first().map(ToString::to_string))
    {
        why.push_str(&format!(" ({tip})"));
    }
    Err(InvalidField {
        field: "password",
        message: why,
    })
}

/// A hash to verify against when the user does not exist, so both paths cost the same.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0f2Xn6n4mBvW2ZrZ5k3E8oQq0S2cYJ3r1G2c5cVtq3A";

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_fail() {
        let h = super::hash("Corr3ct-horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(super::verify("Corr3ct-horse".into(), h.clone()).await);
        assert!(!super::verify("wrong".into(), h).await);
        assert!(!super::verify("x".into(), "not a hash".into()).await);
        // The stand-in hash must parse, or unknown users would be answered faster than known ones.
        assert!(argon2::password_hash::PasswordHash::new(super::DUMMY_HASH).is_ok());
    }

    #[test]
    fn common_and_personal_passwords_are_refused_with_a_reason() {
        for weak in ["password1234", "qwertyuiop", "12345678", "iloveyou2024"] {
            let refused = super::check_strength(weak, &[]).expect_err(weak);
            assert_eq!(refused.field, "password");
            assert!(
                refused.message.starts_with("is too easy to guess"),
                "{}",
                refused.message
            );
        }
        assert!(
            super::check_strength("dora.explorer.1985", &["dora.explorer.1985@example.com"])
                .is_err()
        );
        assert!(super::check_strength("short", &[]).is_err());
        super::check_strength("Corr3ct-horse-battery", &[]).expect("a strong password");
    }
}
