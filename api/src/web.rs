//! The Dioxus LiveView UI, served by the same axum app: `/` is the page, `/ws` its socket.

use crate::app::AppState;
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use dioxus_liveview::{LiveViewPool, axum_socket, interpreter_glue};

pub fn router(pool: LiveViewPool) -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route(
            "/assets/hls.min.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    cinelog_ui::HLS_JS,
                )
            }),
        )
        .route(
            "/assets/hls.js.LICENSE",
            get(|| async { cinelog_ui::HLS_JS_LICENSE }),
        )
        .route(
            "/ws",
            get(move |State(app): State<AppState>, ws: WebSocketUpgrade| {
                let pool = pool.clone();
                async move {
                    ws.on_upgrade(move |socket| async move {
                        let props = cinelog_ui::AppProps {
                            api_base: app.api_base.get().cloned().unwrap_or_default(),
                        };
                        if let Err(e) = pool
                            .launch_with_props(axum_socket(socket), cinelog_ui::App, props)
                            .await
                        {
                            tracing::debug!(error = ?e, "ui session ended");
                        }
                    })
                }
            }),
        )
}

async fn page() -> impl IntoResponse {
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cinelog</title>
<style>{}</style>
<script src="/assets/hls.min.js"></script>
</head>
<body><div id="main"></div>{}</body>
</html>"#,
        cinelog_ui::STYLE,
        interpreter_glue("/ws")
    ))
}
