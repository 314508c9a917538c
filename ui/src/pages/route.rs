//! Screens and their addresses. Every screen has a URL; the address bar follows the screen
//! (new screens push a history entry) and Back, Forward, a reload or a link open the screen
//! the URL names, with the profile picked last in this browser.

use super::Screen;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Characters kept as they are in a path segment or query value.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// What a URL asks for: a screen, without the profile and data it needs to open.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Route {
    SignIn,
    /// A password-reset link's token.
    Reset(String),
    Profiles,
    Browse,
    Search(String),
    Title(String),
    Watch(String, Option<String>),
    MyList,
    /// The account page; back from a payment provider's checkout it is read at (at least) the
    /// position the provider's answer was recorded at.
    Account(i64),
    Dashboard,
    Audit,
}

impl Route {
    /// The route a path and query (`/title/x?…`) names; anything unknown opens the home screen.
    pub(crate) fn parse(url: &str) -> Route {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let param = |name: &str| {
            form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let Some(token) = param("reset").filter(|t| !t.is_empty()) {
            return Route::Reset(token);
        }
        if param("checkout").is_some() {
            return Route::Account(param("position").and_then(|p| p.parse().ok()).unwrap_or(0));
        }
        let segment = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["signin"] => Route::SignIn,
            ["profiles"] => Route::Profiles,
            ["search"] => Route::Search(param("q").unwrap_or_default()),
            ["title", id] if !id.is_empty() => Route::Title(segment(id)),
            ["watch", id] if !id.is_empty() => {
                Route::Watch(segment(id), param("episode").filter(|e| !e.is_empty()))
            }
            ["my-list"] => Route::MyList,
            ["account"] => Route::Account(0),
            ["dashboard"] => Route::Dashboard,
            ["audit"] => Route::Audit,
            _ => Route::Browse,
        }
    }

    /// Whether this route shows a profile's screen (and so needs a profile picked).
    pub(crate) fn needs_profile(&self) -> bool {
        matches!(
            self,
            Route::Browse | Route::Search(_) | Route::Title(_) | Route::Watch(..) | Route::MyList
        )
    }
}

/// What a payment provider's return link says happened, as the viewer should read it.
pub(crate) fn checkout_answer(url: &str) -> Option<&'static str> {
    let query = url.split_once('?')?.1.trim_start_matches('?');
    let outcome = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "checkout")
        .map(|(_, v)| v.into_owned())?;
    Some(match outcome.as_str() {
        "success" => "Payment received. Your plan is active: enjoy watching!",
        _ => "The payment did not go through, so nothing was charged. Choose a plan to try again.",
    })
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, KEEP).to_string()
}

/// The URL the address bar shows for a screen (`None` while loading). Secrets (a reset
/// token) and one-off positions stay out of it.
pub(crate) fn url_of(screen: &Screen) -> Option<String> {
    Some(match screen {
        Screen::Loading => return None,
        Screen::SignedOut => "/signin".into(),
        Screen::Reset(_) => "/signin".into(),
        Screen::Profiles => "/profiles".into(),
        Screen::Home(_) => "/browse".into(),
        Screen::Search(_, q) if q.trim().is_empty() => "/browse".into(),
        Screen::Search(_, q) => format!("/search?q={}", encode(q)),
        Screen::Title(_, id) => format!("/title/{}", encode(id)),
        Screen::Player(_, id, None) => format!("/watch/{}", encode(id)),
        Screen::Player(_, id, Some(e)) => format!("/watch/{}?episode={}", encode(id), encode(e)),
        Screen::MyList(_) => "/my-list".into(),
        Screen::Account(_) => "/account".into(),
        Screen::Dashboard => "/dashboard".into(),
        Screen::Audit => "/audit".into(),
    })
}

/// The screen a route opens for the signed-in viewer with `profile` picked (if any). A profile
/// screen without a profile opens the picker.
pub(crate) fn screen_for(route: Route, profile: Option<crate::api::Profile>) -> Screen {
    match (route, profile) {
        (Route::SignIn, _) | (Route::Profiles, _) => Screen::Profiles,
        (Route::Reset(token), _) => Screen::Reset(token),
        (Route::Account(position), _) => Screen::Account(position),
        (Route::Dashboard, _) => Screen::Dashboard,
        (Route::Audit, _) => Screen::Audit,
        (_, None) => Screen::Profiles,
        (Route::Browse, Some(p)) => Screen::Home(p),
        (Route::Search(q), Some(p)) => Screen::Search(p, q),
        (Route::Title(id), Some(p)) => Screen::Title(p, id),
        (Route::Watch(id, e), Some(p)) => Screen::Player(p, id, e),
        (Route::MyList, Some(p)) => Screen::MyList(p),
    }
}

/// Whether moving from the URL `from` to `to` replaces the history entry instead of adding
/// one: typing a search refines it, and the first URL a page settles on is not a new step.
pub(crate) fn replaces(from: &str, to: &str) -> bool {
    let search = |u: &str| u.starts_with("/search") || u == "/browse";
    from.is_empty()
        || (search(from)
            && search(to)
            && (from.starts_with("/search") || to.starts_with("/search")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Profile;

    fn ivy() -> Profile {
        Profile {
            profile_id: "p1".into(),
            name: "Ivy".into(),
            kids: false,
            maturity_rating: "R".into(),
            avatar: "blue".into(),
            locked: false,
        }
    }

    #[test]
    fn every_screen_url_opens_the_same_screen() {
        let p = ivy();
        for screen in [
            Screen::Profiles,
            Screen::Home(p.clone()),
            Screen::Search(p.clone(), "space & time?".into()),
            Screen::Title(p.clone(), "ironbark-pass".into()),
            Screen::Player(p.clone(), "tin foxes".into(), Some("s1e2".into())),
            Screen::Player(p.clone(), "ironbark-pass".into(), None),
            Screen::MyList(p.clone()),
            Screen::Account(0),
            Screen::Dashboard,
            Screen::Audit,
        ] {
            let url = url_of(&screen).unwrap();
            assert_eq!(
                screen_for(Route::parse(&url), Some(p.clone())),
                screen,
                "{url}"
            );
        }
    }

    #[test]
    fn links_from_outside_open_their_screens() {
        assert_eq!(Route::parse("/?reset=abc"), Route::Reset("abc".into()));
        assert_eq!(
            Route::parse("/?checkout=success&position=42"),
            Route::Account(42)
        );
        assert_eq!(
            Route::parse("/??checkout=success&position=7"),
            Route::Account(7)
        );
        assert_eq!(Route::parse("/"), Route::Browse);
        assert_eq!(Route::parse("/nowhere/at/all"), Route::Browse);
        assert_eq!(Route::parse("/title/"), Route::Browse);
        assert_eq!(
            Route::parse("/watch/x?episode="),
            Route::Watch("x".into(), None)
        );
        assert_eq!(screen_for(Route::MyList, None), Screen::Profiles);
        assert!(
            checkout_answer("/?checkout=success&position=3")
                .is_some_and(|m| m.starts_with("Payment received"))
        );
        assert!(
            checkout_answer("/?checkout=canceled")
                .is_some_and(|m| m.contains("nothing was charged"))
        );
        assert_eq!(checkout_answer("/account"), None);
    }

    #[test]
    fn only_search_refinements_replace_the_entry() {
        assert!(replaces("", "/browse"));
        assert!(replaces("/search?q=a", "/search?q=ab"));
        assert!(replaces("/browse", "/search?q=a"));
        assert!(replaces("/search?q=a", "/browse"));
        assert!(!replaces("/browse", "/title/x"));
        assert!(!replaces("/profiles", "/browse"));
    }
}
