//! An account's subscription, one stream per account: checkouts, activation, renewals, failed
//! payments with a grace period, plan changes, cancellation and expiry. Facts from payment
//! providers arrive as verified notices, each at most once (the provider's event id is the
//! idempotency key); time-based transitions arrive as ticks from the scheduler.

use crate::plan::PlanId;
use crate::{Decider, EventName};
use chrono::{DateTime, Duration, Months, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How long a subscription whose payment failed keeps playing before it expires.
pub const GRACE_DAYS: i64 = 7;
/// How long after a period ends its renewal may still arrive before the subscription counts as
/// past due: Stripe finalises a renewal invoice about an hour after the boundary and PayPal bills
/// on its own schedule within the day.
pub const RENEWAL_SLACK_HOURS: i64 = 24;

pub struct Subscription;

/// Who takes the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The local stand-in with its own checkout page (the embedded default).
    Sandbox,
    Stripe,
    Paypal,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Sandbox, Provider::Stripe, Provider::Paypal];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Sandbox => "sandbox",
            Provider::Stripe => "stripe",
            Provider::Paypal => "paypal",
        }
    }
}

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
    pub provider: Provider,
    pub plan: PlanId,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubscriptionState {
    pub status: Status,
    pub plan: Option<PlanId>,
    pub provider: Option<Provider>,
    /// The provider's id for the running subscription (`sub_…`, `I-…`).
    pub provider_ref: Option<String>,
    pub period_end: Option<DateTime<Utc>>,
    pub grace_until: Option<DateTime<Utc>>,
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

    /// When the scheduler should look at this subscription next.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        match self.status {
            Status::Active => self.period_end,
            Status::PastDue => self.grace_until,
            _ => None,
        }
    }
}

/// A verified fact from a payment provider, in provider-neutral terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// The subscriber paid at checkout.
    CheckoutCompleted {
        checkout_ref: String,
        provider_ref: Option<String>,
        amount: Option<i64>,
        currency: Option<String>,
    },
    /// The subscriber declined or abandoned the checkout.
    CheckoutDeclined { checkout_ref: String },
    /// An invoice was paid: the subscription runs for another period.
    InvoicePaid {
        invoice_id: String,
        provider_ref: Option<String>,
        amount: i64,
        currency: String,
        /// End of the period the invoice pays for, when the provider says.
        period_end: Option<DateTime<Utc>>,
    },
    /// A renewal payment failed.
    PaymentFailed {
        invoice_id: Option<String>,
        provider_ref: Option<String>,
    },
    /// The provider will end the subscription at the period end.
    CancellationScheduled { provider_ref: Option<String> },
    /// The provider ended the subscription.
    Canceled { provider_ref: Option<String> },
    /// The subscriber changed plan at the provider.
    PlanChanged {
        provider_ref: Option<String>,
        plan: PlanId,
    },
    /// The subscription's terms as the provider now states them (Stripe sends them whole on
    /// every change): its plan, if known, and whether it ends at the period end.
    TermsUpdated {
        provider_ref: Option<String>,
        plan: Option<PlanId>,
        cancel_at_period_end: bool,
    },
}

