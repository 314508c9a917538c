//! The profile picker: "Who's watching?", adding a profile, and managing them. A PIN-locked
//! profile opens with its PIN; leaving a kids profile for another one, or for managing
//! profiles, takes the account password (or the other profile's PIN).

use super::gate::{Gate, Guard};
use super::profile_edit::{Done, ProfileEditor};
use super::{Current, Pending, Screen, after_pick, authed};
use crate::api::{Api, Profile, Session};
use dioxus::prelude::*;

/// What a guard's secret opens.
#[derive(Clone, Debug, PartialEq)]
enum Opening {
    Pick(Profile),
    Manage,
    Edit(Profile),
}

/// What the picker asks before `opening`, if anything: a locked profile's PIN; the account
/// password to leave a kids profile (`from_kids`) for an adult one or for managing profiles.
fn guard_for(opening: &Opening, from_kids: bool) -> Option<Guard> {
    match opening {
        Opening::Pick(p) | Opening::Edit(p) if p.locked => Some(Guard::Pin(p.clone())),
        Opening::Pick(p) if from_kids && !p.kids => Some(Guard::Password),
        Opening::Manage if from_kids => Some(Guard::Password),
        _ => None,
    }
}

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
    let current = use_context::<Current>().0;
    let mut managing = use_signal(|| false);
    let mut asking = use_signal(|| None::<(Opening, Guard)>);
    let mut editing = use_signal(|| None::<(Profile, Option<String>)>);
    let mut gone = use_signal(Vec::<String>::new);
    let from_kids = current().is_some_and(|c| c.kids);

    // Opens what was asked for, once its secret (if any) was given.
    let mut open = move |opening: Opening, secret: Option<String>| {
        asking.set(None);
        match opening {
            Opening::Pick(p) => screen.set(after_pick(pending, p)),
            Opening::Manage => managing.set(true),
            Opening::Edit(p) => editing.set(Some((p, secret))),
        }
    };
    let mut ask = move |opening: Opening| match guard_for(&opening, from_kids) {
        Some(guard) => asking.set(Some((opening, guard))),
        None => open(opening, None),
    };

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
                    error.set(Some(f.human()));
                    None
                }
            }
        }
    });

    let create_api = api.clone();
    let create = use_callback(move |()| {
        let api = create_api.clone();
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
                Err(f) => error.set(Some(f.human())),
            }
            busy.set(false);
        });
    });

    let list: Vec<Profile> = profiles()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !gone().contains(&p.profile_id))
        .collect();
    let count = list.len();
    let gate_api = api.clone();
    let edit_api = api.clone();
    rsx! {
        section { class: "picker",
            h1 { if managing() { "Manage profiles" } else { "Who's watching?" } }
            div { class: "profiles",
                for p in list {
                    ProfileCard { key: "{p.profile_id}", profile: p.clone(), managing: managing(),
                        on_pick: move |p: Profile| ask(if managing() { Opening::Edit(p) } else { Opening::Pick(p) }) }
                }
            }
            if managing() {
                button { id: "done-managing", class: "secondary", onclick: move |_| { managing.set(false); editing.set(None); }, "Done" }
            } else {
                button { id: "manage-profiles", class: "secondary", onclick: move |_| ask(Opening::Manage), "Manage profiles" }
            }
            if let Some((p, pin)) = editing() {
                ProfileEditor { key: "{p.profile_id}", api: edit_api, session, screen, profile: p, pin,
                    on_done: move |done: Done| {
                        editing.set(None);
                        if let Some(id) = done.deleted {
                            gone.write().push(id);
                        }
                        if done.position > 0 {
                            position.set(done.position);
                        }
                    } }
            }
            if let Some((opening, guard)) = asking() {
                Gate { api: gate_api, session, screen, guard: guard.clone(),
                    reason: match &guard {
                        Guard::Pin(p) => format!("Enter {}'s PIN", p.name),
                        Guard::Password => "A grown-up's password, please".to_string(),
                    },
                    on_open: move |secret: String| open(opening.clone(), Some(secret)),
                    on_cancel: move |_| asking.set(None) }
            }
            if count < MAX_PROFILES && !managing() {
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
fn ProfileCard(profile: Profile, managing: bool, on_pick: EventHandler<Profile>) -> Element {
    let initial = profile
        .name
        .chars()
        .next()
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_default();
    let picked = profile.clone();
    rsx! {
        button { class: "profile-card", "data-profile": "{profile.name}",
            onclick: move |_| on_pick.call(picked.clone()),
            span { class: "avatar avatar-{profile.avatar}", "aria-hidden": "true", "{initial}",
                if managing {
                    span { class: "edit-mark", "aria-hidden": "true", "✎" }
                }
            }
            span { class: "profile-name",
                if managing {
                    span { class: "sr-only", "Edit " }
                }
                "{profile.name}"
            }
            if profile.kids {
                span { class: "badge", "Kids" }
            }
            if profile.locked {
                span { class: "lock", "PIN-locked" }
            }
        }
    }
}
