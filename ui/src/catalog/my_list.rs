//! The profile's My List.

use super::card::Card;
use super::use_taste_at;
use crate::api::{Api, Profile, Session};
use crate::pages::{Screen, authed};
use dioxus::prelude::*;

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
