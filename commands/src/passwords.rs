//! Password hashing with argon2id. Hashing is deliberately slow, so it runs off the async threads.

use crate::error::CommandError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// argon2id cost: 19 MiB of memory, 2 passes, 1 lane (OWASP's minimum recommendation).
pub const MEMORY_KIB: u32 = 19 * 1024;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string.
pub async fn hash(password: String) -> Result<String, CommandError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| CommandError::Service(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| CommandError::Service(e.to_string()))?
}

/// Checks a password against a PHC string; a malformed stored hash never matches.
pub async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
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
}
