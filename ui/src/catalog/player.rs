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

/// Seconds the next episode waits before it plays.
const NEXT_EPISODE_SECS: u32 = 10;

/// The episodes of a series in order, as `(id, "S1:E2 · Name")`.
fn episodes(details: &Value) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for s in details["seasons"].as_array().into_iter().flatten() {
        for e in s["episodes"].as_array().into_iter().flatten() {
            all.push((
                format!("s{}e{}", s["number"], e["number"]),
                format!("S{}:E{} · {}", s["number"], e["number"], text(e, "title")),
            ));
        }
    }
    all
}

/// The video's events as the page reports them.
#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
enum VideoEvent {
    /// Where the video is, each second while it moves.
    At {
        secs: f64,
    },
    /// The picture height now showing, after a quality switch.
    Level {
        height: u64,
    },
    Ended,
}

/// Attaches hls.js to the player and reports its events: the volume is the one the viewer
/// chose last (sound on unless they muted it; muted only if the browser refuses sound).
fn attach_script(url: &str, resume: f64) -> String {
    format!(
        r#"const url = {url}; const resume = {resume};
        for (let i = 0; i < 100 && !document.getElementById('player'); i++) await new Promise(r => setTimeout(r, 50));
        const video = document.getElementById('player');
        if (window.cinelogHls) window.cinelogHls.destroy();
        const hls = new Hls({{ startPosition: resume }});
        window.cinelogHls = hls;
        let keep = false;
        const volume = localStorage.getItem('cinelog.volume');
        if (volume !== null) video.volume = Number(volume);
        video.muted = localStorage.getItem('cinelog.muted') === 'true';
        video.addEventListener('volumechange', () => {{
          if (!keep) return;
          localStorage.setItem('cinelog.volume', String(video.volume));
          localStorage.setItem('cinelog.muted', String(video.muted));
        }});
        hls.loadSource(url);
        hls.attachMedia(video);
        hls.on(Hls.Events.MANIFEST_PARSED, () => {{
          video.play().then(() => {{ keep = true; }})
            .catch(() => {{ video.muted = true; video.play().catch(() => {{}}).finally(() => {{ keep = true; }}); }});
        }});
        hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => {{
          const level = hls.levels[d.level];
          if (level) dioxus.send({{ kind: 'level', height: level.height }});
        }});
        video.addEventListener('ended', () => dioxus.send({{ kind: 'ended' }}));
        let last = -1;
        const timer = setInterval(() => {{
          if (!document.body.contains(video)) {{ clearInterval(timer); return; }}
          if (video.currentTime !== last) {{ last = video.currentTime; dioxus.send({{ kind: 'at', secs: last }}); }}
        }}, 1000);"#,
        url = Value::String(url.to_string()),
    )
}

