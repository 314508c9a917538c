//! Security headers on every answer. Pages that need more (the UI shell's script nonce, the
//! sandbox checkout's styles) set their own Content-Security-Policy, which these layers leave
//! alone.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use cinelog_infra::Settings;
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of answers that are not pages: nothing may load, nothing may frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

fn set(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// `nosniff`, a strict default CSP, no framing, no referrer beyond the origin, and HSTS when
/// the public URL is https.
pub fn secure<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    settings: &Settings,
) -> Router<S> {
    let https = settings
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let router = router
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::CONTENT_SECURITY_POLICY, API_CSP))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(
            header::REFERRER_POLICY,
            "strict-origin-when-cross-origin",
        ))
        .layer(set(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ));
    if https {
        router.layer(set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ))
    } else {
        router
    }
}

/// Answers of the API, webhooks and the sandbox carry personal or account data: no cache keeps
/// them unless a route says otherwise.
pub async fn no_store_for_api(request: Request, next: Next) -> Response {
    let private = ["/api/", "/webhooks/", "/sandbox/"]
        .iter()
        .any(|p| request.uri().path().starts_with(p));
    let mut response = next.run(request).await;
    if private && !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
