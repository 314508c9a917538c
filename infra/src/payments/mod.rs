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

/// A provider's error answer as one line.
pub(crate) async fn failure(what: &str, response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    format!("{what} answered {status}: {body}")
}
