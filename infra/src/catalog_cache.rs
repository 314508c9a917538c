//! Catalog answers cached in Redis (production mode). Each entry is keyed by the catalog's stamp
//! — the position of the newest catalog event the read model has applied, written in the same
//! transaction as the change — so an entry can never be served after the event that changed it.

use cinelog_domain::values::Maturity;
use cinelog_projections::ReadDb;
use cinelog_projections::catalog::{self, TitleCard, TitleQuery};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
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

    /// The key of an answer of `kind` to a query made of `parts`, at a catalog stamp.
    fn key(prefix: &str, stamp: i64, kind: &str, parts: &[&str]) -> String {
        let mut h = Sha256::new();
        for part in parts {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        format!(
            "{prefix}:catalog:v{}:{stamp}:{kind}:{}",
            catalog::VERSION,
            hex::encode(h.finalize())
        )
    }

    /// The answer from the cache when it holds one for the current catalog, else `load`ed and
    /// kept. Redis failing only means reading the database.
    async fn cached<T, F>(
        &self,
        db: &ReadDb,
        kind: &str,
        parts: &[&str],
        load: F,
    ) -> anyhow::Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = anyhow::Result<T>>,
    {
        let CatalogCache::Redis { redis, prefix } = self else {
            return load.await;
        };
        let stamp = catalog::stamp(db).await?;
        let key = Self::key(prefix, stamp, kind, parts);
        let mut conn = redis.clone();
        match conn.get::<_, Option<String>>(&key).await {
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
        if let Err(e) = conn.set_ex::<_, _, ()>(&key, encoded, TTL_SECS).await {
            tracing::warn!(error = %e, "could not fill the catalog cache");
        }
        Ok(answer)
    }

    /// Browses or searches.
    pub async fn browse(&self, db: &ReadDb, q: &TitleQuery) -> anyhow::Result<Browse> {
        let page = q.page.to_string();
        let parts = [
            q.text.as_deref().unwrap_or(""),
            q.genre.as_deref().unwrap_or(""),
            q.kind.as_deref().unwrap_or(""),
            q.max_maturity.map_or("", |m| m.as_str()),
            &page,
        ];
        self.cached(db, "browse", &parts, catalog::browse(db, q))
            .await
    }

    /// A title's page as the API shows it, if the viewer may see it.
    pub async fn details(
        &self,
        db: &ReadDb,
        id: &str,
        max_maturity: Option<Maturity>,
    ) -> anyhow::Result<Option<Value>> {
        let parts = [id, max_maturity.map_or("", |m| m.as_str())];
        let load = async {
            Ok(match catalog::details(db, id, max_maturity).await? {
                Some(title) => Some(serde_json::to_value(title)?),
                None => None,
            })
        };
        self.cached(db, "details", &parts, load).await
    }

    /// The genres of published titles.
    pub async fn genres(&self, db: &ReadDb) -> anyhow::Result<Vec<String>> {
        self.cached(db, "genres", &[], catalog::genres(db)).await
    }
}
