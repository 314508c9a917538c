//! The catalogue rows on a profile's home.

use super::card::Card;
use super::{clock, episode_label, text, use_taste_at};
use crate::api::{Api, Profile, Session};
use crate::pages::{Screen, authed};
use dioxus::prelude::*;
use serde_json::Value;
use std::collections::HashMap;

/// How long typing must pause before the search runs.
const SEARCH_DEBOUNCE_MS: u64 = 300;

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Home: search, continue watching, recommendation rows with their reasons, My List, and a row
/// per genre, all within the profile's rating. Any rating or list change reloads it.
#[component]
pub fn Browse(
    api: Api,
    session: Signal<Option<Session>>,
    profile: Profile,
    /// The search showing, from the URL (empty for none).
    query: String,
    screen: Signal<Screen>,
) -> Element {
    // What the field holds; the search itself is the screen's (and so the URL's) query, set
    // a moment after typing stops, at once on Enter.
    let mut search = use_signal(|| query.clone());
    let mut submitted = use_signal(|| query.clone());
    use_effect(use_reactive!(|query| {
        if *submitted.peek() != query {
            submitted.set(query.clone());
        }
        // Back or Forward to another search: the field shows it too.
        if *search.peek() != query {
            search.set(query.clone());
            let js = format!(
                "const f = document.getElementById('search'); if (f) f.value = {}; return true;",
                Value::String(query)
            );
            spawn(async move {
                let _ = document::eval(&js).join::<bool>().await;
            });
        }
    }));
    let mut typed_at = use_signal(|| 0_u64);
    let search_profile = profile.clone();
    let run_search = use_callback(move |q: String| {
        if *submitted.peek() != q {
            screen.set(Screen::Search(search_profile.clone(), q));
        }
    });
    let taste_at = use_taste_at();
    let pid = profile.profile_id.clone();

    let personal_api = api.clone();
    let personal_pid = pid.clone();
    let personal = use_resource(move || {
        let (api, pid) = (personal_api.clone(), personal_pid.clone());
        async move {
            // Read once per visit: a rating given on a card here changes the card, not the
            // rows above it, so the page does not jump; the rows follow on the next visit.
            let at = *taste_at.peek();
            let get = |view: &'static str| {
                let (api, pid) = (api.clone(), pid.clone());
                async move {
                    authed(&api, session, screen, |t| {
                        let (api, pid) = (api.clone(), pid.clone());
                        async move { api.profile_view(&t, &pid, view, at).await }
                    })
                    .await
                    .unwrap_or(Value::Null)
                }
            };
            let continuing = get("continue-watching")
                .await
                .as_array()
                .cloned()
                .unwrap_or_default();
            let recs = get("recommendations").await["rows"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let list = get("list").await.as_array().cloned().unwrap_or_default();
            let ratings: HashMap<String, String> = get("ratings")
                .await
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| (text(r, "title_id"), text(r, "rating")))
                .collect();
            (continuing, recs, list, ratings)
        }
    });

    let rows_api = api.clone();
    let rows_pid = pid.clone();
    let rows = use_resource(move || {
        let (api, pid) = (rows_api.clone(), rows_pid.clone());
        async move {
            let genres: Vec<String> = api
                .genres()
                .await
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect();
            let mut rows = Vec::new();
            for genre in genres {
                let page = authed(&api, session, screen, |t| {
                    let (api, pid, genre) = (api.clone(), pid.clone(), genre.clone());
                    async move { api.titles(&t, &pid, "", &genre).await }
                })
                .await;
                if let Ok(page) = page {
                    let list = items(&page);
                    if !list.is_empty() {
                        rows.push((genre, list));
                    }
                }
            }
            rows
        }
    });

    let search_api = api.clone();
    let search_pid = pid.clone();
    let results = use_resource(move || {
        let (api, pid) = (search_api.clone(), search_pid.clone());
        async move {
            let q = submitted();
            if q.trim().is_empty() {
                return None;
            }
            authed(&api, session, screen, |t| {
                let (api, pid, q) = (api.clone(), pid.clone(), q.clone());
                async move { api.titles(&t, &pid, &q, "").await }
            })
            .await
            .ok()
        }
    });

    let (continuing, recs, list, ratings) = personal().unwrap_or_default();
    let rating = |t: &Value| ratings.get(t["id"].as_str().unwrap_or_default()).cloned();
    let rows = rows().unwrap_or_default();
    let found = results().flatten();
    // The home's featured title: the first of the profile's first row.
    let featured = recs
        .iter()
        .find_map(|r| r["items"].as_array().and_then(|i| i.first()).cloned());
    rsx! {
        div { class: "search",
            input { id: "search", r#type: "search", placeholder: "Titles, genres, stories…", maxlength: "200",
                "aria-label": "Search titles", initial_value: "{query}",
                oninput: move |e| {
                    search.set(e.value());
                    let stamp = typed_at() + 1;
                    typed_at.set(stamp);
                    spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(SEARCH_DEBOUNCE_MS)).await;
                        if *typed_at.peek() == stamp {
                            run_search(search.peek().clone());
                        }
                    });
                },
                onkeydown: move |e| if e.key() == Key::Enter { typed_at += 1; run_search(search()) } }
            button { id: "search-btn", class: "primary", onclick: move |_| { typed_at += 1; run_search(search()) }, "Search" }
        }
        if let (None, Some(f)) = (&found, featured) {
            Hero { title: f, profile: profile.clone(), screen }
        }
        if let Some(page) = found {
            section { class: "row", id: "search-results",
                h2 { "Results for “{submitted}” ({page[\"total\"]})" }
                if items(&page).is_empty() {
                    p { class: "muted", "Nothing matches. Try other words." }
                }
                div { class: "grid",
                    for t in items(&page) {
                        Card { key: "{t[\"id\"]}", api: api.clone(), session, title: t.clone(), profile: profile.clone(), screen, rating: rating(&t), note: None }
                    }
                }
            }
        }
        if !continuing.is_empty() {
            section { class: "row", id: "continue-watching",
                h2 { "Continue watching" }
                div { class: "strip",
                    for c in continuing {
                        Card { key: "{c[\"title\"][\"id\"]}", api: api.clone(), session, title: c["title"].clone(), profile: profile.clone(), screen, rating: rating(&c["title"]),
                            opens: Screen::Player(profile.clone(), text(&c["title"], "id"), c["episode_id"].as_str().map(str::to_string)),
                            progress: {
                                let (at, of) = (c["position_secs"].as_f64().unwrap_or(0.0), c["duration_secs"].as_f64().unwrap_or(0.0));
                                (of > 0.0).then(|| (at / of).clamp(0.0, 1.0))
                            },
                            note: Some(match c["episode_id"].as_str() {
                                Some(e) => format!("{} · {}", episode_label(e), clock(c["position_secs"].as_f64().unwrap_or(0.0))),
                                None => format!("Resume at {}", clock(c["position_secs"].as_f64().unwrap_or(0.0))),
                            }) }
                    }
                }
            }
        }
        for r in recs {
            if r["items"].as_array().is_some_and(|i| !i.is_empty()) {
                section { class: "row recs", key: "{r[\"reason\"]}", "data-row": "{r[\"kind\"]}",
                    h2 { "{text(&r, \"reason\")}" }
                    div { class: "strip",
                        for t in r["items"].as_array().cloned().unwrap_or_default() {
                            Card { key: "{t[\"id\"]}", api: api.clone(), session, title: t.clone(), profile: profile.clone(), screen, rating: rating(&t),
                                note: t["reason"].as_str().map(str::to_string) }
                        }
                    }
                }
            }
        }
        if !list.is_empty() {
            section { class: "row", id: "my-list-row",
                h2 { "My List" }
                div { class: "strip",
                    for t in list {
                        Card { key: "{t[\"id\"]}", api: api.clone(), session, title: t.clone(), profile: profile.clone(), screen, rating: rating(&t), note: None }
                    }
                }
            }
        }
        for (genre, titles) in rows {
            section { class: "row", key: "{genre}", "data-genre": "{genre}",
                h2 { "{genre}" }
                div { class: "strip",
                    for t in titles {
                        Card { key: "{t[\"id\"]}", api: api.clone(), session, title: t.clone(), profile: profile.clone(), screen, rating: rating(&t), note: None }
                    }
                }
            }
        }
    }
}

/// A featured title across the top of home: its picture, name and story, Play and More info.
#[component]
fn Hero(title: Value, profile: Profile, screen: Signal<Screen>) -> Element {
    let (id, name, synopsis) = (
        text(&title, "id"),
        text(&title, "name"),
        text(&title, "synopsis"),
    );
    let art = text(&title, "backdrop");
    let first = (title["kind"] == "series").then(|| "s1e1".to_string());
    let (play_profile, play_id) = (profile.clone(), id.clone());
    let playable = title["playable"] != false;
    rsx! {
        section { id: "hero", class: "hero", "aria-labelledby": "hero-title",
            img { class: "hero-art", src: "{art}", alt: "" }
            div { class: "hero-text",
                h2 { id: "hero-title", "{name}" }
                p { class: "hero-synopsis", "{synopsis}" }
                div { class: "hero-actions",
                    if playable {
                        button { id: "hero-play", class: "primary", onclick: move |_| screen.set(Screen::Player(play_profile.clone(), play_id.clone(), first.clone())), "▶ Play" }
                    }
                    button { id: "hero-info", class: "secondary", onclick: move |_| screen.set(Screen::Title(profile.clone(), id.clone())), "More info" }
                }
            }
        }
    }
}
