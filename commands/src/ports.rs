//! Outside services the write side needs, as traits. `infra` has the real adapters and the
//! local defaults.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_domain::plan::PlanId;
use cinelog_domain::subscription::{Notice, Provider};
use cinelog_domain::values::{Email, Phone, Sealed};
use uuid::Uuid;

/// Sends and checks one-time codes for phone numbers (Twilio Verify, or the console).
#[async_trait]
pub trait PhoneVerifier: Send + Sync {
    /// Sends a code to the phone.
    async fn start(&self, phone: &Phone) -> Result<(), String>;
    /// Whether the code is the right one for the phone.
    async fn check(&self, phone: &Phone, code: &str) -> Result<bool, String>;
}

/// Delivers messages to users' email addresses.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send_password_reset(&self, to: &Email, token: &str) -> Result<(), String>;
}

/// Which sign-in sessions are open, and this replica's note of the ones that just ended (other
/// replicas learn of them from the log).
#[async_trait]
pub trait SessionRegistry: Send + Sync {
    /// The user's sessions that have not ended, as far as the log's readers know.
    async fn open_sessions(&self, user_id: Uuid) -> Result<Vec<Uuid>, String>;
    /// These sessions ended: refuse their access tokens from now on.
    fn ended(&self, sessions: &[Uuid]);
}

/// The time, injectable so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Seals personal data with its owner's key, and opens it again while the key exists.
#[async_trait]
pub trait Vault: Send + Sync {
    /// Encrypts `plaintext` under `owner`'s key (created on first use).
    async fn seal(&self, owner: Uuid, plaintext: &str) -> Result<Sealed, String>;
    /// Decrypts; `None` once the owner's key has been destroyed.
    async fn open(&self, owner: Uuid, sealed: &Sealed) -> Result<Option<String>, String>;
    /// Destroys the owner's key: everything sealed with it becomes unreadable.
    async fn destroy(&self, owner: Uuid) -> Result<(), String>;
}

/// A checkout to open at a payment provider.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub account_id: Uuid,
    /// Our id for this checkout; providers that take an idempotency key get it.
    pub checkout_id: Uuid,
    pub plan: PlanId,
    pub email: Option<String>,
    /// Where the provider sends the subscriber after paying, and after giving up.
    pub success_url: String,
    pub cancel_url: String,
}

/// A checkout the provider opened.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutSession {
    /// The provider's reference for it (`cs_…`, `I-…`, or the sandbox's id).
    pub checkout_ref: String,
    /// Where the subscriber goes to pay.
    pub redirect_url: String,
}

/// A webhook delivery as received: header names in lower case, the body untouched.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebhookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook whose signature checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedNotice {
    /// The provider's event id: the idempotency key.
    pub notice_id: String,
    /// The provider's event type, e.g. `invoice.paid`.
    pub event_type: String,
    /// The account, when the payload names it.
    pub account_id: Option<Uuid>,
    /// What it means for a subscription; `None` for event types Cinelog does not act on.
    pub notice: Option<Notice>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook signature is missing, wrong or stale: {0}")]
    BadSignature(String),
    #[error("the webhook body is not an event: {0}")]
    Malformed(String),
    #[error("the provider could not be asked: {0}")]
    Unavailable(String),
}

/// A payment provider: opens checkouts, cancels subscriptions, and vouches for its webhooks.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    fn provider(&self) -> Provider;
    async fn start_checkout(&self, request: &CheckoutRequest) -> Result<CheckoutSession, String>;
    /// Asks the provider to end the subscription at the period end.
    async fn cancel_at_period_end(&self, provider_ref: &str) -> Result<(), String>;
    /// Asks the provider to keep a subscription it was to end at the period end; `false` if this
    /// provider cannot take a cancellation back.
    async fn resume(&self, provider_ref: &str) -> Result<bool, String>;
    /// Asks the provider to bill `plan` from the next invoice on, with no proration (an upgrade
    /// plays at once and is billed from the next period; a downgrade starts with it); `false` if
    /// plan changes are made at this provider only, or it has no reference to change.
    async fn change_plan(&self, provider_ref: Option<&str>, plan: PlanId) -> Result<bool, String>;
    /// Checks a delivery's signature and reads it.
    async fn verify(&self, request: &WebhookRequest) -> Result<VerifiedNotice, WebhookError>;
    /// For providers that bill on Cinelog's schedule (the sandbox): the delivery announcing the
    /// renewal payment of a period that has ended. Real providers bill on their own.
    async fn renewal(
        &self,
        _account_id: Uuid,
        _provider_ref: &str,
        _plan: PlanId,
        _period_end: DateTime<Utc>,
    ) -> Result<Option<WebhookRequest>, String> {
        Ok(None)
    }
}

/// Finds the account behind a provider's reference (checkout or subscription id).
#[async_trait]
pub trait SubscriptionDirectory: Send + Sync {
    async fn account_for(
        &self,
        provider: Provider,
        reference: &str,
    ) -> Result<Option<Uuid>, String>;
    /// Accounts whose subscription has a deadline (period or grace end) at or before `now`.
    async fn due(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, String>;
}
