//! The thin cqrs-es adapter: any [`Decider`] becomes a cqrs-es [`Aggregate`] whose `handle`
//! only calls `decide` and writes the events to the sink. The sqlite-es and postgres-es
//! repositories are typed by it.

use cinelog_domain::{Decider, EventName};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// A domain aggregate seen through cqrs-es.
#[derive(Serialize, Deserialize)]
#[serde(bound = "", transparent)]
pub struct CqrsAggregate<D: Decider> {
    /// The aggregate's state.
    pub state: D::State,
    #[serde(skip)]
    decider: PhantomData<fn() -> D>,
}

impl<D: Decider> Default for CqrsAggregate<D> {
    fn default() -> Self {
        Self {
            state: D::State::default(),
            decider: PhantomData,
        }
    }
}

/// A domain event seen through cqrs-es.
#[derive(Serialize, Deserialize)]
#[serde(bound = "", transparent)]
pub struct CqrsEvent<D: Decider>(pub D::Event);

impl<D: Decider> Clone for CqrsEvent<D> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<D: Decider> PartialEq for CqrsEvent<D> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<D: Decider> fmt::Debug for CqrsEvent<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Schema version of every event type today; bumped per type when its payload changes shape.
pub const SCHEMA_VERSION: &str = "1";

impl<D: Decider> DomainEvent for CqrsEvent<D> {
    fn event_type(&self) -> String {
        self.0.event_name().to_string()
    }
    fn event_version(&self) -> String {
        SCHEMA_VERSION.to_string()
    }
}

impl<D: Decider> Aggregate for CqrsAggregate<D> {
    const TYPE: &'static str = D::STREAM_TYPE;
    type Command = D::Command;
    type Event = CqrsEvent<D>;
    type Error = D::Error;
    type Services = ();

    async fn handle(
        &mut self,
        command: D::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), D::Error> {
        for event in D::decide(&self.state, command)? {
            sink.write(CqrsEvent(event), self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: CqrsEvent<D>) {
        self.state = D::evolve(std::mem::take(&mut self.state), &event.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cinelog_domain::account::{Account, AccountCommand, AccountError, AccountEvent};
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    type AccountAggregate = CqrsAggregate<Account>;

    #[test]
    fn adapter_decides_through_cqrs_es() {
        let owner = Uuid::nil();
        TestFramework::<AccountAggregate>::with(())
            .given_no_previous_events()
            .when(AccountCommand::Open { owner })
            .then_expect_events(vec![CqrsEvent(AccountEvent::AccountOpened { owner })]);
        TestFramework::<AccountAggregate>::with(())
            .given(vec![CqrsEvent(AccountEvent::AccountOpened { owner })])
            .when(AccountCommand::Open { owner })
            .then_expect_error(AccountError::AlreadyOpen);
    }
}
