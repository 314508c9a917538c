//! The account page: the subscription and its payments, and deleting the account.

use super::phone::PhoneCard;
use super::toast;
use super::{Screen, authed, save_session};
use crate::api::{Api, Session, SubscriptionChange};
use dioxus::prelude::*;

/// `2026-12-29T10:00:00.000000Z` as `2026-12-29`.
fn day(time: &serde_json::Value) -> String {
    time.as_str().unwrap_or("").chars().take(10).collect()
}

fn status_label(status: &str) -> &'static str {
    match status {
        "active" => "Active",
        "past_due" => "Payment due",
        "canceled" => "Canceled",
        "expired" => "Expired",
        _ => "No subscription",
    }
}

fn money(minor: Option<i64>, currency: &serde_json::Value) -> String {
    match minor {
        Some(m) => format!(
            "{}.{:02} {}",
            m / 100,
            m % 100,
            currency.as_str().unwrap_or("").to_uppercase()
        ),
        None => "—".into(),
    }
}

/// The provider to pay with: the one chosen if it is on offer, else the first offered (the
/// sandbox is not offered once a real provider is configured).
fn offered(plans: &Option<serde_json::Value>, chosen: &str) -> String {
    let offered: Vec<&str> = plans
        .as_ref()
        .and_then(|p| p["providers"].as_array())
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    if offered.contains(&chosen) || offered.is_empty() {
        chosen.to_string()
    } else {
        offered[0].to_string()
    }
}

/// What the account page asks of the subscription.
#[derive(Clone)]
enum Act {
    Choose(String),
    Cancel,
    Resume,
}

/// "1 screen", "2 screens".
fn screens(n: u64) -> String {
    if n == 1 {
        "1 screen at a time".into()
    } else {
        format!("{n} screens at a time")
    }
}

