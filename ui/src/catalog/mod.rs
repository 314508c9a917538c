//! Browsing, the title page and the player, with the ratings and My List they share.

mod browse;
mod card;
mod my_list;
mod player;
mod title;

use crate::api::{Api, Failure, Session};
use crate::pages::{Screen, authed};
use dioxus::core::consume_context;
use dioxus::prelude::*;
use serde_json::Value;

pub use browse::Browse;
pub use my_list::MyListPage;
pub use player::{PlayerPage, Playing};
pub use title::TitlePage;

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// Minutes and seconds: `65.0` → `1:05`.
fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// An episode id as viewers read it: `s1e2` → `S1:E2`.
fn episode_label(id: &str) -> String {
    match id.strip_prefix('s').and_then(|r| r.split_once('e')) {
        Some((season, episode)) => format!("S{season}:E{episode}"),
        None => id.to_uppercase(),
    }
}

/// How much of a title has been watched, as a bar.
#[component]
fn Progress(done: f64) -> Element {
    let pct = (done * 100.0).round();
    rsx! {
        div { class: "progress", role: "progressbar", "aria-label": "Watched", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "{pct}",
            div { class: "progress-fill", style: "width: {pct}%" }
        }
    }
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
