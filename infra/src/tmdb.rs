//! TMDB: discover, details and genre lists over HTTP, turned into catalog titles. Rate limiting
//! (HTTP 429) is waited out with backoff.

use crate::settings::TmdbSettings;
use anyhow::{Context, bail};
use cinelog_domain::title::{Episode, Kind, Season, TitleInfo};
use cinelog_domain::values::Maturity;
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Attempts per request when TMDB keeps answering 429.
const MAX_ATTEMPTS: u32 = 6;

pub struct TmdbClient {
    http: reqwest::Client,
    settings: TmdbSettings,
    /// First wait after a 429 without `Retry-After`; doubles each time.
    backoff: Duration,
}

impl TmdbClient {
    pub fn new(settings: TmdbSettings) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("an HTTP client with a timeout builds"),
            settings,
            backoff: Duration::from_millis(500),
        }
    }

    /// Shorter waits, for tests against a local server.
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let mut url = format!("{}{path}", self.settings.api_base.trim_end_matches('/'));
        // The values are numbers and plain words; nothing needs escaping.
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{k}={v}"));
        }
        let mut wait = self.backoff;
        for attempt in 1..=MAX_ATTEMPTS {
            let response = self
                .http
                .get(&url)
                .bearer_auth(self.settings.token.expose())
                .send()
                .await
                .with_context(|| format!("TMDB is unreachable at {url}"))?;
            let status = response.status();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS && attempt < MAX_ATTEMPTS {
                let told = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                let pause = told.unwrap_or(wait).min(Duration::from_secs(30));
                tracing::info!(?pause, attempt, "TMDB is rate limiting; waiting");
                tokio::time::sleep(pause).await;
                wait *= 2;
                continue;
            }
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!(
                    "TMDB answered {status} for {path}: {}",
                    body["status_message"].as_str().unwrap_or("no message")
                );
            }
            return Ok(body);
        }
        bail!("TMDB kept rate limiting {path}")
    }

    async fn genres(&self) -> anyhow::Result<HashMap<i64, String>> {
        let mut names = HashMap::new();
        for kind in ["movie", "tv"] {
            let list = self.get(&format!("/genre/{kind}/list"), &[]).await?;
            for g in list["genres"].as_array().into_iter().flatten() {
                if let (Some(id), Some(name)) = (g["id"].as_i64(), g["name"].as_str()) {
                    names.insert(id, name.to_string());
                }
            }
        }
        Ok(names)
    }

    /// The genre names of both kinds, which a page's titles are read with.
    pub async fn genre_names(&self) -> anyhow::Result<HashMap<i64, String>> {
        self.genres().await
    }

    /// One page of popular titles of `kind`, with their details fetched [`DETAILS_AT_ONCE`] at a
    /// time, in the page's order; and the number of pages TMDB has.
    pub async fn page(
        &self,
        kind: Kind,
        page: u32,
        genres: &HashMap<i64, String>,
    ) -> anyhow::Result<(Vec<(String, TitleInfo)>, u64)> {
        if page > MAX_PAGE {
            bail!("TMDB serves at most {MAX_PAGE} pages of a list; ask for {MAX_PAGE} or fewer");
        }
        let path = match kind {
            Kind::Movie => "movie",
            Kind::Series => "tv",
        };
        let found = self
            .get(
                &format!("/discover/{path}"),
                &[
                    ("page", page.to_string()),
                    ("sort_by", "popularity.desc".into()),
                ],
            )
            .await?;
        let items: Vec<&Value> = found["results"].as_array().into_iter().flatten().collect();
        let titles: Vec<Option<(String, TitleInfo)>> = stream::iter(items)
            .map(|item| async move {
                let Some(id) = item["id"].as_i64() else {
                    return Ok(None);
                };
                let details = self.get(&format!("/{path}/{id}"), &[]).await?;
                Ok::<_, anyhow::Error>(
                    title_info(kind, id, item, &details, genres)
                        .map(|info| (format!("tmdb-{path}-{id}"), info)),
                )
            })
            .buffered(DETAILS_AT_ONCE)
            .try_collect()
            .await?;
        let total = found["total_pages"]
            .as_u64()
            .unwrap_or(0)
            .min(u64::from(MAX_PAGE));
        Ok((titles.into_iter().flatten().collect(), total))
    }
}

