//! Asking for a secret before a guarded step: a profile's PIN, or the account password to
//! leave a kids profile.

use super::{Screen, authed};
use crate::api::{Api, Profile, Session};
use dioxus::prelude::*;

/// What opens the guarded step.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Guard {
    /// The PIN of this profile.
    Pin(Profile),
    /// The account password (leaving a kids profile).
    Password,
}

/// A dialog asking for the guard's secret. `on_open` gets the secret once the API accepts it
/// (a PIN is needed again to change the profile's lock).
#[component]
pub(crate) fn Gate(
    api: Api,
    session: Signal<Option<Session>>,
    screen: Signal<Screen>,
    guard: Guard,
    /// Why the secret is asked, e.g. "Enter Mum's PIN".
    reason: String,
    on_open: EventHandler<String>,
    on_cancel: EventHandler<()>,
) -> Element {
    let mut secret = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let checked = guard.clone();
    let submit = use_callback(move |()| {
        let (api, guard) = (api.clone(), checked.clone());
        spawn(async move {
            if busy() {
                return;
            }
            busy.set(true);
            error.set(None);
            let given = secret();
            let answer = authed(&api, session, screen, |t| {
                let (api, guard, given) = (api.clone(), guard.clone(), given.clone());
                async move {
                    match guard {
                        Guard::Pin(p) => api.unlock_profile(&t, &p.profile_id, &given).await,
                        Guard::Password => api.confirm_password(&t, &given).await,
                    }
                }
            })
            .await;
            busy.set(false);
            match answer {
                Ok(()) => on_open.call(given),
                Err(f) if f.status == 429 => error.set(Some(
                    "Too many wrong tries. Wait a few minutes and try again.".into(),
                )),
                Err(f) if f.code == "wrong_pin" => error.set(Some("That PIN is not right.".into())),
                Err(f) if f.status == 401 => error.set(Some("That password is not right.".into())),
                Err(f) => error.set(Some(f.human())),
            }
        });
    });
    let pin = matches!(guard, Guard::Pin(_));
    rsx! {
        div { class: "dialog-backdrop",
            div { id: "gate", class: "card dialog", role: "dialog", "aria-modal": "true", "aria-labelledby": "gate-title",
                // Escape closes it, as any dialog.
                onkeydown: move |e| if e.key() == Key::Escape { on_cancel.call(()) },
                h2 { id: "gate-title", "{reason}" }
                label { r#for: "gate-secret", if pin { "PIN (4 digits)" } else { "Account password" } }
                input { id: "gate-secret", r#type: "password", autofocus: true,
                    inputmode: if pin { "numeric" } else { "text" },
                    maxlength: if pin { "4" } else { "200" },
                    autocomplete: if pin { "off" } else { "current-password" },
                    oninput: move |e| secret.set(e.value()),
                    onkeydown: move |e| if e.key() == Key::Enter { submit(()) } }
                if let Some(msg) = error() {
                    p { class: "error", role: "alert", "{msg}" }
                }
                div { class: "dialog-actions",
                    button { id: "gate-ok", class: "primary", disabled: busy(), onclick: move |_| submit(()), "Continue" }
                    button { id: "gate-cancel", class: "secondary", onclick: move |_| on_cancel.call(()), "Cancel" }
                }
            }
        }
    }
}
