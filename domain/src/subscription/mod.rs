//! An account's subscription, one stream per account: checkouts, activation, renewals, failed
//! payments with a grace period, plan changes, cancellation and expiry. Facts from payment
//! providers arrive as verified notices, each at most once (the provider's event id is the
//! idempotency key); time-based transitions arrive as ticks from the scheduler.

use crate::EventName;
use crate::plan::PlanId;
use chrono::{DateTime, Duration, Months, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

mod decide;
mod notices;

pub use notices::Notice;

/// How long a subscription whose payment failed keeps playing before it expires.
pub const GRACE_DAYS: i64 = 7;
/// How long after a period ends its renewal may still arrive before the subscription counts as
/// past due: Stripe finalises a renewal invoice about an hour after the boundary and PayPal bills
/// on its own schedule within the day.
pub const RENEWAL_SLACK_HOURS: i64 = 24;

/// The subscription aggregate: one stream per account.
pub struct Subscription;

/// Who takes the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The local stand-in with its own checkout page (the embedded default).
    Sandbox,
    /// Stripe Checkout and Billing.
    Stripe,
    /// PayPal Subscriptions.
    Paypal,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 3] = [Provider::Sandbox, Provider::Stripe, Provider::Paypal];

    /// Reads a provider name as configured and stored (`sandbox`, `stripe`, `paypal`); `None`
    /// for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    /// The provider's name as configured and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Sandbox => "sandbox",
            Provider::Stripe => "stripe",
            Provider::Paypal => "paypal",
        }
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Never subscribed.
    #[default]
    None,
    /// Paid up: plays until the period ends (or later, once renewed).
    Active,
    /// A payment failed: plays until the grace period ends.
    PastDue,
    /// Ended by the subscriber or the provider.
    Canceled,
    /// Ended because payment never came.
    Expired,
}

impl Status {
    /// The status as the API and read models spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::None => "none",
            Status::Active => "active",
            Status::PastDue => "past_due",
            Status::Canceled => "canceled",
            Status::Expired => "expired",
        }
    }

    /// Whether a subscription in this status is still running (one per account).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Active | Status::PastDue)
    }
}

/// A checkout the subscriber opened and the provider has not settled yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenCheckout {
    /// The provider handling the checkout.
    pub provider: Provider,
    /// The plan being bought.
    pub plan: PlanId,
    /// When the checkout opened; the newest one wins when a payment names none.
    pub started_at: DateTime<Utc>,
}

/// An account's subscription as rebuilt from its stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubscriptionState {
    /// Where the subscription stands.
    pub status: Status,
    /// The plan that plays; `None` before the first activation.
    pub plan: Option<PlanId>,
    /// Who takes the money for the running subscription.
    pub provider: Option<Provider>,
    /// The provider's id for the running subscription (`sub_…`, `I-…`).
    pub provider_ref: Option<String>,
    /// End of the period paid for.
    pub period_end: Option<DateTime<Utc>>,
    /// When a past-due subscription expires unless paid.
    pub grace_until: Option<DateTime<Utc>>,
    /// Whether the subscription ends at the period end instead of renewing.
    pub cancel_at_period_end: bool,
    /// A downgrade waiting for the period to end.
    pub pending_plan: Option<PlanId>,
    /// Open checkouts by their reference (`cs_…`, `I-…`, sandbox id).
    pub checkouts: BTreeMap<String, OpenCheckout>,
    /// Provider event ids already recorded.
    pub seen_notices: BTreeSet<String>,
    /// Invoices already counted, so one payment never extends twice.
    pub paid_invoices: BTreeSet<String>,
    /// Activated by a checkout notice whose invoice has not arrived yet: that invoice pays for
    /// the period already granted, so it does not extend it again.
    pub awaiting_first_invoice: bool,
}

impl SubscriptionState {
    /// The latest moment this subscription may still play without hearing anything new.
    pub fn access_until(&self) -> Option<DateTime<Utc>> {
        match self.status {
            Status::Active if self.cancel_at_period_end => self.period_end,
            Status::Active => self.period_end.map(|end| end + grace()),
            Status::PastDue => self.grace_until,
            _ => None,
        }
    }

    /// The plan that plays at `now`: a live subscription whose access has not run out.
    pub fn playing_plan(&self, now: DateTime<Utc>) -> Option<&'static crate::plan::Plan> {
        let plays = self.access_until().is_some_and(|until| until > now);
        self.plan.filter(|_| plays).map(|p| p.plan())
    }

    /// When the scheduler should look at this subscription next.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        match self.status {
            Status::Active => self.period_end,
            Status::PastDue => self.grace_until,
            _ => None,
        }
    }
}

