//! Projection workers fed by Kafka: a consumer group over the relay's `cinelog.*` topics keeps
//! read models current. The read database, not the broker, holds the truth about progress:
//! each partition's next offset is written in the same transaction as the read-model change
//! (see `cinelog_projections::external`), so a batch delivered again after a rebalance, a crash
//! or a second worker's overlap changes nothing. Offsets committed to the group only tell a
//! newly assigned worker roughly where to start; if they run ahead of the database (a new
//! generation filling), the worker seeks back.

use chrono::{DateTime, Utc};
use cinelog_domain::{Actor, EventMeta, RecordedEvent};
use cinelog_projections::Projections;
use cinelog_projections::external::{Fed, PartitionBatch};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use uuid::Uuid;

/// Messages taken per batch, at most.
const BATCH: usize = 500;
/// How long a batch waits for more messages after its first.
const LINGER: Duration = Duration::from_millis(20);
/// How often a worker checks whether a generation it fills has caught up with the topics.
const PROMOTE_EVERY: Duration = Duration::from_secs(1);

/// One worker of a consumer group.
pub struct KafkaProjector {
    consumer: StreamConsumer,
    projections: Projections,
    names: Vec<&'static str>,
    /// Next offset per projection and partition, as this worker last read or wrote it.
    offsets: HashMap<&'static str, (Fed, Offsets)>,
    /// Partitions this worker sought back to, and where: a message still past that offset
    /// afterwards means nothing lies between (a transaction marker, a compacted record).
    sought: HashMap<(String, i32), i64>,
    /// This worker's name in the offsets table: host, process, instance.
    id: String,
}

