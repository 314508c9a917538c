//! The log's newest events kept in memory for every follower of the process: one database read
//! (and one decoding) of each new batch serves all projections, where each used to read and
//! decode it for itself.

use crate::log::{Checkpoint, EventLog, Wanted, Wants};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_domain::RecordedEvent;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Events kept.
const KEPT: usize = 20_000;

/// An [`EventLog`] that answers reads near the head from memory. What it keeps is a run of the
/// log exactly as the database answered it: events readable at all are final in their order
/// (a later commit sorts after them), so the run never goes stale, it only ends.
///
/// Followers woken by the same append all ask for the same new events at once; one of them
/// reads them from the database while the others wait for it and then answer from memory.
pub struct SharedTail {
    log: Arc<dyn EventLog>,
    run: Mutex<Run>,
    reading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Run {
    /// The place just before the first event kept; `None` before the first read.
    start: Option<Checkpoint>,
    events: VecDeque<RecordedEvent>,
}

impl Run {
    fn end(&self) -> Option<Checkpoint> {
        self.events.back().map(Checkpoint::of).or(self.start)
    }

    /// The kept events after `after` that `wanted` keeps, with the place of the last one
    /// looked at, if the run holds that place and something after it.
    fn after(&self, after: Checkpoint, limit: usize, wanted: &Wants) -> Option<Wanted> {
        let start = self.start?;
        if after < start || self.end()? <= after {
            return None;
        }
        let first = self.events.partition_point(|e| Checkpoint::of(e) <= after);
        let looked = self.events.range(first..).take(limit);
        let (last, read) = (looked.clone().next_back().map(Checkpoint::of), looked.len());
        let events = looked.filter(|e| wanted(e)).cloned().collect();
        Some(Wanted { events, last, read })
    }

    /// Takes in what the database answered after `after`: continues the run when it starts
    /// where the run ends, starts a new run when it lies ahead of it, else leaves it.
    fn extend(&mut self, after: Checkpoint, read: &[RecordedEvent]) {
        match self.end() {
            Some(end) if end == after => {}
            Some(end) if end > after => return,
            _ => {
                self.start = Some(after);
                self.events.clear();
            }
        }
        self.events.extend(read.iter().cloned());
        while self.events.len() > KEPT {
            if let Some(dropped) = self.events.pop_front() {
                self.start = Some(Checkpoint::of(&dropped));
            }
        }
    }
}

impl SharedTail {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            run: Mutex::default(),
            reading: tokio::sync::Mutex::new(()),
        }
    }
}

#[async_trait]
impl EventLog for SharedTail {
    async fn read_after(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> anyhow::Result<Vec<RecordedEvent>> {
        Ok(self
            .read_after_wanted(after, limit, &|_| true)
            .await?
            .events)
    }

    async fn read_after_wanted(
        &self,
        after: Checkpoint,
        limit: i64,
        wanted: &Wants<'_>,
    ) -> anyhow::Result<Wanted> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let kept = || {
            self.run
                .lock()
                .ok()
                .and_then(|r| r.after(after, limit, wanted))
        };
        if let Some(kept) = kept() {
            return Ok(kept);
        }
        let _reading = self.reading.lock().await;
        // Another follower may have just read what this one is after.
        if let Some(kept) = kept() {
            return Ok(kept);
        }
        let mut read = self.log.read_after(after, limit as i64).await?;
        if !read.is_empty()
            && let Ok(mut run) = self.run.lock()
        {
            run.extend(after, &read);
        }
        let (last, count) = (read.last().map(Checkpoint::of), read.len());
        read.retain(|e| wanted(e));
        Ok(Wanted {
            events: read,
            last,
            read: count,
        })
    }

    async fn checkpoint_of(&self, position: i64) -> anyhow::Result<Option<Checkpoint>> {
        self.log.checkpoint_of(position).await
    }

    async fn stream_of(&self, position: i64) -> anyhow::Result<Option<(String, String)>> {
        self.log.stream_of(position).await
    }

    async fn head(&self) -> anyhow::Result<i64> {
        self.log.head().await
    }

