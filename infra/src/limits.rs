//! Failed-login counting. In production the counts live in Redis, so every `serve` replica sees
//! the same lockout; the embedded default counts in memory.

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub enum LoginLimiter {
    Memory {
        max_failures: u32,
        window: Duration,
        failures: Mutex<HashMap<String, (u32, Instant)>>,
    },
    Redis {
        max_failures: u32,
        window: Duration,
        redis: ConnectionManager,
        prefix: String,
    },
}

fn normalise(email: &str) -> String {
    email.trim().to_lowercase()
}

impl LoginLimiter {
    pub fn in_memory(max_failures: u32, window: Duration) -> Self {
        LoginLimiter::Memory {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub async fn redis(
        url: &str,
        prefix: &str,
        max_failures: u32,
        window: Duration,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let redis = ConnectionManager::new(client).await?;
        Ok(LoginLimiter::Redis {
            max_failures,
            window,
            redis,
            prefix: prefix.to_string(),
        })
    }

    /// The Redis key for an address: hashed, so Redis holds no email addresses.
    fn key(prefix: &str, email: &str) -> String {
        format!(
            "{prefix}:login-failures:{}",
            hex::encode(Sha256::digest(normalise(email).as_bytes()))
        )
    }

    /// Counts a login attempt before the password is checked, so parallel guesses cannot all
    /// slip in before the first failure is counted. Answers the seconds to wait if this attempt is
    /// over the limit. A successful login resets the count.
    pub async fn attempt(&self, email: &str) -> anyhow::Result<Option<u64>> {
        match self {
            LoginLimiter::Memory {
                max_failures,
                window,
                failures,
            } => {
                let mut map = failures.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
                if map.len() > 100_000 {
                    map.retain(|_, (_, since)| since.elapsed() < *window);
                }
                let entry = map.entry(normalise(email)).or_insert((0, Instant::now()));
                if entry.1.elapsed() >= *window {
                    *entry = (0, Instant::now());
                }
                entry.0 += 1;
                Ok((entry.0 > *max_failures)
                    .then(|| window.saturating_sub(entry.1.elapsed()).as_secs().max(1)))
            }
            LoginLimiter::Redis {
                max_failures,
                window,
                redis,
                prefix,
            } => {
                let key = Self::key(prefix, email);
                let mut conn = redis.clone();
                // The window starts at the first attempt: EXPIRE NX leaves a running window alone.
                let (count, ttl): (u32, i64) = redis::pipe()
                    .incr(&key, 1)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(window.as_secs())
                    .arg("NX")
                    .ignore()
                    .ttl(&key)
                    .query_async(&mut conn)
                    .await?;
                Ok((count > *max_failures).then_some(ttl.max(1) as u64))
            }
        }
    }

    pub async fn succeeded(&self, email: &str) -> anyhow::Result<()> {
        match self {
            LoginLimiter::Memory { failures, .. } => {
                failures
                    .lock()
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .remove(&normalise(email));
            }
            LoginLimiter::Redis { redis, prefix, .. } => {
                let mut conn = redis.clone();
                redis::cmd("DEL")
                    .arg(Self::key(prefix, email))
                    .query_async::<()>(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exercise(limiter: LoginLimiter, email: &str) {
        for _ in 0..3 {
            assert_eq!(limiter.attempt(email).await.unwrap(), None);
        }
        let wait = limiter.attempt(&email.to_uppercase()).await.unwrap();
        assert!(wait.is_some_and(|s| s > 0 && s <= 60), "{wait:?}");
        limiter.succeeded(email).await.unwrap();
        assert_eq!(limiter.attempt(email).await.unwrap(), None);
    }

    #[tokio::test]
    async fn locks_after_repeated_failures_and_resets_on_success_in_memory() {
        exercise(
            LoginLimiter::in_memory(3, Duration::from_secs(60)),
            "a@x.com",
        )
        .await;
    }

    #[tokio::test]
    async fn locks_after_repeated_failures_and_resets_on_success_in_redis() {
        let url =
            std::env::var("CINELOG_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("cinelog-test-{}", uuid::Uuid::now_v7().simple());
        let limiter = LoginLimiter::redis(&url, &prefix, 3, Duration::from_secs(60))
            .await
            .expect("Redis must be running (./scripts/test starts it)");
        exercise(limiter, "b@x.com").await;
    }
}
