//! The log on KurrentDB (EventStoreDB), through its official gRPC client: each aggregate is the
//! stream `{stream_type}-{stream_id}`, appends carry the expected revision, `$all` in commit order
//! is the global log, and a catch-up subscription to `$all` tells local followers when anyone
//! appends.
//!
//! An event's envelope (ids, actor, time, hash chain) and schema version travel as its custom
//! metadata, JSON; its id is the envelope's event id, its type the event's name, its data the
//! payload. A stream's version is its KurrentDB revision plus one; an event's global position is
//! its commit position, and a checkpoint is that position (`tx` stays 0: `$all` is totally
//! ordered, so nothing committed later can take a place a reader has passed). Events of system
//! streams (`$…`) are not part of Cinelog's log and are skipped.

use crate::store::NewEvent;
use chrono::{DateTime, Utc};
use cinelog_commands::StoreError;
use cinelog_domain::{EventMeta, RecordedEvent};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, Position, ReadAllOptions,
    ReadStreamOptions, StreamPosition, StreamState, SubscribeToAllOptions,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Most events a backlog count reads; lag beyond that reads as this number. `$all` positions
/// are byte offsets, so counting means reading.
const BACKLOG_CAP: u64 = 10_000;

/// Events read per request when scanning `$all`.
const SCAN_BATCH: u64 = 1_000;

/// What an event's custom metadata holds.
#[derive(Serialize, Deserialize)]
struct Envelope {
    schema_version: String,
    #[serde(flatten)]
    meta: EventMeta,
}

/// The log on a KurrentDB node or cluster.
pub struct Kurrent {
    settings: ClientSettings,
    /// Replaced by a new client when the connection is lost: the client gives up for good on a
    /// failed connection.
    client: Mutex<Client>,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Kurrent {
    fn drop(&mut self) {
        if let Some(task) = self.follower.lock().expect("follower").take() {
            task.abort();
        }
    }
}

fn backend(e: kurrentdb::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// The stream an aggregate lives in.
fn stream_name(stream_type: &str, stream_id: &str) -> String {
    format!("{stream_type}-{stream_id}")
}

/// Reads a KurrentDB event back as one of Cinelog's; `None` for system events.
fn to_recorded(event: &kurrentdb::RecordedEvent) -> Result<Option<RecordedEvent>, StoreError> {
    let name = event.stream_id();
    if name.starts_with('$') {
        return Ok(None);
    }
    let position = i64::try_from(event.position.commit).unwrap_or(0);
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("{what} of event {} in {name}: {e}", event.id))
    };
    let (stream_type, stream_id) = name
        .split_once('-')
        .ok_or_else(|| corrupt("stream name", &"not {type}-{id}"))?;
    let envelope: Envelope =
        serde_json::from_slice(&event.custom_metadata).map_err(|e| corrupt("metadata", &e))?;
    Ok(Some(RecordedEvent {
        position,
        tx: 0,
        stream_type: stream_type.to_string(),
        stream_id: stream_id.to_string(),
        version: event.revision as i64 + 1,
        event_type: event.event_type.clone(),
        schema_version: envelope.schema_version,
        payload: serde_json::from_slice(&event.data).map_err(|e| corrupt("payload", &e))?,
        meta: envelope.meta,
    }))
}

fn at(position: i64) -> StreamPosition<Position> {
    let p = position.max(0) as u64;
    StreamPosition::Position(Position {
        commit: p,
        prepare: p,
    })
}

/// A connection string as messages may show it: without user name and password.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.to_string()
        }
        Err(_) => "(the event store URL)".to_string(),
    }
}

impl Kurrent {
    /// Connects to KurrentDB at `url` (`esdb://host:2113?tls=false`, `kurrentdb://…`) and checks
    /// that it answers.
    pub async fn connect(url: &str) -> anyhow::Result<Kurrent> {
        let settings: ClientSettings = url
            .parse()
            .map_err(|e| anyhow::anyhow!("the event store URL {} is not valid: {e}", shown(url)))?;
        let kurrent = Kurrent {
            client: Mutex::new(
                Client::new(settings.clone())
                    .map_err(|e| anyhow::anyhow!("KurrentDB client: {e}"))?,
            ),
            settings,
            follower: Mutex::new(None),
        };
        kurrent
            .head()
            .await
            .map_err(|e| anyhow::anyhow!("KurrentDB at {} does not answer: {e}", shown(url)))?;
        Ok(kurrent)
    }

