//! Browsing, the title page and the player.

use crate::api::{Api, Failure, Profile, Session};
use crate::pages::{Screen, authed};
use dioxus::core::consume_context;
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

/// The position of the viewer's latest rating or list change, shared by every page so reads
/// after a change wait for it.
#[derive(Clone, Copy)]
pub struct TasteAt(pub Signal<i64>);

/// Rates a title, or changes My List, and moves [`TasteAt`] on.
async fn change_taste(
    api: &Api,
    session: Signal<Option<Session>>,
    screen: Signal<Screen>,
    pid: &str,
    title: &str,
    change: TasteChange,
) -> Result<(), Failure> {
    let mut at = use_taste_at();
    let position = authed(api, session, screen, |t| {
        let (api, pid, title, change) = (
            api.clone(),
            pid.to_string(),
            title.to_string(),
            change.clone(),
        );
        async move {
            match change {
                TasteChange::Rate(r) => api.rate(&t, &pid, &title, r.as_deref()).await,
                TasteChange::List(on) => api.set_on_list(&t, &pid, &title, on).await,
            }
        }
    })
    .await?;
    at.set(position);
    Ok(())
}

#[derive(Clone, PartialEq)]
enum TasteChange {
    /// `None` removes the rating.
    Rate(Option<String>),
    List(bool),
}

fn use_taste_at() -> Signal<i64> {
    consume_context::<TasteAt>().0
}

/// A poster card that opens the title page, with like / love / dislike under it.
#[component]
fn Card(
    api: Api,
    session: Signal<Option<Session>>,
    title: Value,
    profile: Profile,
    screen: Signal<Screen>,
    note: Option<String>,
    /// Where the card leads; the title's page unless given (continue watching plays).
    opens: Option<Screen>,
) -> Element {
    let id = text(&title, "id");
    let (name, poster) = (text(&title, "name"), text(&title, "poster"));
    let card_id = id.clone();
    let opens = opens.unwrap_or_else(|| Screen::Title(profile.clone(), id.clone()));
    let mut rated = use_signal(|| None::<String>);
    let rate = move |rating: &'static str| {
        let (api, pid, id) = (api.clone(), profile.profile_id.clone(), id.clone());
        move |_| {
            let (api, pid, id) = (api.clone(), pid.clone(), id.clone());
            spawn(async move {
                if change_taste(
                    &api,
                    session,
                    screen,
                    &pid,
                    &id,
                    TasteChange::Rate(Some(rating.into())),
                )
                .await
                .is_ok()
                {
                    rated.set(Some(rating.into()));
                }
            });
        }
    };
    let current = rated();
    let pressed = |r: &str| {
        if current.as_deref() == Some(r) {
            "taste on"
        } else {
            "taste"
        }
    };
    rsx! {
        div { class: "card-title", "data-title": "{card_id}",
            button { class: "card-open", onclick: move |_| screen.set(opens.clone()),
                img { src: "{poster}", alt: "{name}", loading: "lazy" }
                span { class: "card-name", "{name}" }
                if let Some(n) = note {
                    span { class: "card-note", "{n}" }
                }
            }
            div { class: "card-taste",
                button { class: pressed("dislike"), title: "Not for me", "aria-label": "Dislike {name}", onclick: rate("dislike"), "▼" }
                button { class: pressed("like"), title: "I like this", "aria-label": "Like {name}", onclick: rate("like"), "▲" }
                button { class: pressed("love"), title: "Love this!", "aria-label": "Love {name}", onclick: rate("love"), "♥" }
            }
        }
    }
}

