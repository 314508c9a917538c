//! PayPal subscriptions: client-credentials token, subscription create and cancel, and webhooks
//! vouched for by PayPal's verify-webhook-signature API.

use super::{send, send_json, str_at};
use crate::settings::PaypalSettings;
use async_trait::async_trait;
use cinelog_commands::ports::{
    CheckoutRequest, CheckoutSession, PaymentGateway, VerifiedNotice, WebhookError, WebhookRequest,
};
use cinelog_domain::plan::PlanId;
use cinelog_domain::subscription::{Notice, Provider};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use uuid::Uuid;

pub struct PaypalGateway {
    http: reqwest::Client,
    settings: PaypalSettings,
    token: Mutex<Option<(String, Instant)>>,
}

impl PaypalGateway {
    pub fn new(settings: PaypalSettings) -> Self {
        Self {
            http: super::http_client(),
            settings,
            token: Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_base.trim_end_matches('/'))
    }

    /// An access token, reused until shortly before it expires.
    async fn access_token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let request = self
            .http
            .post(self.url("/v1/oauth2/token"))
            .basic_auth(
                &self.settings.client_id,
                Some(self.settings.client_secret.expose()),
            )
            .form(&[("grant_type", "client_credentials")]);
        let answer = send_json("PayPal's token endpoint", request).await?;
        let token = str_at(&answer, &["access_token"])
            .ok_or("PayPal's token answer has no access_token")?
            .to_string();
        let lifetime = answer["expires_in"].as_u64().unwrap_or(300);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(1));
        *cached = Some((token.clone(), until));
        Ok(token)
    }

    /// Posts JSON with a fresh token; answers PayPal's answer when it succeeded.
    async fn post(
        &self,
        path: &str,
        body: &Value,
        request_id: Option<&str>,
    ) -> Result<reqwest::Response, String> {
        let token = self.access_token().await?;
        let mut request = self.http.post(self.url(path)).bearer_auth(token).json(body);
        if let Some(id) = request_id {
            request = request.header("PayPal-Request-Id", id);
        }
        send("PayPal", request).await
    }

    /// Posts a JSON body exactly as given; answers PayPal's JSON answer.
    async fn post_raw(&self, what: &str, path: &str, body: String) -> Result<Value, String> {
        let token = self.access_token().await?;
        let request = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        send_json(what, request).await
    }
}

#[async_trait]
impl PaymentGateway for PaypalGateway {
    fn provider(&self) -> Provider {
        Provider::Paypal
    }

    async fn start_checkout(&self, request: &CheckoutRequest) -> Result<CheckoutSession, String> {
        let plan_id = self.settings.plan_for(request.plan).ok_or_else(|| {
            format!(
                "no PayPal plan is set for the {} plan",
                request.plan.as_str()
            )
        })?;
        let mut body = json!({
            "plan_id": plan_id,
            "custom_id": request.account_id,
            "application_context": {
                "return_url": request.success_url,
                "cancel_url": request.cancel_url,
                "user_action": "SUBSCRIBE_NOW",
            },
        });
        if let Some(email) = &request.email {
            body["subscriber"] = json!({"email_address": email});
        }
        let response = self
            .post(
                "/v1/billing/subscriptions",
                &body,
                Some(&request.checkout_id.to_string()),
            )
            .await?;
        let created: Value = response
            .json()
            .await
            .map_err(|e| format!("PayPal's subscription is unreadable: {e}"))?;
        let approve = created["links"].as_array().and_then(|links| {
            links
                .iter()
                .find(|l| str_at(l, &["rel"]) == Some("approve"))
                .and_then(|l| str_at(l, &["href"]))
        });
        match (str_at(&created, &["id"]), approve) {
            (Some(id), Some(href)) => Ok(CheckoutSession {
                checkout_ref: id.to_string(),
                redirect_url: href.to_string(),
            }),
            _ => Err("PayPal's subscription has no id or approve link".into()),
        }
    }

    async fn cancel_at_period_end(&self, provider_ref: &str) -> Result<(), String> {
        self.post(
            &format!("/v1/billing/subscriptions/{provider_ref}/cancel"),
            &json!({"reason": "Canceled by the subscriber"}),
            None,
        )
        .await
        .map(drop)
    }

    async fn resume(&self, _provider_ref: &str) -> Result<bool, String> {
        // A subscription canceled at PayPal stays canceled.
        Ok(false)
    }

    async fn change_plan(
        &self,
        _provider_ref: Option<&str>,
        _plan: PlanId,
    ) -> Result<bool, String> {
        // A PayPal plan revision needs the subscriber's approval at PayPal; its UPDATED webhook
        // then brings the change here.
        Ok(false)
    }

