//! Read models fed by Kafka consumer-group workers instead of this runtime's log followers.
//!
//! A worker fills its own generation of a projection from the `cinelog.*` topics and swaps it
//! in once it has caught up with the topics; log followers leave a Kafka-fed generation alone.
//! Each batch from one partition is applied in one transaction with that partition's next
//! offset, moved only from the offset the worker read before: a batch delivered twice (a
//! rebalance, a restart) or applied by two workers at once lands once. A stream's events all
//! sit on one partition in log order, so the highest position applied per stream also drops
//! the copies a relay republished after a broker outage, and tells readers waiting for their
//! own write when it has landed.

use crate::db::ReadDb;
use crate::log::Checkpoint;
use crate::runtime::{KAFKA, Projections, Tables};
use chrono::Utc;
use cinelog_domain::RecordedEvent;
use sqlx::Row;
use std::collections::HashMap;

/// Creates the offsets and per-stream progress tables.
pub(crate) async fn install(db: &ReadDb) -> anyhow::Result<()> {
    for ddl in [
        "CREATE TABLE IF NOT EXISTS kafka_offsets (
            projection TEXT NOT NULL, generation BIGINT NOT NULL, topic TEXT NOT NULL,
            part INTEGER NOT NULL, next_offset BIGINT NOT NULL, owner TEXT NOT NULL,
            PRIMARY KEY (projection, generation, topic, part))",
        "CREATE TABLE IF NOT EXISTS kafka_streams (
            projection TEXT NOT NULL, generation BIGINT NOT NULL, stream_type TEXT NOT NULL,
            stream_id TEXT NOT NULL, position BIGINT NOT NULL,
            PRIMARY KEY (projection, generation, stream_type, stream_id))",
    ] {
        sqlx::query(ddl).execute(&db.pool).await?;
    }
    Ok(())
}

/// The highest position a Kafka-fed generation has applied of one stream (0: none).
pub(crate) async fn stream_position(
    db: &ReadDb,
    projection: &str,
    generation: i64,
    stream_type: &str,
    stream_id: &str,
) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT position FROM kafka_streams WHERE projection = $1 AND generation = $2 AND stream_type = $3 AND stream_id = $4",
    )
    .bind(projection)
    .bind(generation)
    .bind(stream_type)
    .bind(stream_id)
    .fetch_optional(&db.pool)
    .await?
    .unwrap_or(0))
}

/// The generation a Kafka worker feeds, and whether queries already read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    pub generation: i64,
    pub live: bool,
}

/// Messages of one partition, in offset order, decoded.
#[derive(Debug, Clone)]
pub struct PartitionBatch {
    pub topic: String,
    pub partition: i32,
    /// The partition's next offset as the worker read it before this batch.
    pub from: i64,
    /// The offset after the batch's last message.
    pub to: i64,
    pub events: Vec<RecordedEvent>,
    /// The worker applying it, recorded beside the offset for operators.
    pub owner: String,
}

impl Projections {
    /// The Kafka-fed generation of `name` of this code's version: the live one, else the lowest
    /// one being filled, else a new one. Workers starting together settle on the same one.
    pub async fn kafka_generation(&self, name: &str) -> anyhow::Result<Fed> {
        let p = self.find(name)?;
        let pick = || async {
            sqlx::query(
                "SELECT generation, active FROM projection_state WHERE name = $1 AND source = $2 AND version = $3
                 ORDER BY active DESC, generation LIMIT 1",
            )
            .bind(name)
            .bind(KAFKA)
            .bind(p.version())
            .fetch_optional(&self.db().pool)
            .await
        };
        let live_generation = sqlx::query_scalar::<_, i64>(
            "SELECT generation FROM projection_state WHERE name = $1 AND active = 1",
        )
        .bind(name)
        .fetch_optional(&self.db().pool)
        .await?
        .unwrap_or(0);
        // Only a generation newer than the live one can take over: an older one lost to a rebuild.
        let found = pick()
            .await?
            .filter(|r| r.get::<i64, _>(1) == 1 || r.get::<i64, _>(0) > live_generation);
        let row = match found {
            Some(row) => row,
            None => {
                self.create_generation(p.as_ref(), KAFKA).await?;
                pick()
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no Kafka generation of {name}"))?
            }
        };
        Ok(Fed {
            generation: row.get(0),
            live: row.get::<i64, _>(1) == 1,
        })
    }

