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
pub const BATCH: i64 = 500;

/// Which events an analyst asked for.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub stream_type: Option<String>,
    /// Any of these event types; empty: every type.
    pub event_types: Vec<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl LogFilter {
    pub fn matches(&self, e: &RecordedEvent) -> bool {
        self.stream_type
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

/// One batch: the matching events as envelopes (with their positions), where the next read
/// starts, and whether the log's readable end was reached.
pub struct Batch {
    pub events: Vec<(i64, String, Value)>,
    pub next: Checkpoint,
    pub at_end: bool,
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
        let mut out = Vec::new();
        for e in events.iter().filter(|e| filter.matches(e)) {
            out.push((
                e.position,
                e.event_type.clone(),
                self.view(e, erased).await?,
            ));
        }
        Ok(Batch {
            events: out,
            next,
            at_end,
        })
    }

    /// The event's envelope with credentials removed and personal data left sealed.
    pub async fn view(
        &self,
        e: &RecordedEvent,
        erased: &mut HashMap<Uuid, bool>,
    ) -> anyhow::Result<Value> {
        let mut v = serde_json::to_value(e)?;
        if let Some(map) = v.as_object_mut() {
            map.remove("tx");
        }
        let owner = (e.stream_type == "user")
            .then(|| Uuid::parse_str(&e.stream_id).ok())
            .flatten();
        let mut sealed_seen = None;
        redact(&mut v["payload"], &mut sealed_seen);
        if let (Some(owner), Some(sample)) = (owner, sealed_seen) {
            let gone = match erased.get(&owner) {
                Some(g) => *g,
                None => {
                    let g = self.pii.open(owner, &Sealed(sample)).await?.is_none();
                    erased.insert(owner, g);
                    g
                }
            };
            mark_sealed(
                &mut v["payload"],
                if gone { "[erased]" } else { "[personal data]" },
            );
        }
        Ok(v)
    }
}

/// Removes credentials; notes one sealed value so its owner's key can be looked up.
fn redact(value: &mut Value, sealed_seen: &mut Option<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "password_hash" || key == "token_hash" || key == "refresh_hash" {
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
