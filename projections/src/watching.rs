//! How far each profile got in each title (and episode): resume positions, continue watching
//! and watch history. A title counts as watched at 90% of its length.

use crate::db::ReadDb;
use crate::runtime::{Projection, Tables};
use async_trait::async_trait;
use cinelog_domain::envelope::format_time;
use cinelog_domain::viewing::{Viewing, ViewingEvent, Watched};
use cinelog_domain::{Decider, RecordedEvent};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

pub struct WatchingProjection;

pub const NAME: &str = "watching";

/// Fraction of a title's length after which it counts as watched.
pub const WATCHED_AT: f64 = 0.9;

#[async_trait]
impl Projection for WatchingProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [&'static str] {
        &["viewing"]
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "watch",
            "profile_id TEXT NOT NULL, title_id TEXT NOT NULL, episode_key TEXT NOT NULL, position_secs DOUBLE PRECISION NOT NULL,
             duration_secs DOUBLE PRECISION NOT NULL, finished BIGINT NOT NULL, updated_at TEXT NOT NULL, updated_position BIGINT NOT NULL,
             PRIMARY KEY (profile_id, title_id, episode_key)",
        )]
    }

    fn analytics_views(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "watch",
            "SELECT profile_id, title_id, episode_key, position_secs, duration_secs, finished = 1 AS finished, updated_at::timestamptz AS updated_at FROM watch",
        )]
    }

    fn indexes(&self) -> &'static [&'static str] {
        &["CREATE INDEX watch_recent_{g} ON {watch} (profile_id, updated_position)"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &RecordedEvent,
    ) -> anyhow::Result<()> {
        if e.stream_type != Viewing::STREAM_TYPE {
            return Ok(());
        }
        let (watched, position, at): (Watched, f64, _) =
            match serde_json::from_value::<ViewingEvent>(e.payload.clone())? {
                ViewingEvent::PlaybackProgressed {
                    watched,
                    position_secs,
                    at,
                    ..
                }
                | ViewingEvent::PlaybackStopped {
                    watched,
                    position_secs,
                    at,
                    ..
                } => (watched, position_secs, at),
                ViewingEvent::PlaybackStarted { .. } => return Ok(()),
            };
        let finished =
            watched.duration_secs > 0.0 && position >= WATCHED_AT * watched.duration_secs;
        sqlx::query(&format!(
            "INSERT INTO {} (profile_id, title_id, episode_key, position_secs, duration_secs, finished, updated_at, updated_position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (profile_id, title_id, episode_key) DO UPDATE SET position_secs = excluded.position_secs,
               duration_secs = excluded.duration_secs, finished = excluded.finished, updated_at = excluded.updated_at,
               updated_position = excluded.updated_position",
            t.name("watch")
        ))
        .bind(watched.profile_id.to_string())
        .bind(watched.title_id)
        .bind(watched.episode_id.unwrap_or_default())
        .bind(position)
        .bind(watched.duration_secs)
        .bind(i64::from(finished))
        .bind(format_time(at))
        .bind(e.position)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// One title (or episode) a profile played.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WatchEntry {
    pub title_id: String,
    pub episode_id: Option<String>,
    pub position_secs: f64,
    pub duration_secs: f64,
    pub finished: bool,
    pub updated_at: String,
}

fn entry(r: &sqlx::any::AnyRow) -> WatchEntry {
    let episode: String = r.get(1);
    WatchEntry {
        title_id: r.get(0),
        episode_id: Some(episode).filter(|e| !e.is_empty()),
        position_secs: r.get(2),
        duration_secs: r.get(3),
        finished: r.get::<i64, _>(4) != 0,
        updated_at: r.get(5),
    }
}

const COLUMNS: &str =
    "title_id, episode_key, position_secs, duration_secs, finished, updated_at, updated_position";

/// Per title, the most recently played entry of the profile, most recent first.
pub async fn latest_per_title(db: &ReadDb, profile_id: &str) -> anyhow::Result<Vec<WatchEntry>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM watch w WHERE profile_id = $1
           AND updated_position = (SELECT MAX(updated_position) FROM watch w2 WHERE w2.profile_id = w.profile_id AND w2.title_id = w.title_id)
         ORDER BY updated_position DESC LIMIT 50"
    ))
    .bind(profile_id.to_string())
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(entry).collect())
}

