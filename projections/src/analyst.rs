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
        e.stream_type != ACCESS_STREAM_TYPE
            && self
                .stream_type
                .as_ref()
                .is_none_or(|t| *t == e.stream_type)
            && (self.event_types.is_empty() || self.event_types.contains(&e.event_type))
            && self.from.is_none_or(|f| e.meta.recorded_at >= f)
            && self.to.is_none_or(|t| e.meta.recorded_at < t)
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

/// Replaces credentials (password, reset-token and refresh-token hashes) anywhere in a payload;
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
    matches!(key, "password_hash" | "token_hash" | "refresh_hash")
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
