//! The event store on SQLite or Postgres: appends with an expected version, written by group
//! commit (see [`start_committer`]); the log readers read them back with the envelope, in global order.
//! With a KurrentDB URL the log lives there instead (see [`crate::kurrent`]), and the database
//! keeps only the store's side tables (personal-data keys, anchors).

use crate::cache::StreamCache;
use crate::kurrent::Kurrent;
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use cinelog_commands::cqrs::SCHEMA_VERSION;
use cinelog_commands::ports::{Clock, SystemClock};
use cinelog_commands::{Appended, CommandMeta, EventStore, Loaded, StoreError, StreamHead};
use cinelog_domain::envelope::HashInput;
use cinelog_domain::{Decider, EventMeta, EventName, RecordedEvent};
use cinelog_projections::{Checkpoint, EventLog};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

#[derive(Clone)]
enum Backend {
    Sqlite { pool: SqlitePool },
    Postgres { pool: PgPool },
}

struct Inner {
    backend: Backend,
    /// Appends wait here for the committer (see [`start_committer`]).
    commits: mpsc::Sender<Pending>,
    appended: Arc<Notify>,
    cache: StreamCache,
    /// Stamps `recorded_at`.
    clock: Arc<dyn Clock>,
    /// Where the log lives when it is not in the database.
    kurrent: Option<Arc<Kurrent>>,
}

/// Runs the same query code on whichever pool the store has: both backends take the same SQL
/// and binds (`$1`…), so only the pool's type differs between the two arms.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.0.backend {
            Backend::Sqlite { pool: $pool, .. } => $body,
            Backend::Postgres { pool: $pool, .. } => $body,
        }
    };
}

/// Streams whose folded state is kept in memory.
const CACHED_STREAMS: usize = 50_000;

/// A stream's folded state is written as a snapshot every this many events, so loading a
/// stream that is not cached reads fewer events than this after its newest snapshot.
const SNAPSHOT_EVERY: i64 = 100;

// The domain code a snapshot was folded by (see `build.rs`): a snapshot of another build's
// folding is not trusted, and the stream is read from its start instead.
include!(concat!(env!("OUT_DIR"), "/domain_stamp.rs"));

/// A stream's folded state at a version, as a snapshot holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot<S> {
    state: S,
    hash: String,
    position: i64,
}

/// The event store, on SQLite or Postgres. Cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<Inner>);

/// Reads of at least this many events walk the log's index whatever the planner's statistics.
const PINNED_READ: i64 = 1_000;

/// Most events a backlog count looks at; lag beyond that reads as this number.
const BACKLOG_CAP: i64 = 1_000_000;

type EventRow = (
    i64,
    i64,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
);

const SQLITE_COLUMNS: &str = "position, 0, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata";
const PG_COLUMNS: &str = "position, tx::text::bigint, aggregate_type, aggregate_id, sequence, event_type, event_version, payload::text, metadata::text";

/// A stored anchor's columns.
pub type AnchorRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
);
/// An anchor's columns before it has an id.
pub type NewAnchor = (i64, i64, i64, i64, String, String, String, String, String);

/// An auditor's history query: every filter optional, results after position `after`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub event_type: Option<String>,
    pub stream_type: Option<String>,
    pub stream_id: Option<String>,
    pub correlation_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after: i64,
    /// Only events at or before this position (a paged read keeps the head of its first page).
    pub until: Option<i64>,
    pub limit: i64,
}

impl AuditQuery {
    /// Whether an event passes the filters other than positions (for logs without SQL).
    pub fn matches(&self, e: &RecordedEvent) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        is(&self.actor, &e.meta.actor.to_string())
            && is(&self.correlation_id, &e.meta.correlation_id.to_string())
            && is(&self.event_type, &e.event_type)
            && is(&self.stream_type, &e.stream_type)
            && is(&self.stream_id, &e.stream_id)
            && self.from.is_none_or(|t| e.meta.recorded_at >= t)
            && self.to.is_none_or(|t| e.meta.recorded_at < t)
    }
}

