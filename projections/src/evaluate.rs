//! Offline evaluation of the local recommender: hold out each user's latest interactions, train
//! on the rest, and count how many held-out titles the top 10 finds — next to a popularity
//! baseline measured on the same split.
//!
//! Interactions come from a CSV file (`user,item,value,timestamp`; `value` is a rating on any
//! scale above 1, or a watch fraction from 0 to 1) or from a seeded taste model over the catalog:
//! each synthetic user loves two genres and leans towards one kind and one era; the chance of
//! engaging with a title grows with how well it fits those tastes and with its popularity.

use crate::recommend::{Item, Model};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};

/// One interaction: a user engaged with an item at a time, positively or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub user: String,
    pub item: String,
    pub positive: bool,
    pub timestamp: i64,
}

/// Precision and recall at 10 of the recommender and of the popularity baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub users: usize,
    pub interactions: usize,
    pub held_out: usize,
    pub recommender: (f64, f64),
    pub popularity: (f64, f64),
}

/// Reads `user,item,value,timestamp` lines (a header line is skipped). Ratings above the
/// scale's midpoint (or watch fractions of at least half) are positive.
pub fn parse_csv(text: &str) -> Result<Vec<Interaction>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.to_lowercase().starts_with("user")) {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let [user, item, value, timestamp] = cells[..] else {
            return Err(format!("line {}: want user,item,value,timestamp", n + 1));
        };
        let value: f64 = value
            .parse()
            .map_err(|_| format!("line {}: value {value:?} is not a number", n + 1))?;
        let timestamp: i64 = timestamp
            .parse::<f64>()
            .map(|t| t as i64)
            .map_err(|_| format!("line {}: timestamp {timestamp:?} is not a number", n + 1))?;
        if user.is_empty() || item.is_empty() {
            return Err(format!("line {}: empty user or item", n + 1));
        }
        rows.push(Interaction {
            user: user.to_string(),
            item: item.to_string(),
            positive: if value <= 1.0 {
                value >= 0.5
            } else {
                value >= 3.5
            },
            timestamp,
        });
    }
    if rows.is_empty() {
        return Err("no interactions in the file".into());
    }
    Ok(rows)
}

/// Interactions drawn from the taste model over `catalog`, reproducibly from `seed`.
pub fn generate(catalog: &[Item], users: usize, per_user: usize, seed: u64) -> Vec<Interaction> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut genres: Vec<&String> = catalog.iter().flat_map(|i| &i.genres).collect();
    genres.sort();
    genres.dedup();
    let max_pop = catalog.iter().map(|i| i.popularity).fold(1.0_f64, f64::max);
    let mut out = Vec::new();
    for u in 0..users {
        let loved: Vec<&String> = genres.choose_multiple(&mut rng, 2).copied().collect();
        let kind = if rng.gen_bool(0.5) { "movie" } else { "series" };
        let era: i64 = rng.gen_range(1975..2025);
        let weights: Vec<f64> = catalog
            .iter()
            .map(|i| {
                let fit = i.genres.iter().filter(|g| loved.contains(g)).count() as f64;
                let kind_fit = f64::from(i.kind == kind);
                let era_fit = (1.0 - (i.year - era).abs() as f64 / 25.0).max(0.0);
                (1.6 * fit + 0.5 * kind_fit + 0.5 * era_fit + 0.6 * i.popularity / max_pop).exp()
            })
            .collect();
        let mut chosen = HashSet::new();
        for step in 0..per_user.min(catalog.len()) {
            let total: f64 = catalog
                .iter()
                .zip(&weights)
                .filter(|(i, _)| !chosen.contains(&i.id))
                .map(|(_, w)| w)
                .sum();
            let mut pick = rng.gen_range(0.0..total);
            let item = catalog
                .iter()
                .zip(&weights)
                .filter(|(i, _)| !chosen.contains(&i.id))
                .find(|(_, w)| {
                    pick -= **w;
                    pick <= 0.0
                })
                .map(|(i, _)| i)
                .unwrap_or(&catalog[0]);
            chosen.insert(item.id.clone());
            out.push(Interaction {
                user: format!("u{u}"),
                item: item.id.clone(),
                positive: true,
                timestamp: step as i64,
            });
        }
    }
    out
}

