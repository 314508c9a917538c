//! Redis as an accelerator the app can do without: every call is bounded in time, and after a
//! failure Redis is left alone for a moment, so a stopped Redis costs each request nothing but
//! the fallback (memory or SQL) while it is away. The connection reconnects by itself.

use redis::RedisResult;
use redis::aio::ConnectionManager;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one call waits for Redis.
const WAIT: Duration = Duration::from_millis(500);
/// After a failure, how long calls fail at once before Redis is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct RedisLink {
    conn: ConnectionManager,
    /// Until when Redis is left alone after a failure.
    down_until: Mutex<Option<Instant>>,
}

impl RedisLink {
    /// Connects; fails if Redis does not answer now.
    pub async fn connect(client: redis::Client) -> anyhow::Result<Self> {
        Ok(RedisLink {
            conn: ConnectionManager::new(client).await?,
            down_until: Mutex::new(None),
        })
    }

    /// Runs `op` on the connection, failing at once while Redis is known to be down and after
    /// [`WAIT`] when it does not answer.
    pub async fn run<T, F, Fut>(&self, op: F) -> anyhow::Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let down_until = *self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        if down_until.is_some_and(|t| Instant::now() < t) {
            anyhow::bail!("Redis failed less than {RETRY_AFTER:?} ago");
        }
        let failed = match tokio::time::timeout(WAIT, op(self.conn.clone())).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => anyhow::Error::from(e),
            Err(_) => anyhow::anyhow!("Redis did not answer within {WAIT:?}"),
        };
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + RETRY_AFTER);
        Err(failed)
    }
}
