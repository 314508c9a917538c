//! Payment providers behind [`PaymentGateway`](cinelog_commands::ports::PaymentGateway): Stripe and
//! PayPal over HTTP, and the sandbox (a local checkout page whose webhooks take the same path).

pub mod paypal;
pub mod sandbox;
pub mod signature;
pub mod stripe;

use serde_json::Value;

/// The string at a path of object keys, if every step exists.
pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

/// The integer at a path of object keys.
pub(crate) fn i64_at(value: &Value, path: &[&str]) -> Option<i64> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_i64)
}

/// The HTTP client payment adapters use: a provider that does not answer within 10 s has failed.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client with a timeout builds")
}

/// Sends a request to a provider (`what` names it in errors): its answer when it succeeded,
/// otherwise why not, as one line.
pub(crate) async fn send(
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("{what} is unreachable: {e}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    Err(format!("{what} answered {status}: {body}"))
}

/// [`send`], reading the answer as JSON.
pub(crate) async fn send_json(
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<Value, String> {
    send(what, request)
        .await?
        .json()
        .await
        .map_err(|e| format!("{what}'s answer is not JSON: {e}"))
}
