//! The log as analysts read it: filtered, in log order, in batches, each event as an envelope
//! with its payload made safe to hand out. Credentials (password hashes) never leave, and
//! personal data stays sealed: a sealed value reads `[personal data]`, or `[erased]` once its
//! owner's key is destroyed.

use crate::log::{Checkpoint, EventLog};
use crate::pii::PiiReader;
use chrono::{DateTime, Utc};
use cinelog_domain::RecordedEvent;
use cinelog_domain::values::Sealed;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Events read from the log per round trip.
pub const BATCH: i64 = 1000;

/// Which events an analyst asked for.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub stream_type: Option<String>,
    /// Any of these event types; empty: every type.
    pub event_types: Vec<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The stream type of recorded reads: auditors' business (`/api/audit/events`), left out of
/// analysts' streams, where a reader paging to the end would otherwise meet its own reads.
pub const ACCESS_STREAM_TYPE: &str = "access";

impl LogFilter {
    pub fn matches(&self, e: &RecordedEvent) -> bool {
        self.admits(&e.stream_type, &e.event_type, e.meta.recorded_at)
    }

    /// Whether an event of this stream type and event type, recorded then, passes.
    fn admits(&self, stream_type: &str, event_type: &str, recorded_at: DateTime<Utc>) -> bool {
        stream_type != ACCESS_STREAM_TYPE
            && self.stream_type.as_deref().is_none_or(|t| t == stream_type)
            && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type))
            && self.from.is_none_or(|f| recorded_at >= f)
            && self.to.is_none_or(|t| recorded_at < t)
    }
}

/// Why a read could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no event at position {0}: continue after a position this log gave you")]
    UnknownPosition(i64),
    #[error(transparent)]
    Log(#[from] anyhow::Error),
}

/// Reads the log for analysts.
#[derive(Clone)]
pub struct AnalystLog {
    log: Arc<dyn EventLog>,
    pii: Arc<dyn PiiReader>,
}

/// One batch: the matching events (with their payloads made safe), where the next read starts,
/// and whether the log's readable end was reached.
pub struct Batch {
    pub events: Vec<SafeEvent>,
    pub next: Checkpoint,
    pub at_end: bool,
}

/// An event whose payload may be handed out: credentials removed, personal data sealed.
pub struct SafeEvent {
    pub event: RecordedEvent,
}

/// The envelope as analysts see it, serialized without building a JSON tree first.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    position: i64,
    stream_type: &'a str,
    stream_id: &'a str,
    version: i64,
    event_type: &'a str,
    schema_version: &'a str,
    payload: &'a Value,
    event_id: Uuid,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    actor: &'a cinelog_domain::Actor,
    recorded_at: DateTime<Utc>,
    hash: &'a str,
    prev_hash: &'a str,
}

impl SafeEvent {
    fn envelope(&self) -> Envelope<'_> {
        let e = &self.event;
        Envelope {
            position: e.position,
            stream_type: &e.stream_type,
            stream_id: &e.stream_id,
            version: e.version,
            event_type: &e.event_type,
            schema_version: &e.schema_version,
            payload: &e.payload,
            event_id: e.meta.event_id,
            correlation_id: e.meta.correlation_id,
            causation_id: e.meta.causation_id,
            actor: &e.meta.actor,
            recorded_at: e.meta.recorded_at,
            hash: &e.meta.hash,
            prev_hash: &e.meta.prev_hash,
        }
    }

    /// The envelope as one line of JSON.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, &self.envelope())
    }

    /// The envelope as a JSON value.
    pub fn to_value(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self.envelope())
    }
}

impl AnalystLog {
    pub fn new(log: Arc<dyn EventLog>, pii: Arc<dyn PiiReader>) -> Self {
        Self { log, pii }
    }

    /// Where a read that continues after `position` starts (0: the beginning).
    pub async fn start_after(&self, position: i64) -> Result<Checkpoint, ReadError> {
        if position <= 0 {
            return Ok(Checkpoint::START);
        }
        self.log
            .checkpoint_of(position)
            .await?
            .ok_or(ReadError::UnknownPosition(position))
    }