/// What subscribers, providers and the scheduler ask of a subscription.
#[derive(Debug, Clone)]
pub enum SubscriptionCommand {
    /// Records a checkout the subscriber opened with a provider.
    StartCheckout {
        /// The provider's reference for the checkout (`cs_…`, `I-…`, sandbox id).
        checkout_ref: String,
        /// The provider handling it.
        provider: Provider,
        /// The plan being bought.
        plan: PlanId,
        /// When it opened.
        at: DateTime<Utc>,
    },
    /// Records a verified provider notice; `notice_id` is the provider's event id.
    Receive {
        /// The provider's event id, the notice's idempotency key.
        notice_id: String,
        /// The provider that sent it.
        provider: Provider,
        /// What the provider says.
        notice: Notice,
        /// When it arrived.
        at: DateTime<Utc>,
    },
    /// Changes plan: an upgrade at once, a downgrade at the period end.
    ChangePlan {
        /// The plan wanted.
        plan: PlanId,
        /// When the subscriber asked.
        at: DateTime<Utc>,
    },
    /// Ends the subscription at the period end; it plays until then.
    Cancel {
        /// When the subscriber asked.
        at: DateTime<Utc>,
    },
    /// Keeps a subscription that was to end at the period end.
    Resume {
        /// When the subscriber asked.
        at: DateTime<Utc>,
    },
    /// Time has passed: end periods and grace periods that are over.
    Tick {
        /// The moment the scheduler looks.
        at: DateTime<Utc>,
    },
}

/// What happened to a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SubscriptionEvent {
    /// The subscriber opened a checkout.
    CheckoutStarted {
        /// The provider's reference for the checkout.
        checkout_ref: String,
        /// The provider handling it.
        provider: Provider,
        /// The plan being bought.
        plan: PlanId,
        /// When it opened.
        at: DateTime<Utc>,
    },
    /// The provider says the subscriber declined or abandoned a checkout.
    CheckoutDeclined {
        /// The provider's event id.
        notice_id: String,
        /// The checkout declined.
        checkout_ref: String,
        /// When the notice arrived.
        at: DateTime<Utc>,
    },
    /// A payment started the subscription for one period.
    SubscriptionActivated {
        /// The provider's event id.
        notice_id: String,
        /// The checkout paid, if known.
        checkout_ref: Option<String>,
        /// Who takes the money.
        provider: Provider,
        /// The provider's id for the subscription (`sub_…`, `I-…`).
        provider_ref: Option<String>,
        /// The plan bought.
        plan: PlanId,
        /// Set when the activating notice was a paid invoice.
        invoice_id: Option<String>,
        /// Amount paid in minor units, when the provider says.
        amount: Option<i64>,
        /// Currency paid, when the provider says.
        currency: Option<String>,
        /// End of the first period.
        period_end: DateTime<Utc>,
        /// When the notice arrived.
        at: DateTime<Utc>,
    },
    /// A paid invoice extended the subscription by a period.
    SubscriptionRenewed {
        /// The provider's event id.
        notice_id: String,
        /// The provider's invoice id.
        invoice_id: String,
        /// Amount paid in minor units.
        amount: i64,
        /// Currency paid.
        currency: String,
        /// The plan of the new period (a scheduled downgrade takes effect here).
        plan: PlanId,
        /// End of the new period.
        period_end: DateTime<Utc>,
        /// When the notice arrived.
        at: DateTime<Utc>,
    },
    /// A renewal failed, or never came by the period end (`notice_id` is then `None`).
    PaymentFailed {
        /// The provider's event id, if a notice reported the failure.
        notice_id: Option<String>,
        /// The invoice that failed, if known.
        invoice_id: Option<String>,
        /// When the subscription expires unless paid.
        grace_until: DateTime<Utc>,
        /// When the failure was recorded.
        at: DateTime<Utc>,
    },
    /// A payment whose amount or currency is not the plan's price: recorded, not honoured.
    PaymentRejected {
        /// The provider's event id.
        notice_id: String,
        /// The checkout or invoice the payment was for.
        reference: String,
        /// The plan whose price it should have been.
        plan: PlanId,
        /// Amount paid in minor units.
        amount: i64,
        /// Currency paid.
        currency: String,
        /// The plan's price in minor units.
        expected_amount: i64,
        /// The plan's currency.
        expected_currency: String,
        /// When the notice arrived.
        at: DateTime<Utc>,
    },
    /// An upgrade, at once; or any change the provider reports.
    PlanChanged {
        /// The provider's event id, for a change the provider reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice_id: Option<String>,
        /// The plan before.
        from: PlanId,
        /// The plan after.
        to: PlanId,
        /// When it changed.
        at: DateTime<Utc>,
    },
    /// A downgrade will take effect when the current period ends.
    DowngradeScheduled {
        /// The cheaper plan.
        to: PlanId,
        /// When it takes effect: the period end.
        effective_at: DateTime<Utc>,
        /// When the subscriber asked.
        at: DateTime<Utc>,
    },
    /// A scheduled downgrade was called off; the plan stays.
    DowngradeWithdrawn {
        /// When the subscriber asked.
        at: DateTime<Utc>,
    },
    /// The subscription will end at the period end instead of renewing.
    CancellationScheduled {
        /// The provider's event id, if the provider reported it.
        notice_id: Option<String>,
        /// When playback stops: the period end.
        access_until: DateTime<Utc>,
        /// When it was scheduled.
        at: DateTime<Utc>,
    },
    /// The subscription no longer ends at the period end.
    CancellationWithdrawn {
        /// The provider's event id, if the provider reported it.
        notice_id: Option<String>,
        /// When it was withdrawn.
        at: DateTime<Utc>,
    },
    /// The subscription ended, by the subscriber at the period end or by the provider at once.
    SubscriptionCanceled {
        /// The provider's event id, if the provider ended it.
        notice_id: Option<String>,
        /// When it ended.
        at: DateTime<Utc>,
    },
    /// The grace period ran out without a payment.
    SubscriptionExpired {
        /// When it expired.
        at: DateTime<Utc>,
    },
    /// A verified notice that changes nothing (e.g. a second checkout paid while subscribed);
    /// kept so the history shows every fact the provider sent.
    NoticeIgnored {
        /// The provider's event id.
        notice_id: String,
        /// The notice's kind, e.g. `checkout_completed`.
        kind: String,
        /// Why it changed nothing, e.g. `already_active`.
        reason: String,
        /// When it arrived.
        at: DateTime<Utc>,
    },
}

