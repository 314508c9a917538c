//! Subscriptions: checkouts through a payment provider, verified provider webhooks, plan changes,
//! cancellation, and the scheduler's ticks that end periods and grace periods.

use crate::error::CommandError;
use crate::execute::execute;
use crate::meta::CommandMeta;
use crate::ports::{
    CheckoutRequest, Clock, PaymentGateway, SubscriptionDirectory, VerifiedNotice, WebhookRequest,
};
use crate::store::EventStore;
use cinelog_domain::plan::PlanId;
use cinelog_domain::subscription::{
    Provider, Status, Subscription, SubscriptionCommand, SubscriptionError, SubscriptionState,
};
use cinelog_domain::{Actor, Decider};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// Subscriptions through payment providers.
#[derive(Clone)]
pub struct BillingService<S> {
    store: S,
    gateways: BTreeMap<Provider, Arc<dyn PaymentGateway>>,
    directory: Arc<dyn SubscriptionDirectory>,
    clock: Arc<dyn Clock>,
}

/// What became of a verified webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Whether the delivery added to the log (false for duplicates and for facts about nothing
    /// Cinelog knows).
    pub recorded: bool,
    /// The log position the subscription's stream stands at, when there is one.
    pub position: Option<i64>,
}

impl<S: EventStore> BillingService<S> {
    /// A billing service over the store, the providers offered, and the read side's directory.
    pub fn new(
        store: S,
        gateways: Vec<Arc<dyn PaymentGateway>>,
        directory: Arc<dyn SubscriptionDirectory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let gateways = gateways.into_iter().map(|g| (g.provider(), g)).collect();
        Self {
            store,
            gateways,
            directory,
            clock,
        }
    }

    /// Providers a subscriber may choose.
    pub fn providers(&self) -> Vec<Provider> {
        self.gateways.keys().copied().collect()
    }

    /// Whether payments through `provider` are offered here.
    pub fn offers(&self, provider: Provider) -> bool {
        self.gateways.contains_key(&provider)
    }

    fn gateway(&self, provider: Provider) -> Result<&Arc<dyn PaymentGateway>, CommandError> {
        self.gateways
            .get(&provider)
            .ok_or(CommandError::ProviderNotOffered(provider.as_str()))
    }

    /// The account's subscription as the log knows it.
    pub async fn state(&self, account_id: Uuid) -> Result<SubscriptionState, CommandError> {
        Ok(self
            .store
            .load::<Subscription>(&account_id.to_string())
            .await?
            .state)
    }

    /// Opens a checkout at the provider and records it; answers where to send the subscriber.
    #[tracing::instrument(skip_all, fields(%account_id, plan = plan.as_str(), provider = provider.as_str()))]
    pub async fn checkout(
        &self,
        account_id: Uuid,
        plan: PlanId,
        provider: Provider,
        email: Option<String>,
        return_url: &str,
        meta: &CommandMeta,
    ) -> Result<(String, i64), CommandError> {
        let gateway = self.gateway(provider)?;
        if self.state(account_id).await?.status.is_live() {
            return Err(SubscriptionError::AlreadySubscribed.into());
        }
        let request = CheckoutRequest {
            account_id,
            checkout_id: Uuid::now_v7(),
            plan,
            email,
            success_url: format!("{return_url}?checkout=success"),
            cancel_url: format!("{return_url}?checkout=canceled"),
        };
        let session = gateway
            .start_checkout(&request)
            .await
            .map_err(CommandError::Service)?;
        let at = self.clock.now();
        let command = SubscriptionCommand::StartCheckout {
            checkout_ref: session.checkout_ref.clone(),
            provider,
            plan,
            at,
        };
        let (_, position) = self.record(account_id, meta, command).await?;
        Ok((session.redirect_url, position))
    }

