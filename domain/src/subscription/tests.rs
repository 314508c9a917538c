use super::*;
use crate::Decider;
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
        given_when::<Subscription>(&history, completed("evt_1", plan.plan().price_minor)).unwrap(),
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
        given_when::<Subscription>(&[started(PlanId::Premium)], completed("evt_1", 799)).unwrap();
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
    let again = given_when::<Subscription>(&history, paid("evt_3", "in_1", 1549, None)).unwrap();
    assert!(
        matches!(&again[..], [E::NoticeIgnored { reason, .. }] if reason == "invoice_already_counted")
    );
}

#[test]
fn the_first_invoice_after_checkout_pays_for_the_period_already_granted() {
    let mut history = active(PlanId::Basic);
    let end = replay(&history).period_end.unwrap();
    history.extend(given_when::<Subscription>(&history, paid("evt_2", "in_1", 799, None)).unwrap());
    assert_eq!(replay(&history).period_end, Some(end));
    history.extend(given_when::<Subscription>(&history, paid("evt_3", "in_2", 799, None)).unwrap());
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
    history.extend(given_when::<Subscription>(&history, C::Tick { at: end + grace() }).unwrap());
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
    history.extend(given_when::<Subscription>(&history, paid("evt_5", "in_5", 799, None)).unwrap());
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
        given_when::<Subscription>(&history, terms("evt_a", Some(PlanId::Standard), true)).unwrap(),
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
        given_when::<Subscription>(&history, terms("evt_d", Some(PlanId::Premium), true)).unwrap();
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
    let echo =
        given_when::<Subscription>(&history, terms("evt_x", Some(PlanId::Basic), false)).unwrap();
    assert!(matches!(&echo[..], [E::NoticeIgnored { reason, .. }] if reason == "nothing_changed"));
    history.extend(echo);
    let state = replay(&history);
    assert_eq!(
        (state.plan, state.pending_plan),
        (Some(PlanId::Standard), Some(PlanId::Basic))
    );
    // ...the next period's invoice at that price is.
    history.extend(given_when::<Subscription>(&history, paid("evt_y", "in_y", 799, None)).unwrap());
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