impl Notice {
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::CheckoutCompleted { .. } => "checkout_completed",
            Notice::CheckoutDeclined { .. } => "checkout_declined",
            Notice::InvoicePaid { .. } => "invoice_paid",
            Notice::PaymentFailed { .. } => "payment_failed",
            Notice::CancellationScheduled { .. } => "cancellation_scheduled",
            Notice::Canceled { .. } => "canceled",
            Notice::PlanChanged { .. } => "plan_changed",
            Notice::TermsUpdated { .. } => "terms_updated",
        }
    }

    fn provider_ref(&self) -> Option<&str> {
        match self {
            Notice::CheckoutCompleted { provider_ref, .. }
            | Notice::InvoicePaid { provider_ref, .. }
            | Notice::PaymentFailed { provider_ref, .. }
            | Notice::CancellationScheduled { provider_ref }
            | Notice::Canceled { provider_ref }
            | Notice::PlanChanged { provider_ref, .. }
            | Notice::TermsUpdated { provider_ref, .. } => provider_ref.as_deref(),
            Notice::CheckoutDeclined { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum SubscriptionCommand {
    StartCheckout {
        checkout_ref: String,
        provider: Provider,
        plan: PlanId,
        at: DateTime<Utc>,
    },
    /// Records a verified provider notice; `notice_id` is the provider's event id.
    Receive {
        notice_id: String,
        provider: Provider,
        notice: Notice,
        at: DateTime<Utc>,
    },
    ChangePlan {
        plan: PlanId,
        at: DateTime<Utc>,
    },
    Cancel {
        at: DateTime<Utc>,
    },
    /// Keeps a subscription that was to end at the period end.
    Resume {
        at: DateTime<Utc>,
    },
    /// Time has passed: end periods and grace periods that are over.
    Tick {
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SubscriptionEvent {
    CheckoutStarted {
        checkout_ref: String,
        provider: Provider,
        plan: PlanId,
        at: DateTime<Utc>,
    },
    CheckoutDeclined {
        notice_id: String,
        checkout_ref: String,
        at: DateTime<Utc>,
    },
    SubscriptionActivated {
        notice_id: String,
        checkout_ref: Option<String>,
        provider: Provider,
        provider_ref: Option<String>,
        plan: PlanId,
        /// Set when the activating notice was a paid invoice.
        invoice_id: Option<String>,
        amount: Option<i64>,
        currency: Option<String>,
        period_end: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    SubscriptionRenewed {
        notice_id: String,
        invoice_id: String,
        amount: i64,
        currency: String,
        /// The plan of the new period (a scheduled downgrade takes effect here).
        plan: PlanId,
        period_end: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// A renewal failed, or never came by the period end (`notice_id` is then `None`).
    PaymentFailed {
        notice_id: Option<String>,
        invoice_id: Option<String>,
        grace_until: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// A payment whose amount or currency is not the plan's price: recorded, not honoured.
    PaymentRejected {
        notice_id: String,
        reference: String,
        plan: PlanId,
        amount: i64,
        currency: String,
        expected_amount: i64,
        expected_currency: String,
        at: DateTime<Utc>,
    },
    /// An upgrade, at once; or any change the provider reports.
    PlanChanged {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice_id: Option<String>,
        from: PlanId,
        to: PlanId,
        at: DateTime<Utc>,
    },
    DowngradeScheduled {
        to: PlanId,
        effective_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    DowngradeWithdrawn {
        at: DateTime<Utc>,
    },
    CancellationScheduled {
        notice_id: Option<String>,
        access_until: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The subscription no longer ends at the period end.
    CancellationWithdrawn {
        notice_id: Option<String>,
        at: DateTime<Utc>,
    },
    SubscriptionCanceled {
        notice_id: Option<String>,
        at: DateTime<Utc>,
    },
    SubscriptionExpired {
        at: DateTime<Utc>,
    },
    /// A verified notice that changes nothing (e.g. a second checkout paid while subscribed);
    /// kept so the history shows every fact the provider sent.
    NoticeIgnored {
        notice_id: String,
        kind: String,
        reason: String,
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("the account already has a running subscription")]
    AlreadySubscribed,
    #[error("the account has no running subscription")]
    NotSubscribed,
    #[error("the subscription is already on that plan")]
    PlanUnchanged,
    #[error("the subscription already ends at the period end")]
    AlreadyCanceling,
    #[error("this subscription's plan is changed through its payment provider")]
    ChangeThroughProvider,
    #[error("the subscription does not end at the period end")]
    NotCanceling,
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

impl Decider for Subscription {
    const STREAM_TYPE: &'static str = "subscription";
    type State = SubscriptionState;
    type Command = SubscriptionCommand;
    type Event = SubscriptionEvent;
    type Error = SubscriptionError;

    fn decide(
        state: &SubscriptionState,
        command: SubscriptionCommand,
    ) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        use SubscriptionCommand as C;
        use SubscriptionEvent as E;
        match command {
            C::StartCheckout { .. } if state.status.is_live() => {
                Err(SubscriptionError::AlreadySubscribed)
            }
            C::StartCheckout {
                checkout_ref,
                provider,
                plan,
                at,
            } => Ok(vec![E::CheckoutStarted {
                checkout_ref,
                provider,
                plan,
                at,
            }]),
            C::Receive { notice_id, .. } if state.seen_notices.contains(&notice_id) => Ok(vec![]),
            C::Receive {
                notice_id,
                provider,
                notice,
                at,
            } => Ok(receive(state, notice_id, provider, notice, at)),
            C::ChangePlan { .. } if !state.status.is_live() => {
                Err(SubscriptionError::NotSubscribed)
            }
            C::ChangePlan { plan, at } => {
                let current = state.plan.ok_or(SubscriptionError::NotSubscribed)?;
                match (plan.cmp(&current), state.pending_plan) {
                    (std::cmp::Ordering::Equal, Some(_)) => Ok(vec![E::DowngradeWithdrawn { at }]),
                    (std::cmp::Ordering::Equal, None) => Err(SubscriptionError::PlanUnchanged),
                    (std::cmp::Ordering::Greater, _) => Ok(vec![E::PlanChanged {
                        notice_id: None,
                        from: current,
                        to: plan,
                        at,
                    }]),
                    (std::cmp::Ordering::Less, Some(p)) if p == plan => {
                        Err(SubscriptionError::PlanUnchanged)
                    }
                    (std::cmp::Ordering::Less, _) => Ok(vec![E::DowngradeScheduled {
                        to: plan,
                        effective_at: state.period_end.unwrap_or(at),
                        at,
                    }]),
                }
            }
            C::Cancel { .. } if !state.status.is_live() => Err(SubscriptionError::NotSubscribed),
            C::Cancel { .. } if state.cancel_at_period_end => {
                Err(SubscriptionError::AlreadyCanceling)
            }
            C::Cancel { at } => Ok(vec![E::CancellationScheduled {
                notice_id: None,
                access_until: state.period_end.unwrap_or(at),
                at,
            }]),
            C::Resume { .. } if !state.status.is_live() => Err(SubscriptionError::NotSubscribed),
            C::Resume { .. } if !state.cancel_at_period_end => Err(SubscriptionError::NotCanceling),
            C::Resume { at } => Ok(vec![E::CancellationWithdrawn {
                notice_id: None,
                at,
            }]),
            C::Tick { at } => Ok(tick(state, at)),
        }
    }

    fn evolve(mut state: SubscriptionState, event: &SubscriptionEvent) -> SubscriptionState {
        use SubscriptionEvent as E;
        match event {
            E::CheckoutStarted {
                checkout_ref,
                provider,
                plan,
                at,
            } => {
                state.checkouts.insert(
                    checkout_ref.clone(),
                    OpenCheckout {
                        provider: *provider,
                        plan: *plan,
                        started_at: *at,
                    },
                );
            }
            E::CheckoutDeclined {
                notice_id,
                checkout_ref,
                ..
            } => {
                state.seen_notices.insert(notice_id.clone());
                state.checkouts.remove(checkout_ref);
            }
            E::SubscriptionActivated {
                notice_id,
                provider,
                provider_ref,
                plan,
                invoice_id,
                period_end,
                ..
            } => {
                state.seen_notices.insert(notice_id.clone());
                state.paid_invoices.extend(invoice_id.iter().cloned());
                state.awaiting_first_invoice = invoice_id.is_none();
                state.checkouts.clear();
                state.status = Status::Active;
                state.plan = Some(*plan);
                state.provider = Some(*provider);
                state.provider_ref = provider_ref.clone();
                state.period_end = Some(*period_end);
                state.grace_until = None;
                state.cancel_at_period_end = false;
                state.pending_plan = None;
            }
            E::SubscriptionRenewed {
                notice_id,
                invoice_id,
                plan,
                period_end,
                ..
            } => {
                state.seen_notices.insert(notice_id.clone());
                state.paid_invoices.insert(invoice_id.clone());
                state.awaiting_first_invoice = false;
                state.status = Status::Active;
                state.plan = Some(*plan);
                state.pending_plan = None;
                state.period_end = Some(*period_end);
                state.grace_until = None;
            }
            E::PaymentFailed {
                notice_id,
                grace_until,
                ..
            } => {
                state.seen_notices.extend(notice_id.iter().cloned());
                state.status = Status::PastDue;
                state.grace_until = Some(*grace_until);
            }
            E::PaymentRejected { notice_id, .. } | E::NoticeIgnored { notice_id, .. } => {
                state.seen_notices.insert(notice_id.clone());
            }
            E::PlanChanged { notice_id, to, .. } => {
                state.seen_notices.extend(notice_id.iter().cloned());
                state.plan = Some(*to);
                state.pending_plan = None;
            }
            E::DowngradeScheduled { to, .. } => state.pending_plan = Some(*to),
            E::DowngradeWithdrawn { .. } => state.pending_plan = None,
            E::CancellationScheduled { notice_id, .. } => {
                state.seen_notices.extend(notice_id.iter().cloned());
                state.cancel_at_period_end = true;
            }
            E::CancellationWithdrawn { notice_id, .. } => {
                state.seen_notices.extend(notice_id.iter().cloned());
                state.cancel_at_period_end = false;
            }
            E::SubscriptionCanceled { notice_id, .. } => {
                state.seen_notices.extend(notice_id.iter().cloned());
                state.status = Status::Canceled;
                state.cancel_at_period_end = false;
                state.pending_plan = None;
            }
            E::SubscriptionExpired { .. } => {
                state.status = Status::Expired;
                state.pending_plan = None;
            }
        }
        state
    }
}

/// What a verified provider notice means for the subscription as it stands.
fn receive(
    state: &SubscriptionState,
    notice_id: String,
    provider: Provider,
    notice: Notice,
    at: DateTime<Utc>,
) -> Vec<SubscriptionEvent> {
    use SubscriptionEvent as E;
    let Notice::TermsUpdated {
        plan,
        cancel_at_period_end,
        ..
    } = &notice
    else {
        return vec![receive_one(state, notice_id, provider, notice, at)];
    };
    let live = state.status.is_live();
    let ours = state.provider_ref.as_deref();
    let mut out = Vec::new();
    if live && (notice.provider_ref().is_none() || notice.provider_ref() == ours) {
        let id = || Some(notice_id.clone());
        if *cancel_at_period_end && !state.cancel_at_period_end {
            out.push(E::CancellationScheduled {
                notice_id: id(),
                access_until: state.period_end.unwrap_or(at),
                at,
            });
        }
        if !*cancel_at_period_end && state.cancel_at_period_end {
            out.push(E::CancellationWithdrawn {
                notice_id: id(),
                at,
            });
        }
        // The provider's echo of a downgrade scheduled here is no change yet: it starts with
        // the next period's invoice.
        if let (Some(to), Some(from)) = (*plan, state.plan)
            && to != from
            && state.pending_plan != Some(to)
        {
            out.push(E::PlanChanged {
                notice_id: id(),
                from,
                to,
                at,
            });
        }
    }
    if out.is_empty() {
        let reason = if live {
            "nothing_changed"
        } else {
            "no_running_subscription"
        };
        out.push(E::NoticeIgnored {
            notice_id,
            kind: notice.kind().to_string(),
            reason: reason.to_string(),
            at,
        });
    }
    out
}

/// What any other verified notice means for the subscription as it stands.
fn receive_one(
    state: &SubscriptionState,
    notice_id: String,
    provider: Provider,
    notice: Notice,
    at: DateTime<Utc>,
) -> SubscriptionEvent {
    use SubscriptionEvent as E;
    let ignored = |reason: &str| E::NoticeIgnored {
        notice_id: notice_id.clone(),
        kind: notice.kind().to_string(),
        reason: reason.to_string(),
        at,
    };
    let live = state.status.is_live();
    // A notice about another provider subscription than the running one changes nothing.
    let other_subscription = live
        && matches!(
            (notice.provider_ref(), state.provider_ref.as_deref()),
            (Some(theirs), Some(ours)) if theirs != ours
        );
    match &notice {
        Notice::CheckoutCompleted { .. } if other_subscription => {
            ignored("already_subscribed_needs_refund")
        }
        Notice::CheckoutCompleted { .. } if live => ignored("already_active"),
        Notice::CheckoutCompleted {
            checkout_ref,
            provider_ref,
            amount,
            currency,
        } => {
            let Some(checkout) = state.checkouts.get(checkout_ref) else {
                return ignored("unknown_checkout");
            };
            if let Some(rejected) = mismatch(
                &notice_id,
                checkout_ref,
                checkout.plan,
                *amount,
                currency.as_deref(),
                at,
            ) {
                return rejected;
            }
            E::SubscriptionActivated {
                notice_id,
                checkout_ref: Some(checkout_ref.clone()),
                provider,
                provider_ref: provider_ref.clone(),
                plan: checkout.plan,
                invoice_id: None,
                amount: *amount,
                currency: currency.clone(),
                period_end: next_period_end(at),
                at,
            }
        }
        Notice::CheckoutDeclined { checkout_ref } if state.checkouts.contains_key(checkout_ref) => {
            E::CheckoutDeclined {
                notice_id,
                checkout_ref: checkout_ref.clone(),
                at,
            }
        }
        Notice::CheckoutDeclined { .. } => ignored("unknown_checkout"),
        Notice::InvoicePaid { invoice_id, .. } if state.paid_invoices.contains(invoice_id) => {
            ignored("invoice_already_counted")
        }
        Notice::InvoicePaid { .. } if other_subscription => ignored("other_subscription"),
        Notice::InvoicePaid {
            invoice_id,
            amount,
            currency,
            period_end,
            ..
        } if live => {
            let current = state.plan.unwrap_or(PlanId::Basic);
            // The invoice of the period a downgrade starts is priced at the new plan.
            let plan = state
                .pending_plan
                .filter(|p| p.is_priced(*amount, currency))
                .unwrap_or(current);
            if let Some(rejected) = mismatch(
                &notice_id,
                invoice_id,
                plan,
                Some(*amount),
                Some(currency),
                at,
            ) {
                return rejected;
            }
            let current_end = state.period_end.unwrap_or(at);
            let period_end = match period_end {
                // The provider says which period the invoice pays for.
                Some(end) => (*end).max(current_end),
                None if state.awaiting_first_invoice => current_end,
                None => next_period_end(current_end),
            };
            E::SubscriptionRenewed {
                notice_id,
                invoice_id: invoice_id.clone(),
                amount: *amount,
                currency: currency.clone(),
                plan,
                period_end,
                at,
            }
        }
        Notice::InvoicePaid {
            invoice_id,
            provider_ref,
            amount,
            currency,
            period_end,
        } => {
            // Paid before the checkout's own notice arrived: the newest open checkout with this
            // provider at this price is the one being paid.
            let open = || {
                state
                    .checkouts
                    .iter()
                    .filter(|(_, c)| c.provider == provider)
            };
            let priced = open()
                .filter(|(_, c)| c.plan.is_priced(*amount, currency))
                .max_by_key(|(_, c)| c.started_at);
            let Some((checkout_ref, checkout)) =
                priced.or_else(|| open().max_by_key(|(_, c)| c.started_at))
            else {
                return ignored("no_subscription");
            };
            if let Some(rejected) = mismatch(
                &notice_id,
                invoice_id,
                checkout.plan,
                Some(*amount),
                Some(currency),
                at,
            ) {
                return rejected;
            }
            E::SubscriptionActivated {
                notice_id,
                checkout_ref: Some(checkout_ref.clone()),
                provider,
                provider_ref: provider_ref.clone(),
                plan: checkout.plan,
                invoice_id: Some(invoice_id.clone()),
                amount: Some(*amount),
                currency: Some(currency.clone()),
                period_end: period_end
                    .filter(|end| *end > at)
                    .unwrap_or_else(|| next_period_end(at)),
                at,
            }
        }
        Notice::PaymentFailed { .. } if !live || other_subscription => {
            ignored("no_running_subscription")
        }
        Notice::PaymentFailed { .. } if state.status == Status::PastDue => {
            ignored("already_past_due")
        }
        Notice::PaymentFailed { invoice_id, .. } => E::PaymentFailed {
            notice_id: Some(notice_id),
            invoice_id: invoice_id.clone(),
            grace_until: at + grace(),
            at,
        },
        Notice::CancellationScheduled { .. } if !live || other_subscription => {
            ignored("no_running_subscription")
        }
        Notice::CancellationScheduled { .. } if state.cancel_at_period_end => {
            ignored("already_canceling")
        }
        Notice::CancellationScheduled { .. } => E::CancellationScheduled {
            notice_id: Some(notice_id),
            access_until: state.period_end.unwrap_or(at),
            at,
        },
        Notice::PlanChanged { .. } if !live || other_subscription => {
            ignored("no_running_subscription")
        }
        Notice::PlanChanged { plan, .. } if state.plan == Some(*plan) => ignored("plan_unchanged"),
        Notice::PlanChanged { plan, .. } => E::PlanChanged {
            notice_id: Some(notice_id),
            from: state.plan.unwrap_or(*plan),
            to: *plan,
            at,
        },
        Notice::Canceled { .. } if !live || other_subscription => {
            ignored("no_running_subscription")
        }
        Notice::Canceled { .. } => E::SubscriptionCanceled {
            notice_id: Some(notice_id),
            at,
        },
        // Read whole by `receive`.
        Notice::TermsUpdated { .. } => ignored("nothing_changed"),
    }
}

/// A `PaymentRejected` if the payment is not the plan's price.
fn mismatch(
    notice_id: &str,
    reference: &str,
    plan: PlanId,
    amount: Option<i64>,
    currency: Option<&str>,
    at: DateTime<Utc>,
) -> Option<SubscriptionEvent> {
    let (Some(amount), Some(currency)) = (amount, currency) else {
        return None;
    };
    if plan.is_priced(amount, currency) {
        return None;
    }
    let expected = plan.plan();
    Some(SubscriptionEvent::PaymentRejected {
        notice_id: notice_id.to_string(),
        reference: reference.to_string(),
        plan,
        amount,
        currency: currency.to_string(),
        expected_amount: expected.price_minor,
        expected_currency: expected.currency.to_string(),
        at,
    })
}

/// Transitions whose moment has passed by `at`.
fn tick(state: &SubscriptionState, at: DateTime<Utc>) -> Vec<SubscriptionEvent> {
    use SubscriptionEvent as E;
    match (state.status, state.period_end, state.grace_until) {
        (Status::Active, Some(end), _) if end <= at && state.cancel_at_period_end => {
            vec![E::SubscriptionCanceled {
                notice_id: None,
                at,
            }]
        }
        (Status::Active, Some(end), _) if end + Duration::hours(RENEWAL_SLACK_HOURS) <= at => {
            vec![E::PaymentFailed {
                notice_id: None,
                invoice_id: None,
                grace_until: end + grace(),
                at,
            }]
        }
        (Status::PastDue, _, Some(grace_end)) if grace_end <= at => {
            vec![E::SubscriptionExpired { at }]
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;
    use SubscriptionCommand as C;
    use SubscriptionEvent as E;

    fn t(day: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-01-{day:02}T12:00:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn started(plan: PlanId) -> E {
        E::CheckoutStarted {
            checkout_ref: "cs_1".into(),
            provider: Provider::Stripe,
            plan,
            at: t(1),
        }
    }

    fn completed(id: &str, amount: i64) -> C {
        C::Receive {
            notice_id: id.into(),
            provider: Provider::Stripe,
            notice: Notice::CheckoutCompleted {
                checkout_ref: "cs_1".into(),
                provider_ref: Some("sub_1".into()),
                amount: Some(amount),
                currency: Some("usd".into()),
            },
            at: t(1),
        }
    }

    fn paid(id: &str, invoice: &str, amount: i64, end: Option<DateTime<Utc>>) -> C {
        C::Receive {
            notice_id: id.into(),
            provider: Provider::Stripe,
            notice: Notice::InvoicePaid {
                invoice_id: invoice.into(),
                provider_ref: Some("sub_1".into()),
                amount,
                currency: "usd".into(),
                period_end: end,
            },
            at: t(2),
        }
    }

    fn active(plan: PlanId) -> Vec<E> {
        let mut history = vec![started(plan)];
        history.extend(
            given_when::<Subscription>(&history, completed("evt_1", plan.plan().price_minor))
                .unwrap(),
        );
        history
    }

    fn replay(history: &[E]) -> SubscriptionState {
        Subscription::replay(history)
    }

    #[test]
    fn a_completed_checkout_activates_for_one_period() {
        let history = active(PlanId::Standard);
        let state = replay(&history);
        assert_eq!(state.status, Status::Active);
        assert_eq!(state.plan, Some(PlanId::Standard));
        assert_eq!(state.period_end, Some(next_period_end(t(1))));
        assert_eq!(state.provider_ref.as_deref(), Some("sub_1"));
    }

    #[test]
    fn a_second_checkout_is_refused_while_subscribed() {
        let err = given_when::<Subscription>(
            &active(PlanId::Basic),
            C::StartCheckout {
                checkout_ref: "cs_2".into(),
                provider: Provider::Sandbox,
                plan: PlanId::Premium,
                at: t(3),
            },
        );
        assert_eq!(err, Err(SubscriptionError::AlreadySubscribed));
    }

    #[test]
    fn the_same_notice_twice_is_recorded_once() {
        let history = active(PlanId::Basic);
        let again = given_when::<Subscription>(&history, completed("evt_1", 799)).unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn a_wrong_amount_is_recorded_and_not_honoured() {
        let events =
            given_when::<Subscription>(&[started(PlanId::Premium)], completed("evt_1", 799))
                .unwrap();
        assert!(matches!(
            events[..],
            [E::PaymentRejected {
                expected_amount: 2299,
                amount: 799,
                ..
            }]
        ));
        let mut history = vec![started(PlanId::Premium)];
        history.extend(events);
        assert_eq!(replay(&history).status, Status::None);
    }

    #[test]
    fn a_paid_invoice_extends_the_period_and_counts_once() {
        let mut history = active(PlanId::Standard);
        let end = next_period_end(next_period_end(t(1)));
        let renewed =
            given_when::<Subscription>(&history, paid("evt_2", "in_1", 1549, Some(end))).unwrap();
        history.extend(renewed);
        assert_eq!(replay(&history).period_end, Some(end));
        // The same invoice under another event id does not extend again.
        let again =
            given_when::<Subscription>(&history, paid("evt_3", "in_1", 1549, None)).unwrap();
        assert!(
            matches!(&again[..], [E::NoticeIgnored { reason, .. }] if reason == "invoice_already_counted")
        );
    }

    #[test]
    fn the_first_invoice_after_checkout_pays_for_the_period_already_granted() {
        let mut history = active(PlanId::Basic);
        let end = replay(&history).period_end.unwrap();
        history.extend(
            given_when::<Subscription>(&history, paid("evt_2", "in_1", 799, None)).unwrap(),
        );
        assert_eq!(replay(&history).period_end, Some(end));
        history.extend(
            given_when::<Subscription>(&history, paid("evt_3", "in_2", 799, None)).unwrap(),
        );
        assert_eq!(replay(&history).period_end, Some(next_period_end(end)));
    }

    #[test]
    fn an_invoice_before_the_checkout_notice_still_activates_once() {
        let mut history = vec![started(PlanId::Standard)];
        let end = t(1) + Duration::days(30);
        history.extend(
            given_when::<Subscription>(&history, paid("evt_2", "in_1", 1549, Some(end))).unwrap(),
        );
        let state = replay(&history);
        assert_eq!(
            (state.status, state.period_end),
            (Status::Active, Some(end))
        );
        let late = given_when::<Subscription>(&history, completed("evt_1", 1549)).unwrap();
        history.extend(late);
        let state = replay(&history);
        assert_eq!(
            (state.status, state.period_end),
            (Status::Active, Some(end))
        );
        assert!(state.seen_notices.contains("evt_1"));
    }

    #[test]
    fn renew_fail_grace_expire_as_time_moves() {
        let mut history = active(PlanId::Basic);
        let end = replay(&history).period_end.unwrap();
        assert!(
            given_when::<Subscription>(
                &history,
                C::Tick {
                    at: end - Duration::seconds(1)
                }
            )
            .unwrap()
            .is_empty()
        );
        // The renewal may still come after the boundary: Stripe's about an hour later, PayPal's
        // within the day.
        for after in [0, 2, 23] {
            assert!(
                given_when::<Subscription>(
                    &history,
                    C::Tick {
                        at: end + Duration::hours(after)
                    }
                )
                .unwrap()
                .is_empty(),
                "{after} h"
            );
        }
        let late = end + Duration::hours(RENEWAL_SLACK_HOURS);
        history.extend(given_when::<Subscription>(&history, C::Tick { at: late }).unwrap());
        let state = replay(&history);
        assert_eq!(state.status, Status::PastDue);
        assert_eq!(state.access_until(), Some(end + grace()));
        // A late payment brings it back.
        let mut recovered = history.clone();
        recovered.extend(
            given_when::<Subscription>(
                &recovered,
                paid("evt_9", "in_9", 799, Some(next_period_end(end))),
            )
            .unwrap(),
        );
        assert_eq!(replay(&recovered).status, Status::Active);
        assert_eq!(replay(&recovered).period_end, Some(next_period_end(end)));
        // Without one, it expires when the grace period is over.
        history
            .extend(given_when::<Subscription>(&history, C::Tick { at: end + grace() }).unwrap());
        assert_eq!(replay(&history).status, Status::Expired);
        assert_eq!(replay(&history).access_until(), None);
    }

    #[test]
    fn upgrade_now_downgrade_at_period_end() {
        let mut history = active(PlanId::Standard);
        history.extend(
            given_when::<Subscription>(
                &history,
                C::ChangePlan {
                    plan: PlanId::Premium,
                    at: t(3),
                },
            )
            .unwrap(),
        );
        assert_eq!(replay(&history).plan, Some(PlanId::Premium));
        history.extend(
            given_when::<Subscription>(
                &history,
                C::ChangePlan {
                    plan: PlanId::Basic,
                    at: t(4),
                },
            )
            .unwrap(),
        );
        let state = replay(&history);
        assert_eq!(
            (state.plan, state.pending_plan),
            (Some(PlanId::Premium), Some(PlanId::Basic))
        );
        assert_eq!(
            given_when::<Subscription>(
                &history,
                C::ChangePlan {
                    plan: PlanId::Basic,
                    at: t(4)
                }
            ),
            Err(SubscriptionError::PlanUnchanged)
        );
        history.extend(
            given_when::<Subscription>(&history, paid("evt_5", "in_5", 799, None)).unwrap(),
        );
        assert_eq!(replay(&history).plan, Some(PlanId::Basic));
    }

    #[test]
    fn cancel_keeps_access_until_the_period_end() {
        let mut history = active(PlanId::Standard);
        let end = replay(&history).period_end.unwrap();
        history.extend(given_when::<Subscription>(&history, C::Cancel { at: t(5) }).unwrap());
        let state = replay(&history);
        assert_eq!(
            (state.status, state.access_until()),
            (Status::Active, Some(end))
        );
        assert_eq!(
            given_when::<Subscription>(&history, C::Cancel { at: t(5) }),
            Err(SubscriptionError::AlreadyCanceling)
        );
        history.extend(given_when::<Subscription>(&history, C::Tick { at: end }).unwrap());
        assert_eq!(replay(&history).status, Status::Canceled);
        // A new subscription may start after the end.
        assert!(
            given_when::<Subscription>(
                &history,
                C::StartCheckout {
                    checkout_ref: "cs_2".into(),
                    provider: Provider::Sandbox,
                    plan: PlanId::Basic,
                    at: end
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn a_cancellation_can_be_taken_back_before_the_period_end() {
        let mut history = active(PlanId::Standard);
        let end = replay(&history).period_end.unwrap();
        assert_eq!(
            given_when::<Subscription>(&history, C::Resume { at: t(4) }),
            Err(SubscriptionError::NotCanceling)
        );
        history.extend(given_when::<Subscription>(&history, C::Cancel { at: t(5) }).unwrap());
        history.extend(given_when::<Subscription>(&history, C::Resume { at: t(6) }).unwrap());
        let state = replay(&history);
        assert!(!state.cancel_at_period_end);
        assert_eq!(state.access_until(), Some(end + grace()));
        // The period end then waits for the renewal instead of ending the subscription.
        assert!(
            given_when::<Subscription>(&history, C::Tick { at: end })
                .unwrap()
                .is_empty()
        );
    }

    fn terms(id: &str, plan: Option<PlanId>, cancel: bool) -> C {
        C::Receive {
            notice_id: id.into(),
            provider: Provider::Stripe,
            notice: Notice::TermsUpdated {
                provider_ref: Some("sub_1".into()),
                plan,
                cancel_at_period_end: cancel,
            },
            at: t(6),
        }
    }

    #[test]
    fn provider_terms_are_compared_whole_with_the_subscription() {
        let mut history = active(PlanId::Standard);
        // Canceled at the provider, then renewed there: access runs on.
        history.extend(
            given_when::<Subscription>(&history, terms("evt_a", Some(PlanId::Standard), true))
                .unwrap(),
        );
        assert!(replay(&history).cancel_at_period_end);
        let resumed =
            given_when::<Subscription>(&history, terms("evt_b", Some(PlanId::Standard), false))
                .unwrap();
        assert!(matches!(&resumed[..], [E::CancellationWithdrawn { .. }]));
        history.extend(resumed);
        assert!(!replay(&history).cancel_at_period_end);
        // The same terms again change nothing; a new plan is a plan change.
        assert!(matches!(
            &given_when::<Subscription>(&history, terms("evt_c", Some(PlanId::Standard), false))
                .unwrap()[..],
            [E::NoticeIgnored { reason, .. }] if reason == "nothing_changed"
        ));
        let both =
            given_when::<Subscription>(&history, terms("evt_d", Some(PlanId::Premium), true))
                .unwrap();
        assert!(matches!(
            &both[..],
            [
                E::CancellationScheduled { .. },
                E::PlanChanged {
                    to: PlanId::Premium,
                    ..
                }
            ]
        ));
        // Redelivered, nothing.
        history.extend(both);
        assert!(
            given_when::<Subscription>(&history, terms("evt_d", Some(PlanId::Premium), true))
                .unwrap()
                .is_empty()
        );
        // Terms of another provider subscription are not ours.
        let other = given_when::<Subscription>(
            &history,
            C::Receive {
                notice_id: "evt_e".into(),
                provider: Provider::Stripe,
                notice: Notice::TermsUpdated {
                    provider_ref: Some("sub_other".into()),
                    plan: Some(PlanId::Basic),
                    cancel_at_period_end: false,
                },
                at: t(6),
            },
        )
        .unwrap();
        assert!(matches!(&other[..], [E::NoticeIgnored { .. }]));
    }

    #[test]
    fn a_downgrade_told_to_the_provider_still_waits_for_the_next_period() {
        let mut history = active(PlanId::Standard);
        history.extend(
            given_when::<Subscription>(
                &history,
                C::ChangePlan {
                    plan: PlanId::Basic,
                    at: t(3),
                },
            )
            .unwrap(),
        );
        // The provider's echo of the new price is no change yet...
        let echo = given_when::<Subscription>(&history, terms("evt_x", Some(PlanId::Basic), false))
            .unwrap();
        assert!(
            matches!(&echo[..], [E::NoticeIgnored { reason, .. }] if reason == "nothing_changed")
        );
        history.extend(echo);
        let state = replay(&history);
        assert_eq!(
            (state.plan, state.pending_plan),
            (Some(PlanId::Standard), Some(PlanId::Basic))
        );
        // ...the next period's invoice at that price is.
        history.extend(
            given_when::<Subscription>(&history, paid("evt_y", "in_y", 799, None)).unwrap(),
        );
        assert_eq!(replay(&history).plan, Some(PlanId::Basic));
    }

    #[test]
    fn a_second_paid_checkout_does_not_make_a_second_subscription() {
        let mut history = vec![
            started(PlanId::Basic),
            E::CheckoutStarted {
                checkout_ref: "cs_2".into(),
                provider: Provider::Stripe,
                plan: PlanId::Basic,
                at: t(1),
            },
        ];
        history.extend(given_when::<Subscription>(&history, completed("evt_1", 799)).unwrap());
        let second = given_when::<Subscription>(
            &history,
            C::Receive {
                notice_id: "evt_2".into(),
                provider: Provider::Stripe,
                notice: Notice::CheckoutCompleted {
                    checkout_ref: "cs_2".into(),
                    provider_ref: Some("sub_2".into()),
                    amount: Some(799),
                    currency: Some("usd".into()),
                },
                at: t(1),
            },
        )
        .unwrap();
        assert!(
            matches!(&second[..], [E::NoticeIgnored { reason, .. }] if reason == "already_subscribed_needs_refund")
        );
    }

    #[test]
    fn provider_cancellation_ends_at_once() {
        let mut history = active(PlanId::Basic);
        history.extend(
            given_when::<Subscription>(
                &history,
                C::Receive {
                    notice_id: "evt_7".into(),
                    provider: Provider::Stripe,
                    notice: Notice::Canceled {
                        provider_ref: Some("sub_1".into()),
                    },
                    at: t(6),
                },
            )
            .unwrap(),
        );
        assert_eq!(replay(&history).status, Status::Canceled);
        assert_eq!(
            given_when::<Subscription>(&history, C::Cancel { at: t(7) }),
            Err(SubscriptionError::NotSubscribed)
        );
    }
}