    /// Records a command on the account's subscription; answers its state and position after.
    async fn record(
        &self,
        account_id: Uuid,
        meta: &CommandMeta,
        command: SubscriptionCommand,
    ) -> Result<(SubscriptionState, i64), CommandError> {
        let done = execute::<Subscription, _, CommandError>(
            &self.store,
            &account_id.to_string(),
            meta,
            |_| Ok(command.clone()),
        )
        .await?;
        Ok((done.state, done.position))
    }

    /// Upgrades at once, or schedules a downgrade for the period end.
    pub async fn change_plan(
        &self,
        account_id: Uuid,
        plan: PlanId,
        meta: &CommandMeta,
    ) -> Result<(SubscriptionState, i64), CommandError> {
        let at = self.clock.now();
        let state = self.state(account_id).await?;
        // Decided here first, so the provider is only asked for a change the rules allow.
        Subscription::decide(&state, SubscriptionCommand::ChangePlan { plan, at })?;
        // The provider bills the plan it knows: it is told first.
        if let Some(provider) = state.provider
            && !self
                .gateway(provider)?
                .change_plan(state.provider_ref.as_deref(), plan)
                .await
                .map_err(CommandError::Service)?
        {
            return Err(SubscriptionError::ChangeThroughProvider.into());
        }
        let command = SubscriptionCommand::ChangePlan { plan, at };
        match self.record(account_id, meta, command).await {
            // The provider's own notice of the change came in first and applied it.
            Err(CommandError::Subscription(SubscriptionError::PlanUnchanged)) => {
                let now = self
                    .store
                    .load::<Subscription>(&account_id.to_string())
                    .await?;
                Ok((now.state, now.head.position))
            }
            done => done,
        }
    }

    /// Ends the subscription at the period end; it plays until then.
    pub async fn cancel(
        &self,
        account_id: Uuid,
        meta: &CommandMeta,
    ) -> Result<(SubscriptionState, i64), CommandError> {
        let at = self.clock.now();
        let state = self.state(account_id).await?;
        // Decided here first, so the provider is only asked for what the rules allow.
        Subscription::decide(&state, SubscriptionCommand::Cancel { at })?;
        if let (Some(provider), Some(reference)) = (state.provider, &state.provider_ref) {
            self.gateway(provider)?
                .cancel_at_period_end(reference)
                .await
                .map_err(CommandError::Service)?;
        }
        self.record(account_id, meta, SubscriptionCommand::Cancel { at })
            .await
    }

    /// Keeps a subscription that was to end at the period end, at the provider first.
    pub async fn resume(
        &self,
        account_id: Uuid,
        meta: &CommandMeta,
    ) -> Result<(SubscriptionState, i64), CommandError> {
        let at = self.clock.now();
        let state = self.state(account_id).await?;
        Subscription::decide(&state, SubscriptionCommand::Resume { at })?;
        if let (Some(provider), Some(reference)) = (state.provider, &state.provider_ref)
            && !self
                .gateway(provider)?
                .resume(reference)
                .await
                .map_err(CommandError::Service)?
        {
            return Err(SubscriptionError::CannotResume.into());
        }
        self.record(account_id, meta, SubscriptionCommand::Resume { at })
            .await
    }

    /// Verifies a provider's webhook and records what it says, once per provider event id; its
    /// events carry the delivering request's correlation id.
    #[tracing::instrument(skip_all, fields(provider = provider.as_str()))]
    pub async fn receive(
        &self,
        provider: Provider,
        request: &WebhookRequest,
        correlation_id: Uuid,
    ) -> Result<Received, CommandError> {
        let verified = self.gateway(provider)?.verify(request).await?;
        let meta = CommandMeta {
            correlation_id,
            ..CommandMeta::new(Actor::Provider(provider.as_str().to_string()))
        };
        self.record_notice(provider, verified, &meta).await
    }

