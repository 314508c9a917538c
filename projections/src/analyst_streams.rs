//! The analysts' two long reads as streams: an NDJSON export that holds one batch in memory at
//! a time however long it runs, and a live tail that catches up from the log and then follows
//! the shared feed, going back to the log whenever it falls behind.

use crate::analyst::{AnalystLog, FeedBatch, LogFilter};
use crate::log::Checkpoint;
use futures::Stream;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

/// How long the live tail waits after a failed log read before trying again.
const RETRY: Duration = Duration::from_millis(500);

/// Up to `limit` events after `start` matching `filter`, one JSON envelope per line.
pub fn ndjson(
    reader: AnalystLog,
    start: Checkpoint,
    filter: LogFilter,
    limit: i64,
) -> impl Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct Cursor {
        next: Checkpoint,
        left: i64,
        done: bool,
        erased: HashMap<Uuid, bool>,
    }
    let cursor = Cursor {
        next: start,
        left: limit,
        done: false,
        erased: HashMap::new(),
    };
    futures::stream::unfold(cursor, move |mut c| {
        let (reader, filter) = (reader.clone(), filter.clone());
        async move {
            if c.done || c.left <= 0 {
                return None;
            }
            let batch = match reader.next_batch(c.next, &filter, &mut c.erased).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = ?e, "reading the log for an export failed");
                    let failed = Err(std::io::Error::other("log read failed"));
                    return Some((failed, Cursor { done: true, ..c }));
                }
            };
            let mut out = Vec::new();
            for event in batch.events.iter().take(c.left as usize) {
                event.write_json(&mut out).ok()?;
                out.push(b'\n');
                c.left -= 1;
            }
            c.next = batch.next;
            c.done = batch.at_end;
            Some((Ok(out), c))
        }
    })
}

/// One event of the live tail: its position, type and envelope as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct TailEvent {
    /// The event's global position.
    pub position: i64,
    /// The event's type.
    pub event_type: String,
    /// The envelope, made safe, as JSON.
    pub json: String,
}

/// The live tail after `start`: from the log until it is caught up, then from the shared feed
/// (subscribed before the call, so no batch falls between the two).
pub fn tail(
    reader: AnalystLog,
    filter: LogFilter,
    start: Checkpoint,
    feed: broadcast::Receiver<Arc<FeedBatch>>,
) -> impl Stream<Item = TailEvent> {
    struct Tail {
        next: Checkpoint,
        queue: VecDeque<TailEvent>,
        erased: HashMap<Uuid, bool>,
        feed: broadcast::Receiver<Arc<FeedBatch>>,
        /// Reading the shared feed rather than the log.
        following: bool,
    }
    let tail = Tail {
        next: start,
        queue: VecDeque::new(),
        erased: HashMap::new(),
        feed,
        following: false,
    };
    futures::stream::unfold(tail, move |mut t| {
        let (reader, filter) = (reader.clone(), filter.clone());
        async move {
            loop {
                if let Some(event) = t.queue.pop_front() {
                    return Some((event, t));
                }
                if t.following {
                    match t.feed.recv().await {
                        Ok(batch) if batch.to <= t.next => {}
                        // Events between where this follower is and the batch: from the log.
                        Ok(batch) if batch.after > t.next => t.following = false,
                        Ok(batch) => {
                            let fresh = batch
                                .events
                                .iter()
                                .filter(|e| e.at > t.next && e.matches(&filter));
                            t.queue.extend(fresh.map(|e| TailEvent {
                                position: e.at.position,
                                event_type: e.event_type.clone(),
                                json: e.json.clone(),
                            }));
                            t.next = batch.to;
                        }
                        Err(RecvError::Lagged(_)) => t.following = false,
                        Err(RecvError::Closed) => return None,
                    }
                    continue;
                }
                match reader.next_batch(t.next, &filter, &mut t.erased).await {
                    Ok(batch) => {
                        t.next = batch.next;
                        for safe in batch.events {
                            let mut data = Vec::new();
                            safe.write_json(&mut data).ok()?;
                            t.queue.push_back(TailEvent {
                                position: safe.event.position,
                                event_type: safe.event.event_type.clone(),
                                json: String::from_utf8(data).ok()?,
                            });
                        }
                        t.following = batch.at_end;
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "live tail read failed; trying again");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        }
    })
}
