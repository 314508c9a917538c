//! Subscriptions as playback and the account page read them: the entitlement per account
//! (status, plan, quality and stream caps, until when), payment history, and which provider
//! references belong to which account. The row keeps the aggregate's own state, folded with the
//! domain's `evolve`, so the read model cannot disagree with the rules.

use crate::db::ReadDb;
use crate::runtime::{Projection, Tables};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_domain::envelope::format_time;
use cinelog_domain::plan::PlanId;
use cinelog_domain::subscription::{Status, Subscription, SubscriptionEvent, SubscriptionState};
use cinelog_domain::{Decider, RecordedEvent};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

pub struct SubscriptionsProjection;

pub const NAME: &str = "subscriptions";

#[async_trait]
impl Projection for SubscriptionsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [&'static str] {
        &["subscription"]
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "subscriptions",
                "account_id TEXT PRIMARY KEY, status TEXT NOT NULL, plan TEXT, provider TEXT, period_end TEXT, access_until TEXT,
                 next_deadline TEXT, cancel_at_period_end BIGINT NOT NULL, pending_plan TEXT, state TEXT NOT NULL, updated_position BIGINT NOT NULL",
            ),
            (
                "subscription_refs",
                "provider TEXT NOT NULL, reference TEXT NOT NULL, account_id TEXT NOT NULL, PRIMARY KEY (provider, reference)",
            ),
            (
                "payments",
                "position BIGINT PRIMARY KEY, account_id TEXT NOT NULL, at TEXT NOT NULL, outcome TEXT NOT NULL, plan TEXT,
                 amount BIGINT, currency TEXT, reference TEXT",
            ),
        ]
    }

    fn analytics_views(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "subscriptions",
                "SELECT account_id, status, plan, provider, period_end::timestamptz AS period_end, access_until::timestamptz AS access_until, cancel_at_period_end = 1 AS cancel_at_period_end, pending_plan FROM subscriptions",
            ),
            (
                "payments",
                "SELECT position, account_id, at::timestamptz AS at, outcome, plan, amount, currency FROM payments",
            ),
        ]
    }

    fn indexes(&self) -> &'static [&'static str] {
        &[
            "CREATE INDEX subscriptions_deadline_{g} ON {subscriptions} (next_deadline)",
            "CREATE INDEX payments_account_{g} ON {payments} (account_id, position)",
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &RecordedEvent,
    ) -> anyhow::Result<()> {
        if e.stream_type != Subscription::STREAM_TYPE {
            return Ok(());
        }
        let event: SubscriptionEvent = serde_json::from_value(e.payload.clone())?;
        let account = e.stream_id.clone();
        let stored: Option<String> = sqlx::query(&format!(
            "SELECT state FROM {} WHERE account_id = $1",
            t.name("subscriptions")
        ))
        .bind(account.clone())
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.get(0));
        let before: SubscriptionState = match stored {
            Some(json) => serde_json::from_str(&json)?,
            None => SubscriptionState::default(),
        };
        let state = Subscription::evolve(before, &event);
        let time = |t: Option<DateTime<Utc>>| t.map(format_time);
        sqlx::query(&format!(
            "INSERT INTO {} (account_id, status, plan, provider, period_end, access_until, next_deadline, cancel_at_period_end, pending_plan, state, updated_position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (account_id) DO UPDATE SET status = excluded.status, plan = excluded.plan, provider = excluded.provider,
               period_end = excluded.period_end, access_until = excluded.access_until, next_deadline = excluded.next_deadline,
               cancel_at_period_end = excluded.cancel_at_period_end, pending_plan = excluded.pending_plan, state = excluded.state,
               updated_position = excluded.updated_position",
            t.name("subscriptions")
        ))
        .bind(account.clone())
        .bind(state.status.as_str())
        .bind(state.plan.map(|p| p.as_str()))
        .bind(state.provider.map(|p| p.as_str()))
        .bind(time(state.period_end))
        .bind(time(state.access_until()))
        .bind(time(state.next_deadline()))
        .bind(i64::from(state.cancel_at_period_end))
        .bind(state.pending_plan.map(|p| p.as_str()))
        .bind(serde_json::to_string(&state)?)
        .bind(e.position)
        .execute(&mut *conn)
        .await?;

        let refs_sql = format!(
            "INSERT INTO {} (provider, reference, account_id) VALUES ($1, $2, $3) ON CONFLICT (provider, reference) DO NOTHING",
            t.name("subscription_refs")
        );
        let payments_sql = format!(
            "INSERT INTO {} (position, account_id, at, outcome, plan, amount, currency, reference) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (position) DO NOTHING",
            t.name("payments")
        );
        let reference = |provider: &str, reference: &str| {
            sqlx::query(&refs_sql)
                .bind(provider.to_string())
                .bind(reference.to_string())
                .bind(account.clone())
        };
        let payment = |outcome: &str,
                       plan: Option<PlanId>,
                       amount: Option<i64>,
                       currency: Option<&str>,
                       reference: &str,
                       at: DateTime<Utc>| {
            sqlx::query(&payments_sql)
                .bind(e.position)
                .bind(account.clone())
                .bind(format_time(at))
                .bind(outcome.to_string())
                .bind(plan.map(|p| p.as_str()))
                .bind(amount)
                .bind(currency.map(str::to_string))
                .bind(reference.to_string())
        };
        use SubscriptionEvent as E;
        match &event {
            E::CheckoutStarted {
                checkout_ref,
                provider,
                ..
            } => {
                reference(provider.as_str(), checkout_ref)
                    .execute(&mut *conn)
                    .await?;
            }
            E::SubscriptionActivated {
                provider,
                provider_ref,
                plan,
                invoice_id,
                checkout_ref,
                amount,
                currency,
                at,
                ..
            } => {
                if let Some(r) = provider_ref {
                    reference(provider.as_str(), r).execute(&mut *conn).await?;
                }
                let paid_with = invoice_id
                    .as_deref()
                    .or(checkout_ref.as_deref())
                    .unwrap_or("");
                let amount = amount.or(Some(plan.plan().price_minor));
                let currency = currency.as_deref().or(Some(plan.plan().currency));
                payment("paid", Some(*plan), amount, currency, paid_with, *at)
                    .execute(&mut *conn)
                    .await?;
            }
            E::SubscriptionRenewed {
                invoice_id,
                amount,
                currency,
                plan,
                at,
                ..
            } => {
                payment(
                    "paid",
                    Some(*plan),
                    Some(*amount),
                    Some(currency),
                    invoice_id,
                    *at,
                )
                .execute(&mut *conn)
                .await?;
            }
            E::PaymentFailed { invoice_id, at, .. } => {
                let reason = invoice_id.as_deref().unwrap_or("renewal not received");
                payment("failed", state.plan, None, None, reason, *at)
                    .execute(&mut *conn)
                    .await?;
            }
            E::PaymentRejected {
                reference: r,
                plan,
                amount,
                currency,
                at,
                ..
            } => {
                payment(
                    "rejected",
                    Some(*plan),
                    Some(*amount),
                    Some(currency),
                    r,
                    *at,
                )
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What an account may watch, as of a moment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entitlement {
    pub entitled: bool,
    pub status: String,
    pub plan: Option<PlanId>,
    /// Highest rendition height playable, 0 when not entitled.
    pub max_quality: u32,
    pub concurrent_streams: u32,
    pub period_end: Option<String>,
    /// The last moment playback is allowed without news from the provider.
    pub access_until: Option<String>,
    pub cancel_at_period_end: bool,
    pub pending_plan: Option<PlanId>,
}

impl Entitlement {
    fn none() -> Self {
        Entitlement {
            entitled: false,
            status: Status::None.as_str().into(),
            plan: None,
            max_quality: 0,
            concurrent_streams: 0,
            period_end: None,
            access_until: None,
            cancel_at_period_end: false,
            pending_plan: None,
        }
    }
}

/// The entitlement of an account at `now`: a live subscription whose access has not run out.
pub async fn entitlement(
    db: &ReadDb,
    account_id: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Entitlement> {
    let row = sqlx::query(
        "SELECT status, plan, period_end, access_until, cancel_at_period_end, pending_plan FROM subscriptions WHERE account_id = $1",
    )
    .bind(account_id.to_string())
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Ok(Entitlement::none());
    };
    let status: String = row.get(0);
    let plan = row
        .get::<Option<String>, _>(1)
        .and_then(|p| PlanId::parse(&p).ok());
    let access_until: Option<String> = row.get(3);
    let live = status == Status::Active.as_str() || status == Status::PastDue.as_str();
    let entitled = live
        && access_until
            .as_deref()
            .is_some_and(|until| until > format_time(now).as_str());
    let caps = plan.filter(|_| entitled).map(|p| p.plan());
    Ok(Entitlement {
        entitled,
        status,
        plan,
        max_quality: caps.map_or(0, |p| p.max_quality),
        concurrent_streams: caps.map_or(0, |p| p.concurrent_streams),
        period_end: row.get(2),
        access_until,
        cancel_at_period_end: row.get::<i64, _>(4) != 0,
        pending_plan: row
            .get::<Option<String>, _>(5)
            .and_then(|p| PlanId::parse(&p).ok()),
    })
}

/// One line of an account's payment history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PaymentView {
    pub at: String,
    /// `paid`, `failed` or `rejected` (amount not the plan's price).
    pub outcome: String,
    pub plan: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub reference: Option<String>,
}

/// An account's payments, newest first.
pub async fn payments(db: &ReadDb, account_id: &str) -> anyhow::Result<Vec<PaymentView>> {
    let rows = sqlx::query(
        "SELECT at, outcome, plan, amount, currency, reference FROM payments WHERE account_id = $1 ORDER BY position DESC",
    )
    .bind(account_id.to_string())
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| PaymentView {
            at: r.get(0),
            outcome: r.get(1),
            plan: r.get(2),
            amount: r.get(3),
            currency: r.get(4),
            reference: r.get(5),
        })
        .collect())
}

/// The account a provider's checkout or subscription reference belongs to.
pub async fn account_for(
    db: &ReadDb,
    provider: &str,
    reference: &str,
) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query(
        "SELECT account_id FROM subscription_refs WHERE provider = $1 AND reference = $2",
    )
    .bind(provider.to_string())
    .bind(reference.to_string())
    .fetch_optional(&db.pool)
    .await?
    .map(|r| r.get(0)))
}

/// Accounts with a period or grace end at or before `now`.
pub async fn due(db: &ReadDb, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query(
        "SELECT account_id FROM subscriptions WHERE next_deadline IS NOT NULL AND next_deadline <= $1 ORDER BY next_deadline LIMIT 1000",
    )
    .bind(format_time(now))
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}
