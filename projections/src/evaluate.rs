//! Offline evaluation of the local recommender: hold out each user's latest interactions, train
//! on the rest, and count how many held-out titles the top 10 finds — next to a popularity
//! baseline measured on the same split.
//!
//! Interactions come from a CSV file (`user,item,value,timestamp`; `value` is a watch fraction
//! from 0 to 1 when every value of the file is, else a rating on the file's scale) or from a
//! seeded taste model over the catalog:
//! each synthetic user loves two genres and leans towards one kind and one era; the chance of
//! engaging with a title grows with how well it fits those tastes and with its popularity.

use crate::recommend::{Item, Model};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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

/// Reads `user,item,value,timestamp` lines (a header line is skipped). The scale is the file's:
/// if every value lies in 0..=1 they are watch fractions, positive from half; otherwise they
/// are ratings, positive from 70% of the highest value in the file (3.5 of 5, 7 of 10).
pub fn parse_csv(text: &str) -> Result<Vec<Interaction>, String> {
    let mut rows: Vec<(Interaction, f64)> = Vec::new();
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
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("line {}: value {value:?} is not a number from 0 up", n + 1))?;
        let timestamp: i64 = timestamp
            .parse::<f64>()
            .map(|t| t as i64)
            .map_err(|_| format!("line {}: timestamp {timestamp:?} is not a number", n + 1))?;
        if user.is_empty() || item.is_empty() {
            return Err(format!("line {}: empty user or item", n + 1));
        }
        rows.push((
            Interaction {
                user: user.to_string(),
                item: item.to_string(),
                positive: false,
                timestamp,
            },
            value,
        ));
    }
    let top = rows.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    if rows.is_empty() || top == 0.0 {
        return Err("no interactions in the file".into());
    }
    let threshold = if top <= 1.0 { 0.5 } else { 0.7 * top };
    Ok(rows
        .into_iter()
        .map(|(i, value)| Interaction {
            positive: value >= threshold,
            ..i
        })
        .collect())
}

/// An item the catalog does not know: it still takes part, without content.
fn unknown_item(id: &str) -> Item {
    Item {
        id: id.to_string(),
        name: id.to_string(),
        genres: vec![],
        kind: String::new(),
        year: 0,
        maturity_rank: 0,
        popularity: 0.0,
    }
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
    let items = Arc::make_mut(&mut model.items);
    for item in catalog {
        items.insert(item.id.clone(), item.clone());
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
            Arc::make_mut(&mut model.items)
                .entry(t.clone())
                .or_insert_with(|| unknown_item(t));
        }
        model.add_profile(&train);
        splits.push((train, test));
    }
    for t in splits.iter().flat_map(|(_, test)| test) {
        Arc::make_mut(&mut model.items)
            .entry(t.clone())
            .or_insert_with(|| unknown_item(t));
    }
    // The baseline ranks by popularity among the training interactions.
    let mut baseline = model.clone();
    for item in Arc::make_mut(&mut baseline.items).values_mut() {
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
        // A file with a 5 in it rates on 5 stars: 0.9 of them is no like.
        assert!(rows[0].positive && !rows[1].positive && !rows[2].positive);
        assert_eq!(
            parse_csv("a,x,5\n").unwrap_err(),
            "line 1: want user,item,value,timestamp"
        );
        assert!(parse_csv("a,x,lots,1").unwrap_err().contains("line 1"));
        assert!(parse_csv("a,x,-1,1").unwrap_err().contains("line 1"));
        assert!(parse_csv("a,x,NaN,1").unwrap_err().contains("line 1"));
        assert!(parse_csv("").is_err());
        // The scale is the file's: on 1 to 5 stars a 1 is not a like.
        let stars = parse_csv("a,x,1,1\na,y,3,2\na,z,4,3\na,w,5,4\n").unwrap();
        assert_eq!(
            stars.iter().map(|i| i.positive).collect::<Vec<_>>(),
            [false, false, true, true]
        );
        // MovieLens' half stars, up to 5.
        let half = parse_csv("a,x,0.5,1\na,y,1.0,2\na,z,3.5,3\na,w,5.0,4\n").unwrap();
        assert_eq!(
            half.iter().map(|i| i.positive).collect::<Vec<_>>(),
            [false, false, true, true]
        );
        // Out of 10.
        let ten = parse_csv("a,x,5,1\na,y,7,2\na,z,10,3\n").unwrap();
        assert_eq!(
            ten.iter().map(|i| i.positive).collect::<Vec<_>>(),
            [false, true, true]
        );
        // Watch fractions.
        let watched = parse_csv("a,x,0.2,1\na,y,0.5,2\na,z,1,3\n").unwrap();
        assert_eq!(
            watched.iter().map(|i| i.positive).collect::<Vec<_>>(),
            [false, true, true]
        );
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