    fn client(&self) -> Client {
        self.client.lock().expect("client").clone()
    }

    /// Starts over with a new client after a lost connection.
    fn recover(&self, e: &kurrentdb::Error) {
        if matches!(
            e,
            kurrentdb::Error::GrpcConnectionError(_) | kurrentdb::Error::ConnectionClosed
        ) && let Ok(client) = Client::new(self.settings.clone())
        {
            tracing::warn!(error = %e, "reconnecting to KurrentDB");
            *self.client.lock().expect("client") = client;
        }
    }

    fn checked<T>(&self, r: kurrentdb::Result<T>) -> kurrentdb::Result<T> {
        if let Err(e) = &r {
            self.recover(e);
        }
        r
    }

    /// Whether the server answers.
    pub async fn ping(&self) -> bool {
        self.head().await.is_ok()
    }

    /// Appends one stream's new events (consecutive versions) if the stream is still where the
    /// first one expects it; answers the last event's position.
    pub(crate) async fn append(&self, rows: &[NewEvent]) -> Result<i64, StoreError> {
        let Some(first) = rows.first() else {
            return Err(StoreError::Corrupt("an append needs events".into()));
        };
        let expected = match first.version - 1 {
            0 => StreamState::NoStream,
            v => StreamState::StreamRevision(v as u64 - 1),
        };
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let meta: EventMeta = serde_json::from_str(&row.metadata)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let envelope = Envelope {
                schema_version: cinelog_commands::cqrs::SCHEMA_VERSION.to_string(),
                meta,
            };
            let payload: serde_json::Value = serde_json::from_str(&row.payload)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let event = EventData::json(row.event_type, &payload)
                .and_then(|e| e.id(envelope.meta.event_id).metadata_as_json(&envelope))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            events.push(event);
        }
        let options = AppendToStreamOptions::default().stream_state(expected);
        let name = stream_name(first.stream_type, &first.stream_id);
        let written = self.checked(self.client().append_to_stream(name, &options, events).await);
        match written {
            Ok(w) => Ok(w.position.commit as i64),
            Err(kurrentdb::Error::WrongExpectedVersion { .. }) => Err(StoreError::Conflict),
            Err(e) => Err(backend(e)),
        }
    }

    /// A stream's events after `version`, oldest first.
    pub async fn read_stream_after(
        &self,
        stream_type: &str,
        stream_id: &str,
        version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(version.max(0) as u64));
        let name = stream_name(stream_type, stream_id);
        let mut read = match self.checked(self.client().read_stream(name, &options).await) {
            Ok(read) => read,
            Err(e) => return Err(backend(e)),
        };
        let mut events = Vec::new();
        loop {
            match self.checked(read.next().await) {
                Ok(Some(e)) => events.extend(to_recorded(e.get_original_event())?),
                Ok(None) => break,
                Err(kurrentdb::Error::ResourceNotFound) => break,
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(events)
    }

    /// Up to `count` events of `$all` in commit order from `from`, as Cinelog's events (system
    /// events left out), with the commit position of the last event read and how many were read.
    async fn read_all(
        &self,
        from: StreamPosition<Position>,
        count: u64,
        backwards: bool,
    ) -> Result<(Vec<RecordedEvent>, Option<i64>, u64), StoreError> {
        let options = ReadAllOptions::default()
            .position(from)
            .max_count(count as usize);
        let options = if backwards {
            options.backwards()
        } else {
            options.forwards()
        };
        let mut read = self
            .checked(self.client().read_all(&options).await)
            .map_err(backend)?;
        let (mut events, mut last, mut read_n) = (Vec::new(), None, 0);
        while let Some(e) = self.checked(read.next().await).map_err(backend)? {
            let e = e.get_original_event();
            read_n += 1;
            last = Some(e.position.commit as i64);
            events.extend(to_recorded(e)?);
        }
        Ok((events, last, read_n))
    }

    /// Up to `limit` events after position `after`, in log order.
    pub async fn read_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = limit.max(1) as u64;
        let mut from = after;
        loop {
            // A read from a position includes the event there: ask for one more.
            let start = if from <= 0 {
                StreamPosition::Start
            } else {
                at(from)
            };
            let (mut events, last, read) = self.read_all(start, limit + 1, false).await?;
            events.retain(|e| e.position > from);
            events.truncate(limit as usize);
            match last {
                // Only system events in a full batch: look further.
                Some(last) if events.is_empty() && read > limit => from = last,
                _ => return Ok(events),
            }
        }
    }

    /// The event at a global position, if there is one.
    pub async fn event_at(&self, position: i64) -> Result<Option<RecordedEvent>, StoreError> {
        if position <= 0 {
            return Ok(None);
        }
        let (events, _, _) = self.read_all(at(position), 1, false).await?;
        Ok(events.into_iter().find(|e| e.position == position))
    }

    /// The position of the newest event (0 for an empty log).
    pub async fn head(&self) -> Result<i64, StoreError> {
        let mut from = StreamPosition::End;
        loop {
            let (events, last, read) = self.read_all(from, 100, true).await?;
            match (events.first(), last) {
                (Some(newest), _) => return Ok(newest.position),
                (None, Some(last)) if read == 100 => from = at(last),
                _ => return Ok(0),
            }
        }
    }

    /// How many events lie after `after` (counted up to [`BACKLOG_CAP`]) and when the oldest of
    /// them was recorded.
    pub async fn backlog(&self, after: i64) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        self.count_after(after, BACKLOG_CAP as i64).await
    }

    /// How many events lie after `after`, counted up to `cap`, and when the oldest of them was
    /// recorded.
    pub async fn count_after(
        &self,
        after: i64,
        cap: i64,
    ) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        let (mut count, mut oldest, mut from) = (0, None, after);
        while count < cap {
            let batch = self.read_after(from, SCAN_BATCH as i64).await?;
            let Some(last) = batch.last() else { break };
            oldest = oldest.or(batch.first().map(|e| e.meta.recorded_at));
            from = last.position;
            count += batch.len() as i64;
        }
        Ok((count.min(cap), oldest))
    }

    /// Events after `after` that `keep` keeps, in log order, up to `limit` of them, none after
    /// `until`; reads `$all` in batches.
    pub async fn scan(
        &self,
        after: i64,
        until: Option<i64>,
        limit: usize,
        keep: impl Fn(&RecordedEvent) -> bool,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut found = Vec::new();
        let mut from = after;
        while found.len() < limit {
            let batch = self.read_after(from, SCAN_BATCH as i64).await?;
            let Some(last) = batch.last() else { break };
            from = last.position;
            for e in batch {
                if until.is_some_and(|u| e.position > u) {
                    return Ok(found);
                }
                if keep(&e) && found.len() < limit {
                    found.push(e);
                }
            }
        }
        Ok(found)
    }

    /// Follows `$all` live with a catch-up subscription from its end, waking `appended`'s
    /// waiters whenever any writer appends, until this log is dropped.
    pub fn follow(self: &Arc<Self>, appended: Arc<Notify>) {
        let log = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            loop {
                let Some(client) = log.upgrade().map(|l| l.client()) else {
                    return;
                };
                let options = SubscribeToAllOptions::default().position(StreamPosition::End);
                let mut subscription = client.subscribe_to_all(&options).await;
                drop(client);
                while subscription.next().await.is_ok() {
                    appended.notify_waiters();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        *self.follower.lock().expect("follower") = Some(task);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_show_the_url_without_credentials() {
        assert_eq!(
            super::shown("esdb://admin:changeit@db.internal:2113?tls=true"),
            "esdb://db.internal:2113?tls=true"
        );
        assert_eq!(
            super::shown("esdb://127.0.0.1:2113?tls=false"),
            "esdb://127.0.0.1:2113?tls=false"
        );
    }
}
