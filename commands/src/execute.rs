//! Running one command against one aggregate stream: load, decide, append, retry on conflict.

use crate::error::CommandError;
use crate::meta::CommandMeta;
use crate::store::{EventStore, StoreError};
use cinelog_domain::Decider;
use std::time::Duration;

/// Attempts before giving up on a stream that keeps changing under us.
const MAX_ATTEMPTS: u32 = 40;

/// The result of a command that was accepted.
#[derive(Debug)]
pub struct Executed<D: Decider> {
    /// The events written; empty if the command changed nothing.
    pub events: Vec<D::Event>,
    /// The aggregate's state after them.
    pub state: D::State,
    /// Global position of the last event written, or of the stream's head if nothing was written.
    pub position: i64,
    /// Id of the last event written, if any: what a follow-up command names as its cause.
    pub last_event_id: Option<uuid::Uuid>,
}

/// Loads the stream, builds the command from the current state, decides and appends.
/// On a concurrent append it reloads and decides again, so rules such as the profile limit
/// hold under any interleaving.
#[tracing::instrument(skip_all, fields(stream_type = D::STREAM_TYPE, stream_id))]
pub async fn execute<D, S, E>(
    store: &S,
    stream_id: &str,
    meta: &CommandMeta,
    mut command: impl FnMut(&D::State) -> Result<D::Command, E> + Send,
) -> Result<Executed<D>, CommandError>
where
    D: Decider,
    S: EventStore,
    CommandError: From<D::Error> + From<E>,
{
    for attempt in 0..MAX_ATTEMPTS {
        // The first attempt may decide on a cached state; a stale one is caught by the append's
        // expected version, and a refusal is only final once confirmed on fresh state.
        let fresh = attempt > 0;
        let mut loaded = if fresh {
            store.load::<D>(stream_id).await?
        } else {
            store.load_for_append::<D>(stream_id).await?
        };
        let mut decided = D::decide(&loaded.state, command(&loaded.state)?);
        if !fresh && !matches!(&decided, Ok(events) if !events.is_empty()) {
            loaded = store.load::<D>(stream_id).await?;
            decided = D::decide(&loaded.state, command(&loaded.state)?);
        }
        let events = decided?;
        if events.is_empty() {
            return Ok(Executed {
                events,
                state: loaded.state,
                position: loaded.head.position,
                last_event_id: None,
            });
        }
        match store
            .append::<D>(stream_id, &loaded.head, &events, meta)
            .await
        {
            Ok(appended) => {
                let state = events.iter().fold(loaded.state, D::evolve);
                return Ok(Executed {
                    events,
                    state,
                    position: appended.position,
                    last_event_id: Some(appended.last_event_id),
                });
            }
            Err(StoreError::Conflict) => {
                // Spread retries out so racing writers stop colliding.
                let jitter = rand::random::<u64>() % (2 + u64::from(attempt) * 2);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CommandError::Contention)
}
