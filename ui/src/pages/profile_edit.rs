//! Editing a profile: name, avatar, kids and rating, its PIN, or deleting it.

use super::{Screen, authed};
use crate::api::{Api, Failure, Profile, Session};
use dioxus::prelude::*;
use serde_json::json;

/// The avatars to choose from.
pub(crate) const AVATARS: [&str; 8] = [
    "blue", "red", "green", "yellow", "purple", "teal", "orange", "pink",
];

const RATINGS: [&str; 5] = ["all", "7+", "13+", "16+", "18+"];
/// The highest rating a kids profile may have.
const KIDS_MAX: &str = "13+";

fn human(f: Failure) -> String {
    match f.code.as_str() {
        "profile_name_taken" => "You already have a profile with that name.".into(),
        "wrong_pin" => "That PIN is not right.".into(),
        _ => f.human(),
    }
}

/// What an editor ends with: the log position to read the profiles at (0: nothing changed),
/// and the profile deleted, if it was.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Done {
    pub position: i64,
    pub deleted: Option<String>,
}

/// The editor of one profile. `pin` is its current PIN when it is locked (entered to open the
/// editor).
#[component]
pub(super) fn ProfileEditor(
    api: Api,
    session: Signal<Option<Session>>,
    screen: Signal<Screen>,
    profile: Profile,
    pin: Option<String>,
    on_done: EventHandler<Done>,
) -> Element {
    let mut name = use_signal(|| profile.name.clone());
    let mut avatar = use_signal(|| profile.avatar.clone());
    let mut kids = use_signal(|| profile.kids);
    let mut rating = use_signal(|| profile.maturity_rating.clone());
    let mut new_pin = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let mut confirming = use_signal(|| false);
    let id = profile.profile_id.clone();

    // Runs one change; on success the editor closes at the change's position.
    let run = {
        let api = api.clone();
        use_callback(move |change: Change| {
            let api = api.clone();
            spawn(async move {
                if busy() {
                    return;
                }
                busy.set(true);
                error.set(None);
                let done = authed(&api, session, screen, |t| {
                    let (api, change) = (api.clone(), change.clone());
                    async move { change.send(&api, &t).await }
                })
                .await;
                busy.set(false);
                match done {
                    Ok(position) => on_done.call(Done {
                        position,
                        deleted: match change {
                            Change::Delete(id) => Some(id),
                            _ => None,
                        },
                    }),
                    Err(f) => error.set(Some(human(f))),
                }
            });
        })
    };

    let save_id = id.clone();
    let save = move |_| {
        let kids_now = kids();
        let chosen = rating();
        // A kids profile is rated at most 13+.
        let capped = if kids_now
            && RATINGS.iter().position(|r| *r == chosen)
                > RATINGS.iter().position(|r| *r == KIDS_MAX)
        {
            KIDS_MAX.to_string()
        } else {
            chosen
        };
        run(Change::Edit(
            save_id.clone(),
            json!({"name": name(), "avatar": avatar(), "kids": kids_now, "maturity_rating": capped}),
        ))
    };
    let lock_id = id.clone();
    let lock_pin = pin.clone();
    let lock = move |_| {
        let wanted = new_pin();
        if wanted.len() != 4 || !wanted.bytes().all(|b| b.is_ascii_digit()) {
            error.set(Some("A PIN is exactly 4 digits.".into()));
            return;
        }
        run(Change::Pin(lock_id.clone(), Some(wanted), lock_pin.clone()))
    };
    let unlock_id = id.clone();
    let unlock_pin = pin.clone();
    let delete_id = id.clone();
    rsx! {
        div { id: "profile-editor", class: "card editor", role: "region", "aria-label": "Edit {profile.name}",
            h2 { "Edit {profile.name}" }
            label { r#for: "edit-name", "Name" }
            input { id: "edit-name", maxlength: "40", initial_value: "{profile.name}", oninput: move |e| name.set(e.value()),
                onkeydown: { let save = save.clone(); move |e: KeyboardEvent| if e.key() == Key::Enter { save(()) } } }
            fieldset { class: "avatars",
                legend { "Avatar" }
                for a in AVATARS {
                    button { key: "{a}", class: "avatar avatar-{a} pick", "aria-label": "{a} avatar", "aria-pressed": "{avatar() == a}",
                        onclick: move |_| avatar.set(a.to_string()), "{profile.name.chars().next().unwrap_or('?')}" }
                }
            }
            label { class: "check",
                input { id: "edit-kids", r#type: "checkbox", checked: kids(), onchange: move |e| kids.set(e.checked()) }
                " Kids profile (titles rated 13+ at most)"
            }
            label { r#for: "edit-rating", "Titles rated up to" }
            select { id: "edit-rating", onchange: move |e| rating.set(e.value()),
                for r in RATINGS {
                    option { key: "{r}", value: "{r}", selected: rating() == r, "{r}" }
                }
            }
            div { class: "dialog-actions",
                button { id: "save-profile", class: "primary", disabled: busy() || name().trim().is_empty(), onclick: move |_| save(()), "Save" }
                button { id: "close-editor", class: "secondary", onclick: move |_| on_done.call(Done::default()), "Cancel" }
            }
            h3 { if profile.locked { "PIN" } else { "Lock with a PIN" } }
            p { class: "muted",
                if profile.locked { "A PIN is asked before this profile opens." } else { "Ask for a 4-digit PIN before this profile opens." }
            }
            div { class: "pin-row",
                label { class: "sr-only", r#for: "new-pin", "New PIN" }
                input { id: "new-pin", r#type: "password", inputmode: "numeric", maxlength: "4", autocomplete: "off",
                    placeholder: "4 digits", oninput: move |e| new_pin.set(e.value()) }
                button { id: "set-pin", class: "secondary", disabled: busy(), onclick: lock,
                    if profile.locked { "Change PIN" } else { "Add PIN" } }
                if profile.locked {
                    button { id: "remove-pin", class: "link", disabled: busy(),
                        onclick: move |_| run(Change::Pin(unlock_id.clone(), None, unlock_pin.clone())), "Remove PIN" }
                }
            }
            if confirming() {
                div { class: "confirm danger-zone", role: "alertdialog", "aria-labelledby": "confirm-delete-title",
                    p { id: "confirm-delete-title", "Delete {profile.name}? Its ratings, My List and viewing history go with it." }
                    button { id: "confirm-delete", class: "primary", disabled: busy(), onclick: move |_| run(Change::Delete(delete_id.clone())), "Delete profile" }
                    button { id: "keep-profile", class: "secondary", onclick: move |_| confirming.set(false), "Keep it" }
                }
            } else {
                button { id: "delete-profile", class: "link danger", onclick: move |_| confirming.set(true), "Delete this profile…" }
            }
            if let Some(msg) = error() {
                p { class: "error", role: "alert", "{msg}" }
            }
        }
    }
}

/// A change to a profile, sent as its owner.
#[derive(Clone, PartialEq)]
enum Change {
    Edit(String, serde_json::Value),
    /// A new PIN (`None` removes it), with the current one.
    Pin(String, Option<String>, Option<String>),
    Delete(String),
}

impl Change {
    async fn send(&self, api: &Api, token: &str) -> Result<i64, Failure> {
        match self {
            Change::Edit(id, changes) => api.update_profile(token, id, changes.clone()).await,
            Change::Pin(id, pin, current) => {
                api.set_pin(token, id, pin.as_deref(), current.as_deref())
                    .await
            }
            // The picker drops a deleted profile itself; the list read waits for nothing.
            Change::Delete(id) => api.delete_profile(token, id).await.map(|()| 0),
        }
    }
}
