//! The app shell: which screen is showing, the signed-in session kept in the browser, and the
//! top bar. Each screen lives in its own module.

mod account;
mod home;
mod phone;
mod profiles;
mod reset_password;
mod sign_in;

use crate::api::{Api, Failure, Profile, Session};
use crate::catalog::{MyListPage, PlayerPage, TasteAt, TitlePage};
use account::AccountPage;
use dioxus::prelude::*;
use home::Home;
use profiles::ProfilePicker;
use reset_password::ResetForm;
use sign_in::AuthForm;

const STORAGE_KEY: &str = "cinelog.session";

/// What [`App`] is started with.
#[derive(Props, Clone, PartialEq)]
pub struct AppProps {
    /// Base URL of the HTTP API this UI talks to.
    pub api_base: String,
}

/// The screen showing, with what it needs to open.
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
