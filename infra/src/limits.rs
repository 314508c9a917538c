//! Limits on abuse, after OWASP's authentication guidance: failed logins are counted per client
//! and account pair (so one client's guessing never locks the owner out elsewhere), per client
//! across accounts (credential stuffing), and per account across clients (a distributed attack,
//! which tightens the limit for clients that have never signed in to that account). Signups,
//! password-reset requests and phone codes are limited too. In production the counts live in
//! Redis, so every `serve` replica sees the same ones; the embedded default counts in memory.
//! While Redis does not answer, each replica counts in its own memory instead: the limits are
//! looser by the number of replicas for that time, never lifted.

use crate::redis_link::RedisLink;
use crate::settings::LimitSettings;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a client that signed in to an account counts as known to it.
const KNOWN_CLIENT: Duration = Duration::from_secs(30 * 24 * 3600);

/// Counters that expire a window after their first hit: in Redis when configured and
/// answering, else in this process.
struct Counters {
    shared: Option<Tally>,
    local: Tally,
}

/// Runs one counter operation on Redis, or in memory when Redis is away (see [`RedisLink`]).
macro_rules! counted {
    ($counters:expr, $tally:ident => $op:expr) => {{
        if let Some($tally) = &$counters.shared {
            match $op.await {
                Ok(answer) => return Ok(answer),
                Err(e) => tracing::warn!(error = %e, "abuse limits unavailable in Redis; counting in memory"),
            }
        }
        let $tally = &$counters.local;
        $op.await
    }};
}

impl Counters {
    fn new(shared: Option<Tally>) -> Self {
        Counters {
            shared,
            local: Tally::Memory(Mutex::new(HashMap::new())),
        }
    }

    async fn hit(&self, key: &str, window: Duration) -> anyhow::Result<(u32, u64)> {
        counted!(self, t => t.hit(key, window))
    }
    async fn get(&self, key: &str) -> anyhow::Result<u32> {
        counted!(self, t => t.get(key))
    }
    async fn take_back(&self, key: &str) -> anyhow::Result<()> {
        counted!(self, t => t.take_back(key))
    }
    async fn clear(&self, key: &str) -> anyhow::Result<()> {
        counted!(self, t => t.clear(key))
    }
    async fn mark(&self, key: &str, ttl: Duration) -> anyhow::Result<()> {
        counted!(self, t => t.mark(key, ttl))
    }
}

/// One place counts are kept.
enum Tally {
    Memory(Mutex<HashMap<String, (u32, Instant, Duration)>>),
    Redis { redis: RedisLink, prefix: String },
}

impl Tally {
    /// Adds one; answers the count and the seconds left in its window.
    async fn hit(&self, key: &str, window: Duration) -> anyhow::Result<(u32, u64)> {
        match self {
            Tally::Memory(map) => {
                let mut map = map.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
                if map.len() > 100_000 {
                    map.retain(|_, (_, since, w)| since.elapsed() < *w);
                }
                let entry = map
                    .entry(key.to_string())
                    .or_insert((0, Instant::now(), window));
                if entry.1.elapsed() >= entry.2 {
                    *entry = (0, Instant::now(), window);
                }
                entry.0 += 1;
                Ok((
                    entry.0,
                    entry.2.saturating_sub(entry.1.elapsed()).as_secs().max(1),
                ))
            }
            Tally::Redis { redis, prefix } => {
                let key = format!("{prefix}:limits:{key}");
                // The window starts at the first hit: EXPIRE NX leaves a running window alone.
                let (count, ttl): (u32, i64) = redis
                    .run(|mut conn| async move {
                        redis::pipe()
                            .incr(&key, 1)
                            .cmd("EXPIRE")
                            .arg(&key)
                            .arg(window.as_secs().max(1))
                            .arg("NX")
                            .ignore()
                            .ttl(&key)
                            .query_async(&mut conn)
                            .await
                    })
                    .await?;
                Ok((count, ttl.max(1) as u64))
            }
        }
    }

    /// The current count.
    async fn get(&self, key: &str) -> anyhow::Result<u32> {
        match self {
            Tally::Memory(map) => {
                let map = map.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(map
                    .get(key)
                    .filter(|(_, since, w)| since.elapsed() < *w)
                    .map_or(0, |(n, _, _)| *n))
            }
            Tally::Redis { redis, prefix } => {
                let key = format!("{prefix}:limits:{key}");
                let n: Option<u32> = redis
                    .run(|mut conn| async move {
                        redis::cmd("GET").arg(key).query_async(&mut conn).await
                    })
                    .await?;
                Ok(n.unwrap_or(0))
            }
        }
    }