/// Rebuilds an event from a relay message: the payload is the value, the envelope the headers.
pub fn decode(m: &BorrowedMessage<'_>) -> anyhow::Result<RecordedEvent> {
    let mut h: HashMap<&str, &str> = HashMap::new();
    if let Some(headers) = m.headers() {
        for header in headers.iter() {
            let value = std::str::from_utf8(header.value.unwrap_or_default())?;
            h.insert(header.key, value);
        }
    }
    let field = |name: &str| -> anyhow::Result<&str> {
        h.get(name)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("message without header {name}"))
    };
    let uuid = |name: &str| -> anyhow::Result<Uuid> { Ok(Uuid::parse_str(field(name)?)?) };
    let causation = field("cinelog_causation_id")?;
    let payload = serde_json::from_slice(m.payload().unwrap_or_default())?;
    Ok(RecordedEvent {
        position: field("cinelog_position")?.parse()?,
        tx: field("cinelog_tx")?.parse()?,
        stream_type: field("cinelog_stream_type")?.to_string(),
        stream_id: field("cinelog_stream_id")?.to_string(),
        version: field("cinelog_version")?.parse()?,
        event_type: field("cinelog_event_type")?.to_string(),
        schema_version: field("cinelog_schema_version")?.to_string(),
        payload,
        meta: EventMeta {
            event_id: uuid("ce_id")?,
            correlation_id: uuid("cinelog_correlation_id")?,
            causation_id: if causation.is_empty() {
                None
            } else {
                Some(Uuid::parse_str(causation)?)
            },
            actor: Actor::try_from(field("cinelog_actor")?.to_string())
                .map_err(|e| anyhow::anyhow!(e))?,
            recorded_at: DateTime::parse_from_rfc3339(field("ce_time")?)?.with_timezone(&Utc),
            hash: field("cinelog_hash")?.to_string(),
            prev_hash: field("cinelog_prev_hash")?.to_string(),
        },
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The next offset of each partition (topic, partition).
type Offsets = HashMap<(String, i32), i64>;

/// Messages of one batch, per partition, in offset order: (offset, event).
type Received = BTreeMap<(String, i32), Vec<(i64, RecordedEvent)>>;

impl KafkaProjector {
    /// Joins `group` on `brokers` to feed the named projections (all of them when empty).
    pub fn new(
        brokers: &str,
        group: &str,
        projections: Projections,
        only: &[String],
    ) -> anyhow::Result<KafkaProjector> {
        let known = projections.names();
        let names = if only.is_empty() {
            known
        } else {
            only.iter()
                .map(|n| {
                    known.iter().copied().find(|k| k == n).ok_or_else(|| {
                        anyhow::anyhow!("no projection named {n:?}; known: {}", known.join(", "))
                    })
                })
                .collect::<anyhow::Result<_>>()?
        };
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .create()?;
        consumer.subscribe(&["^cinelog\\..*"])?;
        Ok(KafkaProjector {
            consumer,
            projections,
            names,
            offsets: HashMap::new(),
            sought: HashMap::new(),
            id: format!(
                "{}/{}/{}",
                hostname(),
                std::process::id(),
                &Uuid::now_v7().simple().to_string()[24..]
            ),
        })
    }

    /// The name this worker records beside the offsets it moves.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Consumes until the task is dropped; errors are logged and retried with backoff.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        let mut promoted_at = tokio::time::Instant::now();
        loop {
            let round = async {
                let received = self.receive().await?;
                self.apply(received).await?;
                if promoted_at.elapsed() >= PROMOTE_EVERY {
                    promoted_at = tokio::time::Instant::now();
                    self.promote_caught_up().await?;
                }
                anyhow::Ok(())
            };
            match round.await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "Kafka projection worker failed; retrying"
                    );
                    // Forget what this worker believed: the database says again.
                    self.offsets.clear();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Waits for a message, then takes what else arrives within `LINGER`, up to `BATCH`.
    async fn receive(&self) -> anyhow::Result<Received> {
        let mut received = Received::new();
        let mut n = 0;
        let first = match tokio::time::timeout(PROMOTE_EVERY, self.consumer.recv()).await {
            Ok(Ok(m)) => m,
            // The relay has not made any topic yet.
            Ok(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition))) => {
                return Ok(received);
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Ok(received),
        };
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            let key = (m.topic().to_string(), m.partition());
            let event = decode(&m).map_err(|e| {
                e.context(format!(
                    "undecodable message at {}/{} offset {}",
                    m.topic(),
                    m.partition(),
                    m.offset()
                ))
            })?;
            received.entry(key).or_default().push((m.offset(), event));
            n += 1;
            if n >= BATCH {
                break;
            }
            if let Ok(m) = tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                next = Some(m?);
            }
        }
        Ok(received)
    }

    /// The generation each projection feeds and its offsets, read again when it changed.
    async fn refresh(&mut self, name: &'static str) -> anyhow::Result<()> {
        let fed = self.projections.kafka_generation(name).await?;
        let stale = self
            .offsets
            .get(name)
            .is_none_or(|(known, _)| *known != fed);
        if stale {
            let offsets = self.projections.kafka_offsets(name, fed.generation).await?;
            self.offsets.insert(name, (fed, offsets));
        }
        Ok(())
    }

    /// Applies each partition's messages to each projection, from that projection's offset.
    async fn apply(&mut self, received: Received) -> anyhow::Result<()> {
        if received.is_empty() {
            return Ok(());
        }
        for name in self.names.clone() {
            self.refresh(name).await?;
        }
        let mut commit = TopicPartitionList::new();
        for ((topic, partition), messages) in received {
            let key = (topic.clone(), partition);
            let lowest = self
                .names
                .iter()
                .map(|n| self.offsets[n].1.get(&key).copied().unwrap_or(0))
                .min()
                .unwrap_or(0);
            let first = messages.first().map_or(lowest, |(o, _)| *o);
            if first > lowest && self.sought.get(&key) != Some(&lowest) {
                // The group's committed offset ran ahead of a generation still filling.
                self.consumer.seek(
                    &topic,
                    partition,
                    Offset::Offset(lowest),
                    Duration::from_secs(10),
                )?;
                self.sought.insert(key, lowest);
                continue;
            }
            for name in self.names.clone() {
                self.apply_partition(name, &topic, partition, &messages)
                    .await?;
            }
            let done = self
                .names
                .iter()
                .map(|n| self.offsets[n].1.get(&key).copied().unwrap_or(0))
                .min()
                .unwrap_or(0);
            commit.add_partition_offset(&topic, partition, Offset::Offset(done))?;
        }
        if commit.count() > 0 {
            // Only a hint for the next owner of these partitions; the database holds the truth.
            if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
                tracing::debug!(error = %e, "could not commit offsets to the group");
            }
        }
        Ok(())
    }

    /// Applies the messages at or past the projection's offset; if another worker moved the
    /// offset meanwhile, reads it again and applies what remains.
    async fn apply_partition(
        &mut self,
        name: &'static str,
        topic: &str,
        partition: i32,
        messages: &[(i64, RecordedEvent)],
    ) -> anyhow::Result<()> {
        let key = (topic.to_string(), partition);
        for _ in 0..3 {
            let (fed, offsets) = &self.offsets[name];
            let from = offsets.get(&key).copied().unwrap_or(0);
            let rest: Vec<_> = messages.iter().filter(|(o, _)| *o >= from).collect();
            let Some((last, _)) = rest.last() else {
                return Ok(());
            };
            let batch = PartitionBatch {
                topic: topic.to_string(),
                partition,
                from,
                to: last + 1,
                events: rest.iter().map(|(_, e)| e.clone()).collect(),
                owner: self.id.clone(),
            };
            let generation = fed.generation;
            if self
                .projections
                .apply_from_kafka(name, generation, &batch)
                .await?
            {
                if let Some((_, offsets)) = self.offsets.get_mut(name) {
                    offsets.insert(key, batch.to);
                }
                return Ok(());
            }
            let fresh = self.projections.kafka_offsets(name, generation).await?;
            if let Some((_, offsets)) = self.offsets.get_mut(name) {
                *offsets = fresh;
            }
        }
        anyhow::bail!("{topic}/{partition} keeps moving under {name}: another worker owns it")
    }

    /// Makes live each generation that has consumed every partition up to its high watermark.
    async fn promote_caught_up(&mut self) -> anyhow::Result<()> {
        let mut marks: Option<HashMap<(String, i32), i64>> = None;
        for name in self.names.clone() {
            self.refresh(name).await?;
            let (fed, _) = self.offsets[name].clone();
            if fed.live {
                continue;
            }
            if marks.is_none() {
                marks = Some(self.high_watermarks()?);
            }
            let offsets = self.projections.kafka_offsets(name, fed.generation).await?;
            let behind = marks
                .as_ref()
                .into_iter()
                .flatten()
                .any(|(key, high)| offsets.get(key).copied().unwrap_or(0) < *high);
            if !behind {
                self.projections.promote(name, fed.generation).await?;
                self.offsets.remove(name);
            }
        }
        Ok(())
    }

    /// The high watermark of every partition of every `cinelog.*` topic.
    fn high_watermarks(&self) -> anyhow::Result<HashMap<(String, i32), i64>> {
        let metadata = self
            .consumer
            .fetch_metadata(None, Duration::from_secs(10))?;
        let mut marks = HashMap::new();
        for topic in metadata.topics() {
            if !topic.name().starts_with("cinelog.") {
                continue;
            }
            for partition in topic.partitions() {
                let (_, high) = self.consumer.fetch_watermarks(
                    topic.name(),
                    partition.id(),
                    Duration::from_secs(10),
                )?;
                marks.insert((topic.name().to_string(), partition.id()), high);
            }
        }
        Ok(marks)
    }
}
