//! Pages: sign in / sign up, the profile picker, and home.

use crate::api::{Api, Failure, Profile, Session, SubscriptionChange};
use crate::catalog::{Browse, MyListPage, PlayerPage, TasteAt, TitlePage};
use dioxus::prelude::*;

const STORAGE_KEY: &str = "cinelog.session";
const MAX_PROFILES: usize = 5;

#[derive(Props, Clone, PartialEq)]
pub struct AppProps {
    /// Base URL of the HTTP API this UI talks to.
    pub api_base: String,
}

#[derive(Clone, PartialEq)]
pub(crate) enum Screen {
    Loading,
    SignedOut,
    /// Choosing a new password with the token from a reset email.
    Reset(String),
    Profiles,
    Home(Profile),
    /// The subscription page, read at (at least) this log position.
    Account(i64),
    /// A title's page.
    Title(Profile, String),
    /// Playing a title (and for series an episode).
    Player(Profile, String, Option<String>),
    MyList(Profile),
    /// The analysts' dashboard.
    Dashboard,
    /// The auditors' console.
    Audit,
}

async fn save_session(session: Option<&Session>) {
    let js = match session.and_then(|s| serde_json::to_string(s).ok()) {
        Some(json) => format!(
            "localStorage.setItem({STORAGE_KEY:?}, {}); return true;",
            serde_json::Value::String(json)
        ),
        None => format!("localStorage.removeItem({STORAGE_KEY:?}); return true;"),
    };
    if let Err(e) = document::eval(&js).join::<bool>().await {
        tracing::debug!(error = ?e, "could not store the session in the browser");
    }
}

async fn load_session() -> Option<Session> {
    let raw: Option<String> =
        document::eval(&format!("return localStorage.getItem({STORAGE_KEY:?});"))
            .join()
            .await
            .ok()?;
    serde_json::from_str(&raw?).ok()
}

/// Calls the API as the signed-in viewer. An expired access token is refreshed once (and the new
/// session stored) before the call is retried; if that fails, the viewer is signed out.
pub(crate) async fn authed<T, Fut>(
    api: &Api,
    mut session: Signal<Option<Session>>,
    mut screen: Signal<Screen>,
    call: impl Fn(String) -> Fut,
) -> Result<T, Failure>
where
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let current = session.peek().clone();
    let Some(current) = current else {
        return Err(Failure {
            status: 401,
            code: "unauthenticated".into(),
            message: "Sign in first.".into(),
        });
    };
    match call(current.access_token.clone()).await {
        Err(f) if f.status == 401 => match api.refresh(&current.refresh_token).await {
            Ok(fresh) => {
                save_session(Some(&fresh)).await;
                let token = fresh.access_token.clone();
                session.set(Some(fresh));
                call(token).await
            }
            Err(_) => {
                save_session(None).await;
                session.set(None);
                screen.set(Screen::SignedOut);
                Err(f)
            }
        },
        other => other,
    }
}

