//! Playback sessions: opened within the plan's stream limit, kept alive by heartbeats that record
//! progress, closed by a stop.

use crate::error::CommandError;
use crate::execute::execute;
use crate::meta::CommandMeta;
use crate::ports::Clock;
use crate::store::EventStore;
use cinelog_domain::viewing::{Viewing, ViewingCommand, Watched};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Clone)]
pub struct PlaybackService<S> {
    store: S,
    clock: Arc<dyn Clock>,
}

impl<S: EventStore> PlaybackService<S> {
    pub fn new(store: S, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Opens a session if the account plays on fewer than `limit` screens.
    pub async fn start(
        &self,
        account_id: Uuid,
        watched: Watched,
        limit: u32,
        meta: &CommandMeta,
    ) -> Result<(Uuid, i64), CommandError> {
        let session_id = Uuid::now_v7();
        let at = self.clock.now();
        let done =
            execute::<Viewing, _, CommandError>(&self.store, &account_id.to_string(), meta, |_| {
                Ok(ViewingCommand::Start {
                    session_id,
                    watched: watched.clone(),
                    limit,
                    at,
                })
            })
            .await?;
        Ok((session_id, done.position))
    }

    /// Records progress (`stop = false`) or the end of a session.
    pub async fn progress(
        &self,
        account_id: Uuid,
        session_id: Uuid,
        position_secs: f64,
        stop: bool,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let at = self.clock.now();
        let done =
            execute::<Viewing, _, CommandError>(&self.store, &account_id.to_string(), meta, |_| {
                Ok(if stop {
                    ViewingCommand::Stop {
                        session_id,
                        position_secs,
                        at,
                    }
                } else {
                    ViewingCommand::Heartbeat {
                        session_id,
                        position_secs,
                        at,
                    }
                })
            })
            .await?;
        Ok(done.position)
    }
}