/// Everything the profile played, most recent first.
pub async fn history(db: &ReadDb, profile_id: &str) -> anyhow::Result<Vec<WatchEntry>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM watch WHERE profile_id = $1 ORDER BY updated_position DESC LIMIT 200"
    ))
    .bind(profile_id.to_string())
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(entry).collect())
}

/// Where the profile left a title (or episode); 0 if never played or watched to the end.
pub async fn resume_position(
    db: &ReadDb,
    profile_id: &str,
    title_id: &str,
    episode_id: Option<&str>,
) -> anyhow::Result<f64> {
    let row = sqlx::query(
        "SELECT position_secs, finished FROM watch WHERE profile_id = $1 AND title_id = $2 AND episode_key = $3",
    )
    .bind(profile_id.to_string())
    .bind(title_id.to_string())
    .bind(episode_id.unwrap_or("").to_string())
    .fetch_optional(&db.pool)
    .await?;
    Ok(match row {
        Some(r) if r.get::<i64, _>(1) == 0 => r.get(0),
        _ => 0.0,
    })
}

/// A title to carry on with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContinueItem {
    #[schema(value_type = Object)]
    pub title: crate::catalog::TitleCard,
    /// For series: the episode to play (the next one once an episode is finished).
    pub episode_id: Option<String>,
    pub position_secs: f64,
    pub duration_secs: f64,
    pub updated_at: String,
}

/// The episode after `episode` in the title, if any.
fn next_episode(details: &crate::catalog::TitleDetails, episode: &str) -> Option<String> {
    let all: Vec<String> = details
        .seasons
        .iter()
        .flat_map(|s| {
            s.episodes
                .iter()
                .map(move |e| cinelog_domain::title::episode_id(s.number, e.number))
        })
        .collect();
    let i = all.iter().position(|e| e == episode)?;
    all.get(i + 1).cloned()
}

/// What the profile is part-way through, latest first: titles with a position, and series
/// whose last episode was finished with the next one to play. Only titles the profile may see
/// (its rating may have been lowered since).
pub async fn continue_watching(
    db: &ReadDb,
    profile_id: &str,
    ceiling: cinelog_domain::values::Maturity,
) -> anyhow::Result<Vec<ContinueItem>> {
    use crate::catalog;
    let entries = latest_per_title(db, profile_id).await?;
    let ids: Vec<String> = entries.iter().map(|e| e.title_id.clone()).collect();
    let mut cards = catalog::cards(db, &ids, Some(ceiling)).await?;
    let mut items = Vec::new();
    for entry in entries {
        let Some(card) = cards.remove(&entry.title_id) else {
            continue;
        };
        let (episode_id, position) = match (&entry.episode_id, entry.finished) {
            (_, false) if entry.position_secs > 0.0 => {
                (entry.episode_id.clone(), entry.position_secs)
            }
            // Only a finished episode needs the seasons, to find the next one.
            (Some(done), true) => {
                let next = catalog::details(db, &entry.title_id, Some(ceiling))
                    .await?
                    .and_then(|title| next_episode(&title, done));
                match next {
                    Some(next) => (Some(next), 0.0),
                    None => continue,
                }
            }
            _ => continue,
        };
        items.push(ContinueItem {
            title: card,
            episode_id,
            position_secs: position,
            duration_secs: entry.duration_secs,
            updated_at: entry.updated_at,
        });
    }
    Ok(items)
}

/// What the profile played, most recent first, of the titles it may see now.
pub async fn visible_history(
    db: &ReadDb,
    profile_id: &str,
    ceiling: cinelog_domain::values::Maturity,
) -> anyhow::Result<Vec<WatchEntry>> {
    let mut entries = history(db, profile_id).await?;
    let mut ids: Vec<String> = entries.iter().map(|e| e.title_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let visible = crate::catalog::cards(db, &ids, Some(ceiling)).await?;
    entries.retain(|e| visible.contains_key(&e.title_id));
    Ok(entries)
}
