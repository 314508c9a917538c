//! Command metadata: who acts and which request (correlation, causation) the command belongs to.

use cinelog_domain::Actor;
use uuid::Uuid;

/// Who asks, and what request this command belongs to. Every event a command writes carries it.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    /// Who asks; recorded as each event's actor.
    pub actor: Actor,
    /// Shared by every event the request causes.
    pub correlation_id: Uuid,
    /// The event that caused this command, if any.
    pub causation_id: Option<Uuid>,
}

impl CommandMeta {
    /// A new request by `actor`, with a fresh correlation id and no cause.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        }
    }

    /// The same request, for a command that an event (`None`: nothing) caused.
    pub fn caused_by(&self, event: Option<Uuid>) -> Self {
        Self {
            causation_id: event.or(self.causation_id),
            ..self.clone()
        }
    }

    /// The same request, acting as someone else (e.g. a new user right after signup).
    pub fn acting_as(&self, actor: Actor) -> Self {
        Self {
            actor,
            ..self.clone()
        }
    }
}
