//! Outside services the write side needs, as traits. `infra` has the real adapters and the
//! local defaults.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_domain::plan::PlanId;
use cinelog_domain::subscription::{Notice, Provider};
use cinelog_domain::title::Media;
use cinelog_domain::values::{Email, Phone, Sealed};
use cinelog_domain::viewing::Watched;
use uuid::Uuid;

use crate::playback::StreamGrant;

/// Signs stream grants into the tokens of stream URLs, and reads them back.
pub trait StreamSigner: Send + Sync {
    /// The grant as a signed token.
    fn sign(&self, grant: &StreamGrant) -> String;
    /// The grant in a token, if it was signed here and not altered (expiry is not checked).
    fn open(&self, token: &str) -> Option<StreamGrant>;
}

/// Where profiles left off, as the read side knows it.
#[async_trait]
pub trait ResumePoints: Send + Sync {
    /// The position to resume `watched` at, counting every event up to log `position`.
    async fn resume_at(&self, watched: &Watched, position: i64) -> Result<f64, String>;
}

/// The HLS ladders in the media store.
pub trait Ladders: Send + Sync {
    /// The ladder stored under `name`, if there is one.
    fn ladder(&self, name: &str) -> Option<Media>;
}

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
    /// Sends the password-reset link carrying `token`.
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
    /// The current time.
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
    /// The subscribing account.
    pub account_id: Uuid,
    /// Our id for this checkout; providers that take an idempotency key get it.
    pub checkout_id: Uuid,
    /// The plan to subscribe to.
    pub plan: PlanId,
    /// The subscriber's email, for the provider's receipts.
    pub email: Option<String>,
    /// Where the provider sends the subscriber after paying, and after giving up.
    pub success_url: String,
    /// Where the provider sends the subscriber after giving up.
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
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as sent (signatures cover these bytes).
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// A header's value, its name matched in any case.
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

/// Why a webhook delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The signature is missing, wrong, or too old.
    #[error("the webhook signature is missing, wrong or stale: {0}")]
    BadSignature(String),
    /// The body is not an event of this provider.
    #[error("the webhook body is not an event: {0}")]
    Malformed(String),
    /// The provider could not be asked to confirm the delivery; it may be delivered again.
    #[error("the provider could not be asked: {0}")]
    Unavailable(String),
}

/// A payment provider: opens checkouts, cancels subscriptions, and vouches for its webhooks.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> Provider;
    /// Opens a checkout at the provider.
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
    /// For providers that bill on Cinelog's schedule (the sandbox): the notice of the renewal
    /// payment of a period that has ended. Real providers bill on their own and say so by webhook.
    async fn renewal(
        &self,
        _account_id: Uuid,
        _provider_ref: &str,
        _plan: PlanId,
        _period_end: DateTime<Utc>,
    ) -> Result<Option<VerifiedNotice>, String> {
        Ok(None)
    }
}

/// Finds the account behind a provider's reference (checkout or subscription id).
#[async_trait]
pub trait SubscriptionDirectory: Send + Sync {
    /// The account a checkout or subscription reference belongs to, if any.
    async fn account_for(
        &self,
        provider: Provider,
        reference: &str,
    ) -> Result<Option<Uuid>, String>;
    /// Accounts whose subscription has a deadline (period or grace end) at or before `now`.
    async fn due(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, String>;
}