/// A plan's id as its name reads: `premium` → `Premium`.
fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The subscription: status, plan, next billing date, payments; plans to choose, change, cancel.
#[component]
pub(super) fn AccountPage(
    api: Api,
    session: Signal<Option<Session>>,
    screen: Signal<Screen>,
    position: i64,
) -> Element {
    let mut read_at = use_signal(|| position);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let mut provider = use_signal(|| "sandbox".to_string());
    // A plan change or a cancellation waiting for the viewer's yes.
    let mut confirming = use_signal(|| None::<Act>);
    // What to say once the confirmed change is done.
    let mut then_say = use_signal(|| None::<String>);

    let plans_api = api.clone();
    let plans = use_resource(move || {
        let api = plans_api.clone();
        async move { api.plans().await.ok() }
    });
    let load_api = api.clone();
    let subscription = use_resource(move || {
        let api = load_api.clone();
        async move {
            let at = read_at();
            let loaded = authed(&api, session, screen, |token| {
                let api = api.clone();
                async move { api.subscription(&token, at).await }
            })
            .await;
            match loaded {
                Ok(v) => Some(v),
                Err(f) => {
                    error.set(Some(f.human()));
                    None
                }
            }
        }
    });

    let act_api = api.clone();
    // Checkout (a plan with no subscription), plan change, cancel or resume.
    let act = move |action: Act, subscribed: bool| {
        let api = act_api.clone();
        spawn(async move {
            if busy() {
                return;
            }
            busy.set(true);
            error.set(None);
            let chosen = offered(&plans().flatten(), &provider());
            let done = authed(&api, session, screen, |token| {
                let (api, action, chosen) = (api.clone(), action.clone(), chosen.clone());
                async move {
                    let change = match &action {
                        Act::Choose(plan) if !subscribed => {
                            return api.checkout(&token, plan, &chosen).await.map(Err);
                        }
                        Act::Choose(plan) => SubscriptionChange::Plan(plan),
                        Act::Cancel => SubscriptionChange::Cancel,
                        Act::Resume => SubscriptionChange::Resume,
                    };
                    api.change_subscription(&token, change).await.map(Ok)
                }
            })
            .await;
            match done {
                Ok(Ok(at)) => {
                    read_at.set(at);
                    let said = then_say.take();
                    toast(match &action {
                        Act::Choose(_) if said.is_some() => said.unwrap_or_default(),
                        Act::Choose(plan) => format!("You chose {}.", capitalized(plan)),
                        Act::Cancel => "Canceled. You can watch until the end of the period you paid for; no more charges.".to_string(),
                        Act::Resume => "Your subscription continues.".to_string(),
                    });
                }
                Ok(Err(url)) => {
                    let go = format!(
                        "location.href = {}; return true;",
                        serde_json::Value::String(url)
                    );
                    let _ = document::eval(&go).join::<bool>().await;
                }
                Err(f) if f.code == "plan_unchanged" => {
                    error.set(Some("You are already on that plan.".into()))
                }
                Err(f) if f.status == 402 || f.code.contains("declined") => error.set(Some(
                    "The payment was declined. Nothing was charged; try another way to pay.".into(),
                )),
                Err(f) if f.status >= 500 || f.status == 0 => error.set(Some(
                    "We could not reach the payment service. Try again in a moment.".into(),
                )),
                Err(f) => error.set(Some(f.human())),
            }
            busy.set(false);
        });
    };

    let sub = subscription().flatten();
    let catalog = plans().flatten();
    let plan_list: Vec<serde_json::Value> = catalog
        .as_ref()
        .and_then(|p| p["plans"].as_array().cloned())
        .unwrap_or_default();
    let providers: Vec<String> = catalog
        .as_ref()
        .and_then(|p| p["providers"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    let status = sub
        .as_ref()
        .and_then(|s| s["status"].as_str())
        .unwrap_or("none")
        .to_string();
    let live = matches!(status.as_str(), "active" | "past_due");
    let current = sub
        .as_ref()
        .and_then(|s| s["plan"].as_str())
        .unwrap_or("")
        .to_string();
    let plan_name = sub
        .as_ref()
        .and_then(|s| s["plan_name"].as_str())
        .unwrap_or("")
        .to_string();
    let canceling = sub
        .as_ref()
        .is_some_and(|s| s["cancel_at_period_end"] == true);
    let pending = sub
        .as_ref()
        .and_then(|s| s["pending_plan"].as_str())
        .map(str::to_string);
    let period_end = sub
        .as_ref()
        .map(|s| day(&s["period_end"]))
        .unwrap_or_default();
    let access_until = sub
        .as_ref()
        .map(|s| day(&s["access_until"]))
        .unwrap_or_default();
    let payments: Vec<serde_json::Value> = sub
        .as_ref()
        .and_then(|s| s["payments"].as_array().cloned())
        .unwrap_or_default();
    let label = status_label(&status);

    rsx! {
        section { class: "account",
            h1 { "Your subscription" }
            if sub.is_none() && error().is_none() {
                p { class: "muted", "Loading…" }
            }
            if sub.is_some() {
                div { class: "card status-card",
                    if live {
                        p { id: "subscription-status", class: "status", "{label} · {plan_name}" }
                        if canceling {
                            p { id: "access-until", "Canceled: you can watch until {period_end}." }
                            button { id: "resume-btn", class: "primary", disabled: busy(), onclick: { let act = act.clone(); move |_| act(Act::Resume, true) }, "Keep my subscription" }
                        } else if status == "past_due" {
                            p { id: "past-due", class: "error", "Your last payment failed. Playback continues until {access_until} while we try again." }
                        } else {
                            p { id: "next-billing", "Next billing date: {period_end}" }
                        }
                        if let Some(p) = pending.clone() {
                            p { class: "muted", "Changes to {capitalized(&p)} on {period_end}." }
                        }
                        if !canceling {
                            button { id: "cancel-btn", class: "link danger", disabled: busy(), onclick: move |_| confirming.set(Some(Act::Cancel)), "Cancel subscription" }
                        }
                    } else {
                        p { id: "subscription-status", class: "status", "{label}" }
                        p { class: "muted", "Choose a plan to start watching." }
                    }
                }
            }
            if let Some(asked) = confirming() {
                {
                    let rank = |id: &str| plan_list.iter().position(|p| p["id"] == id);
                    let (text, yes, done) = match &asked {
                        Act::Choose(id) => {
                            let plan = plan_list.iter().find(|p| p["id"] == id.as_str());
                            let name = plan.and_then(|p| p["name"].as_str()).unwrap_or(id).to_string();
                            let price = plan.map(|p| format!("{} {}", p["price"].as_str().unwrap_or(""), p["currency"].as_str().unwrap_or("").to_uppercase())).unwrap_or_default();
                            if rank(id) > rank(&current) {
                                (format!("Switch to {name} now? It costs {price} a month."), format!("Switch to {name}"), format!("You're on {name} now."))
                            } else {
                                (format!("Switch to {name} for {price} a month? The change starts on {period_end}; until then you keep {plan_name}."), format!("Switch to {name}"), format!("Done: you move to {name} on {period_end}."))
                            }
                        }
                        _ => (format!("Cancel your {plan_name} plan? You can watch until {period_end}, and you will not be charged again."), "Cancel subscription".to_string(), String::new()),
                    };
                    let act = act.clone();
                    rsx! {
                        div { id: "confirm-change", class: "card confirm", role: "alertdialog", "aria-labelledby": "confirm-change-text",
                            p { id: "confirm-change-text", "{text}" }
                            div { class: "dialog-actions",
                                button { id: "confirm-yes", class: "primary", disabled: busy(), onclick: move |_| { confirming.set(None); then_say.set(Some(done.clone()).filter(|d| !d.is_empty())); act(asked.clone(), true) }, "{yes}" }
                                button { id: "confirm-no", class: "secondary", onclick: move |_| confirming.set(None), "Keep my plan" }
                            }
                        }
                    }
                }
            }
            if !live && providers.len() > 1 {
                div { class: "providers",
                    span { class: "muted", "Pay with " }
                    for p in providers.clone() {
                        label { class: "check",
                            input { r#type: "radio", name: "provider", value: "{p}", checked: offered(&catalog, &provider()) == p, onchange: { let p = p.clone(); move |_| provider.set(p.clone()) } }
                            " {p}"
                        }
                    }
                }
            }
            if sub.is_some() && !(live && canceling) {
                div { class: "plans",
                    for plan in plan_list {
                        {
                            let id = plan["id"].as_str().unwrap_or("").to_string();
                            let name = plan["name"].as_str().unwrap_or("").to_string();
                            let is_current = live && id == current;
                            let act = act.clone();
                            let chosen = id.clone();
                            rsx! {
                                div { key: "{id}", class: if is_current { "card plan current" } else { "card plan" }, "data-plan": "{id}",
                                    h2 { "{name}" }
                                    p { class: "price", "{plan[\"price\"].as_str().unwrap_or(\"\")} {plan[\"currency\"].as_str().unwrap_or(\"\").to_uppercase()} / month" }
                                    p { "Up to {plan[\"max_quality\"]}p · {screens(plan[\"concurrent_streams\"].as_u64().unwrap_or(1))}" }
                                    if is_current {
                                        p { class: "badge", "Your plan" }
                                    } else {
                                        button { id: "choose-{id}", class: "primary", disabled: busy(), onclick: move |_| if live { confirming.set(Some(Act::Choose(chosen.clone()))) } else { act(Act::Choose(chosen.clone()), false) },
                                            if live { "Switch to {name}" } else { "Choose {name}" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if !payments.is_empty() {
                div { class: "card history",
                    h2 { "Payment history" }
                    table { id: "payments",
                        thead { tr { th { "Date" } th { "Plan" } th { "Amount" } th { "Result" } } }
                        tbody {
                            for (i, p) in payments.iter().enumerate() {
                                tr { key: "{i}",
                                    td { "{day(&p[\"at\"])}" }
                                    td { "{capitalized(p[\"plan\"].as_str().unwrap_or(\"\"))}" }
                                    td { "{money(p[\"amount\"].as_i64(), &p[\"currency\"])}" }
                                    td { "{p[\"outcome\"].as_str().unwrap_or(\"\")}" }
                                }
                            }
                        }
                    }
                }
            }
            if let Some(msg) = error() {
                p { class: "error", role: "alert", "{msg}" }
            }
            PhoneCard { api: api.clone(), session, screen }
            DeleteAccount { api: api.clone(), session, screen }
        }
    }
}

/// "Delete my account": the password again, then every personal detail is erased, every
/// session ends and the address is free to sign up again.
#[component]
fn DeleteAccount(api: Api, session: Signal<Option<Session>>, screen: Signal<Screen>) -> Element {
    let mut open = use_signal(|| false);
    let mut password = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let erase = move |_| {
        let api = api.clone();
        spawn(async move {
            if busy() {
                return;
            }
            busy.set(true);
            error.set(None);
            let Some(s) = session() else { return };
            match api.erase_account(&s.access_token, &password()).await {
                Ok(()) => {
                    save_session(None).await;
                    session.set(None);
                    screen.set(Screen::SignedOut);
                }
                Err(f) if f.code == "invalid_credentials" => {
                    error.set(Some("That password is not right.".into()))
                }
                Err(f) if f.status == 402 || f.code.contains("declined") => error.set(Some(
                    "The payment was declined. Nothing was charged; try another way to pay.".into(),
                )),
                Err(f) if f.status >= 500 || f.status == 0 => error.set(Some(
                    "We could not reach the payment service. Try again in a moment.".into(),
                )),
                Err(f) => error.set(Some(f.human())),
            }
            busy.set(false);
        });
    };
    rsx! {
        div { class: "card danger-zone",
            h2 { "Delete my account" }
            if open() {
                p { "This erases your email, phone and profile details for good and signs you out everywhere. Enter your password to confirm." }
                input { id: "delete-password", r#type: "password", placeholder: "Password", autocomplete: "current-password", value: "{password}", oninput: move |e| password.set(e.value()) }
                button { id: "delete-confirm", class: "primary danger", disabled: busy() || password().is_empty(), onclick: erase, "Delete my account for good" }
                button { class: "link", onclick: move |_| open.set(false), "Keep it" }
                if let Some(msg) = error() {
                    p { id: "delete-error", class: "error", role: "alert", "{msg}" }
                }
            } else {
                button { id: "delete-account", class: "link danger", onclick: move |_| open.set(true), "Delete my account…" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::offered;
    use serde_json::json;

    #[test]
    fn checkout_uses_a_provider_on_offer() {
        let plans = |providers: serde_json::Value| Some(json!({ "providers": providers }));
        assert_eq!(offered(&plans(json!(["sandbox"])), "sandbox"), "sandbox");
        // With a real provider configured the sandbox is not offered.
        assert_eq!(offered(&plans(json!(["stripe"])), "sandbox"), "stripe");
        assert_eq!(
            offered(&plans(json!(["stripe", "paypal"])), "sandbox"),
            "stripe"
        );
        assert_eq!(
            offered(&plans(json!(["stripe", "paypal"])), "paypal"),
            "paypal"
        );
        // Plans not loaded yet: the choice stands.
        assert_eq!(offered(&None, "sandbox"), "sandbox");
    }
}