    /// Takes one hit back (a login that succeeded was no failure).
    async fn take_back(&self, key: &str) -> anyhow::Result<()> {
        match self {
            Tally::Memory(map) => {
                let mut map = map.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
                if let Some(entry) = map.get_mut(key) {
                    entry.0 = entry.0.saturating_sub(1);
                }
            }
            Tally::Redis { redis, prefix } => {
                let key = format!("{prefix}:limits:{key}");
                // A count that reaches zero (or a key that had already expired) goes away, so
                // no key is left without its expiry.
                redis
                    .run(|mut conn| async move {
                        let n: i64 = redis::cmd("DECR").arg(&key).query_async(&mut conn).await?;
                        if n <= 0 {
                            redis::cmd("DEL")
                                .arg(&key)
                                .query_async::<()>(&mut conn)
                                .await?;
                        }
                        Ok(())
                    })
                    .await?;
            }
        }
        Ok(())
    }

    async fn clear(&self, key: &str) -> anyhow::Result<()> {
        match self {
            Tally::Memory(map) => {
                map.lock().map_err(|e| anyhow::anyhow!("{e}"))?.remove(key);
            }
            Tally::Redis { redis, prefix } => {
                let key = format!("{prefix}:limits:{key}");
                redis
                    .run(|mut conn| async move {
                        redis::cmd("DEL")
                            .arg(key)
                            .query_async::<()>(&mut conn)
                            .await
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Sets a flag that lasts `ttl`.
    async fn mark(&self, key: &str, ttl: Duration) -> anyhow::Result<()> {
        match self {
            Tally::Memory(map) => {
                map.lock()
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .insert(key.to_string(), (1, Instant::now(), ttl));
            }
            Tally::Redis { redis, prefix } => {
                let key = format!("{prefix}:limits:{key}");
                redis
                    .run(|mut conn| async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(1)
                            .arg("EX")
                            .arg(ttl.as_secs().max(1))
                            .query_async::<()>(&mut conn)
                            .await
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// A refusal: how many seconds to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: u64,
}

/// The abuse limits of one deployment.
pub struct Throttle {
    counters: Counters,
    limits: LimitSettings,
}

/// A hashed key part, so the counters hold no email addresses.
fn hashed(email: &str) -> String {
    hex::encode(&Sha256::digest(email.trim().to_lowercase().as_bytes())[..16])
}

impl Throttle {
    pub fn in_memory(limits: LimitSettings) -> Self {
        Throttle {
            counters: Counters::new(None),
            limits,
        }
    }

    pub async fn redis(url: &str, prefix: &str, limits: LimitSettings) -> anyhow::Result<Self> {
        let redis = RedisLink::connect(redis::Client::open(url)?).await?;
        Ok(Throttle {
            counters: Counters::new(Some(Tally::Redis {
                redis,
                prefix: prefix.to_string(),
            })),
            limits,
        })
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.limits.window_secs.max(1))
    }

    /// Counts one hit on `key`, refusing it when over `max`.
    async fn over(&self, key: &str, max: u32) -> anyhow::Result<Result<(), Throttled>> {
        let (count, left) = self.counters.hit(key, self.window()).await?;
        Ok(if count > max {
            Err(Throttled { retry_after: left })
        } else {
            Ok(())
        })
    }

    /// Counts a login attempt before the password is checked, so parallel guesses cannot all
    /// slip in before the first failure is counted. A success takes the attempt back.
    pub async fn login_attempt(
        &self,
        email: &str,
        client: IpAddr,
    ) -> anyhow::Result<Result<(), Throttled>> {
        let (h, l) = (hashed(email), &self.limits);
        if let Err(t) = self
            .over(&format!("login:client:{client}"), l.login_per_client)
            .await?
        {
            return Ok(Err(t));
        }
        let under_attack =
            self.counters.get(&format!("login:account:{h}")).await? >= l.login_account_attack;
        let known = under_attack
            && self
                .counters
                .get(&format!("login:known:{h}:{client}"))
                .await?
                > 0;
        let max = if under_attack && !known {
            l.login_per_client_account_under_attack
        } else {
            l.login_per_client_account
        };
        if let Err(t) = self.over(&format!("login:pair:{h}:{client}"), max).await? {
            return Ok(Err(t));
        }
        self.counters
            .hit(&format!("login:account:{h}"), self.window())
            .await?;
        Ok(Ok(()))
    }

    /// A login succeeded: it was no failure, and this client is now known to the account.
    pub async fn login_succeeded(&self, email: &str, client: IpAddr) -> anyhow::Result<()> {
        let h = hashed(email);
        self.counters
            .clear(&format!("login:pair:{h}:{client}"))
            .await?;
        self.counters
            .take_back(&format!("login:client:{client}"))
            .await?;
        self.counters
            .take_back(&format!("login:account:{h}"))
            .await?;
        self.counters
            .mark(&format!("login:known:{h}:{client}"), KNOWN_CLIENT)
            .await
    }

    pub async fn signup(&self, client: IpAddr) -> anyhow::Result<Result<(), Throttled>> {
        self.over(&format!("signup:{client}"), self.limits.signup_per_client)
            .await
    }

    /// A password-reset request: limited per client and per address (whether or not the
    /// address has an account, so the answer says nothing about that).
    pub async fn password_reset(
        &self,
        email: &str,
        client: IpAddr,
    ) -> anyhow::Result<Result<(), Throttled>> {
        let by_client = self
            .over(
                &format!("reset:client:{client}"),
                self.limits.reset_per_client,
            )
            .await?;
        if by_client.is_err() {
            return Ok(by_client);
        }
        self.over(
            &format!("reset:email:{}", hashed(email)),
            self.limits.reset_per_email,
        )
        .await
    }

    /// A try at unlocking `what` (a profile's PIN, a user's password to leave a kids profile),
    /// counted before the secret is checked so parallel guesses cannot all slip in.
    pub async fn unlock_attempt(&self, what: Uuid) -> anyhow::Result<Result<(), Throttled>> {
        self.over(&format!("unlock:{what}"), self.limits.unlock_attempts)
            .await
    }

    /// The try at unlocking `what` succeeded: it was no failed guess.
    pub async fn unlock_succeeded(&self, what: Uuid) -> anyhow::Result<()> {
        self.counters.take_back(&format!("unlock:{what}")).await
    }

    pub async fn phone_code(&self, user_id: Uuid) -> anyhow::Result<Result<(), Throttled>> {
        self.over(
            &format!("phone:{user_id}"),
            self.limits.phone_codes_per_user,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitSettings {
        LimitSettings {
            window_secs: 60,
            login_per_client_account: 3,
            login_per_client_account_under_attack: 1,
            login_per_client: 10,
            login_account_attack: 6,
            ..LimitSettings::default()
        }
    }

    const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const OWNER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

    async fn exercise(t: Throttle) {
        let email = format!("{}@x.com", Uuid::now_v7().simple());
        for _ in 0..3 {
            assert_eq!(t.login_attempt(&email, ATTACKER).await.unwrap(), Ok(()));
        }
        let refused = t
            .login_attempt(&email.to_uppercase(), ATTACKER)
            .await
            .unwrap();
        assert!(
            refused.is_err_and(|r| r.retry_after > 0 && r.retry_after <= 60),
            "{refused:?}"
        );
        // The owner's own client is not held back by another client's failures.
        assert_eq!(t.login_attempt(&email, OWNER).await.unwrap(), Ok(()));
        t.login_succeeded(&email, OWNER).await.unwrap();
        // Failures from many clients put the account under attack: a client that never signed
        // in gets one attempt, the owner's known client its usual three.
        for i in 10..14 {
            let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, i));
            assert_eq!(t.login_attempt(&email, other).await.unwrap(), Ok(()));
        }
        let stranger = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 2, 1));
        assert_eq!(t.login_attempt(&email, stranger).await.unwrap(), Ok(()));
        assert!(t.login_attempt(&email, stranger).await.unwrap().is_err());
        for _ in 0..3 {
            assert_eq!(t.login_attempt(&email, OWNER).await.unwrap(), Ok(()));
        }
    }

    #[tokio::test]
    async fn failures_are_counted_per_client_and_account_in_memory() {
        exercise(Throttle::in_memory(limits())).await;
    }

    #[tokio::test]
    async fn failures_are_counted_per_client_and_account_in_redis() {
        let url =
            std::env::var("CINELOG_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("cinelog-test-{}", Uuid::now_v7().simple());
        let t = Throttle::redis(&url, &prefix, limits())
            .await
            .expect("Redis must be running (./scripts/test starts it)");
        exercise(t).await;
    }

    #[tokio::test]
    async fn one_client_trying_many_accounts_is_stopped() {
        let t = Throttle::in_memory(limits());
        let mut refused = 0;
        for i in 0..12 {
            if t.login_attempt(&format!("user{i}@x.com"), ATTACKER)
                .await
                .unwrap()
                .is_err()
            {
                refused += 1;
            }
        }
        assert_eq!(refused, 2, "the 11th and 12th accounts are refused");
        assert_eq!(t.login_attempt("user0@x.com", OWNER).await.unwrap(), Ok(()));
    }
}
