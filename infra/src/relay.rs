//! The outbox relay: follows the gap-safe global log and publishes every committed event, in
//! log order, to Kafka topics `cinelog.<stream_type>`, keyed by stream id, as CloudEvents in
//! binary mode (the payload as the value, the envelope as `ce_*` and `cinelog_*` headers). The
//! producer is idempotent (`acks=all`); the relay's checkpoint moves only after the broker has
//! acknowledged every event up to it, so a crash or an outage republishes from the checkpoint
//! and loses nothing (consumers drop repeats by `ce_id`). One relay publishes at a time: it
//! holds a lease (a Postgres advisory lock, or a lock file beside SQLite) and a second one waits
//! to take over.

use crate::store::Store;
use cinelog_domain::RecordedEvent;
use cinelog_domain::envelope::format_time;
use cinelog_projections::{Checkpoint, EventLog, ReadDb};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use sqlx::Row;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Events read and published per round.
const BATCH: i64 = 500;
/// The relay's checkpoint row.
const NAME: &str = "kafka";
/// The advisory lock id of the relay's lease.
const LEASE_KEY: i64 = 7_270_425_902;

/// Kafka settings of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub brokers: String,
    /// Partitions of each topic the relay creates.
    pub partitions: i32,
    pub replication: i32,
}

/// The topic of a stream type.
pub fn topic_of(stream_type: &str) -> String {
    format!("cinelog.{stream_type}")
}

/// The value and headers of an event's message.
pub fn message_of(e: &RecordedEvent) -> (Vec<u8>, OwnedHeaders) {
    let mut payload = e.payload.clone();
    // Credentials never go on the bus; no read model needs them.
    cinelog_projections::analyst::strip_credentials(&mut payload);
    let position = e.position.to_string();
    let version = e.version.to_string();
    let tx = e.tx.to_string();
    let time = format_time(e.meta.recorded_at);
    let ce_type = format!("cinelog.{}.{}", e.stream_type, e.event_type);
    let source = format!("cinelog/{}", e.stream_type);
    let event_id = e.meta.event_id.to_string();
    let correlation = e.meta.correlation_id.to_string();
    let causation = e
        .meta
        .causation_id
        .map(|c| c.to_string())
        .unwrap_or_default();
    let actor = e.meta.actor.to_string();
    let fields: [(&str, &str); 19] = [
        ("ce_specversion", "1.0"),
        ("ce_id", &event_id),
        ("ce_source", &source),
        ("ce_type", &ce_type),
        ("ce_time", &time),
        ("ce_subject", &e.stream_id),
        ("content-type", "application/json"),
        ("cinelog_position", &position),
        ("cinelog_tx", &tx),
        ("cinelog_stream_type", &e.stream_type),
        ("cinelog_stream_id", &e.stream_id),
        ("cinelog_version", &version),
        ("cinelog_event_type", &e.event_type),
        ("cinelog_schema_version", &e.schema_version),
        ("cinelog_correlation_id", &correlation),
        ("cinelog_causation_id", &causation),
        ("cinelog_actor", &actor),
        ("cinelog_hash", &e.meta.hash),
        ("cinelog_prev_hash", &e.meta.prev_hash),
    ];
    let mut headers = OwnedHeaders::new_with_capacity(fields.len());
    for (key, value) in fields {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    (
        serde_json::to_vec(&payload).expect("a JSON value serializes"),
        headers,
    )
}

/// An idempotent producer (`acks=all`) for the relay.
fn producer_for(config: &RelayConfig) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()?)
}

/// The relay: a producer, the log, and where its checkpoint lives.
pub struct Relay {
    config: RelayConfig,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    log: Arc<dyn EventLog>,
    db: ReadDb,
    /// The lease on SQLite (one machine): a lock file beside the database.
    lock_file: std::path::PathBuf,
    topics: HashSet<String>,
}

