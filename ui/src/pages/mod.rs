//! The app shell: which screen is showing, the signed-in session kept in the browser, and the
//! top bar. Each screen lives in its own module.

mod account;
mod gate;
mod home;
mod phone;
mod profile_edit;
mod profiles;
mod reset_password;
pub(crate) mod route;
mod sign_in;

use crate::api::{Api, Failure, Profile, Session};
use crate::catalog::{MyListPage, PlayerPage, Playing, TasteAt, TitlePage};
use account::AccountPage;
use dioxus::prelude::*;
use home::Home;
use profiles::ProfilePicker;
use reset_password::ResetForm;
use route::{Route, screen_for, url_of};
use sign_in::AuthForm;

const STORAGE_KEY: &str = "cinelog.session";
/// The profile picked last in this browser, so a reload or a link opens the same profile.
const PROFILE_KEY: &str = "cinelog.profile";

/// What [`App`] is started with.
#[derive(Props, Clone, PartialEq)]
pub struct AppProps {
    /// Base URL of the HTTP API this UI talks to.
    pub api_base: String,
}

/// The screen showing, with what it needs to open.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Screen {
    Loading,
    SignedOut,
    /// Choosing a new password with the token from a reset email.
    Reset(String),
    Profiles,
    Home(Profile),
    /// Home with a search's results.
    Search(Profile, String),
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

impl Screen {
    /// The profile this screen is for, if it is a profile's screen.
    fn profile(&self) -> Option<&Profile> {
        match self {
            Screen::Home(p)
            | Screen::Search(p, _)
            | Screen::Title(p, _)
            | Screen::Player(p, ..)
            | Screen::MyList(p) => Some(p),
            _ => None,
        }
    }
}

/// The profile watching in this browser (picked last), if any.
#[derive(Clone, Copy)]
pub(crate) struct Current(pub Signal<Option<Profile>>);

/// A short message shown for a few seconds after something happened ("Plan changed").
#[derive(Clone, Copy)]
pub(crate) struct Toast(pub Signal<Option<String>>);

/// Shows `message` as the toast.
pub(crate) fn toast(message: impl Into<String>) {
    let mut shown = use_toast();
    shown.set(Some(message.into()));
}

fn use_toast() -> Signal<Option<String>> {
    dioxus::core::consume_context::<Toast>().0
}

/// How long a toast shows.
const TOAST_SECS: u64 = 6;

/// Where a signed-out viewer was going: opened after signing in (and picking a profile).
#[derive(Clone, Copy)]
pub(crate) struct Pending(pub Signal<Option<Route>>);

/// The screen a viewer who just signed in goes to: the link they came by, or the picker.
pub(crate) fn after_sign_in(mut pending: Signal<Option<Route>>) -> Screen {
    match pending.take() {
        Some(route @ (Route::Account(_) | Route::Dashboard | Route::Audit)) => {
            screen_for(route, None)
        }
        other => {
            pending.set(other);
            Screen::Profiles
        }
    }
}

/// The screen a viewer goes to on picking `profile`: the link they came by, or home.
pub(crate) fn after_pick(mut pending: Signal<Option<Route>>, profile: Profile) -> Screen {
    let route = pending.take().filter(Route::needs_profile);
    screen_for(route.unwrap_or(Route::Browse), Some(profile))
}

async fn js_string(js: &str) -> Option<String> {
    document::eval(js)
        .join::<Option<String>>()
        .await
        .ok()
        .flatten()
}