    async fn verify(&self, request: &WebhookRequest) -> Result<VerifiedNotice, WebhookError> {
        let event: Value = serde_json::from_slice(&request.body)
            .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let header = |name: &str| {
            request
                .header(name)
                .map(str::to_string)
                .ok_or_else(|| WebhookError::BadSignature(format!("no {name} header")))
        };
        // PayPal checks the event exactly as it was delivered, so the raw body goes in unchanged.
        let mut check = serde_json::Map::new();
        for (field, header_name) in [
            ("auth_algo", "paypal-auth-algo"),
            ("cert_url", "paypal-cert-url"),
            ("transmission_id", "paypal-transmission-id"),
            ("transmission_sig", "paypal-transmission-sig"),
            ("transmission_time", "paypal-transmission-time"),
        ] {
            check.insert(field.into(), Value::String(header(header_name)?));
        }
        check.insert(
            "webhook_id".into(),
            Value::String(self.settings.webhook_id.clone()),
        );
        let prefix = serde_json::to_string(&Value::Object(check)).expect("serializable");
        let raw = std::str::from_utf8(&request.body)
            .map_err(|_| WebhookError::Malformed("the body is not UTF-8".into()))?;
        let body = format!(
            "{},\"webhook_event\":{raw}}}",
            prefix.strip_suffix('}').expect("an object ends with }")
        );
        let answer = self
            .post_raw(
                "PayPal's verification",
                "/v1/notifications/verify-webhook-signature",
                body,
            )
            .await
            .map_err(WebhookError::Unavailable)?;
        match str_at(&answer, &["verification_status"]) {
            Some("SUCCESS") => read_event(&event, |plan_id| self.settings.plans.plan_of(plan_id)),
            other => Err(WebhookError::BadSignature(format!(
                "PayPal says the signature is {}",
                other.unwrap_or("unknown")
            ))),
        }
    }
}

/// PayPal money (`"15.49"`) in minor units.
fn minor_units(value: &str) -> Option<i64> {
    let (whole, fraction) = value.trim().split_once('.').unwrap_or((value.trim(), ""));
    if fraction.len() > 2 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

/// Reads a PayPal webhook event `{id, event_type, resource}`; `plan_of` names the plan a PayPal
/// plan id sells.
pub fn read_event(
    event: &Value,
    plan_of: impl Fn(&str) -> Option<PlanId>,
) -> Result<VerifiedNotice, WebhookError> {
    let malformed = |what: &str| WebhookError::Malformed(format!("the event has no {what}"));
    let notice_id = str_at(event, &["id"]).ok_or_else(|| malformed("id"))?;
    let event_type = str_at(event, &["event_type"]).ok_or_else(|| malformed("event_type"))?;
    let resource = event
        .get("resource")
        .filter(|r| r.is_object())
        .ok_or_else(|| malformed("resource"))?;
    let id = str_at(resource, &["id"]).map(str::to_string);
    let notice = match event_type {
        "BILLING.SUBSCRIPTION.ACTIVATED" => {
            let last =
                |field: &str| str_at(resource, &["billing_info", "last_payment", "amount", field]);
            Some(Notice::CheckoutCompleted {
                checkout_ref: id.clone().ok_or_else(|| malformed("resource.id"))?,
                provider_ref: id.clone(),
                amount: last("value").and_then(minor_units),
                currency: last("currency_code").map(str::to_string),
            })
        }
        "PAYMENT.SALE.COMPLETED" => Some(Notice::InvoicePaid {
            invoice_id: id.clone().ok_or_else(|| malformed("resource.id"))?,
            provider_ref: str_at(resource, &["billing_agreement_id"]).map(str::to_string),
            amount: str_at(resource, &["amount", "total"])
                .and_then(minor_units)
                .ok_or_else(|| malformed("resource.amount.total"))?,
            currency: str_at(resource, &["amount", "currency"])
                .ok_or_else(|| malformed("resource.amount.currency"))?
                .to_string(),
            period_end: None,
        }),
        "BILLING.SUBSCRIPTION.PAYMENT.FAILED" | "BILLING.SUBSCRIPTION.SUSPENDED" => {
            Some(Notice::PaymentFailed {
                invoice_id: None,
                provider_ref: id.clone(),
            })
        }
        // A cancelled PayPal subscription bills no more; what was paid for still plays.
        "BILLING.SUBSCRIPTION.CANCELLED" => Some(Notice::CancellationScheduled {
            provider_ref: id.clone(),
        }),
        "BILLING.SUBSCRIPTION.UPDATED" => {
            str_at(resource, &["plan_id"])
                .and_then(&plan_of)
                .map(|plan| Notice::PlanChanged {
                    provider_ref: id.clone(),
                    plan,
                })
        }
        "BILLING.SUBSCRIPTION.EXPIRED" => Some(Notice::Canceled {
            provider_ref: id.clone(),
        }),
        _ => None,
    };
    let account_id = ["custom_id", "custom"]
        .iter()
        .find_map(|k| str_at(resource, &[k]))
        .and_then(|raw| Uuid::parse_str(raw).ok());
    Ok(VerifiedNotice {
        notice_id: notice_id.to_string(),
        event_type: event_type.to_string(),
        account_id,
        notice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_into_minor_units() {
        assert_eq!(minor_units("15.49"), Some(1549));
        assert_eq!(minor_units("7.9"), Some(790));
        assert_eq!(minor_units("12"), Some(1200));
        assert_eq!(minor_units("1.999"), None);
        assert_eq!(minor_units("abc"), None);
        assert_eq!(minor_units("1.-5"), None);
    }
}
