//! The write side's ports answered from read models: which account a provider's reference
//! belongs to and which subscriptions are due, which sign-in sessions are open, and where a
//! profile left off. Each waits, bounded, for its read model's follower to reach the log's head
//! (or the position asked for) instead of stepping the projection itself.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_commands::ports::{ResumePoints, SessionRegistry, SubscriptionDirectory};
use cinelog_domain::subscription::Provider;
use cinelog_domain::viewing::Watched;
use cinelog_projections::Projections;
use cinelog_projections::sessions::{self, SessionGuard};
use cinelog_projections::{subscriptions, watching};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Waits (bounded) for the projection's follower to apply everything committed so far;
/// answers whether it did.
async fn caught_up(projections: &Projections, name: &str, wait: Duration) -> Result<bool, String> {
    let head = projections.log_head().await.map_err(|e| e.to_string())?;
    projections
        .wait_for(name, head, wait)
        .await
        .map_err(|e| e.to_string())
}

fn uuids(ids: &[String]) -> Vec<Uuid> {
    ids.iter()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect()
}

/// Answers the billing service's lookups from the subscriptions read model.
pub struct ReadDirectory {
    /// The read models.
    pub projections: Projections,
    /// How long a lookup waits for the read model to reach the log's head.
    pub wait: Duration,
}

#[async_trait]
impl SubscriptionDirectory for ReadDirectory {
    /// A reference the read model does not know yet may belong to a checkout it has not applied:
    /// it waits until the read model holds everything committed so far and looks again, so a
    /// webhook arriving right after its checkout is never taken for a stranger's.
    async fn account_for(
        &self,
        provider: Provider,
        reference: &str,
    ) -> Result<Option<Uuid>, String> {
        let find =
            || subscriptions::account_for(self.projections.db(), provider.as_str(), reference);
        let mut found = find().await.map_err(|e| e.to_string())?;
        if found.is_none() {
            if !caught_up(&self.projections, subscriptions::NAME, self.wait).await? {
                return Err("the subscriptions read model is behind the log".into());
            }
            found = find().await.map_err(|e| e.to_string())?;
        }
        Ok(found.and_then(|id| Uuid::parse_str(&id).ok()))
    }

    async fn due(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, String> {
        let due = subscriptions::due(self.projections.db(), now)
            .await
            .map_err(|e| e.to_string())?;
        Ok(uuids(&due))
    }
}

/// Lists open sessions from the sessions read model and tells this replica's guard of ends.
pub struct ReadSessions {
    /// The read models.
    pub projections: Projections,
    /// This replica's refusals of ended sessions' tokens.
    pub guard: Arc<SessionGuard>,
    /// How long a listing waits for the read model to reach the log's head.
    pub wait: Duration,
}

#[async_trait]
impl SessionRegistry for ReadSessions {
    /// Waits (bounded) for the read model to hold every session started so far, so a session
    /// begun a moment ago is listed too; the read model ends any it still misses on its own.
    async fn open_sessions(&self, user_id: Uuid) -> Result<Vec<Uuid>, String> {
        caught_up(&self.projections, sessions::NAME, self.wait).await?;
        let open = sessions::open_sessions_of(self.projections.db(), &user_id.to_string())
            .await
            .map_err(|e| e.to_string())?;
        Ok(uuids(&open))
    }

    fn ended(&self, sessions: &[Uuid]) {
        self.guard.end(sessions);
    }
}

/// Resume positions from the watching read model.
pub struct ReadResumePoints {
    /// The read models.
    pub projections: Projections,
    /// How long a read waits for the position asked for.
    pub wait: Duration,
}

#[async_trait]
impl ResumePoints for ReadResumePoints {
    /// Waits (bounded) for the read model to hold every heartbeat before `position`; past the
    /// wait it answers what it holds.
    async fn resume_at(&self, watched: &Watched, position: i64) -> Result<f64, String> {
        self.projections
            .wait_for(watching::NAME, position, self.wait)
            .await
            .map_err(|e| e.to_string())?;
        watching::resume_position(
            self.projections.db(),
            &watched.profile_id.to_string(),
            &watched.title_id,
            watched.episode_id.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())
    }
}