    /// The next batch after `after` that matches `filter`; `erased` remembers which owners'
    /// keys are gone across batches of one read.
    pub async fn next_batch(
        &self,
        after: Checkpoint,
        filter: &LogFilter,
        erased: &mut HashMap<Uuid, bool>,
    ) -> anyhow::Result<Batch> {
        let events = self.log.read_after(after, BATCH).await?;
        let at_end = (events.len() as i64) < BATCH;
        let next = events.last().map_or(after, Checkpoint::of);
        let mut out = Vec::with_capacity(events.len());
        for mut e in events.into_iter().filter(|e| filter.matches(e)) {
            self.make_safe(&mut e, erased).await?;
            out.push(SafeEvent { event: e });
        }
        Ok(Batch {
            events: out,
            next,
            at_end,
        })
    }

    /// Events from any read, made safe to hand out as in [`Self::next_batch`].
    pub async fn made_safe(&self, events: Vec<RecordedEvent>) -> anyhow::Result<Vec<SafeEvent>> {
        let mut erased = HashMap::new();
        let mut out = Vec::with_capacity(events.len());
        for mut e in events {
            self.make_safe(&mut e, &mut erased).await?;
            out.push(SafeEvent { event: e });
        }
        Ok(out)
    }

    /// A value derived from one stream (e.g. its folded state), made safe the same way.
    pub async fn make_value_safe(
        &self,
        stream_type: &str,
        stream_id: &str,
        value: &mut Value,
    ) -> anyhow::Result<()> {
        self.make_payload_safe(stream_type, stream_id, value, &mut HashMap::new())
            .await
    }

    /// Removes credentials from the payload and marks sealed personal data `[personal data]`,
    /// or `[erased]` once its owner's key is gone. Most payloads hold neither and stay as
    /// they are.
    async fn make_safe(
        &self,
        e: &mut RecordedEvent,
        erased: &mut HashMap<Uuid, bool>,
    ) -> anyhow::Result<()> {
        self.make_payload_safe(&e.stream_type, &e.stream_id, &mut e.payload, erased)
            .await
    }

    async fn make_payload_safe(
        &self,
        stream_type: &str,
        stream_id: &str,
        payload: &mut Value,
        erased: &mut HashMap<Uuid, bool>,
    ) -> anyhow::Result<()> {
        if !needs_care(payload) {
            return Ok(());
        }
        let mut sealed_seen = None;
        redact(payload, &mut sealed_seen);
        let Some(sample) = sealed_seen else {
            return Ok(());
        };
        let owner = (stream_type == "user")
            .then(|| Uuid::parse_str(stream_id).ok())
            .flatten();
        let gone = match owner {
            Some(owner) => match erased.get(&owner) {
                Some(g) => *g,
                None => {
                    let g = self.pii.open(owner, &Sealed(sample)).await?.is_none();
                    erased.insert(owner, g);
                    g
                }
            },
            None => false,
        };
        mark_sealed(payload, if gone { "[erased]" } else { "[personal data]" });
        Ok(())
    }
}

/// Whether a payload holds a credential or a sealed value anywhere.
fn needs_care(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| is_credential(k) || needs_care(v)),
        Value::Array(items) => items.iter().any(needs_care),
        Value::String(s) => is_sealed(s),
        _ => false,
    }
}

/// Replaces credentials (password, PIN, reset-token and refresh-token hashes) anywhere in a payload;
/// no reader outside the write side needs them.
pub fn strip_credentials(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_credential(key) {
                    *v = Value::String("[redacted]".into());
                } else {
                    strip_credentials(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_credentials),
        _ => {}
    }
}

fn is_credential(key: &str) -> bool {
    matches!(
        key,
        "password_hash" | "pin_hash" | "token_hash" | "refresh_hash"
    )
}

/// Removes credentials; notes one sealed value so its owner's key can be looked up.
fn redact(value: &mut Value, sealed_seen: &mut Option<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_credential(key) {
                    *v = Value::String("[redacted]".into());
                } else {
                    redact(v, sealed_seen);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, sealed_seen)),
        Value::String(s) if is_sealed(s) && sealed_seen.is_none() => {
            *sealed_seen = Some(s.clone());
        }
        _ => {}
    }
}

fn is_sealed(s: &str) -> bool {
    s.starts_with("v1.") && s.len() > 40
}

