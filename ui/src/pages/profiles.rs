//! The profile picker: "Who's watching?", and adding a profile.

use super::{Pending, Screen, after_pick, authed};
use crate::api::{Api, Profile, Session};
use dioxus::prelude::*;

const MAX_PROFILES: usize = 5;

/// The account's profiles to pick from, with a form to add one while under the limit.
#[component]
pub(super) fn ProfilePicker(
    api: Api,
    session: Signal<Option<Session>>,
    screen: Signal<Screen>,
) -> Element {
    let mut position = use_signal(|| 0_i64);
    let mut error = use_signal(|| None::<String>);
    let mut name = use_signal(String::new);
    let mut kids = use_signal(|| false);
    let mut busy = use_signal(|| false);
    let pending = use_context::<Pending>().0;

    let load_api = api.clone();
    let profiles = use_resource(move || {
        let api = load_api.clone();
        async move {
            let min_position = position();
            let listed = authed(&api, session, screen, |token| {
                let api = api.clone();
                async move { api.profiles(&token, min_position).await }
            })
            .await;
            match listed {
                Ok(list) => Some(list),
                Err(f) => {
                    error.set(Some(f.message));
                    None
                }
            }
        }
    });

    let create = use_callback(move |()| {
        let api = api.clone();
        spawn(async move {
            if busy() || name().trim().is_empty() {
                return;
            }
            busy.set(true);
            error.set(None);
            let (new_name, new_kids) = (name(), kids());
            let created = authed(&api, session, screen, |token| {
                let (api, new_name) = (api.clone(), new_name.clone());
                async move { api.create_profile(&token, &new_name, new_kids).await }
            })
            .await;
            match created {
                Ok(p) => {
                    name.set(String::new());
                    kids.set(false);
                    position.set(p);
                    // The name field is left to the browser while typing (a value sent back
                    // from the server could overwrite keystrokes in flight), so clear it there.
                    let _ = document::eval("const f = document.getElementById('profile-name'); if (f) f.value = ''; return true;").join::<bool>().await;
                }
                Err(f) if f.code == "profile_limit_reached" => error.set(Some(format!(
                    "You already have {MAX_PROFILES} profiles, the most an account can have."
                ))),
                Err(f) if f.code == "profile_name_taken" => {
                    error.set(Some("You already have a profile with that name.".into()))
                }
                Err(f) => error.set(Some(f.message)),
            }
            busy.set(false);
        });
    });

    let list = profiles().flatten().unwrap_or_default();
    let count = list.len();
    rsx! {
        section { class: "picker",
            h1 { "Who's watching?" }
            div { class: "profiles",
                for p in list {
                    ProfileCard { key: "{p.profile_id}", profile: p.clone(), on_pick: move |p| screen.set(after_pick(pending, p)) }
                }
            }
            if count < MAX_PROFILES {
                div { class: "card add-profile",
                    h2 { "Add a profile" }
                    label { r#for: "profile-name", "Name" }
                    input { id: "profile-name", maxlength: "40", oninput: move |e| name.set(e.value()),
                        onkeydown: move |e| if e.key() == Key::Enter { create(()) } }
                    label { class: "check",
                        input { id: "profile-kids", r#type: "checkbox", checked: kids(), onchange: move |e| kids.set(e.checked()) }
                        " Kids profile (only titles rated for children)"
                    }
                    button { id: "add-profile-btn", class: "primary", disabled: busy() || name().trim().is_empty(), onclick: move |_| create(()), "Add profile" }
                    p { class: "muted", "{count} of {MAX_PROFILES} profiles" }
                }
            } else {
                p { id: "profile-limit", class: "notice", "You have {MAX_PROFILES} profiles, the most an account can have." }
            }
            if let Some(msg) = error() {
                p { class: "error", role: "alert", "{msg}" }
            }
        }
    }
}

#[component]
fn ProfileCard(profile: Profile, on_pick: EventHandler<Profile>) -> Element {
    let initial = profile
        .name
        .chars()
        .next()
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_default();
    let picked = profile.clone();
    rsx! {
        button { class: "profile-card", "data-profile": "{profile.name}", onclick: move |_| on_pick.call(picked.clone()),
            span { class: "avatar avatar-{profile.avatar}", "{initial}" }
            span { class: "profile-name", "{profile.name}" }
            if profile.kids {
                span { class: "badge", "Kids" }
            }
        }
    }
}