/// The whole UI.
#[allow(non_snake_case)]
pub fn App(props: AppProps) -> Element {
    let api = use_hook(|| Api::new(props.api_base.clone()));
    let mut session = use_signal(|| None::<Session>);
    let mut screen = use_signal(|| Screen::Loading);
    let taste_at = use_signal(|| 0_i64);
    use_context_provider(|| TasteAt(taste_at));

    let restore = api.clone();
    use_future(move || {
        let api = restore.clone();
        async move {
            // A link from a password-reset email opens the reset form; coming back from a payment
            // provider's checkout opens the account page at the position its answer was recorded
            // at. The address bar is left clean. (Read from the whole address: the LiveView glue
            // may rewrite `location.search` while the page starts.)
            let landing: serde_json::Value = document::eval(
                "const p = n => { const m = location.href.match(new RegExp('[?&]' + n + '=([^&#]*)')); return m ? decodeURIComponent(m[1]) : null; };
                 const r = { reset: p('reset'), checkout: p('checkout'), position: p('position') };
                 if (r.reset || r.checkout) history.replaceState(null, '', '/');
                 return r;",
            )
            .join()
            .await
            .unwrap_or_default();
            if let Some(token) = landing["reset"].as_str() {
                screen.set(Screen::Reset(token.to_string()));
                return;
            }
            let checkout = landing["checkout"].as_str().map(|_| {
                landing["position"]
                    .as_str()
                    .and_then(|p| p.parse::<i64>().ok())
                    .unwrap_or(0)
            });
            // A stored session resumes: its access token if still good, else one refresh.
            let resumed = match load_session().await {
                Some(s) if api.profiles(&s.access_token, 0).await.is_ok() => Some(s),
                Some(s) => api.refresh(&s.refresh_token).await.ok(),
                None => None,
            };
            save_session(resumed.as_ref()).await;
            screen.set(match (&resumed, checkout) {
                (Some(_), Some(position)) => Screen::Account(position),
                (Some(_), None) => Screen::Profiles,
                (None, _) => Screen::SignedOut,
            });
            session.set(resumed);
        }
    });

    let sign_out_api = api.clone();
    let sign_out = move |_| {
        let api = sign_out_api.clone();
        spawn(async move {
            if let Some(s) = session() {
                let _ = api.logout(&s.access_token).await;
            }
            save_session(None).await;
            session.set(None);
            screen.set(Screen::SignedOut);
        });
    };

    let body = match screen() {
        Screen::Loading => rsx! { p { class: "muted", "Loading…" } },
        Screen::SignedOut => rsx! { AuthForm { api: api.clone(), session, screen } },
        Screen::Reset(token) => rsx! { ResetForm { api: api.clone(), token, screen } },
        Screen::Profiles => rsx! { ProfilePicker { api: api.clone(), session, screen } },
        Screen::Home(profile) => rsx! { Home { api: api.clone(), session, profile, screen } },
        Screen::Account(position) => {
            rsx! { AccountPage { api: api.clone(), session, screen, position } }
        }
        Screen::Dashboard => rsx! {
            crate::dashboard::Dashboard { api: api.clone(), session, screen }
        },
        Screen::Audit => rsx! {
            crate::audit::AuditConsole { api: api.clone(), session, screen }
        },
        Screen::Title(profile, title_id) => rsx! {
            TitlePage { key: "{title_id}", api: api.clone(), session, profile, title_id, screen }
        },
        Screen::MyList(profile) => rsx! {
            MyListPage { api: api.clone(), session, profile, screen }
        },
        Screen::Player(profile, title_id, episode_id) => rsx! {
            PlayerPage { api: api.clone(), session, profile, title_id, episode_id, screen }
        },
    };
    let signed_in = session().is_some();
    let role = session().and_then(|s| s.role());
    let analyst = role
        .as_deref()
        .is_some_and(|r| r == "analyst" || r == "auditor");
    let auditor = role.as_deref() == Some("auditor");

    rsx! {
        header { class: "topbar",
            span { class: "brand", "Cinelog" }
            if signed_in {
                nav { class: "nav",
                    if analyst {
                        button { id: "dashboard-link", class: "link", onclick: move |_| screen.set(Screen::Dashboard), "Dashboard" }
                    }
                    if auditor {
                        button { id: "audit-link", class: "link", onclick: move |_| screen.set(Screen::Audit), "Audit" }
                    }
                    button { id: "profiles-link", class: "link", onclick: move |_| screen.set(Screen::Profiles), "Profiles" }
                    button { id: "account-link", class: "link", onclick: move |_| screen.set(Screen::Account(0)), "Account" }
                    button { id: "logout-btn", class: "link", onclick: sign_out, "Sign out" }
                }
            }
        }
        main { class: "content", {body} }
    }
}