impl Relay {
    pub async fn new(
        config: RelayConfig,
        store: Store,
        db: ReadDb,
        lock_file: std::path::PathBuf,
    ) -> anyhow::Result<Relay> {
        let producer = producer_for(&config)?;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .create()?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS relay_checkpoint (name TEXT PRIMARY KEY, ck_tx BIGINT NOT NULL, ck_position BIGINT NOT NULL)",
        )
        .execute(&db.pool)
        .await?;
        Ok(Relay {
            config,
            producer,
            admin,
            log: Arc::new(store),
            db,
            lock_file,
            topics: HashSet::new(),
        })
    }

    async fn checkpoint(&self) -> anyhow::Result<Checkpoint> {
        let row = sqlx::query("SELECT ck_tx, ck_position FROM relay_checkpoint WHERE name = $1")
            .bind(NAME)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.map_or(Checkpoint::START, |r| Checkpoint {
            tx: r.get(0),
            position: r.get(1),
        }))
    }

    /// Saves the checkpoint durably: after a database crash the relay resumes from it, and a
    /// checkpoint taken back would publish its events again.
    async fn save(&self, ck: Checkpoint) -> anyhow::Result<()> {
        let save = sqlx::query(
            "INSERT INTO relay_checkpoint (name, ck_tx, ck_position) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET ck_tx = excluded.ck_tx, ck_position = excluded.ck_position",
        )
        .bind(NAME)
        .bind(ck.tx)
        .bind(ck.position);
        self.db.durable(save).await?;
        Ok(())
    }

    /// Creates the topic of a stream type the first time the relay meets it.
    async fn ensure_topic(&mut self, topic: &str) -> anyhow::Result<()> {
        if self.topics.contains(topic) {
            return Ok(());
        }
        let new = NewTopic::new(
            topic,
            self.config.partitions,
            TopicReplication::Fixed(self.config.replication),
        );
        let results = self
            .admin
            .create_topics([&new], &AdminOptions::new())
            .await?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
            }
        }
        self.topics.insert(topic.to_string());
        Ok(())
    }

    /// Publishes the next batch after the checkpoint and moves it; answers how many events went
    /// out. Nothing moves unless the broker acknowledged them all.
    pub async fn step(&mut self) -> anyhow::Result<usize> {
        let after = self.checkpoint().await?;
        let events = self.log.read_after(after, BATCH).await?;
        let Some(last) = events.last() else {
            return Ok(0);
        };
        for e in &events {
            self.ensure_topic(&topic_of(&e.stream_type)).await?;
        }
        // Enqueued in log order; the idempotent producer keeps that order per partition.
        let (bodies, headers): (Vec<(String, Vec<u8>)>, Vec<OwnedHeaders>) = events
            .iter()
            .map(|e| {
                let (value, headers) = message_of(e);
                ((topic_of(&e.stream_type), value), headers)
            })
            .unzip();
        let mut deliveries = Vec::with_capacity(events.len());
        for ((e, (topic, value)), headers) in events.iter().zip(&bodies).zip(headers) {
            let record = FutureRecord::to(topic)
                .key(&e.stream_id)
                .payload(value)
                .headers(headers);
            deliveries.push(self.producer.send(record, Duration::from_secs(30)));
        }
        for delivery in futures::future::join_all(deliveries).await {
            if let Err((e, _)) = delivery {
                anyhow::bail!("the broker did not take an event: {e}");
            }
        }
        self.save(Checkpoint::of(last)).await?;
        Ok(events.len())
    }

    /// Runs until the task is dropped: takes the lease, then publishes as the log grows. Broker
    /// or database trouble is retried with backoff from the last acknowledged checkpoint.
    pub async fn run(mut self) {
        loop {
            let mut lease = self.wait_for_lease().await;
            tracing::info!(brokers = %self.config.brokers, "relay publishing the log to Kafka");
            self.publish_while(&mut lease).await;
            tracing::warn!("relay lost its lease; waiting to take it again");
        }
    }

    async fn wait_for_lease(&self) -> Lease {
        loop {
            match Lease::take(&self.db, &self.lock_file).await {
                Ok(Some(lease)) => return lease,
                Ok(None) => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "relay lease unavailable; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Publishes for as long as the lease holds.
    async fn publish_while(&mut self, lease: &mut Lease) {
        let appended = self.log.appended();
        let mut backoff = Duration::from_millis(200);
        loop {
            let notified = appended.notified();
            match self.step().await {
                Ok(0) => {
                    backoff = Duration::from_millis(200);
                    let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
                }
                Ok(_) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(error = %e, "relay could not publish; retrying from its checkpoint");
                    // Start over from the checkpoint with a new producer: an idempotent one
                    // stops for good after some errors (a broker that lost its producer state),
                    // and a broker that came back empty no longer has the topics.
                    self.topics.clear();
                    match producer_for(&self.config) {
                        Ok(producer) => self.producer = producer,
                        Err(e) => tracing::warn!(error = %e, "relay could not make a producer"),
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            if !lease.holds().await {
                return;
            }
        }
    }
}

/// The right to publish: held for the relay's life, released when its process ends (the
/// server drops a dead session's advisory lock; the system drops a dead process's file lock).
struct Lease {
    /// The session holding the advisory lock (Postgres).
    session: Option<sqlx::AnyConnection>,
    /// The locked file (SQLite), held for its lock.
    _file: Option<std::fs::File>,
}

impl Lease {
    async fn take(db: &ReadDb, lock_file: &std::path::Path) -> anyhow::Result<Option<Lease>> {
        if db.sqlite {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(lock_file)?;
            return Ok(match file.try_lock() {
                Ok(()) => Some(Lease {
                    session: None,
                    _file: Some(file),
                }),
                Err(std::fs::TryLockError::WouldBlock) => None,
                Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
            });
        }
        let mut conn = db.pool.acquire().await?.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEASE_KEY)
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then_some(Lease {
            session: Some(conn),
            _file: None,
        }))
    }

    /// Whether the lease still holds: a lost database session means another relay may now
    /// publish, so this one must stop.
    async fn holds(&mut self) -> bool {
        match &mut self.session {
            Some(conn) => sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok(),
            None => true,
        }
    }
}