fn backend_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn to_recorded(row: EventRow) -> Result<RecordedEvent, StoreError> {
    let (
        position,
        tx,
        stream_type,
        stream_id,
        version,
        event_type,
        schema_version,
        payload,
        metadata,
    ) = row;
    let corrupt = |what: &str, e: serde_json::Error| {
        StoreError::Corrupt(format!("{what} of event at position {position}: {e}"))
    };
    Ok(RecordedEvent {
        position,
        tx,
        stream_type,
        stream_id,
        version,
        event_type,
        schema_version,
        payload: serde_json::from_str(&payload).map_err(|e| corrupt("payload", e))?,
        meta: serde_json::from_str::<EventMeta>(&metadata).map_err(|e| corrupt("metadata", e))?,
    })
}

impl Store {
    /// Opens (creating if needed) the SQLite event store at `path` and runs its migrations.
    pub async fn open_sqlite(path: &Path) -> anyhow::Result<Store> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let backend = Backend::Sqlite { pool };
        Ok(Store(Arc::new(Inner {
            commits: start_committer(&backend),
            backend,
            appended: Arc::new(Notify::new()),
            cache: StreamCache::new(CACHED_STREAMS),
            clock: Arc::new(SystemClock),
            kurrent: None,
        })))
    }

    /// Connects to the Postgres event store and runs its migrations.
    pub async fn open_postgres(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let backend = Backend::Postgres { pool };
        Ok(Store(Arc::new(Inner {
            commits: start_committer(&backend),
            backend,
            appended: Arc::new(Notify::new()),
            cache: StreamCache::new(CACHED_STREAMS),
            clock: Arc::new(SystemClock),
            kurrent: None,
        })))
    }

    /// The same store with its log in KurrentDB at `url`; this store's database keeps the
    /// personal-data keys and anchors. Call it right after opening.
    pub async fn on_kurrent(mut self, url: &str) -> anyhow::Result<Store> {
        let kurrent = Arc::new(Kurrent::connect(url).await?);
        let inner = Arc::get_mut(&mut self.0)
            .ok_or_else(|| anyhow::anyhow!("the store is already shared"))?;
        kurrent.follow(inner.appended.clone());
        inner.kurrent = Some(kurrent);
        Ok(self)
    }

    /// The same store with `recorded_at` read from `clock`. Set it right after opening: a
    /// store already shared keeps the clock it has.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Store {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => inner.clock = clock,
            None => tracing::warn!("the store is already shared; its clock stays as it is"),
        }
        self
    }

    /// Where the log lives: `sqlite`, `postgres` or `kurrentdb`.
    pub fn backend_name(&self) -> &'static str {
        if self.0.kurrent.is_some() {
            return "kurrentdb";
        }
        match &self.0.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// Whether the database (and KurrentDB, when the log is there) answers.
    pub async fn ping(&self) -> bool {
        let log = match &self.0.kurrent {
            Some(k) => k.ping().await,
            None => true,
        };
        log && on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.is_ok())
    }

    /// The event columns in [`EventRow`]'s order, as this backend selects them.
    fn columns(&self) -> &'static str {
        match &self.0.backend {
            Backend::Sqlite { .. } => SQLITE_COLUMNS,
            Backend::Postgres { .. } => PG_COLUMNS,
        }
    }

    /// The Postgres pool, when on Postgres (tests and benchmarks use it to reach the database).
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.0.backend {
            Backend::Postgres { pool, .. } => Some(pool),
            Backend::Sqlite { .. } => None,
        }
    }

    /// Stores a personal-data key for `owner` unless one exists.
    pub async fn insert_pii_key(&self, owner: &str, key: &str) -> anyhow::Result<()> {
        let sql = "INSERT INTO pii_keys (owner, key, created_at) VALUES ($1, $2, $3) ON CONFLICT (owner) DO NOTHING";
        let now = self.0.clock.now().to_rfc3339();
        on_pool!(self, pool => {
            sqlx::query(sql).bind(owner).bind(key).bind(now).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn pii_key(&self, owner: &str) -> anyhow::Result<Option<String>> {
        let sql = "SELECT key FROM pii_keys WHERE owner = $1";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(owner).fetch_optional(pool).await?))
    }

    pub async fn delete_pii_key(&self, owner: &str) -> anyhow::Result<()> {
        let sql = "DELETE FROM pii_keys WHERE owner = $1";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(owner).execute(pool).await?;
        });
        Ok(())
    }

    /// How many events arrived after `after`, counted up to `cap`. Positions in the database
    /// are (nearly) dense, so there it is their distance; KurrentDB's are log offsets, so there
    /// the events are counted.
    pub async fn arrived_since(&self, after: Checkpoint, cap: i64) -> anyhow::Result<i64> {
        match &self.0.kurrent {
            Some(k) => Ok(k.count_after(after.position, cap).await?.0),
            None => Ok((self.head().await? - after.position).clamp(0, cap)),
        }
    }

    /// A stream's whole history with envelopes, oldest first.
    pub async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_after(stream_type, stream_id, 0).await
    }

    /// Events matching an auditor's filters, in position order after `q.after`, at most
    /// `q.limit`. Every filter is served by an index (migration 0003).
    pub async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        if let Some(k) = &self.0.kurrent {
            let limit = q.limit.clamp(1, 10_000) as usize;
            if let (Some(t), Some(id)) = (&q.stream_type, &q.stream_id) {
                // One stream: read it, not the whole log.
                let mut events = k.read_stream_after(t, id, 0).await?;
                events.retain(|e| {
                    e.position > q.after && q.until.is_none_or(|u| e.position <= u) && q.matches(e)
                });
                events.sort_by_key(|e| e.position);
                events.truncate(limit);
                return Ok(events);
            }
            return k.scan(q.after, q.until, limit, |e| q.matches(e)).await;
        }
        let sqlite = self.is_sqlite();
        let field = |name: &str| {
            if sqlite {
                format!("json_extract(metadata, '$.{name}')")
            } else {
                format!("(metadata ->> '{name}')")
            }
        };
        let mut clauses = vec!["position > $1".to_string()];
        let mut binds: Vec<String> = Vec::new();
        let mut add = |clause: String, value: &Option<String>| {
            if let Some(v) = value {
                binds.push(v.clone());
                clauses.push(format!("{clause} = ${}", binds.len() + 1));
            }
        };
        add(field("actor"), &q.actor);
        add(field("correlation_id"), &q.correlation_id);
        add("event_type".into(), &q.event_type);
        add("aggregate_type".into(), &q.stream_type);
        add("aggregate_id".into(), &q.stream_id);
        if let Some(until) = q.until {
            clauses.push(format!("position <= {until}"));
        }
        let time = |t: DateTime<Utc>| cinelog_domain::envelope::format_time(t);
        let cast = if sqlite { "" } else { "::timestamptz" };
        if let Some(from) = q.from {
            binds.push(time(from));
            clauses.push(format!("recorded_at >= ${}{cast}", binds.len() + 1));
        }
        if let Some(to) = q.to {
            binds.push(time(to));
            clauses.push(format!("recorded_at < ${}{cast}", binds.len() + 1));
        }
        let filter = format!(
            "WHERE {} ORDER BY position LIMIT {}",
            clauses.join(" AND "),
            q.limit.clamp(1, 10_000)
        );
        let sql = format!("SELECT {} FROM events {filter}", self.columns());
        let rows: Vec<EventRow> = on_pool!(self, pool => {
            let mut query = sqlx::query_as(&sql).bind(q.after);
            for b in &binds {
                query = query.bind(b);
            }
            query.fetch_all(pool).await
        })
        .map_err(backend_error)?;
        rows.into_iter().map(to_recorded).collect()
    }

    /// Every signed anchor, in log order: (id, tx, position, events, streams, root, heads,
    /// signed_at, public_key, signature).
    pub async fn anchor_rows(&self) -> anyhow::Result<Vec<AnchorRow>> {
        let sql = "SELECT id, tx, position, events, streams, root, heads, signed_at, public_key, signature FROM anchors ORDER BY tx, position";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await?))
    }

    /// Stores an anchor (its fields after the id); answers its id. One already stored for the
    /// same checkpoint (another replica's) is kept, and its id answered.
    pub async fn insert_anchor(&self, a: NewAnchor) -> anyhow::Result<i64> {
        let insert = "INSERT INTO anchors (tx, position, events, streams, root, heads, signed_at, public_key, signature)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tx, position) DO NOTHING";
        let select = "SELECT id FROM anchors WHERE tx = $1 AND position = $2";
        Ok(on_pool!(self, pool => {
            sqlx::query(insert)
                .bind(a.0)
                .bind(a.1)
                .bind(a.2)
                .bind(a.3)
                .bind(&a.4)
                .bind(&a.5)
                .bind(&a.6)
                .bind(&a.7)
                .bind(&a.8)
                .execute(pool)
                .await?;
            sqlx::query_scalar(select).bind(a.0).bind(a.1).fetch_one(pool).await?
        }))
    }

    /// A stream's events after `version`, oldest first.
    pub async fn read_stream_after(
        &self,
        stream_type: &str,
        stream_id: &str,
        version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if let Some(k) = &self.0.kurrent {
            return k.read_stream_after(stream_type, stream_id, version).await;
        }
        let filter =
            "WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence";
        let sql = format!("SELECT {} FROM events {filter}", self.columns());
        let rows: Vec<EventRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(stream_type)
                .bind(stream_id)
                .bind(version)
                .fetch_all(pool)
                .await
        })
        .map_err(backend_error)?;
        rows.into_iter().map(to_recorded).collect()
    }

    /// The newest snapshot of a stream this build can trust, if any. One that cannot be read
    /// counts as none: the stream is then read from its start.
    async fn snapshot<D: Decider>(&self, stream_id: &str) -> Option<(D::State, StreamHead)> {
        let text = if self.is_sqlite() {
            "payload"
        } else {
            "payload::text"
        };
        let sql = format!(
            "SELECT last_sequence, {text} FROM snapshots
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND current_snapshot = $3
             ORDER BY last_sequence DESC LIMIT 1"
        );
        let row: Result<Option<(i64, String)>, sqlx::Error> = on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(D::STREAM_TYPE)
                .bind(stream_id)
                .bind(DOMAIN_STAMP)
                .fetch_optional(pool)
                .await
        });
        let (version, payload) = match row {
            Ok(row) => row?,
            Err(e) => {
                tracing::warn!(error = %e, stream = D::STREAM_TYPE, "snapshot not read");
                return None;
            }
        };
        let s: Snapshot<D::State> = serde_json::from_str(&payload).ok()?;
        let head = StreamHead {
            version,
            hash: s.hash,
            position: s.position,
        };
        Some((s.state, head))
    }

    /// Writes a snapshot of a stream at `head` in the background (a command does not wait for
    /// it), and drops the stream's older snapshots.
    fn save_snapshot<D: Decider>(&self, stream_id: &str, state: &D::State, head: &StreamHead) {
        let snapshot = Snapshot {
            state,
            hash: head.hash.clone(),
            position: head.position,
        };
        let Ok(payload) = serde_json::to_string(&snapshot) else {
            return;
        };
        let json = if self.is_sqlite() { "" } else { "::json" };
        let insert = format!(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
             VALUES ($1, $2, $3, $4, $5{json}) ON CONFLICT DO NOTHING"
        );
        let older = "DELETE FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2 AND last_sequence < $3";
        let (store, stream_id, version) = (self.clone(), stream_id.to_string(), head.version);
        let stream_type = D::STREAM_TYPE;
        tokio::spawn(async move {
            let written: Result<(), sqlx::Error> = on_pool!(store, pool => async {
                sqlx::query(&insert)
                    .bind(stream_type)
                    .bind(&stream_id)
                    .bind(version)
                    .bind(DOMAIN_STAMP)
                    .bind(&payload)
                    .execute(pool)
                    .await?;
                sqlx::query(older)
                    .bind(stream_type)
                    .bind(&stream_id)
                    .bind(version)
                    .execute(pool)
                    .await?;
                Ok(())
            }.await);
            if let Err(e) = written {
                tracing::warn!(error = %e, stream = stream_type, "snapshot not written");
            }
        });
    }

    fn is_sqlite(&self) -> bool {
        matches!(self.0.backend, Backend::Sqlite { .. })
    }

    /// Writes one append's events through the group commit and answers the position of its
    /// last event.
    async fn insert(&self, rows: Vec<NewEvent>) -> Result<i64, StoreError> {
        if let Some(k) = &self.0.kurrent {
            return k.append(&rows).await;
        }
        let (done, answer) = oneshot::channel();
        let stopped = || StoreError::Backend("the log's committer has stopped".into());
        self.0
            .commits
            .send(Pending { rows, done })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Backend {
    /// Writes `rows` in one statement, so one round trip and one transaction: the primary key
    /// on (stream, version) refuses a stale expected version, and a single statement is atomic,
    /// so either every row lands or none does. Answers each row's position, in `rows`' order.
    async fn insert(&self, rows: &[&NewEvent]) -> Result<Vec<i64>, StoreError> {
        let written: Result<Vec<(String, String, i64, i64)>, sqlx::Error> = match self {
            Backend::Sqlite { pool } => {
                let mut query = sqlx::QueryBuilder::new(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) ",
                );
                query.push_values(rows, |mut b, e| {
                    b.push_bind(e.stream_type)
                        .push_bind(e.stream_id.as_str())
                        .push_bind(e.version)
                        .push_bind(e.event_type)
                        .push_bind(SCHEMA_VERSION)
                        .push_bind(e.payload.as_str())
                        .push_bind(e.metadata.as_str());
                });
                // Positions are rowids (a trigger copies them after the insert).
                query.push(" RETURNING aggregate_type, aggregate_id, sequence, rowid");
                query.build_query_as().fetch_all(pool).await
            }
            Backend::Postgres { pool } => {
                let column =
                    |f: fn(&NewEvent) -> &str| rows.iter().map(|e| f(e)).collect::<Vec<_>>();
                sqlx::query_as(PG_INSERT)
                    .bind(column(|e| e.stream_type))
                    .bind(column(|e| &e.stream_id))
                    .bind(rows.iter().map(|e| e.version).collect::<Vec<_>>())
                    .bind(column(|e| e.event_type))
                    .bind(column(|e| &e.payload))
                    .bind(SCHEMA_VERSION)
                    .bind(column(|e| &e.metadata))
                    .bind(
                        rows.iter()
                            .map(|e| e.recorded_at.to_rfc3339())
                            .collect::<Vec<_>>(),
                    )
                    .fetch_all(pool)
                    .await
            }
        };
        let written = written.map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            e => backend_error(e),
        })?;
        // RETURNING's order is not promised: match rows by their (stream, version) key.
        let positions: std::collections::HashMap<(&str, &str, i64), i64> = written
            .iter()
            .map(|(t, i, v, p)| ((t.as_str(), i.as_str(), *v), *p))
            .collect();
        rows.iter()
            .map(|e| {
                positions
                    .get(&(e.stream_type, e.stream_id.as_str(), e.version))
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt("an inserted event was not returned".into()))
            })
            .collect()
    }
}