async fn remember_profile(id: Option<&str>) {
    let js = match id {
        Some(id) => format!(
            "localStorage.setItem({PROFILE_KEY:?}, {}); return true;",
            serde_json::Value::String(id.into())
        ),
        None => format!("localStorage.removeItem({PROFILE_KEY:?}); return true;"),
    };
    let _ = document::eval(&js).join::<bool>().await;
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

    let pending = use_signal(|| None::<Route>);
    use_context_provider(|| Pending(pending));
    let mut current = use_signal(|| None::<Profile>);
    use_context_provider(|| Current(current));
    let mut toasted = use_signal(|| None::<String>);
    use_context_provider(|| Toast(toasted));
    // A toast goes after a while, unless another replaced it.
    use_effect(move || {
        if let Some(shown) = toasted() {
            spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(TOAST_SECS)).await;
                if toasted.peek().as_deref() == Some(shown.as_str()) {
                    toasted.set(None);
                }
            });
        }
    });
    // Leaving a kids profile for Account asks for the account password first.
    let mut account_gate = use_signal(|| false);
    // Whether the account password was given since the kids profile was picked.
    let mut grown_up = use_signal(|| false);
    use_effect(move || {
        let _ = current();
        grown_up.set(false);
    });
    let playing = use_context_provider(Playing::default);
    // The URL the address bar shows; set before a screen change that came from the address
    // bar itself so that change is not pushed again.
    let mut shown = use_signal(String::new);
    let mut replace_next = use_signal(|| false);

    let restore = api.clone();
    use_future(move || {
        let api = restore.clone();
        async move {
            let landing = js_string("return location.pathname + location.search;")
                .await
                .unwrap_or_default();
            let route = Route::parse(&landing);
            if let Some(answer) = route::checkout_answer(&landing) {
                toasted.set(Some(answer.to_string()));
            }
            if let Route::Reset(token) = route {
                screen.set(Screen::Reset(token));
                return;
            }
            // A stored session resumes: its access token if still good, else one refresh.
            // (The profiles it lists are kept for the profile picked last, below.)
            let (resumed, listed) = match load_session().await {
                Some(s) => match api.profiles(&s.access_token, 0).await {
                    Ok(list) => (Some(s), Some(list)),
                    Err(_) => (api.refresh(&s.refresh_token).await.ok(), None),
                },
                None => (None, None),
            };
            save_session(resumed.as_ref()).await;
            let Some(s) = resumed else {
                let mut pending = pending;
                pending.set(Some(route));
                screen.set(Screen::SignedOut);
                return;
            };
            // The profile picked last here: it opens profile screens, and a kids profile
            // stays one (its limits hold) across reloads.
            let id = js_string(&format!("return localStorage.getItem({PROFILE_KEY:?});")).await;
            let listed = match listed {
                Some(list) => Some(list),
                None => api.profiles(&s.access_token, 0).await.ok(),
            };
            let picked = match (id, listed) {
                (Some(id), Some(list)) => list.into_iter().find(|p| p.profile_id == id),
                _ => None,
            };
            current.set(picked.clone());
            let profile = picked.filter(|_| route.needs_profile());
            if profile.is_none() && route.needs_profile() {
                let mut pending = pending;
                pending.set(Some(route.clone()));
            }
            session.set(Some(s));
            screen.set(screen_for(route, profile));
        }
    });

    // The address bar follows the screen: a new screen adds a history entry; refining a search,
    // or settling the first screen of a page, replaces it.
    use_effect(move || {
        let shown_screen = screen();
        if let Some(p) = shown_screen.profile()
            && current.peek().as_ref().map(|c| &c.profile_id) != Some(&p.profile_id)
        {
            let id = p.profile_id.clone();
            current.set(Some(p.clone()));
            spawn(async move { remember_profile(Some(&id)).await });
        }
        let Some(url) = url_of(&shown_screen) else {
            return;
        };
        let before = shown.peek().clone();
        if before == url {
            return;
        }
        let mut js = String::new();
        if !url.starts_with("/watch/") {
            // Off the player, its stream stops loading.
            js.push_str(
                "if (window.cinelogHls) { window.cinelogHls.destroy(); window.cinelogHls = null; }",
            );
        }
        let replace = route::replaces(&before, &url) || *replace_next.peek();
        replace_next.set(false);
        shown.set(url.clone());
        js += &format!(
            "window.cinelogGo({}, {replace}); return true;",
            serde_json::Value::String(url)
        );
        spawn(async move {
            let _ = document::eval(&js).join::<bool>().await;
        });
    });

    // Back and Forward open the screen the URL names, with the profile showing (or last shown).
    use_future(move || async move {
        let mut moves = document::eval(
            "window.addEventListener('popstate', () => dioxus.send(location.pathname + location.search));",
        );
        let mut last_profile: Option<Profile> = None;
        while let Ok(url) = moves.recv::<String>().await {
            if let Some(p) = screen.peek().profile() {
                last_profile = Some(p.clone());
            }
            let route = Route::parse(&url);
            shown.set(url);
            replace_next.set(true);
            if session.peek().is_none() {
                let mut pending = pending;
                pending.set(Some(route));
                screen.set(Screen::SignedOut);
            } else {
                screen.set(screen_for(route, last_profile.clone()));
            }
        }
    });

    let sign_out_api = api.clone();
    let sign_out = move |_| {
        let (api, playing) = (sign_out_api.clone(), playing.clone());
        spawn(async move {
            if let Some(s) = session() {
                // Playback ends (and its position is kept) while the token still works.
                if let Some(exit) = playing.take() {
                    exit.finish(&s.access_token).await;
                }
                let _ = api.logout(&s.access_token).await;
            }
            save_session(None).await;
            remember_profile(None).await;
            current.set(None);
            session.set(None);
            screen.set(Screen::SignedOut);
        });
    };

    let body = match screen() {
        Screen::Loading => rsx! { p { class: "muted", "Loading…" } },
        Screen::SignedOut => rsx! { AuthForm { api: api.clone(), session, screen } },
        Screen::Reset(token) => rsx! { ResetForm { api: api.clone(), token, screen } },
        Screen::Profiles => rsx! { ProfilePicker { api: api.clone(), session, screen } },
        // One arm for both, so typing a search keeps the same page (and the field's focus).
        Screen::Home(profile) | Screen::Search(profile, _) => {
            let query = match screen() {
                Screen::Search(_, q) => q,
                _ => String::new(),
            };
            rsx! { Home { api: api.clone(), session, profile, query, screen } }
        }
        // A kids profile reaches Account (also by its URL) only with the account password.
        Screen::Account(_) if current().is_some_and(|p| p.kids) && !grown_up() => rsx! {
            gate::Gate { api: api.clone(), session, screen, guard: gate::Guard::Password,
                reason: "A grown-up's password, please".to_string(),
                on_open: move |_| grown_up.set(true),
                on_cancel: move |_| screen.set(Screen::Profiles) }
        },
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
            PlayerPage { key: "{title_id}/{episode_id:?}", api: api.clone(), session, profile, title_id, episode_id, screen }
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
                    button { id: "account-link", class: "link",
                        onclick: move |_| if current.peek().as_ref().is_some_and(|p| p.kids) { account_gate.set(true) } else { screen.set(Screen::Account(0)) },
                        "Account" }
                    button { id: "logout-btn", class: "link", onclick: sign_out, "Sign out" }
                }
            }
        }
        main { class: "content", {body} }
        if let Some(message) = toasted() {
            div { id: "toast", class: "toast", role: "status", "aria-live": "polite", "{message}" }
        }
        if account_gate() {
            gate::Gate { api: api.clone(), session, screen, guard: gate::Guard::Password,
                reason: "A grown-up's password, please".to_string(),
                on_open: move |_| { account_gate.set(false); grown_up.set(true); screen.set(Screen::Account(0)); },
                on_cancel: move |_| account_gate.set(false) }
        }
    }
}
