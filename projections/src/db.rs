use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};
use std::time::Duration;

/// The read-model database: SQLite in the embedded default, Postgres in production. Read-model
/// SQL sticks to what both understand (TEXT and BIGINT columns, `$n` parameters, `ON CONFLICT`).
///
/// On Postgres its transactions commit asynchronously (`synchronous_commit = off`): they do not
/// wait for the write-ahead log to reach the disk. Read models are derived from the log, whose
/// appends stay synchronous, and each batch commits together with its checkpoint, so a database
/// crash can only take back the last fraction of a second of read-model batches, whole and in
/// order, which the followers then apply again from the log. Writes that must survive a crash
/// on their own ask for a synchronous commit (see [`ReadDb::durable`]).
#[derive(Clone, Debug)]
pub struct ReadDb {
    pub pool: AnyPool,
    pub sqlite: bool,
}

impl ReadDb {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;").await?;
                    } else {
                        conn.execute("SET synchronous_commit = off").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        Ok(Self { pool, sqlite })
    }

    /// Runs one statement in a transaction that commits synchronously, for a write that must
    /// survive a database crash on its own.
    pub async fn durable<'q>(
        &self,
        statement: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await?;
        if !self.sqlite {
            sqlx::query("SET LOCAL synchronous_commit = on")
                .execute(&mut *tx)
                .await?;
        }
        let affected = statement.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(affected)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// The bind placeholders `$1, $2, …, $n`, for an `IN (…)` of `n` values.
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