impl EventName for SubscriptionEvent {
    fn event_name(&self) -> &'static str {
        use SubscriptionEvent as E;
        match self {
            E::CheckoutStarted { .. } => "CheckoutStarted",
            E::CheckoutDeclined { .. } => "CheckoutDeclined",
            E::SubscriptionActivated { .. } => "SubscriptionActivated",
            E::SubscriptionRenewed { .. } => "SubscriptionRenewed",
            E::PaymentFailed { .. } => "PaymentFailed",
            E::PaymentRejected { .. } => "PaymentRejected",
            E::PlanChanged { .. } => "PlanChanged",
            E::DowngradeScheduled { .. } => "DowngradeScheduled",
            E::DowngradeWithdrawn { .. } => "DowngradeWithdrawn",
            E::CancellationScheduled { .. } => "CancellationScheduled",
            E::CancellationWithdrawn { .. } => "CancellationWithdrawn",
            E::SubscriptionCanceled { .. } => "SubscriptionCanceled",
            E::SubscriptionExpired { .. } => "SubscriptionExpired",
            E::NoticeIgnored { .. } => "NoticeIgnored",
        }
    }
}

/// Why a subscription command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The account already has a running subscription, so no new checkout.
    #[error("the account already has a running subscription")]
    AlreadySubscribed,
    /// The account has no running subscription to change.
    #[error("the account has no running subscription")]
    NotSubscribed,
    /// The subscription is already on that plan, or already downgrading to it.
    #[error("the subscription is already on that plan")]
    PlanUnchanged,
    /// The subscription already ends at the period end.
    #[error("the subscription already ends at the period end")]
    AlreadyCanceling,
    /// The provider would not change the plan from here; the subscriber changes it at the provider.
    #[error("this subscription's plan is changed through its payment provider")]
    ChangeThroughProvider,
    /// Resume was asked of a subscription that is not ending.
    #[error("the subscription does not end at the period end")]
    NotCanceling,
    /// The provider cannot take back a cancellation; the subscriber subscribes again once it ends.
    #[error("this provider cannot take back a cancellation; subscribe again once it ends")]
    CannotResume,
}

fn grace() -> Duration {
    Duration::days(GRACE_DAYS)
}

/// One billing period after `from`.
pub fn next_period_end(from: DateTime<Utc>) -> DateTime<Utc> {
    from.checked_add_months(Months::new(1))
        .unwrap_or(from + Duration::days(30))
}

#[cfg(test)]
mod tests;