/// Holds out each user's latest `holdout` share of positive interactions, trains on the rest,
/// and measures both rankers at 10.
pub fn evaluate(catalog: &[Item], interactions: &[Interaction], holdout: f64) -> Report {
    let mut by_user: HashMap<&str, Vec<&Interaction>> = HashMap::new();
    for i in interactions.iter().filter(|i| i.positive) {
        by_user.entry(&i.user).or_default().push(i);
    }
    let mut model = Model::default();
    for item in catalog {
        model.items.insert(item.id.clone(), item.clone());
    }
    let mut splits = Vec::new();
    let mut train_counts: HashMap<String, f64> = HashMap::new();
    let mut users: Vec<&str> = by_user.keys().copied().collect();
    users.sort();
    for user in users {
        let mut seen = by_user[user].clone();
        seen.sort_by_key(|i| i.timestamp);
        let test_n = ((seen.len() as f64) * holdout).round() as usize;
        if seen.len() < 3 || test_n == 0 {
            continue;
        }
        let (train, test) = seen.split_at(seen.len() - test_n);
        let train: Vec<String> = train.iter().map(|i| i.item.clone()).collect();
        let test: HashSet<String> = test.iter().map(|i| i.item.clone()).collect();
        for t in &train {
            *train_counts.entry(t.clone()).or_default() += 1.0;
            // Items the catalog does not know still take part, without content.
            model.items.entry(t.clone()).or_insert_with(|| Item {
                id: t.clone(),
                name: t.clone(),
                genres: vec![],
                kind: String::new(),
                year: 0,
                maturity_rank: 0,
                popularity: 0.0,
            });
        }
        model.add_profile(&train);
        splits.push((train, test));
    }
    for t in splits.iter().flat_map(|(_, test)| test) {
        model.items.entry(t.clone()).or_insert_with(|| Item {
            id: t.clone(),
            name: t.clone(),
            genres: vec![],
            kind: String::new(),
            year: 0,
            maturity_rank: 0,
            popularity: 0.0,
        });
    }
    // The baseline ranks by popularity among the training interactions.
    let mut baseline = model.clone();
    for item in baseline.items.values_mut() {
        item.popularity = train_counts.get(&item.id).copied().unwrap_or(0.0);
    }
    let (mut rec, mut pop) = ((0.0, 0.0), (0.0, 0.0));
    let mut held_out = 0;
    for (train, test) in &splits {
        let exclude: HashSet<String> = train.iter().cloned().collect();
        let history: Vec<(String, f64)> = train.iter().map(|t| (t.clone(), 1.0)).collect();
        let score = |ranked: Vec<(String, f64)>| {
            let hits = ranked.iter().filter(|(id, _)| test.contains(id)).count() as f64;
            (hits / 10.0, hits / test.len() as f64)
        };
        let r = score(model.personal(&history, &exclude, i64::MAX, 10));
        let p = score(baseline.popular(&exclude, i64::MAX, 10));
        rec = (rec.0 + r.0, rec.1 + r.1);
        pop = (pop.0 + p.0, pop.1 + p.1);
        held_out += test.len();
    }
    let n = splits.len().max(1) as f64;
    Report {
        users: splits.len(),
        interactions: interactions.len(),
        held_out,
        recommender: (rec.0 / n, rec.1 / n),
        popularity: (pop.0 / n, pop.1 / n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reads_ratings_and_fractions_and_names_bad_lines() {
        let rows =
            parse_csv("user,item,value,timestamp\na,x,5,1\na,y,0.2,2\nb,unknown-item,0.9,3\n")
                .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].positive && !rows[1].positive && rows[2].positive);
        assert_eq!(
            parse_csv("a,x,5\n").unwrap_err(),
            "line 1: want user,item,value,timestamp"
        );
        assert!(parse_csv("a,x,lots,1").unwrap_err().contains("line 1"));
        assert!(parse_csv("").is_err());
    }

    #[test]
    fn the_same_seed_makes_the_same_data() {
        let items: Vec<Item> = (0..20)
            .map(|i| Item {
                id: format!("t{i}"),
                name: format!("T{i}"),
                genres: vec![["A", "B", "C", "D"][i % 4].to_string()],
                kind: "movie".into(),
                year: 1990 + i as i64,
                maturity_rank: 0,
                popularity: i as f64,
            })
            .collect();
        assert_eq!(generate(&items, 5, 6, 7), generate(&items, 5, 6, 7));
        assert_ne!(generate(&items, 5, 6, 7), generate(&items, 5, 6, 8));
    }
}