/// Most appends written by one statement.
const MAX_GROUP: usize = 64;

/// One append waiting for the committer.
struct Pending {
    rows: Vec<NewEvent>,
    done: oneshot::Sender<Result<i64, StoreError>>,
}

/// Starts the task that writes appends by group commit and answers the queue it takes them
/// from.
///
/// The committer takes the oldest waiting append and every other append waiting behind it (up
/// to [`MAX_GROUP`]) and writes them in one statement, so one round trip, one transaction and
/// one flush of the write-ahead log serve them all; under load, the appends that arrive while a
/// statement runs form the next group, and groups grow with the load. One statement at a time
/// measured faster than two or four on Postgres (more appends per statement, fewer commits),
/// and SQLite takes one writer at a time anyway, so appenders queue here rather than spin in
/// its busy handler.
///
/// Appends to different streams are independent, so a group is atomic only as an
/// optimisation: if any append in it is refused as stale (a unique violation), nothing of the
/// group was written and each append is tried again alone, so only the stale ones are refused.
/// The committer runs apart from the requests, so a client that hangs up cannot cancel a
/// statement other appends wait on. It stops when the store is dropped.
fn start_committer(backend: &Backend) -> mpsc::Sender<Pending> {
    let (queue, mut waiting) = mpsc::channel(1024);
    let backend = backend.clone();
    tokio::spawn(async move {
        while let Some(group) = next_group(&mut waiting).await {
            commit(&backend, group).await;
        }
    });
    queue
}

