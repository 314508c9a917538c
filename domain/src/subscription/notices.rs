//! Verified facts from payment providers and what each means for the subscription.

use super::{Provider, Status, SubscriptionEvent, SubscriptionState, grace, next_period_end};
use crate::plan::PlanId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A verified fact from a payment provider, in provider-neutral terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// The subscriber paid at checkout.
    CheckoutCompleted {
        /// The provider's reference for the checkout.
        checkout_ref: String,
        /// The provider's id for the new subscription, when it says.
        provider_ref: Option<String>,
        /// Amount paid in minor units, when the provider says.
        amount: Option<i64>,
        /// Currency paid, when the provider says.
        currency: Option<String>,
    },
    /// The subscriber declined or abandoned the checkout.
    CheckoutDeclined {
        /// The provider's reference for the checkout.
        checkout_ref: String,
    },
    /// An invoice was paid: the subscription runs for another period.
    InvoicePaid {
        /// The provider's invoice id; each counts once.
        invoice_id: String,
        /// The provider's id for the subscription, when it says.
        provider_ref: Option<String>,
        /// Amount paid in minor units.
        amount: i64,
        /// Currency paid.
        currency: String,
        /// End of the period the invoice pays for, when the provider says.
        period_end: Option<DateTime<Utc>>,
    },
    /// A renewal payment failed.
    PaymentFailed {
        /// The invoice that failed, when the provider says.
        invoice_id: Option<String>,
        /// The provider's id for the subscription, when it says.
        provider_ref: Option<String>,
    },
    /// The provider will end the subscription at the period end.
    CancellationScheduled {
        /// The provider's id for the subscription, when it says.
        provider_ref: Option<String>,
    },
    /// The provider ended the subscription.
    Canceled {
        /// The provider's id for the subscription, when it says.
        provider_ref: Option<String>,
    },
    /// The subscriber changed plan at the provider.
    PlanChanged {
        /// The provider's id for the subscription, when it says.
        provider_ref: Option<String>,
        /// The new plan.
        plan: PlanId,
    },
    /// The subscription's terms as the provider now states them (Stripe sends them whole on
    /// every change): its plan, if known, and whether it ends at the period end.
    TermsUpdated {
        /// The provider's id for the subscription, when it says.
        provider_ref: Option<String>,
        /// The plan, if known.
        plan: Option<PlanId>,
        /// Whether the subscription ends at the period end.
        cancel_at_period_end: bool,
    },
}

impl Notice {
    /// The notice's kind in snake case, as recorded when a notice is ignored.
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

/// What a verified provider notice means for the subscription as it stands.
pub(super) fn receive(
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
