//! Recently used streams, folded: a command then reads only the events appended since the cached
//! version instead of the whole stream. Staleness is harmless: the load still reads everything after
//! the cached version, and an append on a stale head fails on the expected version.

use cinelog_commands::StreamHead;
use cinelog_domain::Decider;
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

type Key = (&'static str, String);

struct Entry {
    state: Box<dyn Any + Send + Sync>,
    head: StreamHead,
}

pub struct StreamCache {
    capacity: usize,
    inner: Mutex<(HashMap<Key, Entry>, VecDeque<Key>)>,
}

impl StreamCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// The cached state and head of a stream, if any.
    pub fn get<D: Decider>(&self, stream_id: &str) -> Option<(D::State, StreamHead)> {
        let guard = self.inner.lock().ok()?;
        let entry = guard.0.get(&(D::STREAM_TYPE, stream_id.to_string()))?;
        Some((
            entry.state.downcast_ref::<D::State>()?.clone(),
            entry.head.clone(),
        ))
    }

    /// Remembers a stream's state at `head`, unless a newer version is already cached.
    pub fn put<D: Decider>(&self, stream_id: &str, state: D::State, head: StreamHead) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let (map, order) = &mut *guard;
        let key = (D::STREAM_TYPE, stream_id.to_string());
        if let Some(existing) = map.get_mut(&key) {
            if existing.head.version < head.version {
                *existing = Entry {
                    state: Box::new(state),
                    head,
                };
            }
            return;
        }
        while map.len() >= self.capacity {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
        order.push_back(key.clone());
        map.insert(
            key,
            Entry {
                state: Box::new(state),
                head,
            },
        );
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
    fn keeps_the_newest_version_and_evicts_the_oldest_stream() {
        let cache = StreamCache::new(2);
        cache.put::<Account>("a", Default::default(), head(2));
        cache.put::<Account>("a", Default::default(), head(1));
        assert_eq!(cache.get::<Account>("a").unwrap().1.version, 2);
        cache.put::<Account>("b", Default::default(), head(1));
        cache.put::<Account>("c", Default::default(), head(1));
        assert!(cache.get::<Account>("a").is_none());
        assert!(cache.get::<Account>("b").is_some() && cache.get::<Account>("c").is_some());
    }
}
