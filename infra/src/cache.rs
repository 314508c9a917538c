//! Recently used streams, folded: a command then reads only the events appended since the cached
//! version instead of the whole stream. Staleness is harmless: the load still reads everything after
//! the cached version, and an append on a stale head fails on the expected version. The least
//! recently used streams leave first.

use cinelog_commands::StreamHead;
use cinelog_domain::Decider;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

type Key = (&'static str, String);

struct Entry {
    state: Box<dyn Any + Send + Sync>,
    head: StreamHead,
    /// When this entry was last known to hold the stream's head.
    checked: Instant,
}

pub struct StreamCache {
    inner: moka::sync::Cache<Key, Arc<Entry>>,
}

impl StreamCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .eviction_policy(EvictionPolicy::lru())
                .build(),
        }
    }

    /// The cached state and head of a stream, if any, and when they were last known current.
    pub fn get<D: Decider>(&self, stream_id: &str) -> Option<(D::State, StreamHead, Instant)> {
        let entry = self.inner.get(&(D::STREAM_TYPE, stream_id.to_string()))?;
        Some((
            entry.state.downcast_ref::<D::State>()?.clone(),
            entry.head.clone(),
            entry.checked,
        ))
    }

    /// Remembers a stream's state at `head`, known current now, unless a newer version is
    /// already cached.
    pub fn put<D: Decider>(&self, stream_id: &str, state: D::State, head: StreamHead) {
        let fresh = Arc::new(Entry {
            state: Box::new(state),
            head,
            checked: Instant::now(),
        });
        self.inner
            .entry((D::STREAM_TYPE, stream_id.to_string()))
            .and_compute_with(|existing| match existing {
                Some(e) if e.value().head.version > fresh.head.version => Op::Nop,
                _ => Op::Put(fresh),
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cinelog_domain::account::Account;

    fn head(version: i64) -> StreamHead {
        StreamHead {
            version,
            hash: format!("h{version}"),
            position: version,
        }
    }

    #[test]
    fn keeps_the_newest_version_and_evicts_the_least_recently_used_stream() {
        let cache = StreamCache::new(2);
        cache.put::<Account>("a", Default::default(), head(2));
        cache.put::<Account>("a", Default::default(), head(1));
        assert_eq!(cache.get::<Account>("a").unwrap().1.version, 2);
        cache.put::<Account>("b", Default::default(), head(1));
        cache.inner.run_pending_tasks();
        // "a" was inserted first but read last: "b" is the one to go.
        assert!(cache.get::<Account>("a").is_some());
        cache.put::<Account>("c", Default::default(), head(1));
        cache.inner.run_pending_tasks();
        assert!(cache.get::<Account>("b").is_none());
        assert!(cache.get::<Account>("a").is_some() && cache.get::<Account>("c").is_some());
    }
}