/// The player screen: the title and episode, hls.js on a video element resuming where the
/// profile left off, a quality menu of the plan's renditions with the switch showing while
/// it happens, and at an episode's end the next one after a countdown. Reports progress
/// while playing; however the screen is left, the session stops.
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
    let mut switching_to = use_signal(|| None::<String>);
    let mut countdown = use_signal(|| None::<u32>);
    let mut next_cancelled = use_signal(|| false);
    let playing = use_context::<Playing>();

    // However the player is left, its session stops at the last position seen.
    let dropped = playing.clone();
    use_drop(move || {
        if let Some(exit) = dropped.take() {
            let token = exit.last_token();
            tokio::spawn(async move { exit.finish(&token).await });
        }
    });

    let details_api = api.clone();
    let (details_pid, details_tid) = (profile.profile_id.clone(), title_id.clone());
    let details = use_resource(move || {
        let (api, pid, tid) = (
            details_api.clone(),
            details_pid.clone(),
            details_tid.clone(),
        );
        async move {
            authed(&api, session, screen, |t| {
                let (api, pid, tid) = (api.clone(), pid.clone(), tid.clone());
                async move { api.title(&t, &pid, &tid).await }
            })
            .await
            .ok()
        }
    });
    let all_episodes = details()
        .flatten()
        .map(|d| episodes(&d))
        .unwrap_or_default();
    let here = episode_id
        .as_ref()
        .and_then(|e| all_episodes.iter().position(|(id, _)| id == e));
    let episode_name = here.map(|i| all_episodes[i].1.clone());
    let next = here.and_then(|i| all_episodes.get(i + 1)).cloned();

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
            let mut events = document::eval(&attach_script(
                &text(&s, "master_playlist_url"),
                s["resume_position_secs"].as_f64().unwrap_or(0.0),
            ));
            // The video's events: where it is, the quality showing, its end.
            let tracked = exit.clone();
            spawn(async move {
                while let Ok(event) = events.recv::<VideoEvent>().await {
                    match event {
                        VideoEvent::At { secs } => tracked.moved_to(secs),
                        VideoEvent::Level { height } => {
                            let now = format!("{height}p");
                            if switching_to.peek().as_deref() == Some(now.as_str()) {
                                switching_to.set(None);
                            }
                            playing_at.set(now);
                        }
                        VideoEvent::Ended => {
                            countdown.set(Some(NEXT_EPISODE_SECS));
                        }
                    }
                }
            });
            let sid = text(&s, "session_id");
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(HEARTBEAT_SECS)).await;
                if let Some(s) = session.peek().as_ref() {
                    exit.saw_token(&s.access_token);
                }
                let at = exit.at();
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

    // The countdown to the next episode, once this one ends.
    let countdown_next = next.clone();
    let countdown_profile = profile.clone();
    let countdown_title = title_id.clone();
    use_effect(move || {
        let Some(left) = countdown() else {
            return;
        };
        let Some((next_id, _)) = countdown_next.clone() else {
            return;
        };
        if next_cancelled() {
            return;
        }
        let (profile, title) = (countdown_profile.clone(), countdown_title.clone());
        spawn(async move {
            if left == 0 {
                screen.set(Screen::Player(profile, title, Some(next_id)));
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if !*next_cancelled.peek() && *countdown.peek() == Some(left) {
                countdown.set(Some(left - 1));
            }
        });
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
        switching_to.set((choice != "auto").then(|| choice.clone()));
        spawn(async move {
            let height: i64 = choice.trim_end_matches('p').parse().unwrap_or(-1);
            let js = format!(
                "const h = window.cinelogHls; if (!h) return false;
                 h.currentLevel = {height} < 0 ? -1 : h.levels.findIndex(l => l.height === {height}); return true;"
            );
            let _ = document::eval(&js).join::<bool>().await;
        });
    };
    let name = started()
        .map(|s| text(&s, "title_name"))
        .or_else(|| details().flatten().map(|d| text(&d, "name")))
        .unwrap_or_default();
    let play_next = {
        let (profile, title, next) = (profile.clone(), title_id.clone(), next.clone());
        move |_| {
            if let Some((id, _)) = next.clone() {
                screen.set(Screen::Player(profile.clone(), title.clone(), Some(id)));
            }
        }
    };
    rsx! {
        section { class: "player",
            div { class: "player-head",
                button { id: "leave-player", class: "link", onclick: leave, "← Back" }
                div {
                    h1 { id: "player-title", "{name}" }
                    if let Some(e) = episode_name {
                        p { id: "player-episode", class: "muted", "{e}" }
                    }
                }
            }
            if let Some(msg) = problem() {
                p { id: "playback-error", class: "error", role: "alert", "{msg}" }
            } else {
                div { class: "screen",
                    video { id: "player", controls: true, playsinline: true }
                    if let (Some(left), Some((_, next_name))) = (countdown(), next.clone()) {
                        if !next_cancelled() {
                            div { id: "up-next", class: "up-next", role: "status",
                                p { "Next: {next_name}" }
                                p { class: "muted", "Playing in {left} s" }
                                button { id: "play-next", class: "primary", onclick: play_next, "Play now" }
                                button { id: "cancel-next", class: "link", onclick: move |_| next_cancelled.set(true), "Cancel" }
                            }
                        }
                    }
                }
                div { class: "player-bar",
                    label { r#for: "quality", "Quality " }
                    select { id: "quality", onchange: pick_quality,
                        option { value: "auto", "Auto" }
                        for q in qualities {
                            option { key: "{q}", value: "{q}", "{q}" }
                        }
                    }
                    if let Some(to) = switching_to() {
                        span { id: "switching", class: "muted", role: "status", "Switching to {to}…" }
                    } else if !playing_at().is_empty() {
                        span { id: "playing-at", class: "muted", "Playing at {playing_at}" }
                    }
                }
            }
        }
    }
}
