//! The projection runtime: catch-up in batches, then live following; the checkpoint moves in the
//! same transaction as the read-model change, so a crash or a second runner can neither skip nor
//! double an event. Each projection's tables carry a generation suffix behind a plain-named view;
//! a rebuild fills the next generation beside the live one and swaps the views when caught up.

use crate::db::ReadDb;
use crate::log::{Checkpoint, EventLog, Wanted};
use crate::text::TextIndex;
use async_trait::async_trait;
use chrono::Utc;
use cinelog_domain::RecordedEvent;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Events applied per transaction while following.
const BATCH: i64 = 500;
/// Events applied per transaction while rebuilding: fewer, larger transactions.
const REBUILD_BATCH: i64 = 5_000;
/// How long a woken follower waits for more appends before applying a batch, when its last round
/// found more than one event: under load, each round of every projection (a log read and a
/// read-model transaction) then carries more events, while a lone command after a quiet spell
/// reaches its read model at once.
const COALESCE: Duration = Duration::from_millis(20);
/// How often a follower looks for events appended by other processes.
const POLL: Duration = Duration::from_millis(200);
/// How often, at most, a follower writes a checkpoint that moved only past events its
/// projection does not read. Under a load of other events every projection would otherwise
/// write its checkpoint every round; in between, this process knows the place in memory (see
/// [`Seen`]) and a restart only reads those events again.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The `source` of a generation fed by Kafka consumer-group workers.
pub(crate) const KAFKA: &str = "kafka";

/// A projection's live generation.
#[derive(Debug, Clone, Copy)]
struct Active {
    generation: i64,
    version: i64,
    ck: Checkpoint,
    kafka: bool,
}

/// Where a runner stands: how far it has read the log, and the checkpoint the database holds.
/// They differ only by events the projection does not read.
#[derive(Debug, Clone, Copy)]
struct Place {
    read: Checkpoint,
    stored: Checkpoint,
}

impl Place {
    fn at(ck: Checkpoint) -> Place {
        Place {
            read: ck,
            stored: ck,
        }
    }
}

/// A live follower between rounds: its generation as last read, its place, and when it last
/// wrote its checkpoint (`None`: not since it read it).
#[derive(Debug, Clone, Copy)]
struct Following {
    live: Active,
    place: Place,
    stored_at: Option<std::time::Instant>,
}

/// Physical table names of one generation of a projection.
#[derive(Debug, Clone)]
pub struct Tables {
    generation: i64,
}

impl Tables {
    pub(crate) fn of(generation: i64) -> Tables {
        Tables { generation }
    }

    /// The physical name of a read-model table in this generation, e.g. `profiles_g2`.
    pub fn name(&self, table: &str) -> String {
        format!("{table}_g{}", self.generation)
    }
}

/// A read model kept current from the log.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Stable name, used by `cinelog rebuild <name>`.
    fn name(&self) -> &'static str;
    /// Bump to rebuild the read model from the log beside the live one.
    fn version(&self) -> i64;
    /// Each table: its plain name (the view queries read) and its columns and constraints.
    fn tables(&self) -> &'static [(&'static str, &'static str)];
    /// Extra statements run after the tables are created (indexes); `{table}` placeholders are
    /// the physical names, written as `{name}` of a table.
    fn indexes(&self) -> &'static [&'static str] {
        &[]
    }
    /// Full-text indexes over its tables' text columns.
    fn text_indexes(&self) -> &'static [TextIndex] {
        &[]
    }
    /// Views for analysts' SQL tools (Postgres): `(name, SELECT over this projection's
    /// plain-named tables)`, made in the `analytics` schema whenever a generation goes live.
    /// Leave personal data out.
    fn analytics_views(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
    /// The stream types whose events it reads; empty for every stream. A batch with none of
    /// them only moves the checkpoint.
    fn streams(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether it reads events of `stream_type`.
    fn reads(&self, stream_type: &str) -> bool {
        let streams = self.streams();
        streams.is_empty() || streams.contains(&stream_type)
    }
    /// Applies one event. Must be idempotent per event and return errors rather than panic.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &RecordedEvent,
    ) -> anyhow::Result<()>;

    /// Applies a batch of events in log order, inside the batch's transaction. The default
    /// applies them one by one; a projection may instead write runs of events with one
    /// multi-row statement, as long as the tables end as one-by-one would leave them.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        for event in events {
            self.apply(conn, tables, event)
                .await
                .map_err(|e| e.context(format!("event at position {}", event.position)))?;
        }
        Ok(())
    }
}

