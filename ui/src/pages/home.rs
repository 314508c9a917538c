//! A profile's home screen.

use super::Screen;
use crate::api::{Api, Profile, Session};
use crate::catalog::Browse;
use dioxus::prelude::*;

/// Home for the picked profile: a greeting, links to switch profile and to My List, the
/// catalogue rows.
#[component]
pub(super) fn Home(
    api: Api,
    session: Signal<Option<Session>>,
    profile: Profile,
    /// The search showing (empty for none).
    query: String,
    screen: Signal<Screen>,
) -> Element {
    rsx! {
        section { class: "home",
            div { class: "home-head",
                h1 { "Hi, {profile.name}" }
                span { class: "muted", "Rated up to {profile.maturity_rating}." }
                button { id: "switch-profile", class: "link", onclick: move |_| screen.set(Screen::Profiles), "Switch profile" }
                button { id: "my-list-link", class: "link", onclick: { let p = profile.clone(); move |_| screen.set(Screen::MyList(p.clone())) }, "My List" }
            }
            Browse { key: "{profile.profile_id}", api, session, profile: profile.clone(), query, screen }
        }
    }
}
