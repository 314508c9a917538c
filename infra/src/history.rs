//! What auditors read: history queries, causation traces, a stream's state as of any moment
//! (folded with the domain's own `evolve`), an account's entitlement then, and integrity
//! reports. Personal data is marked as analysts see it (`[personal data]`, or `[erased]`), and
//! every read is itself recorded as an event in the `access` stream type.

use crate::audit::{self, Report};
use crate::store::{AuditQuery, Store};
use chrono::{DateTime, Utc};
use cinelog_commands::{CommandMeta, EventStore};
use cinelog_domain::access::{AccessEvent, AccessRecord};
use cinelog_domain::{Decider, RecordedEvent};
use cinelog_projections::analyst::{AnalystLog, SafeEvent};
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Where a state is taken: at a time, or at a position of the log.
#[derive(Debug, Clone, Copy)]
pub enum AsOf {
    Time(DateTime<Utc>),
    Position(i64),
    Now,
}

impl AsOf {
    fn includes(&self, e: &RecordedEvent) -> bool {
        match self {
            AsOf::Time(t) => e.meta.recorded_at <= *t,
            AsOf::Position(p) => e.position <= *p,
            AsOf::Now => true,
        }
    }
}

/// A page of history and the cursor that continues it.
pub struct Page {
    pub events: Vec<SafeEvent>,
    pub next_cursor: Option<Cursor>,
}