fn mark_sealed(value: &mut Value, mark: &str) {
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| mark_sealed(v, mark)),
        Value::Array(items) => items.iter_mut().for_each(|v| mark_sealed(v, mark)),
        Value::String(s) if is_sealed(s) => *s = mark.to_string(),
        _ => {}
    }
}

/// One event of the live feed, serialized once for every follower.
pub struct FeedEvent {
    pub at: Checkpoint,
    pub stream_type: String,
    pub event_type: String,
    pub recorded_at: DateTime<Utc>,
    /// The envelope as one line of JSON.
    pub json: String,
}

impl FeedEvent {
    fn of(safe: &SafeEvent) -> serde_json::Result<FeedEvent> {
        let mut json = Vec::new();
        safe.write_json(&mut json)?;
        Ok(FeedEvent {
            at: Checkpoint::of(&safe.event),
            stream_type: safe.event.stream_type.clone(),
            event_type: safe.event.event_type.clone(),
            recorded_at: safe.event.meta.recorded_at,
            json: String::from_utf8(json).expect("JSON is UTF-8"),
        })
    }

    pub fn matches(&self, filter: &LogFilter) -> bool {
        filter.admits(&self.stream_type, &self.event_type, self.recorded_at)
    }
}

/// What the live feed read in one go: every event after `after`, up to `to`.
pub struct FeedBatch {
    pub after: Checkpoint,
    pub to: Checkpoint,
    pub events: Vec<FeedEvent>,
}

/// One reader of the log's tail for all live followers of a process: each batch is read, made
/// safe and serialized once, then handed to every follower, who filters it. A follower catches
/// up from the log on its own, and goes back to the log whenever it fell behind the feed.
#[derive(Clone)]
pub struct LiveFeed {
    sender: tokio::sync::broadcast::Sender<Arc<FeedBatch>>,
    started: Arc<tokio::sync::OnceCell<()>>,
    log: AnalystLog,
}

/// Batches a follower may fall behind the feed before it reads from the log again.
const FEED_DEPTH: usize = 256;
/// How long the feed waits for an append before looking again (other processes append too).
const FEED_POLL: std::time::Duration = std::time::Duration::from_millis(200);

impl LiveFeed {
    pub fn new(log: AnalystLog) -> LiveFeed {
        LiveFeed {
            sender: tokio::sync::broadcast::channel(FEED_DEPTH).0,
            started: Arc::default(),
            log,
        }
    }

    /// A receiver of every batch from now on; the feed starts with its first follower.
    pub async fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<FeedBatch>> {
        let receiver = self.sender.subscribe();
        self.started
            .get_or_init(|| async {
                let start = match self.log.log.head().await {
                    Ok(head) => self
                        .log
                        .start_after(head)
                        .await
                        .unwrap_or(Checkpoint::START),
                    Err(_) => Checkpoint::START,
                };
                tokio::spawn(self.clone().run(start));
            })
            .await;
        receiver
    }

    async fn run(self, mut next: Checkpoint) {
        let appended = self.log.log.appended();
        let everything = LogFilter {
            stream_type: None,
            event_types: Vec::new(),
            from: None,
            to: None,
        };
        loop {
            let notified = appended.notified();
            // A fresh cache each round: an erasure shows from the next batch on.
            let mut erased = HashMap::new();
            let read = async {
                let events = self.log.log.read_after(next, BATCH).await?;
                let at_end = (events.len() as i64) < BATCH;
                let to = events.last().map_or(next, Checkpoint::of);
                let mut out = Vec::with_capacity(events.len());
                for mut e in events.into_iter().filter(|e| everything.matches(e)) {
                    self.log.make_safe(&mut e, &mut erased).await?;
                    out.push(FeedEvent::of(&SafeEvent { event: e })?);
                }
                anyhow::Ok((to, out, at_end))
            };
            match read.await {
                Ok((to, events, at_end)) => {
                    if to != next {
                        let _ = self.sender.send(Arc::new(FeedBatch {
                            after: next,
                            to,
                            events,
                        }));
                        next = to;
                    }
                    if at_end {
                        let _ = tokio::time::timeout(FEED_POLL, notified).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live feed read failed; trying again");
                    tokio::time::sleep(FEED_POLL).await;
                }
            }
        }
    }
}
