//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::app::AppState;
use crate::routes::{audit, auth, billing, catalog, engagement, ops, playback, profiles};
use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Cinelog", description = "Event-sourced video streaming: commands, queries, audit."),
    paths(
        auth::signup, auth::login, auth::refresh, auth::logout, auth::password_reset, auth::password_reset_confirm,
        auth::phone_start, auth::phone_verify,
        profiles::me, profiles::list, profiles::show, profiles::create, profiles::update, profiles::remove,
        catalog::list, catalog::show, catalog::genres,
        playback::start, playback::heartbeat, playback::stop, playback::continue_watching, playback::history,
        engagement::rate, engagement::unrate, engagement::ratings, engagement::add, engagement::remove, engagement::my_list,
        engagement::recommendations,
        billing::plans, billing::show, billing::checkout, billing::change, billing::cancel, billing::resume, billing::webhook,
        audit::stream, ops::healthz, ops::readyz, ops::metrics,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

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
