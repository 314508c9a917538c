//! The local recommender, as pure functions over a model: item-to-item similarity from
//! co-likes and co-watches (cosine over how many profiles liked or played both), blended with
//! content similarity (genres, kind, era), and popularity for profiles with no history yet.
//! The live read model and the offline evaluation build the same [`Model`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// What the recommender knows of a title.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub name: String,
    pub genres: Vec<String>,
    pub kind: String,
    pub year: i64,
    pub maturity_rank: i64,
    /// The catalog's popularity, used for cold start.
    pub popularity: f64,
}

/// Items, how many profiles engaged with each, and with each pair.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The catalog, shared by every model built while it stays the same.
    pub items: Arc<HashMap<String, Item>>,
    /// Profiles that liked or played the title.
    pub counts: HashMap<String, f64>,
    /// Profiles that liked or played both titles, per title, per other title.
    pub co: HashMap<String, HashMap<String, f64>>,
    /// The titles most alike in content to each title asked about so far.
    pub near: Arc<ContentNeighbours>,
}

/// The [`NEIGHBOURS`] titles most alike in content to a title: worked out on first use (one
/// pass over the catalog) and kept as long as the catalog they were worked out on.
#[derive(Debug, Default)]
pub struct ContentNeighbours(Mutex<HashMap<String, Arc<Vec<String>>>>);

/// Content neighbours kept per title. With the titles co-engaged with a profile's history, they
/// are the only candidates scored, so a request costs the same whatever the catalog's size.
pub const NEIGHBOURS: usize = 100;

/// Weight of content similarity against co-engagement.
const CONTENT: f64 = 0.35;
/// Weight of popularity (normalised to 0..1) in personal scores.
const POPULARITY: f64 = 0.05;

/// Shared genres over all genres of the two (each counted once). Genre lists are a handful
/// long, so this compares in place rather than building sets.
fn jaccard(a: &[String], b: &[String]) -> f64 {
    let first = |xs: &[String], i: usize| !xs[..i].contains(&xs[i]);
    let distinct = |xs: &[String]| (0..xs.len()).filter(|&i| first(xs, i)).count();
    let common = (0..a.len())
        .filter(|&i| first(a, i) && b.contains(&a[i]))
        .count();
    let union = distinct(a) + distinct(b) - common;
    if union == 0 {
        0.0
    } else {
        common as f64 / union as f64
    }
}

impl Model {
    /// Records that one profile engaged with all of `titles` (used to build models offline).
    pub fn add_profile(&mut self, titles: &[String]) {
        for (i, a) in titles.iter().enumerate() {
            *self.counts.entry(a.clone()).or_default() += 1.0;
            for b in titles.iter().skip(i + 1) {
                if a != b {
                    *self
                        .co
                        .entry(a.clone())
                        .or_default()
                        .entry(b.clone())
                        .or_default() += 1.0;
                    *self
                        .co
                        .entry(b.clone())
                        .or_default()
                        .entry(a.clone())
                        .or_default() += 1.0;
                }
            }
        }
    }

    /// Genres, kind and era in common, 0..1.
    pub fn content_similarity(&self, a: &str, b: &str) -> f64 {
        match (self.items.get(a), self.items.get(b)) {
            (Some(x), Some(y)) => {
                let era = (1.0 - (x.year - y.year).abs() as f64 / 30.0).max(0.0);
                0.6 * jaccard(&x.genres, &y.genres) + 0.2 * f64::from(x.kind == y.kind) + 0.2 * era
            }
            _ => 0.0,
        }
    }

    /// Co-engagement cosine, 0..1.
    pub fn co_similarity(&self, a: &str, b: &str) -> f64 {
        let both = self
            .co
            .get(a)
            .and_then(|m| m.get(b))
            .copied()
            .unwrap_or(0.0);
        if both == 0.0 {
            return 0.0;
        }
        let na = self.counts.get(a).copied().unwrap_or(0.0);
        let nb = self.counts.get(b).copied().unwrap_or(0.0);
        both / (na * nb).sqrt().max(1.0)
    }

    pub fn similarity(&self, a: &str, b: &str) -> f64 {
        self.co_similarity(a, b) + CONTENT * self.content_similarity(a, b)
    }

    /// The highest popularity of any title (at least 1), to scale popularity to 0..1.
    fn max_popularity(&self) -> f64 {
        self.items
            .values()
            .map(|i| i.popularity)
            .fold(0.0_f64, f64::max)
            .max(1.0)
    }

    /// The titles most alike in content to `seed`, best first.
    fn near(&self, seed: &str) -> Arc<Vec<String>> {
        let known = self.near.0.lock().ok().and_then(|m| m.get(seed).cloned());
        if let Some(near) = known {
            return near;
        }
        let mut scored: Vec<(String, f64)> = self
            .items
            .values()
            .filter(|i| i.id != seed)
            .map(|i| (i.id.clone(), self.content_similarity(seed, &i.id)))
            .collect();
        let near: Arc<Vec<String>> = Arc::new(
            best(&mut scored, NEIGHBOURS)
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        );
        if let Ok(mut all) = self.near.0.lock() {
            all.insert(seed.to_string(), near.clone());
        }
        near
    }

