//! The account's phone number and its verification.

use super::{Screen, authed};
use crate::api::{Api, Session};
use dioxus::prelude::*;

/// The account's phone: shown once verified, else a two-step form (send a code, enter it).
#[component]
pub(super) fn PhoneCard(
    api: Api,
    session: Signal<Option<Session>>,
    screen: Signal<Screen>,
) -> Element {
    let mut phone = use_signal(String::new);
    let mut code = use_signal(String::new);
    let mut sent = use_signal(|| false);
    let mut verified = use_signal(|| None::<String>);
    let mut error = use_signal(|| None::<String>);

    let me_api = api.clone();
    use_future(move || {
        let api = me_api.clone();
        async move {
            let me = authed(&api, session, screen, |token| {
                let api = api.clone();
                async move { api.me(&token, 0).await }
            });
            if let Ok(me) = me.await {
                let user = &me["user"];
                let number = user["phone"].as_str().unwrap_or_default().to_string();
                if user["phone_verified"].as_bool() == Some(true) {
                    verified.set(Some(number));
                } else if phone().is_empty() {
                    // Only prefill: never overwrite what the viewer has started typing.
                    phone.set(number);
                }
            }
        }
    });

    let send_api = api.clone();
    let send = move |_| {
        let api = send_api.clone();
        spawn(async move {
            error.set(None);
            let number = phone();
            let started = authed(&api, session, screen, |token| {
                let (api, number) = (api.clone(), number.clone());
                async move { api.start_phone_verification(&token, &number).await }
            });
            match started.await {
                Ok(()) => sent.set(true),
                Err(f) => error.set(Some(f.human())),
            }
        });
    };
    let verify = move |_| {
        let api = api.clone();
        spawn(async move {
            error.set(None);
            let typed = code();
            let checked = authed(&api, session, screen, |token| {
                let (api, typed) = (api.clone(), typed.clone());
                async move { api.verify_phone(&token, &typed).await }
            });
            match checked.await {
                Ok(()) => verified.set(Some(phone())),
                Err(f) if f.code == "wrong_code" => error.set(Some(
                    "That code is not right. Check the message and try again.".into(),
                )),
                Err(f) => error.set(Some(f.human())),
            }
        });
    };

    rsx! {
        div { class: "card phone",
            h2 { "Phone" }
            if let Some(number) = verified() {
                p { id: "phone-verified", "Verified: {number}" }
            } else if sent() {
                p { class: "muted", "We sent a code to {phone}." }
                label { r#for: "phone-code", "Code" }
                input { id: "phone-code", inputmode: "numeric", autocomplete: "one-time-code", oninput: move |e| code.set(e.value()) }
                button { id: "verify-phone-btn", class: "primary", onclick: verify, "Verify" }
            } else {
                label { r#for: "phone", "Phone number (international form)" }
                input { id: "phone", r#type: "tel", placeholder: "+14155550100", initial_value: "{phone}", oninput: move |e| phone.set(e.value()) }
                button { id: "send-code-btn", class: "primary", onclick: send, "Send code" }
            }
            if let Some(msg) = error() {
                p { class: "error", role: "alert", "{msg}" }
            }
        }
    }
}
