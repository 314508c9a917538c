use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_domain::RecordedEvent;
use std::sync::Arc;
use tokio::sync::Notify;

/// A place in the global log. Events are ordered by `(tx, position)`: on Postgres `tx` is the
/// committing transaction id, so an event committed late by a concurrent writer still sorts
/// after everything a reader has already passed; single-writer backends use `tx = 0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checkpoint {
    pub tx: i64,
    pub position: i64,
}

impl Checkpoint {
    pub const START: Checkpoint = Checkpoint { tx: 0, position: 0 };

    pub fn of(event: &RecordedEvent) -> Checkpoint {
        Checkpoint {
            tx: event.tx,
            position: event.position,
        }
    }
}

/// Which events a reader wants.
pub type Wants<'a> = dyn for<'e> Fn(&'e RecordedEvent) -> bool + Sync + 'a;

/// What [`EventLog::read_after_wanted`] answers.
pub struct Wanted {
    /// The events kept, in log order.
    pub events: Vec<RecordedEvent>,
    /// The place of the last event read, kept or not; `None` when nothing was read.
    pub last: Option<Checkpoint>,
    /// How many events were read.
    pub read: usize,
}

/// The global log as readers see it: only events whose place can no longer be taken by a
/// commit still in flight.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` events after `after`, in log order.
    async fn read_after(&self, after: Checkpoint, limit: i64)
    -> anyhow::Result<Vec<RecordedEvent>>;
    /// Like [`read_after`](Self::read_after), but answers only the events `wanted` keeps, with
    /// the place of the last event read (kept or not) and how many were read, so a reader that
    /// skips most events does not pay for copies of them.
    async fn read_after_wanted(
        &self,
        after: Checkpoint,
        limit: i64,
        wanted: &Wants<'_>,
    ) -> anyhow::Result<Wanted> {
        let mut events = self.read_after(after, limit).await?;
        let (last, read) = (events.last().map(Checkpoint::of), events.len());
        events.retain(|e| wanted(e));
        Ok(Wanted { events, last, read })
    }
    /// Where the event at a global position sits in log order, once it is readable.
    async fn checkpoint_of(&self, position: i64) -> anyhow::Result<Option<Checkpoint>>;
    /// The stream type and id of the event at a global position.
    async fn stream_of(&self, position: i64) -> anyhow::Result<Option<(String, String)>>;
    /// The highest global position among committed events.
    async fn head(&self) -> anyhow::Result<i64>;
    /// How many events lie after `after` (counted up to a cap) and when the oldest was recorded.
    async fn backlog(&self, after: Checkpoint) -> anyhow::Result<(i64, Option<DateTime<Utc>>)>;
    /// Notified whenever this process appends, so followers need not wait for their next poll.
    fn appended(&self) -> Arc<Notify>;
}