/// Detail requests in flight at once while reading a page.
pub const DETAILS_AT_ONCE: usize = 8;
/// The last page TMDB's list endpoints serve.
pub const MAX_PAGE: u32 = 500;

/// TMDB gives no certification in these endpoints: adult titles are 18+, horror 16+, family and
/// animation 7+, anything else 13+.
fn maturity(adult: bool, genres: &[String]) -> Maturity {
    let has = |g: &str| genres.iter().any(|x| x == g);
    if adult {
        Maturity::Age18
    } else if has("Horror") {
        Maturity::Age16
    } else if has("Family") || has("Animation") || has("Kids") {
        Maturity::Age7
    } else {
        Maturity::Age13
    }
}

/// TMDB's poster width the catalog shows.
pub const POSTER_SIZE: &str = "w342";
/// TMDB's backdrop width the catalog shows.
pub const BACKDROP_SIZE: &str = "w1280";

/// A TMDB image as this server's URL for it (`/images/tmdb/w342/abc.jpg`): the server
/// fetches it from TMDB once and serves its own copy after that.
fn image(details: &Value, item: &Value, field: &str, size: &str) -> Option<String> {
    let path = details[field].as_str().or_else(|| item[field].as_str())?;
    let file = path.trim_start_matches('/');
    is_image_file(file).then(|| format!("/images/tmdb/{size}/{file}"))
}

/// Whether `file` is an image name TMDB gives (`abc123.jpg`): nothing that could leave the
/// cache folder or the image host's path.
pub fn is_image_file(file: &str) -> bool {
    let (stem, ext) = file.rsplit_once('.').unwrap_or((file, ""));
    !stem.is_empty()
        && stem.len() <= 80
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && matches!(ext, "jpg" | "jpeg" | "png" | "webp")
}

fn title_info(
    kind: Kind,
    id: i64,
    item: &Value,
    details: &Value,
    genre_names: &HashMap<i64, String>,
) -> Option<TitleInfo> {
    let pick = |a: &str, b: &str| {
        details[a]
            .as_str()
            .or_else(|| details[b].as_str())
            .or_else(|| item[a].as_str())
            .or_else(|| item[b].as_str())
            .unwrap_or("")
            .to_string()
    };
    let name = pick("title", "name");
    if name.trim().is_empty() {
        return None;
    }
    let mut genres: Vec<String> = details["genres"]
        .as_array()
        .map(|gs| {
            gs.iter()
                .filter_map(|g| g["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if genres.is_empty() {
        genres = item["genre_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| genre_names.get(&g.as_i64()?).cloned())
            .collect();
    }
    let year = pick("release_date", "first_air_date")
        .get(..4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(0);
    let runtime = details["runtime"]
        .as_u64()
        .or_else(|| details["episode_run_time"].get(0).and_then(Value::as_u64))
        .unwrap_or(0) as u32;
    let seasons = details["seasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let number = s["season_number"].as_u64()? as u32;
            let count = s["episode_count"].as_u64()? as u32;
            (number > 0).then(|| Season {
                number,
                episodes: (1..=count.min(100))
                    .map(|n| Episode {
                        number: n,
                        title: format!("Episode {n}"),
                        runtime_mins: runtime,
                        synopsis: String::new(),
                    })
                    .collect(),
            })
        })
        .collect();
    let adult =
        item["adult"].as_bool().unwrap_or(false) || details["adult"].as_bool().unwrap_or(false);
    let source_kind = if kind == Kind::Movie { "movie" } else { "tv" };
    Some(TitleInfo {
        kind,
        maturity: maturity(adult, &genres),
        name,
        year,
        genres,
        runtime_mins: runtime,
        synopsis: pick("overview", "overview"),
        tagline: details["tagline"].as_str().unwrap_or("").to_string(),
        popularity: item["popularity"]
            .as_f64()
            .or_else(|| details["popularity"].as_f64())
            .unwrap_or(0.0),
        poster: image(details, item, "poster_path", POSTER_SIZE),
        backdrop: image(details, item, "backdrop_path", BACKDROP_SIZE),
        seasons,
        source: format!("tmdb:{source_kind}:{id}"),
    })
}
