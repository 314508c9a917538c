//! Access tokens: short-lived HS256 JWTs.

use chrono::Utc;
use cinelog_domain::values::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    /// Access-token lifetime in seconds.
    pub ttl_secs: i64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl_secs: i64) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs,
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
            exp: now + self.ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Some clock skew is tolerated, but never more than a tenth of the lifetime.
        validation.leeway = 5.min(self.ttl_secs.max(0) as u64 / 10);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 900);
        let (u, a, s) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let token = keys.issue(u, a, Role::Auditor, s);
        let claims = keys.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.acct, claims.role, claims.sid),
            (u, a, Role::Auditor, s)
        );
        assert!(
            JwtKeys::new(b"another key another key another k", 900)
                .verify(&token)
                .is_none()
        );
        assert!(keys.verify(&format!("{token}x")).is_none());
    }
}