    /// The next offset of every partition a generation has consumed from.
    pub async fn kafka_offsets(
        &self,
        name: &str,
        generation: i64,
    ) -> anyhow::Result<HashMap<(String, i32), i64>> {
        let rows = sqlx::query(
            "SELECT topic, part, next_offset FROM kafka_offsets WHERE projection = $1 AND generation = $2",
        )
        .bind(name)
        .bind(generation)
        .fetch_all(&self.db().pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect())
    }

    /// Applies one partition's batch with its offset in one transaction. Answers false, having
    /// changed nothing, when the partition's offset is no longer `batch.from` (another worker or
    /// an earlier delivery applied it).
    pub async fn apply_from_kafka(
        &self,
        name: &str,
        generation: i64,
        batch: &PartitionBatch,
    ) -> anyhow::Result<bool> {
        let p = self.find(name)?;
        let mut tx = self.db().pool.begin().await?;
        // Write first (SQLite takes its write lock here), conditional on the offset read before.
        let moved = if batch.from == 0 {
            sqlx::query(
                "INSERT INTO kafka_offsets (projection, generation, topic, part, next_offset, owner) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (projection, generation, topic, part) DO NOTHING",
            )
            .bind(name)
            .bind(generation)
            .bind(&batch.topic)
            .bind(batch.partition)
            .bind(batch.to)
            .bind(&batch.owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        } else {
            sqlx::query(
                "UPDATE kafka_offsets SET next_offset = $1, owner = $7
                 WHERE projection = $2 AND generation = $3 AND topic = $4 AND part = $5 AND next_offset = $6",
            )
            .bind(batch.to)
            .bind(name)
            .bind(generation)
            .bind(&batch.topic)
            .bind(batch.partition)
            .bind(batch.from)
            .bind(&batch.owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        };
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let tables = Tables::of(generation);
        let mut reached: HashMap<(&str, &str), i64> = HashMap::new();
        let mut last: Option<Checkpoint> = None;
        for event in &batch.events {
            let key = (event.stream_type.as_str(), event.stream_id.as_str());
            let before = match reached.get(&key) {
                Some(position) => *position,
                None => sqlx::query_scalar(
                    "SELECT position FROM kafka_streams WHERE projection = $1 AND generation = $2 AND stream_type = $3 AND stream_id = $4",
                )
                .bind(name)
                .bind(generation)
                .bind(&event.stream_type)
                .bind(&event.stream_id)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(0),
            };
            // A copy the relay sent again after an outage: already applied.
            if event.position <= before {
                reached.insert(key, before);
                continue;
            }
            p.apply(&mut tx, &tables, event).await.map_err(|e| {
                e.context(format!(
                    "projection {name} failed on event at position {} ({}/{} offset range {}..{})",
                    event.position, batch.topic, batch.partition, batch.from, batch.to
                ))
            })?;
            reached.insert(key, event.position);
            let ck = Checkpoint::of(event);
            last = Some(last.map_or(ck, |l| l.max(ck)));
        }
        for ((stream_type, stream_id), position) in &reached {
            sqlx::query(
                "INSERT INTO kafka_streams (projection, generation, stream_type, stream_id, position) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (projection, generation, stream_type, stream_id) DO UPDATE SET position = excluded.position
                 WHERE excluded.position > kafka_streams.position",
            )
            .bind(name)
            .bind(generation)
            .bind(*stream_type)
            .bind(*stream_id)
            .bind(*position)
            .execute(&mut *tx)
            .await?;
        }
        // The generation's checkpoint shows the furthest event applied, for status and lag.
        if let Some(ck) = last {
            sqlx::query(
                "UPDATE projection_state SET ck_tx = $1, ck_position = $2, updated_at = $3
                 WHERE name = $4 AND generation = $5 AND (ck_tx < $1 OR (ck_tx = $1 AND ck_position < $2))",
            )
            .bind(ck.tx)
            .bind(ck.position)
            .bind(Utc::now().to_rfc3339())
            .bind(name)
            .bind(generation)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Makes a filled Kafka-fed generation the one queries read.
    pub async fn promote(&self, name: &str, generation: i64) -> anyhow::Result<()> {
        let p = self.find(name)?;
        self.swap(p.as_ref(), generation).await?;
        tracing::info!(
            projection = name,
            generation,
            "Kafka-fed generation now live"
        );
        Ok(())
    }
}
