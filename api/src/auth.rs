//! Access tokens (short-lived HS256 JWTs) and the failed-login limiter.

use chrono::Utc;
use cinelog_domain::values::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Access-token lifetime.
pub const ACCESS_TTL_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub acct: Uuid,
    pub role: Role,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    pub fn issue(&self, user_id: Uuid, account_id: Uuid, role: Role, session_id: Uuid) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            acct: account_id,
            role,
            sid: session_id,
            iat: now,
            exp: now + ACCESS_TTL_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// Counts failed logins per email; past the limit, further attempts wait out the window.
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn key(email: &str) -> String {
        email.trim().to_lowercase()
    }

    /// Seconds to wait before another attempt, if locked out.
    pub fn locked_for(&self, email: &str) -> Option<u64> {
        let map = self.failures.lock().ok()?;
        let (count, since) = map.get(&Self::key(email))?;
        let elapsed = since.elapsed();
        (*count >= self.max_failures && elapsed < self.window)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    pub fn failed(&self, email: &str) {
        if let Ok(mut map) = self.failures.lock() {
            if map.len() > 100_000 {
                let window = self.window;
                map.retain(|_, (_, since)| since.elapsed() < window);
            }
            let entry = map.entry(Self::key(email)).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= self.window {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    pub fn succeeded(&self, email: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&Self::key(email));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let (u, a, s) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let token = keys.issue(u, a, Role::Auditor, s);
        let claims = keys.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.acct, claims.role, claims.sid),
            (u, a, Role::Auditor, s)
        );
        assert!(
            JwtKeys::new(b"another key another key another k")
                .verify(&token)
                .is_none()
        );
        assert!(keys.verify(&format!("{token}x")).is_none());
    }

    #[test]
    fn limiter_locks_after_repeated_failures_and_resets_on_success() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            limiter.failed("A@x.com");
        }
        assert_eq!(limiter.locked_for("a@x.com"), None);
        limiter.failed("a@x.com");
        assert!(limiter.locked_for("a@x.com").is_some_and(|s| s <= 60));
        limiter.succeeded("a@x.com");
        assert_eq!(limiter.locked_for("a@x.com"), None);
    }
}
