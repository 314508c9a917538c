//! The event store port of the write side: loading streams and appending with an expected head.

use crate::meta::CommandMeta;
use cinelog_domain::Decider;
use cinelog_domain::envelope::GENESIS_HASH;
use std::future::Future;

/// Where a stream stands: what an append must build on.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamHead {
    /// Number of events in the stream (0 for a new stream).
    pub version: i64,
    /// Hash of the stream's last event.
    pub hash: String,
    /// Global position of the stream's last event (0 for a new stream).
    pub position: i64,
}

impl Default for StreamHead {
    fn default() -> Self {
        Self {
            version: 0,
            hash: GENESIS_HASH.to_string(),
            position: 0,
        }
    }
}

/// A stream loaded and folded into its aggregate's state.
#[derive(Debug, Clone)]
pub struct Loaded<D: Decider> {
    /// The aggregate's state after every event of the stream.
    pub state: D::State,
    /// Where the stream stands, for the next append.
    pub head: StreamHead,
}

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Global position of the last event written.
    pub position: i64,
    /// Stream version after the append.
    pub version: i64,
    /// Id of the last event written, for the commands it causes.
    pub last_event_id: uuid::Uuid,
}

/// Why the store could not load or append.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the stream first.
    #[error("the stream changed concurrently")]
    Conflict,
    /// A stored event could not be read back into its aggregate's event type.
    #[error("stored event is unreadable: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// The event store as the write side needs it.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Loads a stream and folds it into `D`'s state.
    fn load<D: Decider>(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Loaded<D>, StoreError>> + Send;

    /// Like [`load`](Self::load), but may answer from memory without asking the database. Only
    /// for deciding before an append: a stale answer makes the append fail on the expected version.
    fn load_for_append<D: Decider>(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Loaded<D>, StoreError>> + Send {
        self.load::<D>(stream_id)
    }

    /// Like [`load`](Self::load), but may answer from memory when the stream's head was known
    /// within `max_age`: what this process appended is seen at once, another process's
    /// appends within `max_age`. For reads that may lag that much.
    fn load_recent<D: Decider>(
        &self,
        stream_id: &str,
        max_age: std::time::Duration,
    ) -> impl Future<Output = Result<Loaded<D>, StoreError>> + Send {
        let _ = max_age;
        self.load::<D>(stream_id)
    }

    /// Appends events after `head`, failing with [`StoreError::Conflict`] if the stream moved on.
    fn append<D: Decider>(
        &self,
        stream_id: &str,
        head: &StreamHead,
        events: &[D::Event],
        meta: &CommandMeta,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;
}
