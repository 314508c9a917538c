//! Signing in or creating an account, and asking for a password-reset link.

use super::{Pending, Screen, after_sign_in, save_session};
use crate::api::{Api, Session};
use dioxus::prelude::*;

/// The signed-out screen: sign in, or switch to creating an account; also sends a reset link.
#[component]
pub(super) fn AuthForm(
    api: Api,
    session: Signal<Option<Session>>,
    screen: Signal<Screen>,
) -> Element {
    let mut email = use_signal(String::new);
    let mut password = use_signal(String::new);
    let mut creating = use_signal(|| false);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let mut notice = use_signal(|| None::<String>);
    let pending = use_context::<Pending>().0;

    let forgot_api = api.clone();
    let forgot = move |_| {
        let api = forgot_api.clone();
        spawn(async move {
            error.set(None);
            if busy() {
                return;
            }
            if email().trim().is_empty() {
                error.set(Some("Enter your email first.".into()));
                return;
            }
            match api.request_password_reset(&email()).await {
                Ok(()) => notice.set(Some(
                    "If that address has an account, a reset link is on its way.".into(),
                )),
                Err(f) => error.set(Some(f.human())),
            }
        });
    };

    let submit = use_callback(move |()| {
        let api = api.clone();
        spawn(async move {
            if busy() {
                return;
            }
            busy.set(true);
            error.set(None);
            let (e, p) = (email(), password());
            let signed_up = if creating() {
                api.signup(&e, &p).await
            } else {
                Ok(())
            };
            let result = match signed_up {
                Ok(()) => api.login(&e, &p).await,
                Err(f) => Err(f),
            };
            match result {
                Ok(s) => {
                    save_session(Some(&s)).await;
                    session.set(Some(s));
                    screen.set(after_sign_in(pending));
                }
                Err(f) if f.code == "email_taken" => error.set(Some(
                    "That email already has an account. Sign in instead.".into(),
                )),
                Err(f) if f.code == "invalid_credentials" => {
                    error.set(Some("Wrong email or password.".into()))
                }
                Err(f) => error.set(Some(f.human())),
            }
            busy.set(false);
        });
    });

    let (title, action, switch_text) = if creating() {
        (
            "Create your account",
            "Create account",
            "Already have an account? Sign in",
        )
    } else {
        ("Sign in", "Sign in", "New to Cinelog? Create an account")
    };

    rsx! {
        section { class: "card auth",
            h1 { "{title}" }
            label { r#for: "email", "Email" }
            input { id: "email", r#type: "email", autocomplete: "email", oninput: move |e| email.set(e.value()),
                onkeydown: move |e| if e.key() == Key::Enter { submit(()) } }
            label { r#for: "password", "Password" }
            input { id: "password", r#type: "password", autocomplete: if creating() { "new-password" } else { "current-password" }, oninput: move |e| password.set(e.value()),
                onkeydown: move |e| if e.key() == Key::Enter { submit(()) } }
            if creating() {
                p { class: "hint", "At least 8 characters." }
            }
            if let Some(msg) = error() {
                p { class: "error", role: "alert", "{msg}" }
            }
            button { id: "submit-btn", class: "primary", disabled: busy(), onclick: move |_| submit(()), "{action}" }
            button { id: "switch-mode", class: "link", onclick: move |_| { creating.toggle(); error.set(None); }, "{switch_text}" }
            if !creating() {
                button { id: "forgot-btn", class: "link", disabled: busy(), onclick: forgot, "Forgot your password?" }
            }
            if let Some(msg) = notice() {
                p { class: "notice", role: "status", "{msg}" }
            }
        }
    }
}
