//! Trending in production mode: plays and likes per day in Redis sorted sets
//! (`<prefix>:trending:<day>`), fed from the log by a follower whose checkpoint lives in Redis
//! too. A like counts when a profile starts liking a title, as in the SQL read model, so a hash
//! remembers which profiles like which titles. Each batch's increments, that hash and the
//! checkpoint move in one MULTI/EXEC guarded by WATCH on the checkpoint and the hash, so any
//! number of replicas apply every event exactly once.

use crate::redis_link::RedisLink;
use chrono::{DateTime, Duration, Utc};
use cinelog_domain::RecordedEvent;
use cinelog_domain::taste::{Rating, TasteEvent};
use cinelog_domain::viewing::ViewingEvent;
use cinelog_projections::{Checkpoint, EventLog};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::Arc;

/// Events read per batch.
const BATCH: i64 = 500;
/// Days a day's set is kept.
const KEEP_DAYS: i64 = 30;

pub struct RedisTrending {
    client: redis::Client,
    /// For reads: one connection, made on first use and kept (it reconnects by itself).
    reads: tokio::sync::OnceCell<RedisLink>,
    prefix: String,
    log: Arc<dyn EventLog>,
}

/// What one event means for trending.
enum Counted {
    /// A play of a title: counts once.
    Play { day: String, title: String },
    /// A profile's taste in a title now likes it or not; it counts when a profile starts liking
    /// a title (like or love), as in the SQL read model.
    Taste {
        day: String,
        liker: String,
        title: String,
        likes: bool,
    },
}

fn counted(e: &RecordedEvent) -> Option<Counted> {
    let day = e.meta.recorded_at.format("%Y-%m-%d").to_string();
    match e.stream_type.as_str() {
        "viewing" => match serde_json::from_value::<ViewingEvent>(e.payload.clone()).ok()? {
            ViewingEvent::PlaybackStarted { watched, .. } => Some(Counted::Play {
                day,
                title: watched.title_id,
            }),
            _ => None,
        },
        "taste" => {
            let (title, likes) =
                match serde_json::from_value::<TasteEvent>(e.payload.clone()).ok()? {
                    TasteEvent::TitleRated { title_id, rating } => {
                        (title_id, rating != Rating::Dislike)
                    }
                    TasteEvent::RatingRemoved { title_id } => (title_id, false),
                    _ => return None,
                };
            Some(Counted::Taste {
                day,
                liker: format!("{}|{title}", e.stream_id),
                title,
                likes,
            })
        }
        _ => None,
    }
}

