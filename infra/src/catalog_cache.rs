//! Catalog answers cached in Redis (production mode). Each entry is keyed by the catalog's stamp
//! — the position of the newest catalog event the read model has applied, written in the same
//! transaction as the change — so an entry can never be served after the event that changed it.

use cinelog_projections::ReadDb;
use cinelog_projections::catalog::{self, TitleCard, TitleQuery};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

/// How long an entry may live even if the catalog never changes.
const TTL_SECS: u64 = 600;

#[derive(Clone)]
pub enum CatalogCache {
    /// No cache: every query reads the read model (the embedded default).
    Off,
    Redis {
        redis: ConnectionManager,
        prefix: String,
    },
}

type Browse = (Vec<TitleCard>, bool, i64);

impl CatalogCache {
    pub async fn redis(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        Ok(CatalogCache::Redis {
            redis: ConnectionManager::new(client).await?,
            prefix: prefix.to_string(),
        })
    }

    /// The key of a query's answer at a catalog stamp.
    fn key(prefix: &str, stamp: i64, q: &TitleQuery) -> String {
        let mut h = Sha256::new();
        for part in [
            q.text.as_deref().unwrap_or(""),
            q.genre.as_deref().unwrap_or(""),
            q.kind.as_deref().unwrap_or(""),
            q.max_maturity.map_or("", |m| m.as_str()),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(q.page.to_le_bytes());
        format!(
            "{prefix}:catalog:v{}:{stamp}:{}",
            catalog::VERSION,
            hex::encode(h.finalize())
        )
    }

    /// Browses or searches, from the cache when it holds the answer for the current catalog.
    pub async fn browse(&self, db: &ReadDb, q: &TitleQuery) -> anyhow::Result<Browse> {
        let CatalogCache::Redis { redis, prefix } = self else {
            return catalog::browse(db, q).await;
        };
        let stamp = catalog::stamp(db).await?;
        let key = Self::key(prefix, stamp, q);
        let mut conn = redis.clone();
        match conn.get::<_, Option<String>>(&key).await {
            Ok(Some(hit)) => {
                if let Ok(answer) = serde_json::from_str::<Browse>(&hit) {
                    return Ok(answer);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "catalog cache unavailable; reading the database"),
        }
        let answer = catalog::browse(db, q).await?;
        let encoded = serde_json::to_string(&answer)?;
        if let Err(e) = conn.set_ex::<_, _, ()>(&key, encoded, TTL_SECS).await {
            tracing::warn!(error = %e, "could not fill the catalog cache");
        }
        Ok(answer)
    }
}