    /// The titles worth scoring for these seeds: those co-engaged with them and those most
    /// alike in content, that a viewer may be offered.
    fn neighbourhood<'a>(
        &'a self,
        seeds: impl Iterator<Item = &'a str>,
        exclude: &HashSet<String>,
        max_rank: i64,
    ) -> Vec<&'a Item> {
        let mut ids: HashSet<String> = HashSet::new();
        for seed in seeds {
            if let Some(co) = self.co.get(seed) {
                ids.extend(co.keys().cloned());
            }
            ids.extend(self.near(seed).iter().cloned());
        }
        ids.iter()
            .filter_map(|id| self.items.get(id))
            .filter(|i| i.maturity_rank <= max_rank && !exclude.contains(&i.id))
            .collect()
    }

    /// Titles a viewer may be offered: known, within the rating, not excluded.
    fn candidates<'a>(
        &'a self,
        exclude: &'a HashSet<String>,
        max_rank: i64,
    ) -> impl Iterator<Item = &'a Item> + 'a {
        self.items
            .values()
            .filter(move |i| i.maturity_rank <= max_rank && !exclude.contains(&i.id))
    }

    /// Personal picks: similarity to the weighted history (likes, loves, plays; dislikes count
    /// against), plus a little popularity. Best first.
    pub fn personal(
        &self,
        history: &[(String, f64)],
        exclude: &HashSet<String>,
        max_rank: i64,
        n: usize,
    ) -> Vec<(String, f64)> {
        let max_popularity = self.max_popularity();
        let seeds = history.iter().map(|(seed, _)| seed.as_str());
        let mut scored: Vec<(String, f64)> = self
            .neighbourhood(seeds, exclude, max_rank)
            .into_iter()
            .map(|item| {
                let taste: f64 = history
                    .iter()
                    .map(|(seed, w)| w * self.similarity(seed, &item.id))
                    .sum();
                (
                    item.id.clone(),
                    taste + POPULARITY * item.popularity / max_popularity,
                )
            })
            .collect();
        best(&mut scored, n)
    }

    /// The titles most like one title.
    pub fn like(
        &self,
        seed: &str,
        exclude: &HashSet<String>,
        max_rank: i64,
        n: usize,
    ) -> Vec<(String, f64)> {
        let mut scored: Vec<(String, f64)> = self
            .neighbourhood(std::iter::once(seed), exclude, max_rank)
            .into_iter()
            .filter(|i| i.id != seed)
            .map(|i| (i.id.clone(), self.similarity(seed, &i.id)))
            .filter(|(_, s)| *s > 0.0)
            .collect();
        best(&mut scored, n)
    }

    /// The most popular titles by the catalog's measure (the cold-start baseline).
    pub fn popular(
        &self,
        exclude: &HashSet<String>,
        max_rank: i64,
        n: usize,
    ) -> Vec<(String, f64)> {
        let mut scored: Vec<(String, f64)> = self
            .candidates(exclude, max_rank)
            .map(|i| (i.id.clone(), i.popularity))
            .collect();
        best(&mut scored, n)
    }
}

/// The `n` highest scores, ties broken by id so answers are stable.
fn best(scored: &mut Vec<(String, f64)>, n: usize) -> Vec<(String, f64)> {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    scored.truncate(n);
    std::mem::take(scored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, genres: &[&str], year: i64, rank: i64, popularity: f64) -> Item {
        Item {
            id: id.into(),
            name: id.into(),
            genres: genres.iter().map(|g| g.to_string()).collect(),
            kind: "movie".into(),
            year,
            maturity_rank: rank,
            popularity,
        }
    }

    fn model() -> Model {
        let mut m = Model::default();
        for i in [
            item("space1", &["Science Fiction"], 2000, 2, 10.0),
            item("space2", &["Science Fiction"], 2002, 2, 5.0),
            item("cook", &["Documentary"], 2010, 0, 50.0),
            item("gore", &["Horror"], 2001, 4, 40.0),
            item("romcom", &["Romance", "Comedy"], 2015, 2, 30.0),
        ] {
            Arc::make_mut(&mut m.items).insert(i.id.clone(), i);
        }
        m
    }

    #[test]
    fn co_likes_lead_and_content_fills_in() {
        let mut m = model();
        for _ in 0..5 {
            m.add_profile(&["space1".into(), "romcom".into()]);
        }
        let picks = m.like("space1", &HashSet::new(), 4, 3);
        assert_eq!(
            picks[0].0, "romcom",
            "co-liked beats content alone: {picks:?}"
        );
        assert_eq!(picks[1].0, "space2");
    }

    #[test]
    fn exclusions_and_rating_caps_hold() {
        let m = model();
        let exclude: HashSet<String> = ["space2".to_string()].into();
        let picks = m.personal(&[("space1".into(), 1.0)], &exclude, 2, 10);
        let ids: Vec<&str> = picks.iter().map(|(i, _)| i.as_str()).collect();
        assert!(
            !ids.contains(&"space2") && !ids.contains(&"gore"),
            "{ids:?}"
        );
        assert_eq!(m.popular(&HashSet::new(), 0, 5)[0].0, "cook");
    }
}