impl RedisTrending {
    pub fn new(url: &str, prefix: &str, log: Arc<dyn EventLog>) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            reads: tokio::sync::OnceCell::new(),
            prefix: prefix.to_string(),
            log,
        })
    }

    fn checkpoint_key(&self) -> String {
        format!("{}:trending:checkpoint", self.prefix)
    }

    /// A hash of the profile–title pairs liked now (`<profile>|<title>`).
    fn liked_key(&self) -> String {
        format!("{}:trending:liked", self.prefix)
    }

    fn day_key(&self, day: &str) -> String {
        format!("{}:trending:{day}", self.prefix)
    }

    /// Applies one batch; answers how many events it passed, or `None` if another replica
    /// moved the checkpoint first (nothing was applied).
    pub async fn step(&self) -> anyhow::Result<Option<usize>> {
        // WATCH needs a connection of its own: it guards only this connection's transaction.
        let mut conn = self.client.get_multiplexed_async_connection().await?;
        let key = self.checkpoint_key();
        let liked_key = self.liked_key();
        redis::cmd("WATCH")
            .arg(&key)
            .arg(&liked_key)
            .query_async::<()>(&mut conn)
            .await?;
        let stored: Option<String> = conn.get(&key).await?;
        let from = match stored.as_deref().and_then(|s| s.split_once(':')) {
            Some((tx, pos)) => Checkpoint {
                tx: tx.parse()?,
                position: pos.parse()?,
            },
            None => Checkpoint::START,
        };
        let events = self.log.read_after(from, BATCH).await?;
        let Some(last) = events.last() else {
            redis::cmd("UNWATCH").query_async::<()>(&mut conn).await?;
            return Ok(Some(0));
        };
        let to = Checkpoint::of(last);
        let counted: Vec<Counted> = events.iter().filter_map(counted).collect();
        // Who liked what before this batch, for the pairs it touches.
        let mut touched: Vec<&str> = counted
            .iter()
            .filter_map(|c| match c {
                Counted::Taste { liker, .. } => Some(liker.as_str()),
                Counted::Play { .. } => None,
            })
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let mut liked: HashMap<&str, bool> = HashMap::new();
        if !touched.is_empty() {
            let before: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&liked_key)
                .arg(&touched)
                .query_async(&mut conn)
                .await?;
            liked.extend(touched.iter().zip(before).map(|(k, v)| (*k, v.is_some())));
        }
        let mut sums: HashMap<(&str, &str), f64> = HashMap::new();
        for c in &counted {
            match c {
                Counted::Play { day, title } => *sums.entry((day, title)).or_default() += 1.0,
                Counted::Taste {
                    day,
                    liker,
                    title,
                    likes,
                } => {
                    let was = liked.insert(liker, *likes).unwrap_or(false);
                    if *likes && !was {
                        *sums.entry((day, title)).or_default() += 1.0;
                    }
                }
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for ((day, title), n) in &sums {
            let day_key = self.day_key(day);
            pipe.zincr(&day_key, *title, *n).ignore();
            pipe.expire(&day_key, KEEP_DAYS * 86_400).ignore();
        }
        for (liker, likes) in &liked {
            if *likes {
                pipe.hset(&liked_key, *liker, 1).ignore();
            } else {
                pipe.hdel(&liked_key, *liker).ignore();
            }
        }
        pipe.set(&key, format!("{}:{}", to.tx, to.position))
            .ignore();
        let applied: Option<()> = pipe.query_async(&mut conn).await?;
        Ok(applied.map(|_| events.len()))
    }

    /// Applies everything readable now.
    pub async fn catch_up(&self) -> anyhow::Result<()> {
        loop {
            match self.step().await? {
                Some(0) => return Ok(()),
                _ => continue,
            }
        }
    }

    /// Follows the log until the task is dropped.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let appended = self.log.appended();
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.catch_up().await {
                    tracing::warn!(error = %e, "trending follower failed; retrying");
                }
                tokio::select! {
                    _ = appended.notified() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                }
            }
        })
    }

    /// Titles by plays and likes over the week up to `now`, most first.
    pub async fn top(&self, now: DateTime<Utc>, n: usize) -> anyhow::Result<Vec<(String, i64)>> {
        let reads = self
            .reads
            .get_or_try_init(|| RedisLink::connect(self.client.clone()))
            .await?;
        // The week's seven days in one round trip.
        let mut pipe = redis::pipe();
        for back in 0..7 {
            let day = (now - Duration::days(back)).format("%Y-%m-%d").to_string();
            pipe.zrevrange_withscores(self.day_key(&day), 0, 199);
        }
        let days: Vec<Vec<(String, f64)>> = reads
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await?;
        let mut sums: HashMap<String, f64> = HashMap::new();
        for (title, score) in days.into_iter().flatten() {
            *sums.entry(title).or_default() += score;
        }
        let mut ranked: Vec<(String, i64)> = sums
            .into_iter()
            .map(|(t, s)| (t, s.round() as i64))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(n);
        Ok(ranked)
    }
}

#[async_trait::async_trait]
impl cinelog_projections::recommendations::TrendingSource for RedisTrending {
    async fn top(&self, now: DateTime<Utc>, n: usize) -> anyhow::Result<Vec<(String, i64)>> {
        RedisTrending::top(self, now, n).await
    }
}
