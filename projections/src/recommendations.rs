//! A profile's recommendation rows, assembled from the engagement and watching read models:
//! "Because you liked X" (or loved) for its two latest likes, top picks (optionally re-ranked by an LLM),
//! trending now, and popular titles. Only titles within the profile's rating appear.

use crate::catalog::{self, TitleCard};
use crate::db::ReadDb;
use crate::recommend::{ContentNeighbours, Item, Model};
use crate::{engagement, watching};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use cinelog_domain::taste::Rating;
use cinelog_domain::values::Maturity;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;

/// Titles per row.
const ROW_LEN: usize = 12;
/// Candidates sent to the re-ranker.
const RERANK_CANDIDATES: usize = 20;
/// Titles of a profile's history the model looks at.
const SEEDS: usize = 30;
/// Profiles whose latest rows are kept.
const KEPT_ANSWERS: u64 = 10_000;
/// How long kept rows may serve at most: trending kept in Redis moves on its own follower.
const ANSWER_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// A title offered to the re-ranker.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub genres: Vec<String>,
}

/// Re-orders top picks for a profile (an LLM, when one is configured).
#[async_trait]
pub trait Reranker: Send + Sync {
    /// The candidates' ids in a better order, each with a reason when there is one.
    async fn rerank(
        &self,
        profile: &str,
        history: &[String],
        candidates: &[Candidate],
    ) -> Result<Vec<(String, Option<String>)>, String>;
}

/// Titles trending now, kept outside the read database (Redis).
#[async_trait]
pub trait TrendingSource: Send + Sync {
    /// The `n` titles with the most plays and likes over the week up to `now`, most first.
    async fn top(&self, now: DateTime<Utc>, n: usize) -> anyhow::Result<Vec<(String, i64)>>;
}

/// A recommended title.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecommendedTitle {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub title: TitleCard,
    /// Why this title, when there is more to say than the row's reason.
    pub reason: Option<String>,
}

/// One row of recommendations.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecommendationRow {
    /// because_you_liked, top_picks, trending or popular.
    pub kind: String,
    /// The row's reason, for people: "Because you liked X", "Top picks for Sam", "Trending now".
    pub reason: String,
    pub items: Vec<RecommendedTitle>,
}

/// A profile's rows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Recommendations {
    pub rows: Vec<RecommendationRow>,
    /// Whether the top picks were re-ordered by the LLM re-ranker.
    pub reranked: bool,
}

/// Assembles recommendation rows.
#[derive(Clone, Default)]
pub struct Recommender {
    /// Re-ranks top picks, when configured.
    pub reranker: Option<Arc<dyn Reranker>>,
    /// Trending from Redis, when configured; else from the read database.
    pub trending: Option<Arc<dyn TrendingSource>>,
    /// The catalog as last read, at its stamp, with the content neighbours worked out on it.
    pub catalog: Arc<Mutex<Option<KnownCatalog>>>,
    /// Each profile's latest rows, with what they were worked out from.
    pub answers: Answers,
}

/// Profiles' rows kept until anything they were worked out from moves: the engagement and
/// watching read models (the profile's taste, everyone's co-engagement, trending), the
/// catalog, the day, or the profile's name and rating. Not used with a re-ranker.
#[derive(Clone)]
pub struct Answers(moka::sync::Cache<String, (String, Arc<Recommendations>)>);

impl Default for Answers {
    fn default() -> Self {
        Answers(
            moka::sync::Cache::builder()
                .max_capacity(KEPT_ANSWERS)
                .time_to_live(ANSWER_TTL)
                .build(),
        )
    }
}