/// Home: search, continue watching, recommendation rows with their reasons, My List, and a row
/// per genre, all within the profile's rating. Any rating or list change reloads it.
#[component]
pub fn Browse(
    api: Api,
    session: Signal<Option<Session>>,
    profile: Profile,
    screen: Signal<Screen>,
) -> Element {
    let mut search = use_signal(String::new);
    let mut submitted = use_signal(String::new);
    let taste_at = use_taste_at();
    let pid = profile.profile_id.clone();

    let personal_api = api.clone();
    let personal_pid = pid.clone();
    let personal = use_resource(move || {
        let (api, pid) = (personal_api.clone(), personal_pid.clone());
        async move {
            let at = taste_at();
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
            (continuing, recs, list)
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

    let (continuing, recs, list) = personal().unwrap_or_default();
    let rows = rows().unwrap_or_default();
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
                        Card { key: "{t[\"id\"]}", api: api.clone(), session, title: t.clone(), profile: profile.clone(), screen, note: None }
                    }
                }
            }
        }
        if !continuing.is_empty() {
            section { class: "row", id: "continue-watching",
                h2 { "Continue watching" }
                div { class: "strip",
                    for c in continuing {
                        Card { key: "{c[\"title\"][\"id\"]}", api: api.clone(), session, title: c["title"].clone(), profile: profile.clone(), screen,
                            opens: Screen::Player(profile.clone(), text(&c["title"], "id"), c["episode_id"].as_str().map(str::to_string)),
                            note: Some(match c["episode_id"].as_str() {
                                Some(e) => format!("{} · {}", e.to_uppercase(), clock(c["position_secs"].as_f64().unwrap_or(0.0))),
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
                            Card { key: "{t[\"id\"]}", api: api.clone(), session, title: t.clone(), profile: profile.clone(), screen,
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
                        Card { key: "{t[\"id\"]}", api: api.clone(), session, title: t.clone(), profile: profile.clone(), screen, note: None }
                    }
                }
            }
        }
        for (genre, titles) in rows {
            section { class: "row", key: "{genre}", "data-genre": "{genre}",
                h2 { "{genre}" }
                div { class: "strip",
                    for t in titles {
                        Card { key: "{t[\"id\"]}", api: api.clone(), session, title: t.clone(), profile: profile.clone(), screen, note: None }
                    }
                }
            }
        }
    }
}

/// My List as a page.
#[component]
pub fn MyListPage(
    api: Api,
    session: Signal<Option<Session>>,
    profile: Profile,
    screen: Signal<Screen>,
) -> Element {
    let taste_at = use_taste_at();
    let pid = profile.profile_id.clone();
    let load_api = api.clone();
    let list = use_resource(move || {
        let (api, pid) = (load_api.clone(), pid.clone());
        async move {
            let at = taste_at();
            authed(&api, session, screen, |t| {
                let (api, pid) = (api.clone(), pid.clone());
                async move { api.profile_view(&t, &pid, "list", at).await }
            })
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
        }
    });
    let back = profile.clone();
    rsx! {
        button { id: "back-home", class: "link", onclick: move |_| screen.set(Screen::Home(back.clone())), "← Back" }
        h1 { "My List" }
        match list() {
            None | Some(None) => rsx! { p { class: "muted", "Loading…" } },
            Some(Some(titles)) if titles.is_empty() => rsx! { p { id: "my-list-empty", class: "muted", "Nothing here yet. Add titles with “+ My List” on their page." } },
            Some(Some(titles)) => rsx! {
                div { class: "grid", id: "my-list",
                    for t in titles {
                        Card { key: "{t[\"id\"]}", api: api.clone(), session, title: t.clone(), profile: profile.clone(), screen, note: None }
                    }
                }
            },
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
    let taste_at = use_taste_at();
    let taste_api = api.clone();
    let (taste_pid, taste_id) = (pid.clone(), id.clone());
    let taste = use_resource(move || {
        let (api, pid, id) = (taste_api.clone(), taste_pid.clone(), taste_id.clone());
        async move {
            let at = taste_at();
            let get = |view: &'static str| {
                let (api, pid) = (api.clone(), pid.clone());
                async move {
                    authed(&api, session, screen, |t| {
                        let (api, pid) = (api.clone(), pid.clone());
                        async move { api.profile_view(&t, &pid, view, at).await }
                    })
                    .await
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
                }
            };
            let rating = get("ratings")
                .await
                .iter()
                .find(|r| r["title_id"] == id.as_str())
                .map(|r| text(r, "rating"));
            let on_list = get("list").await.iter().any(|t| t["id"] == id.as_str());
            (rating, on_list)
        }
    });
    let change_api = api.clone();
    let (change_pid, change_id) = (pid.clone(), id.clone());
    let change = move |what: TasteChange| {
        let (api, pid, id) = (change_api.clone(), change_pid.clone(), change_id.clone());
        move |_| {
            let (api, pid, id, what) = (api.clone(), pid.clone(), id.clone(), what.clone());
            spawn(async move {
                let _ = change_taste(&api, session, screen, &pid, &id, what).await;
            });
        }
    };
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
                {
                    let (rating, on_list) = taste().unwrap_or_default();
                    let toggle = |r: &str| if rating.as_deref() == Some(r) { None } else { Some(r.to_string()) };
                    let class = |r: &str| if rating.as_deref() == Some(r) { "taste on" } else { "taste" };
                    rsx! {
                        div { class: "title-taste",
                            button { id: "rate-dislike", class: class("dislike"), "aria-pressed": "{rating.as_deref() == Some(\"dislike\")}", onclick: change(TasteChange::Rate(toggle("dislike"))), "▼ Not for me" }
                            button { id: "rate-like", class: class("like"), "aria-pressed": "{rating.as_deref() == Some(\"like\")}", onclick: change(TasteChange::Rate(toggle("like"))), "▲ Like" }
                            button { id: "rate-love", class: class("love"), "aria-pressed": "{rating.as_deref() == Some(\"love\")}", onclick: change(TasteChange::Rate(toggle("love"))), "♥ Love" }
                            button { id: "list-toggle", class: if on_list { "taste on" } else { "taste" }, onclick: change(TasteChange::List(!on_list)),
                                if on_list { "✓ On My List" } else { "+ My List" }
                            }
                        }
                    }
                }
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
        "subscription_ended" => "Your subscription has ended, so playback stopped. Open Account to subscribe again.".into(),
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
                let beat = authed(&api, session, screen, |t| {
                    let (api, sid) = (api.clone(), sid.clone());
                    async move { api.playback_progress(&t, &sid, at, false).await }
                })
                .await;
                // The session ended on the server (say the subscription did): stop here too.
                if let Err(f) = beat
                    && f.code == "subscription_ended"
                {
                    let _ = document::eval(
                        "const v = document.getElementById('player'); if (v) v.pause();
                         if (window.cinelogHls) { window.cinelogHls.destroy(); window.cinelogHls = null; }
                         return true;",
                    )
                    .join::<bool>()
                    .await;
                    problem.set(Some(playback_problem(&f)));
                    return;
                }
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
                    span { class: "muted", "{started().map(|s| text(&s, \"title_name\")).unwrap_or_default()}{label}" }
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