/// A projection's progress, for `/readyz`, `/metrics` and operators.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub version: i64,
    pub generation: i64,
    pub position: i64,
    pub lag_events: i64,
    pub lag_seconds: f64,
}

/// All projections of the process, over one read database and one log.
#[derive(Clone)]
pub struct Projections {
    db: ReadDb,
    log: Arc<dyn EventLog>,
    /// The log's newest events, shared by the live generations' reads.
    tail: Arc<dyn EventLog>,
    all: Vec<Arc<dyn Projection>>,
    seen: Arc<Seen>,
}

/// The live checkpoint this process last saw of each projection, and how often it saw one
/// move: whatever applied it (a follower here, another process, a rebuild's swap).
#[derive(Default)]
struct Seen(std::sync::Mutex<std::collections::HashMap<String, SeenLive>>);

/// A projection's live (generation, checkpoint) as last seen, and how many times it changed.
type SeenLive = ((i64, Checkpoint), u64);

impl Seen {
    /// A checkpoint of a generation only moves forwards: one read from the database behind what
    /// a follower here already passed is old news.
    fn observe(&self, name: &str, generation: i64, ck: Checkpoint) {
        let Ok(mut seen) = self.0.lock() else { return };
        let entry = seen.entry(name.to_string()).or_default();
        let ((g, known), moves) = *entry;
        if g != generation || known < ck {
            *entry = ((generation, ck), moves + 1);
        }
    }

    /// Where this process last saw the generation's checkpoint, if it saw that generation last.
    fn at(&self, name: &str, generation: i64) -> Option<Checkpoint> {
        let seen = self.0.lock().ok()?;
        let ((g, ck), _) = seen.get(name)?;
        (*g == generation).then_some(*ck)
    }

    fn moves(&self, name: &str) -> u64 {
        self.0
            .lock()
            .ok()
            .and_then(|seen| seen.get(name).map(|e| e.1))
            .unwrap_or(0)
    }
}

impl Projections {
    pub fn new(db: ReadDb, log: Arc<dyn EventLog>, all: Vec<Arc<dyn Projection>>) -> Self {
        Self {
            db,
            tail: Arc::new(crate::tail::SharedTail::new(log.clone())),
            log,
            all,
            seen: Arc::default(),
        }
    }

    /// How many times this process has seen the named projection's read model move. A cache of
    /// answers read from it is current while this number stays the same — for changes applied
    /// here at once, for another process's within a follower's poll (or at once after a
    /// read-your-writes wait).
    pub fn moves(&self, name: &str) -> u64 {
        self.seen.moves(name)
    }

    pub fn db(&self) -> &ReadDb {
        &self.db
    }