    async fn backlog(&self, after: Checkpoint) -> anyhow::Result<(i64, Option<DateTime<Utc>>)> {
        self.log.backlog(after).await
    }

    fn appended(&self) -> Arc<Notify> {
        self.log.appended()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cinelog_domain::envelope::{Actor, EventMeta};

    fn event(tx: i64, position: i64) -> RecordedEvent {
        RecordedEvent {
            position,
            tx,
            stream_type: "account".into(),
            stream_id: "a".into(),
            version: position,
            event_type: "AccountOpened".into(),
            schema_version: "1".into(),
            payload: serde_json::json!({}),
            meta: EventMeta {
                event_id: uuid::Uuid::nil(),
                correlation_id: uuid::Uuid::nil(),
                causation_id: None,
                actor: Actor::System,
                recorded_at: Utc::now(),
                hash: String::new(),
                prev_hash: String::new(),
            },
        }
    }

    fn at(tx: i64, position: i64) -> Checkpoint {
        Checkpoint { tx, position }
    }

    fn places(events: &[RecordedEvent]) -> Vec<(i64, i64)> {
        events.iter().map(|e| (e.tx, e.position)).collect()
    }

    /// Every kept event after a place.
    fn all(run: &Run, after: Checkpoint, limit: usize) -> Option<Vec<RecordedEvent>> {
        run.after(after, limit, &|_| true).map(|w| w.events)
    }

    #[test]
    fn a_reader_gets_only_what_it_wants_and_where_the_read_ended() {
        let mut run = Run::default();
        run.extend(at(0, 0), &(1..=6).map(|p| event(0, p)).collect::<Vec<_>>());
        let even = |e: &RecordedEvent| e.position % 2 == 0;
        let w = run.after(at(0, 1), 3, &even).unwrap();
        assert_eq!(places(&w.events), [(0, 2), (0, 4)]);
        assert_eq!((w.last, w.read), (Some(at(0, 4)), 3));
        let w = run
            .after(at(0, 4), 10, &|e: &RecordedEvent| e.position == 1)
            .unwrap();
        assert!(w.events.is_empty());
        assert_eq!(
            (w.last, w.read),
            (Some(at(0, 6)), 2),
            "skipped events still move the place"
        );
    }

    #[test]
    fn serves_only_places_it_holds_in_log_order() {
        let mut run = Run::default();
        assert!(all(&run, at(0, 0), 10).is_none(), "nothing kept yet");
        // Log order is (tx, position): position 3 committed before 2.
        run.extend(at(10, 1), &[event(11, 3), event(12, 2)]);
        assert_eq!(
            places(&all(&run, at(10, 1), 10).unwrap()),
            [(11, 3), (12, 2)]
        );
        assert_eq!(places(&all(&run, at(11, 3), 1).unwrap()), [(12, 2)]);
        assert!(all(&run, at(12, 2), 10).is_none(), "nothing after the end");
        assert!(
            all(&run, at(5, 0), 10).is_none(),
            "before the run: the database answers"
        );
        // A read that continues the run extends it; one behind it changes nothing.
        run.extend(at(12, 2), &[event(13, 4)]);
        run.extend(at(5, 0), &[event(6, 1)]);
        assert_eq!(
            places(&all(&run, at(10, 1), 10).unwrap()),
            [(11, 3), (12, 2), (13, 4)]
        );
        // A read ahead of the run starts a new one there.
        run.extend(at(20, 9), &[event(21, 10)]);
        assert!(all(&run, at(13, 4), 10).is_none());
        assert_eq!(places(&all(&run, at(20, 9), 10).unwrap()), [(21, 10)]);
    }

    #[test]
    fn keeps_a_bounded_run() {
        let mut run = Run::default();
        let many: Vec<_> = (1..=(KEPT as i64 + 5)).map(|p| event(0, p)).collect();
        run.extend(at(0, 0), &many);
        assert_eq!(run.events.len(), KEPT);
        assert!(all(&run, at(0, 4), 1).is_none(), "dropped from the front");
        assert_eq!(places(&all(&run, at(0, 5), 1).unwrap()), [(0, 6)]);
    }
}
