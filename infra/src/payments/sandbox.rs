//! The sandbox provider: a checkout page served by Cinelog itself where the subscriber approves
//! or declines. Its outcome, and each renewal, is a Stripe-shaped event signed with the
//! sandbox's key and handed to the same webhook path as the real providers' deliveries.

use super::{signature, stripe};
use crate::signed::SignedToken;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_commands::ports::{
    CheckoutRequest, CheckoutSession, Clock, PaymentGateway, VerifiedNotice, WebhookError,
    WebhookRequest,
};
use cinelog_domain::plan::PlanId;
use cinelog_domain::subscription::{Provider, next_period_end};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// Where the sandbox's checkout page lives.
pub const CHECKOUT_PATH: &str = "/sandbox/checkout";

/// The sandbox provider.
pub struct SandboxGateway {
    key: Vec<u8>,
    links: SignedToken<SandboxCheckout>,
    clock: Arc<dyn Clock>,
}

/// A sandbox checkout, carried signed in the checkout page's URL so the page needs no storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxCheckout {
    pub account_id: Uuid,
    pub checkout_ref: String,
    pub plan: PlanId,
    pub success_url: String,
    pub cancel_url: String,
}

impl SandboxGateway {
    /// `key` signs checkout links and webhook deliveries; keep it stable across restarts.
    pub fn new(key: Vec<u8>, clock: Arc<dyn Clock>) -> Self {
        Self {
            links: SignedToken::new(key.clone(), "checkout"),
            key,
            clock,
        }
    }

    /// Reads a checkout link's token; `None` if it was not made here or was altered.
    pub fn open(&self, token: &str) -> Option<SandboxCheckout> {
        self.links.open(token)
    }

    /// The webhook delivery for the subscriber's answer on the checkout page. Its ids come from
    /// the checkout, so a checkout is answered once: posting its link again (either answer)
    /// redelivers the same event, which is recorded as a duplicate and appends nothing.
    pub fn settle(&self, checkout: &SandboxCheckout, approved: bool) -> WebhookRequest {
        let plan = checkout.plan.plan();
        let reference = checkout
            .checkout_ref
            .strip_prefix("sbx_cs_")
            .unwrap_or(&checkout.checkout_ref);
        let event = if approved {
            json!({
                "type": "checkout.session.completed",
                "object": {
                    "id": checkout.checkout_ref,
                    "object": "checkout.session",
                    "client_reference_id": checkout.account_id,
                    "subscription": format!("sbx_sub_{reference}"),
                    "amount_total": plan.price_minor,
                    "currency": plan.currency,
                    "status": "complete",
                    "metadata": {"account_id": checkout.account_id, "plan": plan.id},
                },
            })
        } else {
            json!({
                "type": "checkout.session.expired",
                "object": {
                    "id": checkout.checkout_ref,
                    "object": "checkout.session",
                    "client_reference_id": checkout.account_id,
                    "status": "expired",
                },
            })
        };
        self.delivery(&format!("evt_sbx_answer_{reference}"), event)
    }

    /// Wraps `{type, object}` in an event envelope and signs it.
    fn delivery(&self, id: &str, event: serde_json::Value) -> WebhookRequest {
        let now = self.clock.now().timestamp();
        let body = serde_json::to_vec(&json!({
            "id": id,
            "object": "event",
            "type": event["type"],
            "created": now,
            "data": {"object": event["object"]},
        }))
        .expect("serializable");
        WebhookRequest {
            headers: vec![(
                "stripe-signature".into(),
                signature::sign(&self.key, now, &body),
            )],
            body,
        }
    }
}

#[async_trait]
impl PaymentGateway for SandboxGateway {
    fn provider(&self) -> Provider {
        Provider::Sandbox
    }

    async fn start_checkout(&self, request: &CheckoutRequest) -> Result<CheckoutSession, String> {
        let checkout = SandboxCheckout {
            account_id: request.account_id,
            checkout_ref: format!("sbx_cs_{}", request.checkout_id.simple()),
            plan: request.plan,
            success_url: request.success_url.clone(),
            cancel_url: request.cancel_url.clone(),
        };
        Ok(CheckoutSession {
            redirect_url: format!("{CHECKOUT_PATH}?session={}", self.links.sign(&checkout)),
            checkout_ref: checkout.checkout_ref,
        })
    }

    async fn cancel_at_period_end(&self, _provider_ref: &str) -> Result<(), String> {
        // The sandbox bills on Cinelog's schedule, which stops once the cancellation is recorded.
        Ok(())
    }

    async fn resume(&self, _provider_ref: &str) -> Result<bool, String> {
        // And goes on once the withdrawal is recorded.
        Ok(true)
    }

    async fn change_plan(
        &self,
        _provider_ref: Option<&str>,
        _plan: PlanId,
    ) -> Result<bool, String> {
        // Its renewals are priced from the recorded plan.
        Ok(true)
    }

    async fn verify(&self, request: &WebhookRequest) -> Result<VerifiedNotice, WebhookError> {
        stripe::verify_and_read(&self.key, request, self.clock.now(), |_| None)
    }

    async fn renewal(
        &self,
        account_id: Uuid,
        provider_ref: &str,
        plan: PlanId,
        period_end: DateTime<Utc>,
    ) -> Result<Option<VerifiedNotice>, String> {
        let price = plan.plan();
        // The same period always makes the same event and invoice ids, so schedulers running in
        // several processes record one renewal.
        let period = format!("{provider_ref}_{}", period_end.timestamp());
        let event = json!({
            "type": "invoice.paid",
            "object": {
                "id": format!("in_sbx_{period}"),
                "object": "invoice",
                "subscription": provider_ref,
                "amount_paid": price.price_minor,
                "currency": price.currency,
                "lines": {"data": [{"period": {
                    "start": period_end.timestamp(),
                    "end": next_period_end(period_end).timestamp(),
                }}]},
                "subscription_details": {"metadata": {"account_id": account_id}},
            },
        });
        let delivery = self.delivery(&format!("evt_sbx_renew_{period}"), event);
        // Read through the same path as every delivery, so a renewal means what a webhook would.
        self.verify(&delivery)
            .await
            .map(Some)
            .map_err(|e| e.to_string())
    }
}