/// The oldest waiting append and those behind it, or `None` once the store is gone.
async fn next_group(waiting: &mut mpsc::Receiver<Pending>) -> Option<Vec<Pending>> {
    let mut group = vec![waiting.recv().await?];
    while group.len() < MAX_GROUP
        && let Ok(next) = waiting.try_recv()
    {
        group.push(next);
    }
    Some(group)
}

/// Writes a group and answers each append with the position of its last event.
async fn commit(backend: &Backend, group: Vec<Pending>) {
    let rows: Vec<&NewEvent> = group.iter().flat_map(|p| &p.rows).collect();
    match backend.insert(&rows).await {
        Ok(positions) => {
            let mut positions = positions.into_iter();
            for p in group {
                let last = positions.by_ref().take(p.rows.len()).last();
                let _ = p.done.send(Ok(last.unwrap_or_default()));
            }
        }
        Err(StoreError::Conflict) if group.len() > 1 => {
            for p in group {
                let rows: Vec<&NewEvent> = p.rows.iter().collect();
                let answer = backend.insert(&rows).await;
                let _ = p
                    .done
                    .send(answer.map(|ps| ps.last().copied().unwrap_or_default()));
            }
        }
        Err(e) => {
            let message = e.to_string();
            let mut group = group.into_iter();
            if let Some(first) = group.next() {
                let _ = first.done.send(Err(e));
            }
            for p in group {
                let _ = p
                    .done
                    .send(Err(StoreError::Backend(message.clone().into())));
            }
        }
    }
}