    /// Records what a verified notice says about a subscription, once per notice id.
    async fn record_notice(
        &self,
        provider: Provider,
        verified: VerifiedNotice,
        meta: &CommandMeta,
    ) -> Result<Received, CommandError> {
        let not_recorded = Received {
            recorded: false,
            position: None,
        };
        let Some(notice) = verified.notice.clone() else {
            tracing::info!(event_type = %verified.event_type, "webhook type not acted on");
            return Ok(not_recorded);
        };
        let account_id = match verified.account_id {
            Some(id) => Some(id),
            None => self.find_account(provider, &notice).await?,
        };
        let Some(account_id) = account_id else {
            tracing::warn!(notice_id = %verified.notice_id, event_type = %verified.event_type, "webhook names no known subscription");
            return Ok(not_recorded);
        };
        let at = self.clock.now();
        let done = execute::<Subscription, _, CommandError>(
            &self.store,
            &account_id.to_string(),
            meta,
            |_| {
                Ok(SubscriptionCommand::Receive {
                    notice_id: verified.notice_id.clone(),
                    provider,
                    notice: notice.clone(),
                    at,
                })
            },
        )
        .await?;
        Ok(Received {
            recorded: !done.events.is_empty(),
            position: Some(done.position),
        })
    }

    async fn find_account(
        &self,
        provider: Provider,
        notice: &cinelog_domain::subscription::Notice,
    ) -> Result<Option<Uuid>, CommandError> {
        use cinelog_domain::subscription::Notice as N;
        let references: Vec<&str> = match notice {
            N::CheckoutCompleted {
                checkout_ref,
                provider_ref,
                ..
            } => [Some(checkout_ref.as_str()), provider_ref.as_deref()]
                .into_iter()
                .flatten()
                .collect(),
            N::CheckoutDeclined { checkout_ref } => vec![checkout_ref.as_str()],
            N::InvoicePaid { provider_ref, .. }
            | N::PaymentFailed { provider_ref, .. }
            | N::CancellationScheduled { provider_ref }
            | N::Canceled { provider_ref }
            | N::PlanChanged { provider_ref, .. }
            | N::TermsUpdated { provider_ref, .. } => provider_ref.as_deref().into_iter().collect(),
        };
        for reference in references {
            if let Some(found) = self
                .directory
                .account_for(provider, reference)
                .await
                .map_err(CommandError::Service)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    async fn tick_one(
        &self,
        account_id: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, CommandError> {
        let state = self.state(account_id).await?;
        if let (Status::Active, false, Some(provider), Some(reference), Some(plan), Some(end)) = (
            state.status,
            state.cancel_at_period_end,
            state.provider,
            &state.provider_ref,
            state.pending_plan.or(state.plan),
            state.period_end,
        ) && end <= now
            && let Some(renewal) = self
                .gateway(provider)?
                .renewal(account_id, reference, plan, end)
                .await
                .map_err(CommandError::Service)?
        {
            let meta = CommandMeta::new(Actor::Provider(provider.as_str().to_string()));
            return Ok(self.record_notice(provider, renewal, &meta).await?.recorded);
        }
        let done = execute::<Subscription, _, CommandError>(
            &self.store,
            &account_id.to_string(),
            &CommandMeta::new(Actor::System),
            |_| Ok(SubscriptionCommand::Tick { at: now }),
        )
        .await?;
        Ok(!done.events.is_empty())
    }

    /// Appends the transitions whose moment has passed: sandbox renewals, period ends, grace
    /// ends. Safe to run from any number of processes at once. Answers how many subscriptions
    /// changed.
    pub async fn tick(&self) -> Result<usize, CommandError> {
        let now = self.clock.now();
        let due = self
            .directory
            .due(now)
            .await
            .map_err(CommandError::Service)?;
        let mut changed = 0;
        for account_id in due {
            // One subscription's trouble (a provider down, contention) does not hold up the rest.
            match self.tick_one(account_id, now).await {
                Ok(moved) => changed += usize::from(moved),
                Err(e) => {
                    tracing::warn!(%account_id, error = %e, "could not move a subscription on")
                }
            }
        }
        Ok(changed)
    }
}