#[component]
fn AuthForm(api: Api, session: Signal<Option<Session>>, screen: Signal<Screen>) -> Element {
    let mut email = use_signal(String::new);
    let mut password = use_signal(String::new);
    let mut creating = use_signal(|| false);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let mut notice = use_signal(|| None::<String>);

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
                Err(f) => error.set(Some(f.message)),
            }
        });
    };

    let submit = move |_| {
        let api = api.clone();
        spawn(async move {
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
                    screen.set(Screen::Profiles);
                }
                Err(f) if f.code == "email_taken" => error.set(Some(
                    "That email already has an account. Sign in instead.".into(),
                )),
                Err(f) if f.code == "invalid_credentials" => {
                    error.set(Some("Wrong email or password.".into()))
                }
                Err(f) => error.set(Some(f.message)),
            }
            busy.set(false);
        });
    };

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
            input { id: "email", r#type: "email", autocomplete: "email", oninput: move |e| email.set(e.value()) }
            label { r#for: "password", "Password" }
            input { id: "password", r#type: "password", autocomplete: if creating() { "new-password" } else { "current-password" }, oninput: move |e| password.set(e.value()) }
            if creating() {
                p { class: "hint", "At least 8 characters." }
            }
            if let Some(msg) = error() {
                p { class: "error", role: "alert", "{msg}" }
            }
            button { id: "submit-btn", class: "primary", disabled: busy(), onclick: submit, "{action}" }
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

#[component]
fn ResetForm(api: Api, token: String, screen: Signal<Screen>) -> Element {
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
                Err(f) => error.set(Some(f.message)),
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

#[component]
fn ProfilePicker(api: Api, session: Signal<Option<Session>>, screen: Signal<Screen>) -> Element {
    let mut position = use_signal(|| 0_i64);
    let mut error = use_signal(|| None::<String>);
    let mut name = use_signal(String::new);
    let mut kids = use_signal(|| false);
    let mut busy = use_signal(|| false);

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

    let create = move |_| {
        let api = api.clone();
        spawn(async move {
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
    };

    let list = profiles().flatten().unwrap_or_default();
    let count = list.len();
    rsx! {
        section { class: "picker",
            h1 { "Who's watching?" }
            div { class: "profiles",
                for p in list {
                    ProfileCard { key: "{p.profile_id}", profile: p.clone(), on_pick: move |p| screen.set(Screen::Home(p)) }
                }
            }
            if count < MAX_PROFILES {
                div { class: "card add-profile",
                    h2 { "Add a profile" }
                    label { r#for: "profile-name", "Name" }
                    input { id: "profile-name", maxlength: "40", oninput: move |e| name.set(e.value()) }
                    label { class: "check",
                        input { id: "profile-kids", r#type: "checkbox", checked: kids(), onchange: move |e| kids.set(e.checked()) }
                        " Kids profile (only titles rated for children)"
                    }
                    button { id: "add-profile-btn", class: "primary", disabled: busy() || name().trim().is_empty(), onclick: create, "Add profile" }
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

#[component]
fn Home(
    api: Api,
    session: Signal<Option<Session>>,
    profile: Profile,
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
            Browse { key: "{profile.profile_id}", api: api.clone(), session, profile: profile.clone(), screen }
            PhoneCard { api, session, screen }
        }
    }
}

/// The account's phone: shown once verified, else a two-step form (send a code, enter it).
#[component]
fn PhoneCard(api: Api, session: Signal<Option<Session>>, screen: Signal<Screen>) -> Element {
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
                Err(f) => error.set(Some(f.message)),
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
                Err(f) => error.set(Some(f.message)),
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

/// The subscription: status, plan, next billing date, payments; plans to choose, change, cancel.
#[component]
fn AccountPage(
    api: Api,
    session: Signal<Option<Session>>,
    screen: Signal<Screen>,
    position: i64,
) -> Element {
    let mut read_at = use_signal(|| position);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let mut provider = use_signal(|| "sandbox".to_string());

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
                    error.set(Some(f.message));
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
                Ok(Ok(at)) => read_at.set(at),
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
                Err(f) => error.set(Some(f.message)),
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
                            p { class: "muted", "Changes to {p} on {period_end}." }
                        }
                        if !canceling {
                            button { id: "cancel-btn", class: "link danger", disabled: busy(), onclick: { let act = act.clone(); move |_| act(Act::Cancel, true) }, "Cancel subscription" }
                        }
                    } else {
                        p { id: "subscription-status", class: "status", "{label}" }
                        p { class: "muted", "Choose a plan to start watching." }
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
                                    p { "Up to {plan[\"max_quality\"]}p · {plan[\"concurrent_streams\"]} screen(s)" }
                                    if is_current {
                                        p { class: "badge", "Your plan" }
                                    } else {
                                        button { id: "choose-{id}", class: "primary", disabled: busy(), onclick: move |_| act(Act::Choose(chosen.clone()), live),
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
                                    td { "{p[\"plan\"].as_str().unwrap_or(\"\")}" }
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
                Err(f) => error.set(Some(f.message)),
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
