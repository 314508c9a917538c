//! Playing a title or an episode.

use super::text;
use crate::api::{Api, Failure, Profile, Session};
use crate::pages::{Screen, authed};
use dioxus::prelude::*;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// Seconds between progress reports while playing.
const HEARTBEAT_SECS: u64 = 5;

fn playback_problem(f: &Failure) -> String {
    match f.code.as_str() {
        "subscription_ended" => "Your subscription has ended, so playback stopped. Open Account to subscribe again.".into(),
        "subscription_required" => "Subscribe to a plan to watch. Open Account to choose one.".into(),
        "stream_limit_reached" => "You're already watching on as many screens as your plan allows. Stop playback on another screen, or upgrade your plan.".into(),
        "maturity_blocked" => "This title is not available for this profile.".into(),
        _ => f.message.clone(),
    }
}

/// How to end the playback session showing: kept by the app so that every way out of the
/// player (a link, signing out, closing the tab) stops it and keeps the position.
#[derive(Clone, Default)]
pub struct Playing(Rc<RefCell<Option<PlaybackExit>>>);

impl Playing {
    /// The open session's exit, which then belongs to the caller.
    pub fn take(&self) -> Option<PlaybackExit> {
        self.0.borrow_mut().take()
    }

    fn open(&self, exit: PlaybackExit) {
        *self.0.borrow_mut() = Some(exit);
    }
}

/// An open playback session and where it is: enough to stop it from anywhere.
#[derive(Clone)]
pub struct PlaybackExit {
    api: Api,
    session_id: String,
    at: Arc<Mutex<f64>>,
    /// The latest access token seen while playing, for a stop after the page is gone.
    token: Arc<Mutex<String>>,
}

impl PlaybackExit {
    fn at(&self) -> f64 {
        self.at.lock().map(|a| *a).unwrap_or(0.0)
    }

    fn moved_to(&self, secs: f64) {
        if let Ok(mut at) = self.at.lock() {
            *at = secs;
        }
    }

    fn last_token(&self) -> String {
        self.token.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn saw_token(&self, token: &str) {
        if let Ok(mut t) = self.token.lock() {
            token.clone_into(&mut t);
        }
    }

    /// Stops the session at its last known position.
    pub async fn finish(self, token: &str) {
        let at = self.at();
        if let Err(f) = self
            .api
            .playback_progress(token, &self.session_id, at, true)
            .await
        {
            tracing::debug!(code = %f.code, "could not stop a playback session");
        }
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
    let playing = use_context::<Playing>();

    // However the player is left, its session stops at the last position seen.
    let dropped = playing.clone();
    use_drop(move || {
        if let Some(exit) = dropped.take() {
            let token = exit.last_token();
            tokio::spawn(async move { exit.finish(&token).await });
        }
    });

    let play_api = api.clone();
    let (pid, tid, eid) = (
        profile.profile_id.clone(),
        title_id.clone(),
        episode_id.clone(),
    );
    let play_playing = playing.clone();
    use_future(move || {
        let (api, pid, tid, eid) = (play_api.clone(), pid.clone(), tid.clone(), eid.clone());
        let playing = play_playing.clone();
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
            let exit = PlaybackExit {
                api: api.clone(),
                session_id: text(&s, "session_id"),
                at: Arc::new(Mutex::new(
                    s["resume_position_secs"].as_f64().unwrap_or(0.0),
                )),
                token: Arc::new(Mutex::new(
                    session
                        .peek()
                        .as_ref()
                        .map(|s| s.access_token.clone())
                        .unwrap_or_default(),
                )),
            };
            playing.open(exit.clone());
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
            // The video's position, sent each second while it changes, so a stop from anywhere
            // keeps it.
            let tracked = exit.clone();
            spawn(async move {
                let mut moves = document::eval(
                    "const v = document.getElementById('player'); let last = -1;
                     const timer = setInterval(() => {
                       if (!document.body.contains(v)) { clearInterval(timer); return; }
                       if (v.currentTime !== last) { last = v.currentTime; dioxus.send(last); }
                     }, 1000);",
                );
                while let Ok(at) = moves.recv::<f64>().await {
                    tracked.moved_to(at);
                }
            });
            let sid = text(&s, "session_id");
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(HEARTBEAT_SECS)).await;
                if let Some(s) = session.peek().as_ref() {
                    exit.saw_token(&s.access_token);
                }
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
                exit.moved_to(at);
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
                    playing.take();
                    problem.set(Some(playback_problem(&f)));
                    return;
                }
            }
        }
    });

    let leave_playing = playing.clone();
    let back_profile = profile.clone();
    let back_title = title_id.clone();
    let leave = move |_| {
        let (profile, title) = (back_profile.clone(), back_title.clone());
        let playing = leave_playing.clone();
        spawn(async move {
            if let Some(exit) = playing.take() {
                let at: f64 = document::eval(
                    "const v = document.getElementById('player'); return v ? v.currentTime : 0;",
                )
                .join()
                .await
                .unwrap_or(0.0);
                exit.moved_to(at);
                let _ = authed(&exit.api, session, screen, |t| {
                    let exit = exit.clone();
                    async move {
                        exit.api
                            .playback_progress(&t, &exit.session_id, exit.at(), true)
                            .await
                    }
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
