//! A title's page.

use super::{Progress, TasteChange, change_taste, text, use_taste_at};
use crate::api::{Api, Profile, Session};
use crate::pages::{Screen, authed};
use dioxus::prelude::*;

/// Where the profile left a title.
#[derive(Clone, Default, PartialEq)]
struct Resume {
    episode_id: Option<String>,
    position_secs: f64,
    duration_secs: f64,
}

impl Resume {
    /// "at 1:05", or "S1:E2 at 1:05".
    fn label(&self) -> String {
        let at = super::clock(self.position_secs);
        match &self.episode_id {
            Some(e) => format!("{} at {at}", super::episode_label(e)),
            None => format!("at {at}"),
        }
    }

    fn done(&self) -> f64 {
        if self.duration_secs > 0.0 {
            (self.position_secs / self.duration_secs).clamp(0.0, 1.0)
        } else {
            0.0
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
            let resume = get("continue-watching")
                .await
                .into_iter()
                .find(|c| c["title"]["id"] == id.as_str())
                .map(|c| Resume {
                    episode_id: c["episode_id"].as_str().map(str::to_string),
                    position_secs: c["position_secs"].as_f64().unwrap_or(0.0),
                    duration_secs: c["duration_secs"].as_f64().unwrap_or(0.0),
                });
            (rating, on_list, resume)
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
    let resumable = taste().is_some_and(|(_, _, r)| r.is_some());
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
                h1 { id: "title-name", "data-name": "{name}", "{name}" }
                p { class: "muted", "{facts}" }
                if !text(&t, "tagline").is_empty() {
                    p { class: "tagline", "{text(&t, \"tagline\")}" }
                }
                p { "{synopsis}" }
                if let Some(r) = taste().and_then(|(_, _, r)| r).filter(|_| playable) {
                    div { class: "resume",
                        button { id: "resume-btn", class: "primary", onclick: play(r.episode_id.clone()),
                            "▶ Resume {r.label()}"
                        }
                        Progress { done: r.done() }
                    }
                }
                {
                    let (rating, on_list, _) = taste().unwrap_or_default();
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
                    button { id: "play-btn", class: if resumable { "secondary" } else { "primary" }, onclick: play(None),
                        if resumable { "Play from the start" } else { "▶ Play" }
                    }
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
                                        li { key: "{eid}", value: "{e[\"number\"]}",
                                            span { class: "ep-title", "{text(&e, \"title\")}" }
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
