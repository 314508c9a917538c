//! How the subscription decides on commands and folds its events.

use super::notices::receive;
use super::{
    OpenCheckout, RENEWAL_SLACK_HOURS, Status, Subscription, SubscriptionCommand,
    SubscriptionError, SubscriptionEvent, SubscriptionState, grace,
};
use crate::Decider;
use chrono::{DateTime, Duration, Utc};

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