/// One event as [`Backend::insert`] writes it.
pub(crate) struct NewEvent {
    pub(crate) stream_type: &'static str,
    pub(crate) stream_id: String,
    pub(crate) version: i64,
    pub(crate) event_type: &'static str,
    pub(crate) payload: String,
    pub(crate) metadata: String,
    recorded_at: DateTime<Utc>,
}

/// New events as one Postgres statement (one array per column), answering each row's key and
/// position. `recorded_at` is given, so the table's trigger that reads it from the envelope
/// does not run.
const PG_INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
    SELECT t, i, s, e, $6, p::json, m::json, r::timestamptz FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $7::text[], $8::text[]) AS u(t, i, s, e, p, m, r)
    RETURNING aggregate_type, aggregate_id, sequence, position";

impl EventStore for Store {
    async fn load_for_append<D: Decider>(&self, stream_id: &str) -> Result<Loaded<D>, StoreError> {
        match self.0.cache.get::<D>(stream_id) {
            Some((state, head, _)) => Ok(Loaded { state, head }),
            None => self.load::<D>(stream_id).await,
        }
    }

    async fn load_recent<D: Decider>(
        &self,
        stream_id: &str,
        max_age: Duration,
    ) -> Result<Loaded<D>, StoreError> {
        match self.0.cache.get::<D>(stream_id) {
            Some((state, head, checked)) if checked.elapsed() <= max_age => {
                Ok(Loaded { state, head })
            }
            _ => self.load::<D>(stream_id).await,
        }
    }

