//! Browsing, the title page and the player.

use crate::api::{Api, Failure, Profile, Session};
use crate::pages::{Screen, authed};
use dioxus::prelude::*;
use serde_json::Value;

/// Seconds between progress reports while playing.
const HEARTBEAT_SECS: u64 = 5;

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// A poster card that opens the title page.
#[component]
fn Card(title: Value, profile: Profile, screen: Signal<Screen>, note: Option<String>) -> Element {
    let id = text(&title, "id");
    let (name, poster) = (text(&title, "name"), text(&title, "poster"));
    let open = (profile.clone(), id.clone());
    rsx! {
        button { class: "card-title", "data-title": "{id}", onclick: move |_| screen.set(Screen::Title(open.0.clone(), open.1.clone())),
            img { src: "{poster}", alt: "{name}", loading: "lazy" }
            span { class: "card-name", "{name}" }
            if let Some(n) = note {
                span { class: "card-note", "{n}" }
            }
        }
    }
}

/// Home: search, continue watching, and a row per genre, all within the profile's rating.
#[component]
pub fn Browse(
    api: Api,
    session: Signal<Option<Session>>,
    profile: Profile,
    screen: Signal<Screen>,
) -> Element {
    let mut search = use_signal(String::new);
    let mut submitted = use_signal(String::new);
    let pid = profile.profile_id.clone();

    let rows_api = api.clone();
    let rows_pid = pid.clone();
    let rows = use_resource(move || {
        let (api, pid) = (rows_api.clone(), rows_pid.clone());
        async move {
            let continuing = authed(&api, session, screen, |t| {
                let (api, pid) = (api.clone(), pid.clone());
                async move { api.continue_watching(&t, &pid).await }
            })
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
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
            (continuing, rows)
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

    let (continuing, rows) = rows().unwrap_or_default();
    let found = results().flatten();
    rsx! {
        div { class: "search",
            input { id: "search", r#type: "search", placeholder: "Titles, genres, stories…", maxlength: "200",
                oninput: move |e| search.set(e.value()),
                onkeydown: move |e| if e.key() == Key::Enter { submitted.set(search()) } }
            button { id: "search-btn", class: "primary", onclick: move |_| submitted.set(search()), "Search" }
        }
        if let Some(page) = found {
            section { class: "row", id: "search-results",
                h2 { "Results for “{submitted}” ({page[\"total\"]})" }
                if items(&page).is_empty() {
                    p { class: "muted", "Nothing matches. Try other words." }
                }
                div { class: "grid",
                    for t in items(&page) {
                        Card { key: "{t[\"id\"]}", title: t.clone(), profile: profile.clone(), screen, note: None }
                    }
                }
            }
        }
        if !continuing.is_empty() {
            section { class: "row", id: "continue-watching",
                h2 { "Continue watching" }
                div { class: "strip",
                    for c in continuing {
                        Card { key: "{c[\"title\"][\"id\"]}", title: c["title"].clone(), profile: profile.clone(), screen,
                            note: Some(match c["episode_id"].as_str() {
                                Some(e) => format!("{} · {}", e.to_uppercase(), clock(c["position_secs"].as_f64().unwrap_or(0.0))),
                                None => format!("Resume at {}", clock(c["position_secs"].as_f64().unwrap_or(0.0))),
                            }) }
                    }
                }
            }
        }
        for (genre, list) in rows {
            section { class: "row", key: "{genre}", "data-genre": "{genre}",
                h2 { "{genre}" }
                div { class: "strip",
                    for t in list {
                        Card { key: "{t[\"id\"]}", title: t.clone(), profile: profile.clone(), screen, note: None }
                    }
                }
            }
        }
    }
}

/// A title: details, and for series its seasons and episodes, each playable.
#[component]
pub fn TitlePage(
    api: Api,
    session: Signal<Option<Session>>,
    profile: Profile,
    title_id: String,
    screen: Signal<Screen>,
) -> Element {
    let pid = profile.profile_id.clone();
    let id = title_id.clone();
    let details = use_resource(move || {
        let (api, pid, id) = (api.clone(), pid.clone(), id.clone());
        async move {
            authed(&api, session, screen, |t| {
                let (api, pid, id) = (api.clone(), pid.clone(), id.clone());
                async move { api.title(&t, &pid, &id).await }
            })
            .await
        }
    });
    let back_profile = profile.clone();
    let back = rsx! { button { id: "back-home", class: "link", onclick: move |_| screen.set(Screen::Home(back_profile.clone())), "← Back" } };
    let Some(answer) = details() else {
        return rsx! { {back} p { class: "muted", "Loading…" } };
    };
    let t = match answer {
        Ok(t) => t,
        Err(f) => {
            let msg = if f.status == 404 {
                "This title is not available for this profile.".to_string()
            } else {
                f.message
            };
            return rsx! { {back} p { id: "title-error", class: "error", role: "alert", "{msg}" } };
        }
    };
    let (name, poster, synopsis) = (text(&t, "name"), text(&t, "poster"), text(&t, "synopsis"));
    let genres: Vec<String> = t["genres"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_string))
        .collect();
    let facts = format!(
        "{} · {} · {} · {} min",
        t["year"],
        text(&t, "maturity_rating"),
        genres.join(", "),
        t["runtime_mins"]
    );
    let playable = t["playable"] == true;
    let seasons = t["seasons"].as_array().cloned().unwrap_or_default();
    let play = move |episode: Option<String>| {
        let (profile, id) = (profile.clone(), title_id.clone());
        move |_| screen.set(Screen::Player(profile.clone(), id.clone(), episode.clone()))
    };
    rsx! {
        {back}
        article { class: "title-page",
            img { class: "poster", src: "{poster}", alt: "{name}" }
            div { class: "title-info",
                h1 { id: "title-name", "{name}" }
                p { class: "muted", "{facts}" }
                if !text(&t, "tagline").is_empty() {
                    p { class: "tagline", "{text(&t, \"tagline\")}" }
                }
                p { "{synopsis}" }
                if playable && seasons.is_empty() {
                    button { id: "play-btn", class: "primary", onclick: play(None), "▶ Play" }
                }
                if !playable {
                    p { class: "muted", "No video for this title yet." }
                }
                for s in seasons {
                    section { class: "season", key: "{s[\"number\"]}",
                        h2 { "Season {s[\"number\"]}" }
                        ol { class: "episodes",
                            for e in s["episodes"].as_array().cloned().unwrap_or_default() {
                                {
                                    let eid = format!("s{}e{}", s["number"], e["number"]);
                                    rsx! {
                                        li { key: "{eid}",
                                            span { class: "ep-title", "{e[\"number\"]}. {text(&e, \"title\")}" }
                                            span { class: "muted", " {e[\"runtime_mins\"]} min" }
                                            if playable {
                                                button { class: "link play-episode", id: "play-{eid}", onclick: play(Some(eid.clone())), "▶ Play" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn playback_problem(f: &Failure) -> String {
    match f.code.as_str() {
        "subscription_required" => "Subscribe to a plan to watch. Open Account to choose one.".into(),
        "stream_limit_reached" => "You're already watching on as many screens as your plan allows. Stop playback on another screen, or upgrade your plan.".into(),
        "maturity_blocked" => "This title is not available for this profile.".into(),
        _ => f.message.clone(),
    }
}

/// The player: hls.js on a video element, resuming where the profile left off, with a quality
/// menu of the plan's renditions; reports progress while playing and when leaving.
#[component]
pub fn PlayerPage(
    api: Api,
    session: Signal<Option<Session>>,
    profile: Profile,
    title_id: String,
    episode_id: Option<String>,
    screen: Signal<Screen>,
) -> Element {
    let mut started = use_signal(|| None::<Value>);
    let mut problem = use_signal(|| None::<String>);
    let mut playing_at = use_signal(String::new);

    let play_api = api.clone();
    let (pid, tid, eid) = (
        profile.profile_id.clone(),
        title_id.clone(),
        episode_id.clone(),
    );
    use_future(move || {
        let (api, pid, tid, eid) = (play_api.clone(), pid.clone(), tid.clone(), eid.clone());
        async move {
            let opened = authed(&api, session, screen, |t| {
                let (api, pid, tid, eid) = (api.clone(), pid.clone(), tid.clone(), eid.clone());
                async move { api.start_playback(&t, &pid, &tid, eid.as_deref()).await }
            })
            .await;
            let s = match opened {
                Ok(s) => s,
                Err(f) => {
                    problem.set(Some(playback_problem(&f)));
                    return;
                }
            };
            started.set(Some(s.clone()));
            let attach = format!(
                r#"const url = {url}; const resume = {resume};
                for (let i = 0; i < 100 && !document.getElementById('player'); i++) await new Promise(r => setTimeout(r, 50));
                const video = document.getElementById('player');
                if (window.cinelogHls) window.cinelogHls.destroy();
                const hls = new Hls({{ startPosition: resume }});
                window.cinelogHls = hls;
                hls.loadSource(url);
                hls.attachMedia(video);
                hls.on(Hls.Events.MANIFEST_PARSED, () => {{ video.muted = true; video.play().catch(() => {{}}); }});
                return true;"#,
                url = Value::String(text(&s, "master_playlist_url")),
                resume = s["resume_position_secs"].as_f64().unwrap_or(0.0),
            );
            let _ = document::eval(&attach).join::<bool>().await;
            let sid = text(&s, "session_id");
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(HEARTBEAT_SECS)).await;
                let now: Value = document::eval(
                    "const v = document.getElementById('player'); const h = window.cinelogHls;
                     const level = h && h.levels && h.levels[h.currentLevel];
                     return { at: v ? v.currentTime : 0, height: level ? level.height : 0 };",
                )
                .join()
                .await
                .unwrap_or_default();
                if let Some(h) = now["height"].as_u64().filter(|h| *h > 0) {
                    playing_at.set(format!("{h}p"));
                }
                let at = now["at"].as_f64().unwrap_or(0.0);
                let _ = authed(&api, session, screen, |t| {
                    let (api, sid) = (api.clone(), sid.clone());
                    async move { api.playback_progress(&t, &sid, at, false).await }
                })
                .await;
            }
        }
    });

    let leave_api = api.clone();
    let back_profile = profile.clone();
    let back_title = title_id.clone();
    let leave = move |_| {
        let (api, profile, title) = (leave_api.clone(), back_profile.clone(), back_title.clone());
        spawn(async move {
            if let Some(s) = started() {
                let at: f64 = document::eval(
                    "const v = document.getElementById('player'); const at = v ? v.currentTime : 0;
                     if (window.cinelogHls) { window.cinelogHls.destroy(); window.cinelogHls = null; }
                     return at;",
                )
                .join()
                .await
                .unwrap_or(0.0);
                let sid = text(&s, "session_id");
                let _ = authed(&api, session, screen, |t| {
                    let (api, sid) = (api.clone(), sid.clone());
                    async move { api.playback_progress(&t, &sid, at, true).await }
                })
                .await;
            }
            screen.set(Screen::Title(profile, title));
        });
    };

    let qualities: Vec<String> = started()
        .and_then(|s| s["qualities"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|q| q.as_str().map(str::to_string))
        .collect();
    let pick_quality = move |e: Event<FormData>| {
        let choice = e.value();
        spawn(async move {
            let height: i64 = choice.trim_end_matches('p').parse().unwrap_or(-1);
            let js = format!(
                "const h = window.cinelogHls; if (!h) return false;
                 h.currentLevel = {height} < 0 ? -1 : h.levels.findIndex(l => l.height === {height}); return true;"
            );
            let _ = document::eval(&js).join::<bool>().await;
        });
    };
    let label = episode_id
        .as_deref()
        .map(|e| format!(" · {}", e.to_uppercase()))
        .unwrap_or_default();
    rsx! {
        section { class: "player",
            button { id: "leave-player", class: "link", onclick: leave, "← Back" }
            if let Some(msg) = problem() {
                p { id: "playback-error", class: "error", role: "alert", "{msg}" }
            } else {
                video { id: "player", controls: true, playsinline: true, muted: true }
                div { class: "player-bar",
                    span { class: "muted", "{title_id}{label}" }
                    label { r#for: "quality", "Quality " }
                    select { id: "quality", onchange: pick_quality,
                        option { value: "auto", "Auto" }
                        for q in qualities {
                            option { key: "{q}", value: "{q}", "{q}" }
                        }
                    }
                    if !playing_at().is_empty() {
                        span { id: "playing-at", class: "muted", "Playing at {playing_at}" }
                    }
                }
            }
        }
    }
}
