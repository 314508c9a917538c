//! Choosing a new password from a reset email's link.

use super::Screen;
use crate::api::Api;
use dioxus::prelude::*;

/// The reset form opened by a password-reset link: takes the new password for that token.
#[component]
pub(super) fn ResetForm(api: Api, token: String, screen: Signal<Screen>) -> Element {
    let mut password = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut done = use_signal(|| false);
    let submit = move |_| {
        let (api, token) = (api.clone(), token.clone());
        spawn(async move {
            error.set(None);
            match api.confirm_password_reset(&token, &password()).await {
                Ok(()) => done.set(true),
                Err(f) if f.code == "invalid_token" => error.set(Some(
                    "This reset link is invalid, used or expired. Ask for a new one.".into(),
                )),
                Err(f) => error.set(Some(f.human())),
            }
        });
    };
    rsx! {
        section { class: "card auth",
            h1 { "Choose a new password" }
            if done() {
                p { class: "notice", role: "status", "Your password is changed. Sign in with it." }
                button { id: "to-signin", class: "primary", onclick: move |_| screen.set(Screen::SignedOut), "Sign in" }
            } else {
                label { r#for: "new-password", "New password" }
                input { id: "new-password", r#type: "password", autocomplete: "new-password", oninput: move |e| password.set(e.value()) }
                p { class: "hint", "At least 8 characters." }
                if let Some(msg) = error() {
                    p { class: "error", role: "alert", "{msg}" }
                }
                button { id: "reset-btn", class: "primary", onclick: submit, "Set password" }
            }
        }
    }
}