    pub(crate) fn find(&self, name: &str) -> anyhow::Result<Arc<dyn Projection>> {
        self.all
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no projection named {name:?}; known: {}",
                    self.names().join(", ")
                )
            })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.all.iter().map(|p| p.name()).collect()
    }

    /// Creates the registry and, for a projection seen for the first time, its first generation.
    pub async fn setup(&self) -> anyhow::Result<()> {
        // The schema first: a swap below makes its projection's analytics views in it.
        crate::analytics::install(&self.db, &[]).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS projection_state (
                name TEXT NOT NULL, generation BIGINT NOT NULL, version BIGINT NOT NULL,
                active BIGINT NOT NULL, ck_tx BIGINT NOT NULL, ck_position BIGINT NOT NULL,
                updated_at TEXT NOT NULL, PRIMARY KEY (name, generation))",
        )
        .execute(&self.db.pool)
        .await?;
        self.add_source_column().await?;
        crate::external::install(&self.db).await?;
        for p in &self.all {
            let mut attempts = 0;
            while self.active(p.name()).await?.is_none() {
                let created = async {
                    let generation = self.create_generation(p.as_ref(), "log").await?;
                    self.swap(p.as_ref(), generation).await
                };
                // Two processes starting at once both try; the loser's transaction changes nothing.
                if let Err(e) = created.await {
                    attempts += 1;
                    if attempts >= 5 {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
                }
            }
        }
        let views: Vec<_> = self
            .all
            .iter()
            .flat_map(|p| p.analytics_views().iter().copied())
            .collect();
        crate::analytics::install(&self.db, &views).await?;
        Ok(())
    }

    /// Where each generation's events come from: `log` (this runtime's followers) or `kafka`
    /// (consumer-group workers). Older registries get the column here.
    async fn add_source_column(&self) -> anyhow::Result<()> {
        let has = sqlx::query("SELECT source FROM projection_state WHERE 1 = 0")
            .fetch_all(&self.db.pool)
            .await
            .is_ok();
        if !has {
            let added = sqlx::query(
                "ALTER TABLE projection_state ADD COLUMN source TEXT NOT NULL DEFAULT 'log'",
            )
            .execute(&self.db.pool)
            .await;
            // Another process starting at once may have added it first.
            if let Err(e) = added {
                sqlx::query("SELECT source FROM projection_state WHERE 1 = 0")
                    .fetch_all(&self.db.pool)
                    .await
                    .map_err(|_| e)?;
            }
        }
        Ok(())
    }

    /// The active generation, its version, checkpoint and whether Kafka workers feed it.
    async fn active(&self, name: &str) -> anyhow::Result<Option<Active>> {
        let row = sqlx::query("SELECT generation, version, ck_tx, ck_position, source FROM projection_state WHERE name = $1 AND active = 1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        let active = row.map(|r| Active {
            generation: r.get(0),
            version: r.get(1),
            ck: Checkpoint {
                tx: r.get(2),
                position: r.get(3),
            },
            kafka: r.get::<String, _>(4) == KAFKA,
        });
        if let Some(a) = &active {
            self.seen.observe(name, a.generation, a.ck);
        }
        Ok(active)
    }

    async fn checkpoint(&self, name: &str, generation: i64) -> anyhow::Result<Checkpoint> {
        let r = sqlx::query(
            "SELECT ck_tx, ck_position FROM projection_state WHERE name = $1 AND generation = $2",
        )
        .bind(name)
        .bind(generation)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(Checkpoint {
            tx: r.get(0),
            position: r.get(1),
        })
    }

    /// Creates empty tables for the next generation, registered inactive at the log's start.
    pub(crate) async fn create_generation(
        &self,
        p: &dyn Projection,
        source: &str,
    ) -> anyhow::Result<i64> {
        let next: i64 = sqlx::query(
            "SELECT COALESCE(MAX(generation), 0) + 1 FROM projection_state WHERE name = $1",
        )
        .bind(p.name())
        .fetch_one(&self.db.pool)
        .await?
        .get(0);
        let tables = Tables { generation: next };
        let mut tx = self.db.pool.begin().await?;
        // Write first: on SQLite a transaction that reads before its first write cannot take the
        // write lock once another connection has committed, and fails instead of waiting.
        sqlx::query("INSERT INTO projection_state (name, generation, version, active, ck_tx, ck_position, updated_at, source) VALUES ($1, $2, $3, 0, 0, 0, $4, $5)")
            .bind(p.name())
            .bind(next)
            .bind(p.version())
            .bind(Utc::now().to_rfc3339())
            .bind(source)
            .execute(&mut *tx)
            .await?;
        for (table, columns) in p.tables() {
            let physical = tables.name(table);
            sqlx::query(&format!("DROP TABLE IF EXISTS {physical}"))
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!("CREATE TABLE {physical} ({columns})"))
                .execute(&mut *tx)
                .await?;
        }
        for index in p.indexes() {
            let mut sql = index.replace("{g}", &format!("g{next}"));
            for (table, _) in p.tables() {
                sql = sql.replace(&format!("{{{table}}}"), &tables.name(table));
            }
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        for index in p.text_indexes() {
            for sql in index.create(&tables, self.db.sqlite) {
                sqlx::query(&sql).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(next)
    }

    /// Applies the next batch after the generation's place (`from`, when known); returns how
    /// many events it read and the place it moved to, or `None` if another runner moved the
    /// checkpoint first. The checkpoint update is conditional on the checkpoint stored, so two
    /// runners never apply the same batch: the loser's transaction changes nothing.
    ///
    /// With `defer`, a move past events the projection does not read is kept in the place only,
    /// not written.
    async fn step(
        &self,
        p: &dyn Projection,
        generation: i64,
        from: Option<Place>,
        must_be_active: bool,
        limit: i64,
        defer: bool,
    ) -> anyhow::Result<Option<(usize, Place)>> {
        let from = match from {
            Some(known) => known,
            None => Place::at(self.checkpoint(p.name(), generation).await?),
        };
        // A rebuild reads from the start, past what the tail keeps: straight from the log.
        let log = if must_be_active {
            &self.tail
        } else {
            &self.log
        };
        let wanted = |e: &RecordedEvent| p.reads(&e.stream_type);
        let Wanted { events, last, read } =
            log.read_after_wanted(from.read, limit, &wanted).await?;
        let to = last.unwrap_or(from.read);
        if events.is_empty() && (to == from.stored || defer) {
            if must_be_active && read > 0 {
                self.seen.observe(p.name(), generation, to);
            }
            return Ok(Some((
                read,
                Place {
                    read: to,
                    stored: from.stored,
                },
            )));
        }
        let moved = sqlx::query(
            "UPDATE projection_state SET ck_tx = $1, ck_position = $2, updated_at = $3
             WHERE name = $4 AND generation = $5 AND ck_tx = $6 AND ck_position = $7 AND active = $8
               AND source = 'log'",
        )
        .bind(to.tx)
        .bind(to.position)
        .bind(Utc::now().to_rfc3339())
        .bind(p.name())
        .bind(generation)
        .bind(from.stored.tx)
        .bind(from.stored.position)
        .bind(i64::from(must_be_active));
        if events.is_empty() {
            // Nothing here for this read model: only the checkpoint moves, in one statement.
            if moved.execute(&self.db.pool).await?.rows_affected() != 1 {
                return Ok(None);
            }
            if must_be_active {
                self.seen.observe(p.name(), generation, to);
            }
            return Ok(Some((read, Place::at(to))));
        }
        let mut tx = self.db.pool.begin().await?;
        if moved.execute(&mut *tx).await?.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let tables = Tables { generation };
        p.apply_batch(&mut tx, &tables, &events)
            .await
            .map_err(|e| e.context(format!("projection {} failed", p.name())))?;
        tx.commit().await?;
        if must_be_active {
            self.seen.observe(p.name(), generation, to);
        }
        Ok(Some((read, Place::at(to))))
    }

    /// Catches the active generation up with the log; returns how many events it applied.
    /// Only a generation built by this code's version is advanced: another version's tables may
    /// not fit this code (a newer version is rebuilt beside it first; see `follow_once`).
    pub async fn catch_up(&self, name: &str) -> anyhow::Result<usize> {
        let p = self.find(name)?;
        let mut total = 0;
        loop {
            let Some(live) = self.active(name).await? else {
                return Ok(total);
            };
            // Kafka workers feed that generation; this runtime only reads it.
            if live.version != p.version() || live.kafka {
                return Ok(total);
            }
            match self
                .step(
                    p.as_ref(),
                    live.generation,
                    Some(Place::at(live.ck)),
                    true,
                    BATCH,
                    false,
                )
                .await?
            {
                Some((n, _)) => {
                    total += n;
                    // A short batch reached the readable end of the log: what arrives next is
                    // taken in the follower's next round, together with whatever comes with it.
                    if n < BATCH as usize {
                        return Ok(total);
                    }
                }
                // Another runner got there first, or a rebuild swapped generations: look again.
                None => tokio::task::yield_now().await,
            }
        }
    }

    /// Catches every projection up with the log as it stands now, waiting at most `wait` in all
    /// for commits still in flight. A projection still behind then is left to its follower.
    pub async fn catch_up_all(&self, wait: Duration) -> anyhow::Result<()> {
        let head = self.log.head().await?;
        let deadline = tokio::time::Instant::now() + wait;
        for name in self.names() {
            if !self.reach(name, head, deadline).await? {
                tracing::warn!(projection = name, head, "still behind the log");
            }
        }
        Ok(())
    }

    /// Rebuilds a projection from position zero beside the live tables, then swaps atomically.
    /// Queries keep reading the old generation until the swap.
    #[tracing::instrument(skip(self))]
    pub async fn rebuild(&self, name: &str) -> anyhow::Result<i64> {
        let p = self.find(name)?;
        let generation = self.create_generation(p.as_ref(), "log").await?;
        let mut from = None;
        loop {
            match self
                .step(p.as_ref(), generation, from, false, REBUILD_BATCH, false)
                .await?
            {
                Some((0, _)) => break,
                Some((_, place)) => from = Some(place),
                None => from = None,
            }
        }
        self.swap(p.as_ref(), generation).await?;
        tracing::info!(projection = name, generation, "rebuilt and swapped");
        Ok(generation)
    }

    /// The plain names of a projection's tables, each read through a view: its tables and, on
    /// SQLite, its full-text tables.
    fn viewed(p: &dyn Projection, sqlite: bool) -> Vec<&'static str> {
        let text = p.text_indexes().iter().filter(|_| sqlite).map(|i| i.name);
        p.tables().iter().map(|(t, _)| *t).chain(text).collect()
    }

    /// Points the views at `generation`, marks it active and drops the old generation's tables.
    pub(crate) async fn swap(&self, p: &dyn Projection, generation: i64) -> anyhow::Result<()> {
        let mut tx = self.db.pool.begin().await?;
        // A concurrent rebuild that swapped first has dropped this generation: nothing to swap in.
        let exists = sqlx::query(
            "UPDATE projection_state SET updated_at = $1 WHERE name = $2 AND generation = $3",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(p.name())
        .bind(generation)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        anyhow::ensure!(
            exists == 1,
            "generation {generation} of {} was dropped by a concurrent rebuild",
            p.name()
        );
        sqlx::query("UPDATE projection_state SET active = CASE WHEN generation = $1 THEN 1 ELSE 0 END, updated_at = $2 WHERE name = $3")
            .bind(generation)
            .bind(Utc::now().to_rfc3339())
            .bind(p.name())
            .execute(&mut *tx)
            .await?;
        let tables = Tables { generation };
        let analytics = if self.db.sqlite {
            &[][..]
        } else {
            p.analytics_views()
        };
        for (name, _) in analytics {
            sqlx::query(&format!("DROP VIEW IF EXISTS analytics.{name}"))
                .execute(&mut *tx)
                .await?;
        }
        for table in Self::viewed(p, self.db.sqlite) {
            sqlx::query(&format!("DROP VIEW IF EXISTS {table}"))
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "CREATE VIEW {table} AS SELECT * FROM {}",
                tables.name(table)
            ))
            .execute(&mut *tx)
            .await?;
        }
        for (name, select) in analytics {
            sqlx::query(&format!("CREATE VIEW analytics.{name} AS {select}"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        // The new generation may have fallen behind while swapping; the live runner continues it.
        // Older generations are no longer read: drop them (a rebuild still filling one fails and
        // leaves the live generation as it is).
        let stale: Vec<i64> = sqlx::query_scalar("SELECT generation FROM projection_state WHERE name = $1 AND active = 0 AND generation < $2")
            .bind(p.name())
            .bind(generation)
            .fetch_all(&self.db.pool)
            .await?;
        for old in stale {
            let old_tables = Tables { generation: old };
            for table in Self::viewed(p, self.db.sqlite) {
                sqlx::query(&format!("DROP TABLE IF EXISTS {}", old_tables.name(table)))
                    .execute(&self.db.pool)
                    .await?;
            }
            for registry in ["kafka_offsets", "kafka_streams"] {
                sqlx::query(&format!(
                    "DELETE FROM {registry} WHERE projection = $1 AND generation = $2"
                ))
                .bind(p.name())
                .bind(old)
                .execute(&self.db.pool)
                .await?;
            }
            sqlx::query("DELETE FROM projection_state WHERE name = $1 AND generation = $2")
                .bind(p.name())
                .bind(old)
                .execute(&self.db.pool)
                .await?;
        }
        Ok(())
    }

    /// Follows the log forever: every projection in its own task, woken by local appends and by
    /// a short poll for other processes' appends. Errors are logged and retried with backoff.
    pub fn spawn_followers(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.all
            .iter()
            .map(|p| {
                let this = self.clone();
                let p = p.clone();
                tokio::spawn(async move {
                    let wake = this.log.appended();
                    let rebuilding = Arc::new(AtomicBool::new(false));
                    let mut backoff = Duration::from_millis(100);
                    let mut known = None;
                    loop {
                        let notified = wake.notified();
                        match this.follow_once(p.as_ref(), &rebuilding, &mut known).await {
                            Ok(read) => {
                                backoff = Duration::from_millis(100);
                                // A checkpoint left unwritten is written once its time is up,
                                // even if nothing else arrives.
                                let unwritten = known
                                    .is_some_and(|f: Following| f.place.read != f.place.stored);
                                let wait = if unwritten { CHECKPOINT_EVERY } else { POLL };
                                if tokio::time::timeout(wait, notified).await.is_ok() && read > 1 {
                                    // Let appends arriving together land in one batch.
                                    tokio::time::sleep(COALESCE).await;
                                }
                            }
                            Err(e) => {
                                tracing::error!(projection = p.name(), error = ?e, "projection failed; retrying");
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(10));
                            }
                        }
                    }
                })
            })
            .collect()
    }

    /// Catches up and answers how many events the round read; if the code's version of the
    /// projection is newer than the live one, starts a rebuild beside it (once) while the live
    /// generation keeps serving and following.
    ///
    /// `known` is where the live generation stood after the previous round, so a round reads
    /// nothing but the log: a stale `known` only makes the checkpoint's guarded update miss
    /// (another runner moved it, or a rebuild swapped generations), and it is looked up again.
    async fn follow_once(
        &self,
        p: &dyn Projection,
        rebuilding: &Arc<AtomicBool>,
        known: &mut Option<Following>,
    ) -> anyhow::Result<usize> {
        let mut following = match known.take() {
            Some(following) => following,
            None => {
                let Some(live) = self.active(p.name()).await? else {
                    return Ok(0);
                };
                if live.version < p.version() && !rebuilding.swap(true, Ordering::SeqCst) {
                    let (this, name, flag) = (self.clone(), p.name(), rebuilding.clone());
                    tokio::spawn(async move {
                        if let Err(e) = this.rebuild(name).await {
                            tracing::error!(projection = name, error = ?e, "rebuild failed; the live read model is unchanged");
                        }
                        flag.store(false, Ordering::SeqCst);
                    });
                }
                Following {
                    live,
                    place: Place::at(live.ck),
                    stored_at: None,
                }
            }
        };
        // Kafka workers feed that generation, and another version's tables may not fit this
        // code: only read it.
        let live = following.live;
        if live.version != p.version() || live.kafka {
            return Ok(0);
        }
        let mut read = 0;
        loop {
            let defer = following
                .stored_at
                .is_some_and(|at| at.elapsed() < CHECKPOINT_EVERY);
            let Some((n, place)) = self
                .step(
                    p,
                    live.generation,
                    Some(following.place),
                    true,
                    BATCH,
                    defer,
                )
                .await?
            else {
                return Ok(read);
            };
            if place.stored != following.place.stored {
                following.stored_at = Some(std::time::Instant::now());
            }
            following.place = place;
            read += n;
            if n < BATCH as usize {
                *known = Some(following);
                return Ok(read);
            }
        }
    }

    /// Whether the live generation of `name` has applied the event at `position` (which sits at
    /// `target` in log order, once known). A log-fed generation has when its checkpoint passed
    /// it; a Kafka-fed one, whose partitions advance independently, when it applied that event's
    /// stream up to it.
    async fn applied(
        &self,
        name: &str,
        position: i64,
        target: Option<Checkpoint>,
    ) -> anyhow::Result<bool> {
        let (Some(target), Some(live)) = (target, self.active(name).await?) else {
            return Ok(false);
        };
        if !live.kafka {
            let here = self.seen.at(name, live.generation);
            return Ok(live.ck.max(here.unwrap_or(live.ck)) >= target);
        }
        let Some((stream_type, stream_id)) = self.log.stream_of(position).await? else {
            return Ok(false);
        };
        let reached = crate::external::stream_position(
            &self.db,
            name,
            live.generation,
            &stream_type,
            &stream_id,
        )
        .await?;
        Ok(reached >= position)
    }

    /// The highest global position committed to the log.
    pub async fn log_head(&self) -> anyhow::Result<i64> {
        self.log.head().await
    }

    /// Waits (bounded) until the named projection has applied the event at `position`.
    /// Returns whether it got there in time.
    pub async fn wait_for(
        &self,
        name: &str,
        position: i64,
        timeout: Duration,
    ) -> anyhow::Result<bool> {
        if position <= 0 {
            return Ok(true);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut target = None;
        loop {
            if target.is_none() {
                target = self.log.checkpoint_of(position).await?;
            }
            if self.applied(name, position, target).await? {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits (bounded) until the named projection has applied every event committed before
    /// this call, stepping it here rather than waiting for its follower. Returns whether it got
    /// there in time: on Postgres a transaction still running elsewhere can hold the log back.
    pub async fn catch_up_with_log(&self, name: &str, timeout: Duration) -> anyhow::Result<bool> {
        let head = self.log.head().await?;
        self.reach(name, head, tokio::time::Instant::now() + timeout)
            .await
    }

    /// Steps the named projection until it has applied `head`, or the deadline passes.
    async fn reach(
        &self,
        name: &str,
        head: i64,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<bool> {
        if head <= 0 {
            return Ok(true);
        }
        let version = self.find(name)?.version();
        let mut target = None;
        loop {
            self.catch_up(name).await?;
            if target.is_none() {
                target = self.log.checkpoint_of(head).await?;
            }
            let live = self.active(name).await?;
            if self.applied(name, head, target).await? {
                return Ok(true);
            }
            // A live generation of another version is not stepped here (its rebuild takes over),
            // so waiting for it would only spend the deadline.
            let live_version = live.map(|l| l.version);
            if tokio::time::Instant::now() >= deadline || live_version != Some(version) {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Progress and lag of every projection.
    pub async fn status(&self) -> anyhow::Result<Vec<ProjectionStatus>> {
        let mut out = Vec::new();
        let mut seen: HashMap<Checkpoint, (i64, Option<chrono::DateTime<Utc>>)> = HashMap::new();
        for p in &self.all {
            let Some(Active {
                generation,
                version,
                ck,
                ..
            }) = self.active(p.name()).await?
            else {
                continue;
            };
            // A follower here may have moved past events this projection does not read
            // without writing it yet.
            let ck = self
                .seen
                .at(p.name(), generation)
                .map_or(ck, |here| here.max(ck));
            let (lag_events, oldest) = match seen.get(&ck) {
                Some(b) => *b,
                None => {
                    let b = self.log.backlog(ck).await?;
                    seen.insert(ck, b);
                    b
                }
            };
            let lag_seconds = oldest.map_or(0.0, |t| {
                (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
            });
            out.push(ProjectionStatus {
                name: p.name(),
                version,
                generation,
                position: ck.position,
                lag_events,
                lag_seconds,
            });
        }
        Ok(out)
    }
}
