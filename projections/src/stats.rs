//! The analysts' dashboard: counts per day (signups, plays, watch time, activations, churn)
//! and plays per title per day, kept as the log goes by, so a dashboard never scans the log.
//! Active subscriptions by plan and MRR come from the subscriptions read model.

use crate::db::ReadDb;
use crate::runtime::{Projection, Tables};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use cinelog_domain::RecordedEvent;
use cinelog_domain::plan::PlanId;
use cinelog_domain::subscription::SubscriptionEvent;
use cinelog_domain::user::UserEvent;
use cinelog_domain::viewing::ViewingEvent;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

pub const NAME: &str = "stats";

/// The longest stretch between two reports of one session that still counts as watching.
const MAX_WATCH_STEP_SECS: f64 = 300.0;

/// Daily counters (`daily`), plays per title per day (`title_daily`), and each playback
/// session's last reported position (`watch_positions`), to count watch time once.
pub struct StatsProjection;

/// The counters a day has.
pub const METRICS: [&str; 5] = ["signups", "plays", "watch_ms", "activations", "churned"];

fn day_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

async fn add(
    conn: &mut AnyConnection,
    t: &Tables,
    day: &str,
    metric: &str,
    by: i64,
) -> anyhow::Result<()> {
    let daily = t.name("daily");
    sqlx::query(&format!(
        "INSERT INTO {daily} (day, metric, value) VALUES ($1, $2, $3)
         ON CONFLICT (day, metric) DO UPDATE SET value = {daily}.value + excluded.value"
    ))
    .bind(day.to_string())
    .bind(metric.to_string())
    .bind(by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Watch time a report adds: how far the session moved since its last report, if plausible.
async fn watched(
    conn: &mut AnyConnection,
    t: &Tables,
    session: &str,
    position: f64,
) -> anyhow::Result<f64> {
    let positions = t.name("watch_positions");
    let last: Option<f64> = sqlx::query(&format!(
        "SELECT position_ms FROM {positions} WHERE session_id = $1"
    ))
    .bind(session.to_string())
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| r.get::<i64, _>(0) as f64 / 1000.0);
    sqlx::query(&format!(
        "INSERT INTO {positions} (session_id, position_ms) VALUES ($1, $2)
         ON CONFLICT (session_id) DO UPDATE SET position_ms = excluded.position_ms"
    ))
    .bind(session.to_string())
    .bind((position * 1000.0) as i64)
    .execute(&mut *conn)
    .await?;
    let step = position - last.unwrap_or(0.0);
    Ok(if (0.0..=MAX_WATCH_STEP_SECS).contains(&step) {
        step
    } else {
        0.0
    })
}

#[async_trait]
impl Projection for StatsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [&'static str] {
        &["user", "viewing", "subscription"]
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "daily",
                "day TEXT NOT NULL, metric TEXT NOT NULL, value BIGINT NOT NULL, PRIMARY KEY (day, metric)",
            ),
            (
                "title_daily",
                "day TEXT NOT NULL, title_id TEXT NOT NULL, plays BIGINT NOT NULL, PRIMARY KEY (day, title_id)",
            ),
            (
                "watch_positions",
                "session_id TEXT PRIMARY KEY, position_ms BIGINT NOT NULL",
            ),
        ]
    }

    fn analytics_views(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("daily", "SELECT day::date AS day, metric, value FROM daily"),
            (
                "title_daily",
                "SELECT day::date AS day, title_id, plays FROM title_daily",
            ),
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &RecordedEvent,
    ) -> anyhow::Result<()> {
        let day = day_of(e.meta.recorded_at);
        match e.stream_type.as_str() {
            "user" => {
                if let UserEvent::UserRegistered { .. } =
                    serde_json::from_value::<UserEvent>(e.payload.clone())?
                {
                    add(conn, t, &day, "signups", 1).await?;
                }
            }
            "viewing" => match serde_json::from_value::<ViewingEvent>(e.payload.clone())? {
                ViewingEvent::PlaybackStarted { watched: w, .. } => {
                    add(conn, t, &day, "plays", 1).await?;
                    let titles = t.name("title_daily");
                    sqlx::query(&format!(
                        "INSERT INTO {titles} (day, title_id, plays) VALUES ($1, $2, 1)
                         ON CONFLICT (day, title_id) DO UPDATE SET plays = {titles}.plays + 1"
                    ))
                    .bind(day.clone())
                    .bind(w.title_id)
                    .execute(&mut *conn)
                    .await?;
                }
                ViewingEvent::PlaybackProgressed {
                    session_id,
                    position_secs,
                    ..
                }
                | ViewingEvent::PlaybackStopped {
                    session_id,
                    position_secs,
                    ..
                } => {
                    let secs = watched(conn, t, &session_id.to_string(), position_secs).await?;
                    let ms = (secs * 1000.0).round() as i64;
                    if ms > 0 {
                        add(conn, t, &day, "watch_ms", ms).await?;
                    }
                }
            },
            "subscription" => {
                match serde_json::from_value::<SubscriptionEvent>(e.payload.clone())? {
                    SubscriptionEvent::SubscriptionActivated { .. } => {
                        add(conn, t, &day, "activations", 1).await?;
                    }
                    SubscriptionEvent::SubscriptionCanceled { .. }
                    | SubscriptionEvent::SubscriptionExpired { .. } => {
                        add(conn, t, &day, "churned", 1).await?;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// One day of the dashboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayStats {
    pub day: String,
    pub signups: i64,
    pub plays: i64,
    pub watch_hours: f64,
    pub activations: i64,
    pub churned: i64,
}

/// A title's plays on a day.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TitlePlays {
    pub day: String,
    pub title_id: String,
    pub name: Option<String>,
    pub plays: i64,
}

/// What the dashboard shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dashboard {
    /// Oldest first, every day of the window (zeros included).
    pub days: Vec<DayStats>,
    /// Active (or past-due, still playing) subscriptions per plan.
    pub active_by_plan: BTreeMap<String, i64>,
    /// Monthly recurring revenue of those subscriptions, in minor units.
    pub mrr_minor: i64,
    pub currency: String,
    /// Subscriptions that ended in the window over those that were live in it.
    pub churn_rate: f64,
    /// The most played titles of each day, most played first (at most 5 a day).
    pub top_titles: Vec<TitlePlays>,
}

/// The dashboard for the `days` days up to `now`.
pub async fn dashboard(db: &ReadDb, now: DateTime<Utc>, days: i64) -> anyhow::Result<Dashboard> {
    let first = day_of(now - Duration::days(days - 1));
    let mut by_day: BTreeMap<String, DayStats> = (0..days)
        .map(|i| {
            let day = day_of(now - Duration::days(days - 1 - i));
            (
                day.clone(),
                DayStats {
                    day,
                    signups: 0,
                    plays: 0,
                    watch_hours: 0.0,
                    activations: 0,
                    churned: 0,
                },
            )
        })
        .collect();
    for r in sqlx::query("SELECT day, metric, value FROM daily WHERE day >= $1")
        .bind(first.clone())
        .fetch_all(&db.pool)
        .await?
    {
        let (day, metric, value): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        if let Some(d) = by_day.get_mut(&day) {
            match metric.as_str() {
                "signups" => d.signups = value,
                "plays" => d.plays = value,
                "watch_ms" => d.watch_hours = value as f64 / 3_600_000.0,
                "activations" => d.activations = value,
                "churned" => d.churned = value,
                _ => {}
            }
        }
    }
    let mut active_by_plan = BTreeMap::new();
    let mut mrr_minor = 0;
    for r in sqlx::query(
        "SELECT plan, COUNT(*) FROM subscriptions WHERE status IN ('active', 'past_due') AND plan IS NOT NULL GROUP BY plan",
    )
    .fetch_all(&db.pool)
    .await?
    {
        let (plan, n): (String, i64) = (r.get(0), r.get(1));
        if let Ok(id) = PlanId::parse(&plan) {
            mrr_minor += id.plan().price_minor * n;
        }
        active_by_plan.insert(plan, n);
    }
    let churned: i64 = by_day.values().map(|d| d.churned).sum();
    let active: i64 = active_by_plan.values().sum();
    let churn_rate = if active + churned > 0 {
        churned as f64 / (active + churned) as f64
    } else {
        0.0
    };
    let mut top_titles = Vec::new();
    for r in sqlx::query(
        "SELECT d.day, d.title_id, c.name, d.plays FROM title_daily d LEFT JOIN titles c ON c.title_id = d.title_id
         WHERE d.day >= $1 ORDER BY d.day, d.plays DESC, d.title_id",
    )
    .bind(first)
    .fetch_all(&db.pool)
    .await?
    {
        let day: String = r.get(0);
        if top_titles
            .iter()
            .filter(|t: &&TitlePlays| t.day == day)
            .count()
            < 5
        {
            top_titles.push(TitlePlays {
                day,
                title_id: r.get(1),
                name: r.try_get(2).ok(),
                plays: r.get(3),
            });
        }
    }
    Ok(Dashboard {
        days: by_day.into_values().collect(),
        active_by_plan,
        mrr_minor,
        currency: PlanId::Basic.plan().currency.to_uppercase(),
        churn_rate,
        top_titles,
    })
}
