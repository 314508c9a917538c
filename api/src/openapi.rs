//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::app::AppState;
use crate::routes::{
    audit, auth, billing, catalog, engagement, events, ops, playback, profiles, stats,
};
use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Cinelog", description = "Event-sourced video streaming: commands, queries, audit."),
    paths(
        auth::signup, auth::login, auth::refresh, auth::logout, auth::password_reset, auth::password_reset_confirm,
        auth::phone_start, auth::phone_verify, auth::change_password, auth::confirm_password,
        profiles::me, profiles::erase_me, profiles::list, profiles::show, profiles::create, profiles::update, profiles::remove, profiles::set_pin, profiles::remove_pin, profiles::unlock,
        catalog::list, catalog::show, catalog::genres,
        playback::start, playback::heartbeat, playback::master, playback::media_file, playback::stop, playback::continue_watching, playback::history,
        engagement::rate, engagement::unrate, engagement::ratings, engagement::add, engagement::remove, engagement::my_list,
        engagement::recommendations,
        billing::plans, billing::show, billing::checkout, billing::change, billing::cancel, billing::resume, billing::webhook,
        audit::stream, audit::state, audit::events, audit::trace, audit::entitlement, audit::verify, events::export, events::live, stats::dashboard, ops::healthz, ops::readyz, ops::metrics,
    ),
    modifiers(&BearerAuth, &CommonAnswers)
)]
pub struct ApiDoc;

/// The answers any route may give besides its own: malformed input, an ended session, an
/// unknown id in the path, a body too large or of the wrong type, a limit, and a read model or
/// service that is briefly not there. Each is the JSON error shape.
struct CommonAnswers;

/// Routes under the abuse limits (429 with `Retry-After`).
const LIMITED: &[&str] = &[
    "/api/auth/signup",
    "/api/auth/login",
    "/api/auth/password-reset",
    "/api/auth/phone/start",
];

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let limited = LIMITED.contains(&path.as_str());
            let has_params = path.contains('{');
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let with_body = op.request_body.is_some();
                let waits = op
                    .parameters
                    .as_ref()
                    .is_some_and(|ps| ps.iter().any(|p| p.name == "min_position"));
                let mut add = |status: &str, what: &str| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(what).into());
                };
                add("400", "malformed request (bad query, JSON or header)");
                if secured {
                    add("401", "no valid access token, or its session has ended");
                    add("403", "the caller's role does not allow this");
                }
                if has_params {
                    add("404", "nothing with that id here");
                }
                if with_body {
                    add("413", "the body is larger than 1 MiB");
                    add("415", "the body is not application/json");
                }
                if with_body || waits {
                    add(
                        "422",
                        "a field is missing or invalid, or min_position is past the log's end",
                    );
                }
                if limited {
                    add("429", "over a limit; see Retry-After");
                }
                add("502", "an outside service did not answer");
                add(
                    "503",
                    "a read model or store is briefly behind or unavailable; see Retry-After",
                );
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { axum::Json(ApiDoc::openapi()) }),
    )
}
