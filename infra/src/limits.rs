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

    /// Seconds to wait before another attempt, if locked out.
    pub async fn locked_for(&self, email: &str) -> anyhow::Result<Option<u64>> {
        match self {
            LoginLimiter::Memory {
                max_failures,
                window,
                failures,
            } => {
                let map = failures.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(map.get(&normalise(email)).and_then(|(count, since)| {
                    let elapsed = since.elapsed();
                    (*count >= *max_failures && elapsed < *window)
                        .then(|| (*window - elapsed).as_secs().max(1))
                }))
            }
            LoginLimiter::Redis {
                max_failures,
                redis,
                prefix,
                ..
            } => {
                let key = Self::key(prefix, email);
                let mut conn = redis.clone();
                let (count, ttl): (Option<u32>, i64) = redis::pipe()
                    .get(&key)
                    .ttl(&key)
                    .query_async(&mut conn)
                    .await?;
                Ok((count.unwrap_or(0) >= *max_failures && ttl > 0).then_some(ttl as u64))
            }
        }
    }

    pub async fn failed(&self, email: &str) -> anyhow::Result<()> {
        match self {
            LoginLimiter::Memory {
                window, failures, ..
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
            }
            LoginLimiter::Redis {
                window,
                redis,
                prefix,
                ..
            } => {
                let key = Self::key(prefix, email);
                let mut conn = redis.clone();
                // The window starts at the first failure: EXPIRE NX leaves a running window alone.
                redis::pipe()
                    .incr(&key, 1)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(window.as_secs())
                    .arg("NX")
                    .query_async::<()>(&mut conn)
                    .await?;
            }
        }
        Ok(())
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
        for _ in 0..2 {
            limiter.failed(email).await.unwrap();
        }
        assert_eq!(limiter.locked_for(email).await.unwrap(), None);
        limiter.failed(&email.to_uppercase()).await.unwrap();
        assert!(
            limiter
                .locked_for(email)
                .await
                .unwrap()
                .is_some_and(|s| s > 0 && s <= 60)
        );
        limiter.succeeded(email).await.unwrap();
        assert_eq!(limiter.locked_for(email).await.unwrap(), None);
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
