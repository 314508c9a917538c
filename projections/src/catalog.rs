//! The catalog as viewers browse it: published titles with their details, seasons and media,
//! searchable by words and filtered by genre, kind and a profile's maturity ceiling.

use crate::db::ReadDb;
use crate::runtime::{Projection, Tables};
use crate::text::{self, TextIndex};
use async_trait::async_trait;
pub use cinelog_domain::title::plausible_id;
use cinelog_domain::title::{Media, Season, Title, TitleEvent, TitleInfo};
use cinelog_domain::values::Maturity;
use cinelog_domain::{Decider, RecordedEvent};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

pub struct CatalogProjection;

pub const NAME: &str = "catalog";
/// The read model's shape; answers cached under one version are never read under another.
pub const VERSION: i64 = 4;

/// Titles per page.
pub const PAGE_SIZE: i64 = 24;
/// Titles' names and searchable text (name, genres, tagline, synopsis).
const TEXT: TextIndex = TextIndex {
    name: "titles_text",
    table: "titles",
    key: "title_id",
    columns: &["name_words", "search"],
};

#[async_trait]
impl Projection for CatalogProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [&'static str] {
        &["title"]
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "titles",
            "title_id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, year BIGINT NOT NULL, genres TEXT NOT NULL,
             maturity TEXT NOT NULL, maturity_rank BIGINT NOT NULL, runtime_mins BIGINT NOT NULL, synopsis TEXT NOT NULL,
             tagline TEXT NOT NULL, popularity DOUBLE PRECISION NOT NULL, poster TEXT, backdrop TEXT, seasons TEXT NOT NULL, media TEXT,
             published BIGINT NOT NULL, name_words TEXT NOT NULL, search TEXT NOT NULL, updated_position BIGINT NOT NULL",
        )]
    }

    fn analytics_views(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "titles",
            "SELECT title_id, kind, name, year, genres, maturity, runtime_mins, popularity, published = 1 AS published FROM titles",
        )]
    }

    fn indexes(&self) -> &'static [&'static str] {
        &[
            "CREATE INDEX titles_popularity_{g} ON {titles} (published, popularity)",
            "CREATE INDEX titles_updated_{g} ON {titles} (updated_position)",
        ]
    }

    fn text_indexes(&self) -> &'static [TextIndex] {
        &[TEXT]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &RecordedEvent,
    ) -> anyhow::Result<()> {
        if e.stream_type != Title::STREAM_TYPE {
            return Ok(());
        }
        let table = t.name("titles");
        match serde_json::from_value::<TitleEvent>(e.payload.clone())? {
            TitleEvent::TitleImported { info } | TitleEvent::TitleUpdated { info } => {
                upsert(conn, &table, &e.stream_id, &info, e.position).await?;
            }
            TitleEvent::MediaAttached { media } => {
                sqlx::query(&format!(
                    "UPDATE {table} SET media = $1, updated_position = $2 WHERE title_id = $3"
                ))
                .bind(serde_json::to_string(&media)?)
                .bind(e.position)
                .bind(e.stream_id.clone())
                .execute(&mut *conn)
                .await?;
            }
            event @ (TitleEvent::TitlePublished | TitleEvent::TitleWithdrawn) => {
                let published = matches!(event, TitleEvent::TitlePublished);
                sqlx::query(&format!(
                    "UPDATE {table} SET published = $1, updated_position = $2 WHERE title_id = $3"
                ))
                .bind(i64::from(published))
                .bind(e.position)
                .bind(e.stream_id.clone())
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

async fn upsert(
    conn: &mut AnyConnection,
    table: &str,
    id: &str,
    info: &TitleInfo,
    position: i64,
) -> anyhow::Result<()> {
    let search = text::indexed(&format!(
        "{} {} {} {}",
        info.name,
        info.genres.join(" "),
        info.tagline,
        info.synopsis
    ));
    sqlx::query(&format!(
        "INSERT INTO {table} (title_id, kind, name, year, genres, maturity, maturity_rank, runtime_mins, synopsis, tagline, popularity, poster, seasons, media, published, name_words, search, updated_position, backdrop)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, 0, $14, $15, $16, $17)
         ON CONFLICT (title_id) DO UPDATE SET kind = excluded.kind, name = excluded.name, year = excluded.year, genres = excluded.genres,
           maturity = excluded.maturity, maturity_rank = excluded.maturity_rank, runtime_mins = excluded.runtime_mins,
           synopsis = excluded.synopsis, tagline = excluded.tagline, popularity = excluded.popularity, poster = excluded.poster, backdrop = excluded.backdrop,
           seasons = excluded.seasons, name_words = excluded.name_words, search = excluded.search, updated_position = excluded.updated_position"
    ))
    .bind(id.to_string())
    .bind(info.kind.as_str())
    .bind(info.name.clone())
    .bind(i64::from(info.year))
    .bind(format!("|{}|", info.genres.join("|")))
    .bind(info.maturity.as_str())
    .bind(info.maturity.rank())
    .bind(i64::from(info.runtime_mins))
    .bind(info.synopsis.clone())
    .bind(info.tagline.clone())
    .bind(info.popularity)
    .bind(info.poster.clone())
    .bind(serde_json::to_string(&info.seasons)?)
    .bind(text::indexed(&info.name))
    .bind(search)
    .bind(position)
    .bind(info.backdrop.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A title in lists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TitleCard {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub year: i64,
    pub genres: Vec<String>,
    pub maturity_rating: String,
    pub runtime_mins: i64,
    pub synopsis: String,
    pub popularity: f64,
    /// Poster URL (a generated SVG unless the source has one).
    pub poster: String,
    /// Wide picture URL (a generated SVG unless the source has one).
    pub backdrop: String,
    pub playable: bool,
}

/// A title with everything the title page shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TitleDetails {
    #[serde(flatten)]
    pub card: TitleCard,
    pub tagline: String,
    pub seasons: Vec<Season>,
    #[serde(skip)]
    pub media: Option<Media>,
}

const CARD_COLUMNS: &str = "title_id, kind, name, year, genres, maturity, runtime_mins, synopsis, popularity, poster, media, tagline, seasons, backdrop";

fn card(r: &sqlx::any::AnyRow) -> TitleCard {
    let id: String = r.get(0);
    let genres: String = r.get(4);
    let poster: Option<String> = r.get(9);
    let media: Option<String> = r.get(10);
    let backdrop: Option<String> = r.get(13);
    TitleCard {
        poster: poster.unwrap_or_else(|| format!("/posters/{id}.svg")),
        backdrop: backdrop.unwrap_or_else(|| format!("/backdrops/{id}.svg")),
        id,
        kind: r.get(1),
        name: r.get(2),
        year: r.get(3),
        genres: genres
            .split('|')
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
        maturity_rating: r.get(5),
        runtime_mins: r.get(6),
        synopsis: r.get(7),
        popularity: r.get(8),
        playable: media.is_some(),
    }
}

/// What a browse or search asks for.
#[derive(Debug, Clone, Default)]
pub struct TitleQuery {
    pub text: Option<String>,
    pub genre: Option<String>,
    pub kind: Option<String>,
    /// The highest rating the viewer may see.
    pub max_maturity: Option<Maturity>,
    /// 1-based.
    pub page: i64,
}

/// `\`, `%` and `_` taken literally in a LIKE pattern.
fn like_escape(word: &str) -> String {
    word.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The WHERE clause of a query and its bound values; and, for a search, the ORDER BY term that
/// puts titles whose name holds the words first, with its value.
fn filter(db: &ReadDb, q: &TitleQuery) -> (String, Vec<String>, Option<(String, String)>) {
    let mut sql = String::from(" WHERE published = 1");
    let mut binds: Vec<String> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, value: String| {
        binds.push(value);
        sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
    };
    let text = q.text.as_deref().unwrap_or("");
    let words = text::words(text);
    let mut name_first = None;
    if !words.is_empty() {
        let (clause, value) = TEXT.matches(db.sqlite, "search", &words);
        arg(&mut sql, &format!(" AND {clause}"), value);
        name_first = Some(TEXT.matches(db.sqlite, "name_words", &words));
    } else if !text.trim().is_empty() {
        // Typed, but nothing in it can be a word of a title (only symbols or emoji).
        sql.push_str(" AND 1 = 0");
    }
    if let Some(genre) = &q.genre {
        arg(
            &mut sql,
            " AND LOWER(genres) LIKE ? ESCAPE '\\'",
            format!(
                "%|{}|%",
                like_escape(&genre.to_lowercase().replace(|c: char| c.is_control(), ""))
            ),
        );
    }
    if let Some(kind) = &q.kind {
        arg(
            &mut sql,
            " AND kind = ?",
            kind.replace(|c: char| c.is_control(), ""),
        );
    }
    if let Some(max) = q.max_maturity {
        sql.push_str(&format!(" AND maturity_rank <= {}", max.rank()));
    }
    // The ORDER BY value is bound after the filter's.
    let name_first = name_first.map(|(clause, value)| {
        let clause = clause.replace('?', &format!("${}", binds.len() + 1));
        (format!("CASE WHEN {clause} THEN 0 ELSE 1 END, "), value)
    });
    (sql, binds, name_first)
}

/// Published titles matching the query (for a search, those whose name matches first), most
/// popular first; whether there is a next page; and how many match in all.
pub async fn browse(db: &ReadDb, q: &TitleQuery) -> anyhow::Result<(Vec<TitleCard>, bool, i64)> {
    let (filter, binds, name_first) = filter(db, q);
    let page = q.page.max(1);
    let (first, first_value) = name_first.unzip();
    let sql = format!(
        "SELECT {CARD_COLUMNS} FROM titles{filter} ORDER BY {}popularity DESC, title_id LIMIT {} OFFSET {}",
        first.unwrap_or_default(),
        PAGE_SIZE + 1,
        (page - 1).saturating_mul(PAGE_SIZE)
    );
    let mut query = sqlx::query(&sql);
    for b in binds.iter().cloned().chain(first_value) {
        query = query.bind(b);
    }
    let rows = query.fetch_all(&db.pool).await?;
    let count_sql = format!("SELECT COUNT(*) FROM titles{filter}");
    let mut count = sqlx::query(&count_sql);
    for b in binds {
        count = count.bind(b);
    }
    let total: i64 = count.fetch_one(&db.pool).await?.get(0);
    let more = rows.len() as i64 > PAGE_SIZE;
    Ok((
        rows.iter().take(PAGE_SIZE as usize).map(card).collect(),
        more,
        total,
    ))
}

/// Changes whenever the catalog does (in the same transaction): the position of the newest
/// catalog event applied. Cached answers are keyed by it, so none outlives a change.
pub async fn stamp(db: &ReadDb) -> anyhow::Result<i64> {
    Ok(
        sqlx::query("SELECT COALESCE(MAX(updated_position), 0) FROM titles")
            .fetch_one(&db.pool)
            .await?
            .get(0),
    )
}

/// A published title, if the viewer may see it.
pub async fn details(
    db: &ReadDb,
    id: &str,
    max_maturity: Option<Maturity>,
) -> anyhow::Result<Option<TitleDetails>> {
    if !plausible_id(id) {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT {CARD_COLUMNS}, maturity_rank FROM titles WHERE title_id = $1 AND published = 1"
    ))
    .bind(id.to_string())
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    if max_maturity.is_some_and(|max| r.get::<i64, _>(14) > max.rank()) {
        return Ok(None);
    }
    let media: Option<String> = r.get(10);
    let seasons: String = r.get(12);
    Ok(Some(TitleDetails {
        card: card(&r),
        tagline: r.get(11),
        seasons: serde_json::from_str(&seasons)?,
        media: media.map(|m| serde_json::from_str(&m)).transpose()?,
    }))
}

/// Cards of the titles among `ids` that a profile with this ceiling may see, in `ids`' order.
pub async fn visible_cards(
    db: &ReadDb,
    ids: &[String],
    ceiling: Maturity,
) -> anyhow::Result<Vec<TitleCard>> {
    let mut found = cards(db, ids, Some(ceiling)).await?;
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Cards of the published titles among `ids` that the viewer may see, by id, in one query.
pub async fn cards(
    db: &ReadDb,
    ids: &[String],
    max_maturity: Option<Maturity>,
) -> anyhow::Result<HashMap<String, TitleCard>> {
    let ids: Vec<&String> = ids.iter().filter(|id| plausible_id(id)).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let params = crate::db::placeholders(ids.len());
    let ceiling = max_maturity.map_or(i64::MAX, Maturity::rank);
    let sql = format!(
        // `published + 0`: the ids pick the rows. Without it SQLite's planner takes the
        // (published, popularity) index for `published = 1` and walks every published title.
        "SELECT {CARD_COLUMNS} FROM titles WHERE title_id IN ({params}) AND published + 0 = 1 AND maturity_rank <= {ceiling}"
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(id.clone());
    }
    Ok(query
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(card)
        .map(|c| (c.id.clone(), c))
        .collect())
}

/// Every genre of a published title, sorted.
pub async fn genres(db: &ReadDb) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT DISTINCT genres FROM titles WHERE published = 1")
        .fetch_all(&db.pool)
        .await?;
    let mut all: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.get::<String, _>(0)
                .split('|')
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort();
    all.dedup();
    Ok(all)
}

/// Number of titles in the model (published or not).
pub async fn count(db: &ReadDb) -> anyhow::Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) FROM titles")
        .fetch_one(&db.pool)
        .await?
        .get(0))
}
