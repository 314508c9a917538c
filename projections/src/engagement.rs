//! Ratings, My List, and what the recommender learns from them and from plays: which titles each
//! profile liked or played, how many profiles engaged with each title and with each pair, and
//! plays and likes per day for trending. Kept current event by event, so a like changes
//! recommendations as soon as it is applied, without a batch job.

use crate::db::ReadDb;
use crate::recommend::{ContentNeighbours, Item, Model};
use crate::runtime::{Projection, Tables};
use async_trait::async_trait;
use cinelog_domain::RecordedEvent;
use cinelog_domain::taste::{Rating, TasteEvent};
use cinelog_domain::viewing::ViewingEvent;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use std::sync::Arc;

pub struct EngagementProjection;

pub const NAME: &str = "engagement";

#[async_trait]
impl Projection for EngagementProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [&'static str] {
        &["taste", "viewing"]
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "ratings",
                "profile_id TEXT NOT NULL, title_id TEXT NOT NULL, rating TEXT NOT NULL, updated_position BIGINT NOT NULL, PRIMARY KEY (profile_id, title_id)",
            ),
            (
                "my_list",
                "profile_id TEXT NOT NULL, title_id TEXT NOT NULL, added_position BIGINT NOT NULL, PRIMARY KEY (profile_id, title_id)",
            ),
            (
                "positives",
                "profile_id TEXT NOT NULL, title_id TEXT NOT NULL, liked BIGINT NOT NULL, played BIGINT NOT NULL, updated_position BIGINT NOT NULL, PRIMARY KEY (profile_id, title_id)",
            ),
            (
                "item_counts",
                "title_id TEXT PRIMARY KEY, n BIGINT NOT NULL",
            ),
            (
                "co_counts",
                "title_a TEXT NOT NULL, title_b TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (title_a, title_b)",
            ),
            (
                "trending",
                "day TEXT NOT NULL, title_id TEXT NOT NULL, plays BIGINT NOT NULL, likes BIGINT NOT NULL, PRIMARY KEY (day, title_id)",
            ),
        ]
    }

    fn analytics_views(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "ratings",
                "SELECT profile_id, title_id, rating FROM ratings",
            ),
            ("my_list", "SELECT profile_id, title_id FROM my_list"),
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &RecordedEvent,
    ) -> anyhow::Result<()> {
        let day = e.meta.recorded_at.format("%Y-%m-%d").to_string();
        match e.stream_type.as_str() {
            "taste" => {
                let profile = e.stream_id.as_str();
                match serde_json::from_value::<TasteEvent>(e.payload.clone())? {
                    TasteEvent::TitleRated { title_id, rating } => {
                        sqlx::query(&format!(
                            "INSERT INTO {} (profile_id, title_id, rating, updated_position) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (profile_id, title_id) DO UPDATE SET rating = excluded.rating, updated_position = excluded.updated_position",
                            t.name("ratings")
                        ))
                        .bind(profile.to_string())
                        .bind(title_id.clone())
                        .bind(rating.as_str())
                        .bind(e.position)
                        .execute(&mut *conn)
                        .await?;
                        let liked = rating != Rating::Dislike;
                        set_positive(
                            conn,
                            t,
                            profile,
                            &title_id,
                            Some(liked),
                            None,
                            e.position,
                            &day,
                        )
                        .await?;
                    }
                    TasteEvent::RatingRemoved { title_id } => {
                        sqlx::query(&format!(
                            "DELETE FROM {} WHERE profile_id = $1 AND title_id = $2",
                            t.name("ratings")
                        ))
                        .bind(profile.to_string())
                        .bind(title_id.clone())
                        .execute(&mut *conn)
                        .await?;
                        set_positive(
                            conn,
                            t,
                            profile,
                            &title_id,
                            Some(false),
                            None,
                            e.position,
                            &day,
                        )
                        .await?;
                    }
                    TasteEvent::AddedToList { title_id } => {
                        sqlx::query(&format!(
                            "INSERT INTO {} (profile_id, title_id, added_position) VALUES ($1, $2, $3) ON CONFLICT (profile_id, title_id) DO NOTHING",
                            t.name("my_list")
                        ))
                        .bind(profile.to_string())
                        .bind(title_id)
                        .bind(e.position)
                        .execute(&mut *conn)
                        .await?;
                    }
                    TasteEvent::RemovedFromList { title_id } => {
                        sqlx::query(&format!(
                            "DELETE FROM {} WHERE profile_id = $1 AND title_id = $2",
                            t.name("my_list")
                        ))
                        .bind(profile.to_string())
                        .bind(title_id)
                        .execute(&mut *conn)
                        .await?;
                    }
                }
            }
            "viewing" => {
                if let ViewingEvent::PlaybackStarted { watched, .. } =
                    serde_json::from_value::<ViewingEvent>(e.payload.clone())?
                {
                    let profile = watched.profile_id.to_string();
                    set_positive(
                        conn,
                        t,
                        &profile,
                        &watched.title_id,
                        None,
                        Some(true),
                        e.position,
                        &day,
                    )
                    .await?;
                    bump_trending(conn, t, &day, &watched.title_id, 1, 0).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn bump_trending(
    conn: &mut AnyConnection,
    t: &Tables,
    day: &str,
    title: &str,
    plays: i64,
    likes: i64,
) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {} (day, title_id, plays, likes) VALUES ($1, $2, $3, $4)
         ON CONFLICT (day, title_id) DO UPDATE SET plays = {0}.plays + excluded.plays, likes = {0}.likes + excluded.likes",
        t.name("trending")
    ))
    .bind(day.to_string())
    .bind(title.to_string())
    .bind(plays)
    .bind(likes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Updates whether a profile liked / played a title; when the title starts or stops counting
/// as engaged-with, adjusts its count and its co-counts with the profile's other titles.
#[allow(clippy::too_many_arguments)]
async fn set_positive(
    conn: &mut AnyConnection,
    t: &Tables,
    profile: &str,
    title: &str,
    liked: Option<bool>,
    played: Option<bool>,
    position: i64,
    day: &str,
) -> anyhow::Result<()> {
    let positives = t.name("positives");
    let before: Option<(i64, i64)> = sqlx::query(&format!(
        "SELECT liked, played FROM {positives} WHERE profile_id = $1 AND title_id = $2"
    ))
    .bind(profile.to_string())
    .bind(title.to_string())
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| (r.get(0), r.get(1)));
    let (was_liked, was_played) = before.map_or((false, false), |(l, p)| (l != 0, p != 0));
    let (now_liked, now_played) = (liked.unwrap_or(was_liked), played.unwrap_or(was_played));
    if now_liked && !was_liked {
        bump_trending(conn, t, day, title, 0, 1).await?;
    }
    sqlx::query(&format!(
        "INSERT INTO {positives} (profile_id, title_id, liked, played, updated_position) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (profile_id, title_id) DO UPDATE SET liked = excluded.liked, played = excluded.played, updated_position = excluded.updated_position"
    ))
    .bind(profile.to_string())
    .bind(title.to_string())
    .bind(i64::from(now_liked))
    .bind(i64::from(now_played))
    .bind(position)
    .execute(&mut *conn)
    .await?;
    let (was, now) = (was_liked || was_played, now_liked || now_played);
    if was == now {
        return Ok(());
    }
    let delta: i64 = if now { 1 } else { -1 };
    sqlx::query(&format!(
        "INSERT INTO {} (title_id, n) VALUES ($1, $2) ON CONFLICT (title_id) DO UPDATE SET n = {0}.n + excluded.n",
        t.name("item_counts")
    ))
    .bind(title.to_string())
    .bind(delta)
    .execute(&mut *conn)
    .await?;
    let others: Vec<String> = sqlx::query(&format!(
        "SELECT title_id FROM {positives} WHERE profile_id = $1 AND title_id <> $2 AND (liked = 1 OR played = 1)"
    ))
    .bind(profile.to_string())
    .bind(title.to_string())
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    let co = format!(
        "INSERT INTO {} (title_a, title_b, n) VALUES ($1, $2, $3) ON CONFLICT (title_a, title_b) DO UPDATE SET n = {0}.n + excluded.n",
        t.name("co_counts")
    );
    for other in others {
        for (a, b) in [(title, other.as_str()), (other.as_str(), title)] {
            sqlx::query(&co)
                .bind(a.to_string())
                .bind(b.to_string())
                .bind(delta)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// A profile's ratings by title.
pub async fn ratings(db: &ReadDb, profile_id: &str) -> anyhow::Result<Vec<(String, Rating, i64)>> {
    let rows = sqlx::query("SELECT title_id, rating, updated_position FROM ratings WHERE profile_id = $1 ORDER BY updated_position DESC")
        .bind(profile_id.to_string())
        .fetch_all(&db.pool)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.get(0), Rating::parse(&r.get::<String, _>(1))?, r.get(2))))
        .collect())
}

/// Titles on a profile's list, most recently added first.
pub async fn list(db: &ReadDb, profile_id: &str) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query(
        "SELECT title_id FROM my_list WHERE profile_id = $1 ORDER BY added_position DESC",
    )
    .bind(profile_id.to_string())
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Titles the profile played, most recent first.
pub async fn played(db: &ReadDb, profile_id: &str) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query("SELECT title_id FROM positives WHERE profile_id = $1 AND played = 1 ORDER BY updated_position DESC")
        .bind(profile_id.to_string())
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Titles by plays plus likes on the days from `since` (`YYYY-MM-DD`) on, most first.
pub async fn trending(db: &ReadDb, since: &str, n: i64) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sqlx::query(&format!(
        "SELECT title_id, CAST(SUM(plays + likes) AS BIGINT) AS score FROM trending WHERE day >= $1 GROUP BY title_id ORDER BY score DESC, title_id LIMIT {n}"
    ))
    .bind(since.to_string())
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// The published titles as the recommender sees them.
pub async fn recommendable(db: &ReadDb) -> anyhow::Result<HashMap<String, Item>> {
    let mut items = HashMap::new();
    for r in sqlx::query("SELECT title_id, name, genres, kind, year, maturity_rank, popularity FROM titles WHERE published = 1")
        .fetch_all(&db.pool)
        .await?
    {
        let genres: String = r.get(2);
        let item = Item {
            id: r.get(0),
            name: r.get(1),
            genres: genres.split('|').filter(|g| !g.is_empty()).map(str::to_string).collect(),
            kind: r.get(3),
            year: r.get(4),
            maturity_rank: r.get(5),
            popularity: r.get(6),
        };
        items.insert(item.id.clone(), item);
    }
    Ok(items)
}

/// The recommender's model: the published titles (`items`, read with [`recommendable`]),
/// engagement counts, and the co-counts of `seeds`.
pub async fn model(
    db: &ReadDb,
    seeds: &[String],
    items: Arc<HashMap<String, Item>>,
    near: Arc<ContentNeighbours>,
) -> anyhow::Result<Model> {
    let mut model = Model {
        items,
        near,
        ..Model::default()
    };
    for r in sqlx::query("SELECT title_id, n FROM item_counts WHERE n > 0")
        .fetch_all(&db.pool)
        .await?
    {
        model.counts.insert(r.get(0), r.get::<i64, _>(1) as f64);
    }
    for seed in seeds {
        model.co.insert(seed.clone(), HashMap::new());
    }
    if seeds.is_empty() {
        return Ok(model);
    }
    let params = crate::db::placeholders(seeds.len());
    let sql =
        format!("SELECT title_a, title_b, n FROM co_counts WHERE title_a IN ({params}) AND n > 0");
    let mut query = sqlx::query(&sql);
    for seed in seeds {
        query = query.bind(seed.clone());
    }
    for r in query.fetch_all(&db.pool).await? {
        let seed: String = r.get(0);
        if let Some(neighbours) = model.co.get_mut(&seed) {
            neighbours.insert(r.get(1), r.get::<i64, _>(2) as f64);
        }
    }
    Ok(model)
}

/// A profile's rating of a title.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RatingView {
    pub title_id: String,
    pub rating: String,
}

/// A profile's ratings, latest first, of the titles it may see now (its rating may have been
/// lowered since).
pub async fn visible_ratings(
    db: &ReadDb,
    profile_id: &str,
    ceiling: cinelog_domain::values::Maturity,
) -> anyhow::Result<Vec<RatingView>> {
    let rated = ratings(db, profile_id).await?;
    let ids: Vec<String> = rated.iter().map(|(t, _, _)| t.clone()).collect();
    let visible = crate::catalog::cards(db, &ids, Some(ceiling)).await?;
    Ok(rated
        .into_iter()
        .filter(|(title_id, _, _)| visible.contains_key(title_id))
        .map(|(title_id, r, _)| RatingView {
            title_id,
            rating: r.as_str().into(),
        })
        .collect())
}

/// My List as cards, most recently added first, of the titles the profile may see now.
pub async fn visible_list(
    db: &ReadDb,
    profile_id: &str,
    ceiling: cinelog_domain::values::Maturity,
) -> anyhow::Result<Vec<crate::catalog::TitleCard>> {
    let ids = list(db, profile_id).await?;
    crate::catalog::visible_cards(db, &ids, ceiling).await
}