    async fn load<D: Decider>(&self, stream_id: &str) -> Result<Loaded<D>, StoreError> {
        let cached = self
            .0
            .cache
            .get::<D>(stream_id)
            .map(|(state, head, _)| (state, head));
        let (mut state, mut head, snapshot) = match cached {
            Some((state, head)) => (state, head, false),
            None => match self.snapshot::<D>(stream_id).await {
                Some((state, head)) => (state, head, true),
                None => (D::State::default(), StreamHead::default(), false),
            },
        };
        // From a snapshot, its own last event is read too: the snapshot must sit on the log.
        let mut events = self
            .read_stream_after(
                D::STREAM_TYPE,
                stream_id,
                head.version - i64::from(snapshot),
            )
            .await?;
        if snapshot {
            let on_log = events
                .first()
                .is_some_and(|e| e.version == head.version && e.meta.hash == head.hash);
            if on_log {
                events.remove(0);
            } else {
                tracing::warn!(
                    stream = D::STREAM_TYPE,
                    stream_id,
                    "a snapshot does not match the log; reading the stream from its start"
                );
                (state, head) = Default::default();
                events = self.read_stream_after(D::STREAM_TYPE, stream_id, 0).await?;
            }
        }
        for e in &events {
            let event: D::Event = serde_json::from_value(e.payload.clone()).map_err(|err| {
                StoreError::Corrupt(format!(
                    "event at position {} is not a {} event: {err}",
                    e.position,
                    D::STREAM_TYPE
                ))
            })?;
            state = D::evolve(state, &event);
        }
        if let Some(last) = events.last() {
            head = StreamHead {
                version: last.version,
                hash: last.meta.hash.clone(),
                position: last.position,
            };
        }
        if head.version > 0 {
            // Known current now, new events or not.
            self.0
                .cache
                .put::<D>(stream_id, state.clone(), head.clone());
        }
        if events.len() as i64 >= SNAPSHOT_EVERY {
            self.save_snapshot::<D>(stream_id, &state, &head);
        }
        Ok(Loaded { state, head })
    }