/// Where the next page of a paged read starts, and the log head its first page saw: pages
/// stop there, so a read ends even while the log (and the record of the read) grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub after: i64,
    pub until: i64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.after, self.until)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Cursor, String> {
        let bad = || format!("{s:?} is not a cursor this API gave out");
        let (after, until) = s.split_once('.').ok_or_else(bad)?;
        let cursor = Cursor {
            after: after.parse().map_err(|_| bad())?,
            until: until.parse().map_err(|_| bad())?,
        };
        if cursor.after < 0 || cursor.until < cursor.after {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// Why an auditor's read could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("no stream {0}/{1}")]
    NoStream(String, String),
    #[error("stream type {0:?} has no state to fold")]
    UnknownStreamType(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Records one read of the log as an event of its own `access` stream.
pub async fn record_read(
    store: &Store,
    meta: &CommandMeta,
    what: &str,
    filters: Value,
) -> anyhow::Result<()> {
    let event = AccessEvent::LogRead {
        what: what.into(),
        filters,
    };
    store
        .append::<AccessRecord>(
            &Uuid::now_v7().to_string(),
            &Default::default(),
            &[event],
            meta,
        )
        .await?;
    Ok(())
}

/// Auditors' reads over the store.
#[derive(Clone)]
pub struct History {
    store: Store,
    safe: AnalystLog,
    key: VerifyingKey,
}

impl History {
    pub fn new(store: Store, safe: AnalystLog, key: VerifyingKey) -> History {
        History { store, safe, key }
    }

    /// Records that `meta.actor` read `what` with `filters`.
    pub async fn record(
        &self,
        meta: &CommandMeta,
        what: &str,
        filters: Value,
    ) -> anyhow::Result<()> {
        record_read(&self.store, meta, what, filters).await
    }

    /// Matching events in log order, from the start or from `cursor`, and the cursor of the
    /// next page.
    pub async fn events(
        &self,
        meta: &CommandMeta,
        q: AuditQuery,
        cursor: Option<Cursor>,
    ) -> anyhow::Result<Page> {
        let until = match cursor {
            Some(c) => c.until,
            None => cinelog_projections::EventLog::head(&self.store).await?,
        };
        let q = AuditQuery {
            after: cursor.map_or(0, |c| c.after),
            until: Some(until),
            ..q
        };
        self.record(meta, "audit.events", query_json(&q)).await?;
        let limit = q.limit.clamp(1, 1000);
        let found = self
            .store
            .audit_events(&AuditQuery {
                limit: limit + 1,
                ..q
            })
            .await?;
        let more = found.len() as i64 > limit;
        let events: Vec<_> = found.into_iter().take(limit as usize).collect();
        let next_cursor = more
            .then(|| {
                events.last().map(|e| Cursor {
                    after: e.position,
                    until,
                })
            })
            .flatten();
        Ok(Page {
            events: self.safe.made_safe(events).await?,
            next_cursor,
        })
    }

    /// A stream's whole history, every event with its envelope (credentials redacted), and
    /// whether its hash chain holds; `None` for a stream with no events.
    pub async fn stream(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> anyhow::Result<Option<Value>> {
        let events = self.store.read_stream(stream_type, stream_id).await?;
        if events.is_empty() {
            return Ok(None);
        }
        let mut prev = cinelog_domain::envelope::GENESIS_HASH.to_string();
        let mut chain_intact = true;
        for e in &events {
            chain_intact &= e.meta.prev_hash == prev && e.computed_hash() == e.meta.hash;
            prev = e.meta.hash.clone();
        }
        let version = events.len();
        let mut events = serde_json::to_value(&events)?;
        cinelog_projections::analyst::strip_credentials(&mut events);
        Ok(Some(json!({
            "stream_type": stream_type,
            "stream_id": stream_id,
            "version": version,
            "chain_intact": chain_intact,
            "events": events,
        })))
    }

    /// Everything one request caused, as a tree: each event under the event that caused it.
    pub async fn trace(&self, meta: &CommandMeta, correlation: Uuid) -> anyhow::Result<Value> {
        self.record(
            meta,
            "audit.trace",
            json!({ "correlation_id": correlation }),
        )
        .await?;
        let mut found = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .audit_events(&AuditQuery {
                    correlation_id: Some(correlation.to_string()),
                    after,
                    limit: 1000,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            found.extend(page);
        }
        let ids: HashSet<Uuid> = found.iter().map(|e| e.meta.event_id).collect();
        let safe = self.safe.made_safe(found).await?;
        let mut children: HashMap<Option<Uuid>, Vec<Value>> = HashMap::new();
        let mut nodes = Vec::new();
        for e in &safe {
            let parent = e.event.meta.causation_id.filter(|c| ids.contains(c));
            nodes.push((e.event.meta.event_id, parent, e.to_value()?));
        }
        // Deepest first: positions grow down a causation chain, so children are built first.
        for (id, parent, mut value) in nodes.into_iter().rev() {
            let mut kids = children.remove(&Some(id)).unwrap_or_default();
            kids.reverse();
            value["caused"] = Value::Array(kids);
            children.entry(parent).or_default().push(value);
        }
        let mut roots = children.remove(&None).unwrap_or_default();
        roots.reverse();
        Ok(json!({
            "correlation_id": correlation,
            "events": ids.len(),
            "roots": roots,
        }))
    }

    /// A stream's state as of a moment, folded with its aggregate's `evolve`, with the events
    /// used.
    pub async fn state(
        &self,
        meta: &CommandMeta,
        stream_type: &str,
        stream_id: &str,
        at: AsOf,
    ) -> Result<Value, HistoryError> {
        // A stream type no aggregate folds is refused before anything is read.
        fold(stream_type, &[])?;
        self.record(
            meta,
            "audit.state",
            json!({ "stream_type": stream_type, "stream_id": stream_id, "at": as_of_json(at) }),
        )
        .await?;
        let all = self
            .store
            .read_stream(stream_type, stream_id)
            .await
            .map_err(anyhow::Error::from)?;
        if all.is_empty() {
            return Err(HistoryError::NoStream(stream_type.into(), stream_id.into()));
        }
        let used: Vec<RecordedEvent> = all.into_iter().filter(|e| at.includes(e)).collect();
        let mut state = fold(stream_type, &used)?;
        let version = used.last().map_or(0, |e| e.version);
        self.safe
            .make_value_safe(stream_type, stream_id, &mut state)
            .await?;
        Ok(json!({
            "stream_type": stream_type,
            "stream_id": stream_id,
            "as_of": as_of_json(at),
            "version": version,
            "state": state,
            "events": self.envelopes(used).await?,
        }))
    }

    /// Whether an account could watch, and in which quality, at a moment; and why.
    pub async fn entitlement(
        &self,
        meta: &CommandMeta,
        account_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Value, HistoryError> {
        use cinelog_domain::subscription::Subscription;
        self.record(
            meta,
            "audit.entitlement",
            json!({ "account_id": account_id, "at": at }),
        )
        .await?;
        let events = self
            .store
            .read_stream(Subscription::STREAM_TYPE, &account_id.to_string())
            .await
            .map_err(anyhow::Error::from)?;
        let used: Vec<RecordedEvent> = events
            .into_iter()
            .filter(|e| e.meta.recorded_at <= at)
            .collect();
        let state = replay::<Subscription>(&used)?;
        let until = state.access_until();
        let entitled = until.is_some_and(|u| u > at) && state.plan.is_some();
        let quality = entitled
            .then(|| state.plan.map(|p| p.plan().max_quality))
            .flatten();
        let why = match (entitled, state.plan, until) {
            (true, Some(plan), Some(until)) => format!(
                "plan {} was {:?} and paid up to {} (grace included)",
                plan.as_str(),
                state.status,
                until.to_rfc3339()
            ),
            (false, Some(plan), Some(until)) => format!(
                "plan {} had run out at {}",
                plan.as_str(),
                until.to_rfc3339()
            ),
            _ => format!("no paid plan: subscription {:?}", state.status),
        };
        Ok(json!({
            "account_id": account_id,
            "at": at,
            "entitled": entitled,
            "max_quality": quality,
            "plan": state.plan.map(|p| p.as_str()),
            "status": state.status,
            "access_until": until,
            "why": why,
            "events": self.envelopes(used).await?,
        }))
    }

    /// Recomputes every chain and checks every anchor.
    pub async fn verify(&self, meta: &CommandMeta) -> anyhow::Result<Report> {
        self.record(meta, "audit.verify", json!({})).await?;
        audit::verify(&self.store, &self.key).await
    }

    async fn envelopes(&self, events: Vec<RecordedEvent>) -> anyhow::Result<Vec<Value>> {
        self.safe
            .made_safe(events)
            .await?
            .iter()
            .map(|e| e.to_value().map_err(Into::into))
            .collect()
    }
}

fn as_of_json(at: AsOf) -> Value {
    match at {
        AsOf::Time(t) => json!(t),
        AsOf::Position(p) => json!({ "position": p }),
        AsOf::Now => json!("now"),
    }
}

fn query_json(q: &AuditQuery) -> Value {
    json!({
        "actor": q.actor, "type": q.event_type, "stream_type": q.stream_type,
        "stream_id": q.stream_id, "correlation_id": q.correlation_id,
        "from": q.from, "to": q.to, "after": q.after, "until": q.until, "limit": q.limit,
    })
}

fn replay<D: Decider>(events: &[RecordedEvent]) -> anyhow::Result<D::State> {
    let mut state = D::State::default();
    for e in events {
        let event: D::Event = serde_json::from_value(e.payload.clone()).map_err(|err| {
            anyhow::anyhow!(
                "event at position {} does not read as {}: {err}",
                e.position,
                D::STREAM_TYPE
            )
        })?;
        state = D::evolve(state, &event);
    }
    Ok(state)
}

fn state_of<D: Decider>(events: &[RecordedEvent]) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(replay::<D>(events)?)?)
}

/// Folds a stream of any type with its aggregate.
pub fn fold(stream_type: &str, events: &[RecordedEvent]) -> Result<Value, HistoryError> {
    use cinelog_domain::*;
    let folded = match stream_type {
        t if t == account::Account::STREAM_TYPE => state_of::<account::Account>(events),
        t if t == user::User::STREAM_TYPE => state_of::<user::User>(events),
        t if t == email_claim::EmailClaim::STREAM_TYPE => {
            state_of::<email_claim::EmailClaim>(events)
        }
        t if t == session::Session::STREAM_TYPE => state_of::<session::Session>(events),
        t if t == subscription::Subscription::STREAM_TYPE => {
            state_of::<subscription::Subscription>(events)
        }
        t if t == taste::Taste::STREAM_TYPE => state_of::<taste::Taste>(events),
        t if t == title::Title::STREAM_TYPE => state_of::<title::Title>(events),
        t if t == viewing::Viewing::STREAM_TYPE => state_of::<viewing::Viewing>(events),
        t if t == access::AccessRecord::STREAM_TYPE => state_of::<access::AccessRecord>(events),
        other => return Err(HistoryError::UnknownStreamType(other.into())),
    };
    Ok(folded?)
}
