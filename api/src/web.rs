//! The Dioxus LiveView UI, served by the same axum app: `/` and every screen's address are the
//! page, `/ws` its socket.

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::ClientIp;
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use dioxus_liveview::{LiveViewPool, axum_socket, interpreter_glue};
use futures::StreamExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Text made safe inside HTML or SVG, in element content and quoted attributes alike.
pub fn escape(text: &str) -> String {
    html_escape::encode_safe(text).into_owned()
}

/// The addresses of the UI's screens; each serves the page, which opens the screen its URL names.
const SCREENS: &[&str] = &[
    "/",
    "/signin",
    "/profiles",
    "/browse",
    "/search",
    "/title/{id}",
    "/watch/{id}",
    "/my-list",
    "/account",
    "/dashboard",
    "/audit",
];

pub fn router(pool: LiveViewPool) -> Router<AppState> {
    SCREENS
        .iter()
        .fold(Router::new(), |r, path| r.route(path, get(page)))
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
            get(
                move |State(app): State<AppState>,
                      ClientIp(client): ClientIp,
                      headers: HeaderMap,
                      ws: WebSocketUpgrade| {
                    let pool = pool.clone();
                    async move { socket(app, pool, client, &headers, ws) }
                },
            ),
        )
}

/// Whether a socket's `Origin` is this site: the public URL when one is configured; else this
/// server's own address or a loopback name on its port (the embedded default, opened as
/// `localhost` or `127.0.0.1`).
fn origin_allowed(app: &AppState, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    if origin == app.public_base() {
        return true;
    }
    if app.settings.public_url.is_some() {
        return false;
    }
    let Some(port) = app.api_base.get().and_then(|b| b.rsplit(':').next()) else {
        return false;
    };
    ["http://localhost", "http://127.0.0.1", "http://[::1]"]
        .iter()
        .any(|host| origin == format!("{host}:{port}"))
}

/// Open UI sockets per client, so one client cannot hold the server's memory hostage.
#[derive(Default)]
pub struct SocketCounts(Mutex<HashMap<IpAddr, u32>>);

/// One client's hold on a socket slot; gives it back when dropped.
struct SocketSlot {
    counts: Arc<SocketCounts>,
    client: IpAddr,
}

impl SocketCounts {
    fn take(self: &Arc<Self>, client: IpAddr, max: u32) -> Option<SocketSlot> {
        let mut counts = self.0.lock().ok()?;
        let n = counts.entry(client).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            counts: self.clone(),
            client,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.0.lock()
            && let Some(n) = counts.get_mut(&self.client)
        {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// Upgrades to a LiveView session: a foreign Origin gets 403, a client over its socket limit
/// 429. The session's VirtualDom lives exactly as long as its socket: a close, or any error
/// from it, ends the session and frees its memory.
fn socket(
    app: AppState,
    pool: LiveViewPool,
    client: IpAddr,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("");
    if !origin_allowed(&app, origin) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "this socket is for pages of this site only",
        )
        .into_response();
    }
    let Some(slot) = app
        .sockets
        .take(client, app.settings.limits.sockets_per_client)
    else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sockets",
            "too many open pages from this client; close some",
        )
        .retry_after(5)
        .into_response();
    };
    ws.on_upgrade(move |socket| async move {
        let _slot = slot;
        let _live = app.metrics.ui_session();
        let props = cinelog_ui::AppProps {
            api_base: app.api_base.get().cloned().unwrap_or_default(),
        };
        // The adapter passes a closed or broken socket's errors on as messages; ending the
        // stream at the first one lets the session finish.
        // The server stopping ends it too: the socket closes and the page reconnects.
        let socket = axum_socket(socket)
            .take_while(|m| std::future::ready(m.is_ok()))
            .take_until(app.stopping.clone().cancelled_owned());
        if let Err(e) = pool.launch_with_props(socket, cinelog_ui::App, props).await {
            tracing::debug!(error = ?e, "ui session ended");
        }
    })
}

/// The address bar is the app's own: `cinelogGo(url, replace)` moves it, and other calls to
/// `history.replaceState` keep their state but not their URL. (LiveView's built-in history
/// rewrites the URL as `path + "?" + search` on every load and Back, doubling the `?` each time.)
const HISTORY_GUARD: &str = "(() => { const replace = history.replaceState.bind(history), push = history.pushState.bind(history); \
    history.replaceState = (state, title) => replace(state, title); \
    window.cinelogGo = (url, replacing) => (replacing ? replace : push)(null, '', url); })();";

/// When the page's socket closes (the server restarted, the network dropped), a banner says
/// so and the page reloads once the server answers again; the URL then opens the same screen.
/// Tries back off from 250 ms to 8 s, also across reloads when a socket keeps failing at once
/// (say it is refused). A page being left closes its socket, so its session (and a playback
/// in it) ends on the server at once; shown again from the browser's cache, it reloads.
const RECONNECT: &str = "(() => { const ws = window.ipc && window.ipc.ws; if (!ws) return; let openedAt = 0, leaving = false; \
    addEventListener('pagehide', () => { leaving = true; ws.close(1000, 'page left'); }); \
    addEventListener('pageshow', e => { if (e.persisted) location.reload(); }); \
    ws.addEventListener('open', () => { openedAt = Date.now(); }); \
    ws.addEventListener('close', () => { if (leaving) return; \
      const banner = document.createElement('div'); banner.id = 'reconnecting'; banner.className = 'reconnecting'; \
      banner.setAttribute('role', 'status'); banner.textContent = 'Connection lost. Reconnecting…'; document.body.appendChild(banner); \
      const lasted = openedAt > 0 && Date.now() - openedAt > 5000; \
      let delay = lasted ? 250 : Math.min(Number(sessionStorage.getItem('cinelog.retry')) || 250, 8000); \
      const retry = () => fetch('/healthz', { cache: 'no-store' }) \
        .then(r => { if (!r.ok) throw new Error(String(r.status)); \
          sessionStorage.setItem('cinelog.retry', String(Math.min(delay * 2, 8000))); location.reload(); }) \
        .catch(() => { delay = Math.min(delay * 2, 8000); setTimeout(retry, delay); }); \
      setTimeout(retry, delay); }); })();";

/// A fresh nonce for the page's inline scripts.
fn nonce() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 18]>())
}

/// The UI shell. Its policy allows the LiveView glue by nonce and `eval` (which LiveView's
/// interpreter uses to run the UI's scripts), scripts and styles from here, media from `blob:`
/// (hls.js), and connections to this site and its API.
async fn page(State(app): State<AppState>) -> Response {
    let nonce = nonce();
    let api = app.api_base.get().cloned().unwrap_or_default();
    let csp = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: https:; media-src 'self' blob: {api}; connect-src 'self' {api} {ws}; \
         worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ws = api.replacen("http", "ws", 1),
    );
    let glue =
        interpreter_glue("/ws").replacen("<script>", &format!("<script nonce=\"{nonce}\">"), 1);
    let shell = format!(
        "<script nonce=\"{nonce}\">{HISTORY_GUARD}</script>{glue}<script nonce=\"{nonce}\">{RECONNECT}</script>"
    );
    let html = Html(format!(
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
        shell
    ));
    (
        [
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        html,
    )
        .into_response()
}