    async fn append<D: Decider>(
        &self,
        stream_id: &str,
        head: &StreamHead,
        events: &[D::Event],
        meta: &CommandMeta,
    ) -> Result<Appended, StoreError> {
        let recorded_at = self.0.clock.now().trunc_subsecs(6);
        let mut prev_hash = head.hash.clone();
        let mut rows = Vec::with_capacity(events.len());
        let mut last_event_id = Uuid::nil();
        for (i, event) in events.iter().enumerate() {
            let version = head.version + 1 + i as i64;
            let payload =
                serde_json::to_value(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let event_id = Uuid::now_v7();
            last_event_id = event_id;
            let hash = HashInput {
                prev_hash: &prev_hash,
                stream_type: D::STREAM_TYPE,
                stream_id,
                version,
                event_type: event.event_name(),
                schema_version: SCHEMA_VERSION,
                payload: &payload,
                event_id,
                correlation_id: meta.correlation_id,
                causation_id: meta.causation_id,
                actor: &meta.actor,
                recorded_at,
            }
            .hash();
            let envelope = EventMeta {
                event_id,
                correlation_id: meta.correlation_id,
                causation_id: meta.causation_id,
                actor: meta.actor.clone(),
                recorded_at,
                hash: hash.clone(),
                prev_hash: std::mem::replace(&mut prev_hash, hash),
            };
            rows.push(NewEvent {
                stream_type: D::STREAM_TYPE,
                stream_id: stream_id.to_string(),
                version,
                event_type: event.event_name(),
                payload: payload.to_string(),
                metadata: serde_json::to_string(&envelope)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                recorded_at,
            });
        }
        let position = self.insert(rows).await?;
        let version = head.version + events.len() as i64;
        if let Some((cached, at, _)) = self.0.cache.get::<D>(stream_id)
            && at.version == head.version
        {
            let state = events.iter().fold(cached, D::evolve);
            let head_now = StreamHead {
                version,
                hash: prev_hash,
                position,
            };
            if head.version / SNAPSHOT_EVERY != version / SNAPSHOT_EVERY {
                self.save_snapshot::<D>(stream_id, &state, &head_now);
            }
            self.0.cache.put::<D>(stream_id, state, head_now);
        }
        self.0.appended.notify_waiters();
        Ok(Appended {
            position,
            version,
            last_event_id,
        })
    }
}

/// The Postgres log read: only transactions older than every running one, after a checkpoint,
/// in `(tx, position)` order. The order names the table's own columns: the select list casts
/// `tx` under the same name, and ordering by that cast would sort every batch instead of
/// walking the `events_log_order` index.
pub fn pg_read_after() -> String {
    format!(
        "SELECT {PG_COLUMNS} FROM events
         WHERE events.tx < pg_snapshot_xmin(pg_current_snapshot())
           AND (events.tx, events.position) > ($1::text::xid8, $2)
         ORDER BY events.tx, events.position LIMIT $3"
    )
}

#[async_trait]
impl EventLog for Store {
    async fn read_after(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> anyhow::Result<Vec<RecordedEvent>> {
        if let Some(k) = &self.0.kurrent {
            return Ok(k.read_after(after.position, limit).await?);
        }
        let rows: Vec<EventRow> = match &self.0.backend {
            Backend::Sqlite { pool, .. } => sqlx::query_as(&format!(
                "SELECT {SQLITE_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
            ))
            .bind(after.position)
            .bind(limit)
            .fetch_all(pool)
            .await?,
            Backend::Postgres { pool, .. } => {
                // Only transactions older than every running one are read: a writer that took a
                // lower position but commits later is waited for, never skipped.
                let sql = pg_read_after();
                let read = sqlx::query_as(&sql)
                    .bind(after.tx.to_string())
                    .bind(after.position)
                    .bind(limit);
                if limit < PINNED_READ {
                    read.fetch_all(pool).await?
                } else {
                    // Before autovacuum has analyzed a young log, the planner may sort every
                    // event after the checkpoint rather than walk the (tx, position) index,
                    // which makes each long read cost the whole rest of the log: long reads
                    // (rebuilds) pin the index walk.
                    let mut tx = pool.begin().await?;
                    for pin in [
                        "SET LOCAL enable_sort = off",
                        "SET LOCAL enable_bitmapscan = off",
                    ] {
                        sqlx::query(pin).execute(&mut *tx).await?;
                    }
                    let rows = read.fetch_all(&mut *tx).await?;
                    tx.commit().await?;
                    rows
                }
            }
        };
        Ok(rows
            .into_iter()
            .map(to_recorded)
            .collect::<Result<_, _>>()?)
    }

    async fn checkpoint_of(&self, position: i64) -> anyhow::Result<Option<Checkpoint>> {
        if let Some(k) = &self.0.kurrent {
            return Ok(k.event_at(position).await?.map(|e| Checkpoint::of(&e)));
        }
        Ok(match &self.0.backend {
            Backend::Sqlite { pool, .. } => {
                sqlx::query_scalar::<_, i64>("SELECT position FROM events WHERE position = $1")
                    .bind(position)
                    .fetch_optional(pool)
                    .await?
                    .map(|position| Checkpoint { tx: 0, position })
            }
            Backend::Postgres { pool, .. } => sqlx::query_scalar::<_, i64>(
                "SELECT tx::text::bigint FROM events WHERE position = $1",
            )
            .bind(position)
            .fetch_optional(pool)
            .await?
            .map(|tx| Checkpoint { tx, position }),
        })
    }

    async fn stream_of(&self, position: i64) -> anyhow::Result<Option<(String, String)>> {
        if let Some(k) = &self.0.kurrent {
            return Ok(k
                .event_at(position)
                .await?
                .map(|e| (e.stream_type, e.stream_id)));
        }
        let sql = "SELECT aggregate_type, aggregate_id FROM events WHERE position = $1";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(position).fetch_optional(pool).await?))
    }