/// Where the read models the rows come from stand: the engagement and watching checkpoints and
/// the catalog's stamp.
async fn read_models_at(db: &ReadDb) -> anyhow::Result<String> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT name, ck_position FROM projection_state WHERE active = 1 AND name IN ($1, $2) ORDER BY name",
    )
    .bind(engagement::NAME)
    .bind(watching::NAME)
    .fetch_all(&db.pool)
    .await?;
    let mut at: Vec<String> = rows
        .iter()
        .map(|r| format!("{}={}", r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
    at.push(format!("catalog={}", catalog::stamp(db).await?));
    Ok(at.join(","))
}

/// The recommender's view of the catalog at one catalog stamp.
#[derive(Clone)]
pub struct KnownCatalog {
    stamp: i64,
    items: Arc<HashMap<String, Item>>,
    near: Arc<ContentNeighbours>,
}

impl Recommender {
    /// The catalog's titles and their content neighbours, read again only when the catalog
    /// changed (its stamp moved).
    async fn catalog(&self, db: &ReadDb) -> anyhow::Result<KnownCatalog> {
        let stamp = catalog::stamp(db).await?;
        let known = self.catalog.lock().ok().and_then(|k| k.clone());
        if let Some(known) = known.filter(|k| k.stamp == stamp) {
            return Ok(known);
        }
        tracing::debug!(stamp, "reading the catalog for recommendations");
        let fresh = KnownCatalog {
            stamp,
            items: Arc::new(engagement::recommendable(db).await?),
            near: Arc::default(),
        };
        if let Ok(mut known) = self.catalog.lock() {
            *known = Some(fresh.clone());
        }
        Ok(fresh)
    }
}

/// What the rows are built from: a profile's history and the model around it.
struct Taste {
    /// Titles rated like or love, most recent first, with the rating.
    liked: Vec<(String, Rating)>,
    history: Vec<(String, f64)>,
    seeds: Vec<String>,
    exclude: HashSet<String>,
    model: Model,
    max_rank: i64,
}

impl Taste {
    async fn of(
        db: &ReadDb,
        known: KnownCatalog,
        profile_id: &str,
        ceiling: Maturity,
    ) -> anyhow::Result<Taste> {
        let rated = engagement::ratings(db, profile_id).await?;
        let played = engagement::played(db, profile_id).await?;
        let finished = watching::history(db, profile_id)
            .await?
            .into_iter()
            .filter(|w| w.finished && w.episode_id.is_none())
            .map(|w| w.title_id);
        let liked = rated
            .iter()
            .filter(|(_, r, _)| *r != Rating::Dislike)
            .map(|(t, r, _)| (t.clone(), *r))
            .collect();
        let mut history: Vec<(String, f64)> = rated
            .iter()
            .map(|(t, r, _)| (t.clone(), r.weight()))
            .collect();
        for title in played {
            if !rated.iter().any(|(t, _, _)| *t == title) {
                history.push((title, 0.5));
            }
        }
        // The most recent part of the history is what the picks are scored against, so a
        // profile with hundreds of ratings costs no more than one with a few dozen.
        history.truncate(SEEDS);
        let seeds: Vec<String> = history.iter().map(|(t, _)| t.clone()).collect();
        Ok(Taste {
            model: engagement::model(db, &seeds, known.items, known.near).await?,
            exclude: rated
                .into_iter()
                .map(|(t, _, _)| t)
                .chain(finished)
                .collect(),
            liked,
            history,
            seeds,
            max_rank: ceiling.rank(),
        })
    }

    /// Whether the title is in the model and within the profile's rating.
    fn allowed(&self, id: &str) -> bool {
        self.model
            .items
            .get(id)
            .is_some_and(|i| i.maturity_rank <= self.max_rank)
    }
}

async fn plain_row(
    db: &ReadDb,
    kind: &str,
    reason: String,
    ids: Vec<String>,
    ceiling: Maturity,
) -> anyhow::Result<RecommendationRow> {
    let items = catalog::visible_cards(db, &ids, ceiling)
        .await?
        .into_iter()
        .map(|title| RecommendedTitle {
            title,
            reason: None,
        })
        .collect();
    Ok(RecommendationRow {
        kind: kind.into(),
        reason,
        items,
    })
}

impl Recommender {
    /// The rows for a profile named `name` whose rating ceiling is `ceiling`: the kept ones
    /// while nothing they were worked out from has moved, else worked out again.
    pub async fn rows(
        &self,
        db: &ReadDb,
        profile_id: &str,
        name: &str,
        ceiling: Maturity,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Recommendations> {
        // With a re-ranker, each answer asks it again: its order is its own, and its failure
        // must fall back to the local order at once, not be kept.
        if self.reranker.is_some() {
            return self.work_out(db, profile_id, name, ceiling, now).await;
        }
        let from = format!(
            "{}|{}|{}|{name}",
            read_models_at(db).await?,
            now.format("%Y-%m-%d"),
            ceiling.as_str()
        );
        if let Some((kept_from, kept)) = self.answers.0.get(profile_id)
            && kept_from == from
        {
            return Ok((*kept).clone());
        }
        let fresh = self.work_out(db, profile_id, name, ceiling, now).await?;
        self.answers
            .0
            .insert(profile_id.to_string(), (from, Arc::new(fresh.clone())));
        Ok(fresh)
    }

    async fn work_out(
        &self,
        db: &ReadDb,
        profile_id: &str,
        name: &str,
        ceiling: Maturity,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Recommendations> {
        let known = self.catalog(db).await?;
        let taste = Taste::of(db, known, profile_id, ceiling).await?;
        let mut rows = Vec::new();
        for (seed, rating) in taste.liked.iter().filter(|(s, _)| taste.allowed(s)).take(2) {
            let picks = taste
                .model
                .like(seed, &taste.exclude, taste.max_rank, ROW_LEN);
            if !picks.is_empty() {
                let verb = if *rating == Rating::Love {
                    "loved"
                } else {
                    "liked"
                };
                let reason = format!("Because you {verb} {}", taste.model.items[seed].name);
                let ids = picks.into_iter().map(|(id, _)| id).collect();
                rows.push(plain_row(db, "because_you_liked", reason, ids, ceiling).await?);
            }
        }
        let mut reranked = false;
        if !taste.history.is_empty() {
            let (row, by_llm) = self.top_picks(db, &taste, name, ceiling).await?;
            rows.push(row);
            reranked = by_llm;
        }
        let trending: Vec<String> = self
            .trending(db, now)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !taste.exclude.contains(id) && taste.allowed(id))
            .take(ROW_LEN)
            .collect();
        if !trending.is_empty() {
            let reason = "Trending now".to_string();
            rows.push(plain_row(db, "trending", reason, trending, ceiling).await?);
        }
        let popular = taste.model.popular(&taste.exclude, taste.max_rank, ROW_LEN);
        let ids = popular.into_iter().map(|(id, _)| id).collect();
        let reason = "Popular on Cinelog".to_string();
        rows.push(plain_row(db, "popular", reason, ids, ceiling).await?);
        Ok(Recommendations { rows, reranked })
    }

    /// The personal row, re-ranked when a re-ranker is configured and answers; and whether it was.
    async fn top_picks(
        &self,
        db: &ReadDb,
        taste: &Taste,
        name: &str,
        ceiling: Maturity,
    ) -> anyhow::Result<(RecommendationRow, bool)> {
        let picks = taste.model.personal(
            &taste.history,
            &taste.exclude,
            taste.max_rank,
            RERANK_CANDIDATES,
        );
        let mut ordered: Vec<(String, Option<String>)> =
            picks.into_iter().map(|(id, _)| (id, None)).collect();
        let mut reranked = false;
        if let Some(reranker) = self.reranker.as_ref().filter(|_| ordered.len() > 1) {
            let item = |id: &String| taste.model.items.get(id);
            let candidates: Vec<Candidate> = ordered
                .iter()
                .filter_map(|(id, _)| item(id))
                .map(|i| Candidate {
                    id: i.id.clone(),
                    name: i.name.clone(),
                    genres: i.genres.clone(),
                })
                .collect();
            let recent: Vec<String> = taste
                .seeds
                .iter()
                .filter_map(item)
                .map(|i| i.name.clone())
                .take(10)
                .collect();
            match reranker.rerank(name, &recent, &candidates).await {
                Ok(better) => {
                    ordered = better;
                    reranked = true;
                }
                Err(why) => tracing::warn!(%why, "re-ranking failed; keeping the local order"),
            }
        }
        ordered.truncate(ROW_LEN);
        let ids: Vec<String> = ordered.iter().map(|(id, _)| id.clone()).collect();
        let mut reasons: HashMap<String, Option<String>> = ordered.into_iter().collect();
        let items = catalog::visible_cards(db, &ids, ceiling)
            .await?
            .into_iter()
            .map(|title| RecommendedTitle {
                reason: reasons.remove(&title.id).flatten(),
                title,
            })
            .collect();
        let row = RecommendationRow {
            kind: "top_picks".into(),
            reason: format!("Top picks for {name}"),
            items,
        };
        Ok((row, reranked))
    }

    /// Trending titles: from Redis when configured and answering, else from the read database.
    async fn trending(
        &self,
        db: &ReadDb,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(String, i64)>> {
        if let Some(redis) = &self.trending {
            match redis.top(now, 100).await {
                Ok(top) => return Ok(top),
                Err(e) => {
                    tracing::warn!(error = %e, "trending unavailable in Redis; reading it from SQL")
                }
            }
        }
        let since = (now - Duration::days(6)).format("%Y-%m-%d").to_string();
        engagement::trending(db, &since, 100).await
    }
}
