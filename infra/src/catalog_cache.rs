//! Catalog answers cached in memory, and in Redis in production mode. Each entry is keyed by the
//! catalog's stamp — the position of the newest catalog event the read model has applied,
//! written in the same transaction as the change — so an entry is never served once the change
//! that replaced it is known here.

use crate::redis_link::RedisLink;
use cinelog_domain::values::Maturity;
use cinelog_projections::Projections;
use cinelog_projections::catalog::{self, TitleCard, TitleQuery};
use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an entry may live even if the catalog never changes.
const TTL_SECS: u64 = 600;
/// Answers kept in this process's memory.
const MEMORY_ENTRIES: u64 = 4_096;
/// The longest the stamp is trusted without looking: bounds how long another process's catalog
/// change can go unseen here (this process's own changes are seen at once).
const STAMP_REFRESH: Duration = Duration::from_millis(200);

/// Catalog answers kept in memory, in front of Redis when one is configured. Cheap to clone.
#[derive(Clone)]
pub struct CatalogCache(Arc<Inner>);

struct Inner {
    memory: moka::sync::Cache<String, Arc<dyn Any + Send + Sync>>,
    stamp: Mutex<Stamp>,
    redis: Option<(RedisLink, String)>,
}

/// The catalog's stamp as last read, with the projection's move count then.
#[derive(Clone, Copy)]
struct Stamp {
    value: i64,
    moves: u64,
    read: Option<Instant>,
}

type Browse = (Vec<TitleCard>, bool, i64);

impl CatalogCache {
    /// Answers kept in memory only (the embedded default).
    pub fn memory() -> Self {
        Self::with_redis(None)
    }

    /// Answers kept in memory and shared between processes through Redis.
    pub async fn redis(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let link = RedisLink::connect(redis::Client::open(url)?).await?;
        Ok(Self::with_redis(Some((link, prefix.to_string()))))
    }

    fn with_redis(redis: Option<(RedisLink, String)>) -> Self {
        CatalogCache(Arc::new(Inner {
            memory: moka::sync::Cache::builder()
                .max_capacity(MEMORY_ENTRIES)
                .time_to_live(Duration::from_secs(TTL_SECS))
                .build(),
            stamp: Mutex::new(Stamp {
                value: 0,
                moves: 0,
                read: None,
            }),
            redis,
        }))
    }

    /// The catalog's current stamp: read again when the catalog projection has been seen to
    /// move, or when the last read is older than [`STAMP_REFRESH`].
    async fn stamp(&self, projections: &Projections) -> anyhow::Result<i64> {
        let moves = projections.moves(catalog::NAME);
        let known = *self.0.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if known.moves == moves && known.read.is_some_and(|at| at.elapsed() < STAMP_REFRESH) {
            return Ok(known.value);
        }
        let value = catalog::stamp(projections.db()).await?;
        let mut stamp = self.0.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if moves >= stamp.moves {
            *stamp = Stamp {
                value,
                moves,
                read: Some(Instant::now()),
            };
        }
        Ok(value)
    }

    /// The key of an answer of `kind` to a query made of `parts`, at a catalog stamp.
    fn key(stamp: i64, kind: &str, parts: &[&str]) -> String {
        let mut h = Sha256::new();
        for part in parts {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        format!(
            "catalog:v{}:{stamp}:{kind}:{}",
            catalog::VERSION,
            hex::encode(h.finalize())
        )
    }

    /// The answer for the current catalog from memory, else from Redis, else `load`ed; kept
    /// in both. Redis failing only means reading the database.
    async fn cached<T, F>(
        &self,
        projections: &Projections,
        kind: &str,
        parts: &[&str],
        load: F,
    ) -> anyhow::Result<Arc<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Future<Output = anyhow::Result<T>>,
    {
        let key = Self::key(self.stamp(projections).await?, kind, parts);
        if let Some(hit) = self.0.memory.get(&key)
            && let Ok(answer) = hit.downcast::<T>()
        {
            return Ok(answer);
        }
        let answer = Arc::new(match &self.0.redis {
            None => load.await?,
            Some((redis, prefix)) => Self::shared(redis, &format!("{prefix}:{key}"), load).await?,
        });
        self.0.memory.insert(key, answer.clone());
        Ok(answer)
    }

    async fn shared<T, F>(redis: &RedisLink, key: &str, load: F) -> anyhow::Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = anyhow::Result<T>>,
    {
        let read = redis.run(|mut conn| async move { conn.get::<_, Option<String>>(key).await });
        match read.await {
            Ok(Some(hit)) => {
                if let Ok(answer) = serde_json::from_str::<T>(&hit) {
                    return Ok(answer);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "catalog cache unavailable; reading the database"),
        }
        let answer = load.await?;
        let encoded = serde_json::to_string(&answer)?;
        let fill = redis
            .run(|mut conn| async move { conn.set_ex::<_, _, ()>(key, encoded, TTL_SECS).await });
        if let Err(e) = fill.await {
            tracing::warn!(error = %e, "could not fill the catalog cache");
        }
        Ok(answer)
    }

    /// Browses or searches.
    pub async fn browse(
        &self,
        projections: &Projections,
        q: &TitleQuery,
    ) -> anyhow::Result<Arc<Browse>> {
        let page = q.page.to_string();
        let parts = [
            q.text.as_deref().unwrap_or(""),
            q.genre.as_deref().unwrap_or(""),
            q.kind.as_deref().unwrap_or(""),
            q.max_maturity.map_or("", |m| m.as_str()),
            &page,
        ];
        let db = projections.db();
        self.cached(projections, "browse", &parts, catalog::browse(db, q))
            .await
    }

    /// A title's page as the API shows it, if the viewer may see it.
    pub async fn details(
        &self,
        projections: &Projections,
        id: &str,
        max_maturity: Option<Maturity>,
    ) -> anyhow::Result<Arc<Option<Value>>> {
        let parts = [id, max_maturity.map_or("", |m| m.as_str())];
        let db = projections.db();
        let load = async {
            Ok(match catalog::details(db, id, max_maturity).await? {
                Some(title) => Some(serde_json::to_value(title)?),
                None => None,
            })
        };
        self.cached(projections, "details", &parts, load).await
    }

    /// The genres of published titles.
    pub async fn genres(&self, projections: &Projections) -> anyhow::Result<Arc<Vec<String>>> {
        self.cached(
            projections,
            "genres",
            &[],
            catalog::genres(projections.db()),
        )
        .await
    }
}
