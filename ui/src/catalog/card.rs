//! The poster card shown in every row and grid of titles.

use super::{TasteChange, change_taste, text};
use crate::api::{Api, Profile, Session};
use crate::pages::Screen;
use dioxus::prelude::*;
use serde_json::Value;

/// A poster card that opens the title page, with like / love / dislike under it.
#[component]
pub(super) fn Card(
    api: Api,
    session: Signal<Option<Session>>,
    title: Value,
    profile: Profile,
    screen: Signal<Screen>,
    note: Option<String>,
    /// Where the card leads; the title's page unless given (continue watching plays).
    opens: Option<Screen>,
    /// How much of it the profile has watched (0 to 1), for a bar under the poster.
    progress: Option<f64>,
    /// The profile's rating of it, if any.
    rating: Option<String>,
) -> Element {
    let id = text(&title, "id");
    let (name, poster) = (text(&title, "name"), text(&title, "poster"));
    let card_id = id.clone();
    let opens = opens.unwrap_or_else(|| Screen::Title(profile.clone(), id.clone()));
    let mut rated = use_signal(|| rating.clone());
    // The profile's ratings may arrive after the card.
    use_effect(use_reactive!(|rating| rated.set(rating)));
    // A rating pressed again is taken back.
    let rate = move |rating: &'static str| {
        let (api, pid, id) = (api.clone(), profile.profile_id.clone(), id.clone());
        move |_| {
            let (api, pid, id) = (api.clone(), pid.clone(), id.clone());
            let new = (rated.peek().as_deref() != Some(rating)).then(|| rating.to_string());
            spawn(async move {
                if change_taste(
                    &api,
                    session,
                    screen,
                    &pid,
                    &id,
                    TasteChange::Rate(new.clone()),
                )
                .await
                .is_ok()
                {
                    rated.set(new);
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
                img { src: "{poster}", alt: "", loading: "lazy", width: "140", height: "210" }
                if let Some(done) = progress {
                    super::Progress { done }
                }
                span { class: "card-name", "{name}" }
                if let Some(n) = note {
                    span { class: "card-note", "{n}" }
                }
            }
            div { class: "card-taste",
                button { class: pressed("dislike"), title: "Not for me", "aria-label": "Dislike {name}", "aria-pressed": "{current.as_deref() == Some(\"dislike\")}", onclick: rate("dislike"), "▼" }
                button { class: pressed("like"), title: "I like this", "aria-label": "Like {name}", "aria-pressed": "{current.as_deref() == Some(\"like\")}", onclick: rate("like"), "▲" }
                button { class: pressed("love"), title: "Love this!", "aria-label": "Love {name}", "aria-pressed": "{current.as_deref() == Some(\"love\")}", onclick: rate("love"), "♥" }
            }
        }
    }
}