    async fn head(&self) -> anyhow::Result<i64> {
        if let Some(k) = &self.0.kurrent {
            return Ok(k.head().await?);
        }
        let sql = "SELECT COALESCE(MAX(position), 0) FROM events";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await?))
    }

    async fn backlog(&self, after: Checkpoint) -> anyhow::Result<(i64, Option<DateTime<Utc>>)> {
        if let Some(k) = &self.0.kurrent {
            return Ok(k.backlog(after.position).await?);
        }
        let (count, oldest_epoch): (i64, Option<f64>) = match &self.0.backend {
            Backend::Sqlite { pool, .. } => sqlx::query_as(
                "SELECT COUNT(*), MIN(unixepoch(recorded_at, 'subsec')) FROM (SELECT recorded_at FROM events WHERE position > $1 ORDER BY position LIMIT $2)",
            )
            .bind(after.position)
            .bind(BACKLOG_CAP)
            .fetch_one(pool)
            .await?,
            Backend::Postgres { pool, .. } => sqlx::query_as(
                "SELECT COUNT(*), EXTRACT(EPOCH FROM MIN(recorded_at))::float8 FROM
                 (SELECT recorded_at FROM events WHERE (tx, position) > ($1::text::xid8, $2) ORDER BY tx, position LIMIT $3) AS b",
            )
            .bind(after.tx.to_string())
            .bind(after.position)
            .bind(BACKLOG_CAP)
            .fetch_one(pool)
            .await?,
        };
        let oldest = oldest_epoch.and_then(|s| DateTime::from_timestamp_micros((s * 1e6) as i64));
        Ok((count, oldest))
    }

    fn appended(&self) -> Arc<Notify> {
        self.0.appended.clone()
    }
}
