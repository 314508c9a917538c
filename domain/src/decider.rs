//! The shape every aggregate shares: a pure decider over its own event stream.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// The name an event is stored under (its enum variant).
pub trait EventName {
    /// The event's type name as it appears in the log, e.g. `ProfileCreated`.
    fn event_name(&self) -> &'static str;
}

/// An aggregate as two pure functions: `decide` turns a command into events given the current
/// state, `evolve` folds one event into the state. Everything a decision needs from elsewhere
/// (time, other aggregates' facts) arrives inside the command.
pub trait Decider {
    /// Stream type in the log, e.g. `account`.
    const STREAM_TYPE: &'static str;
    /// State rebuilt from the stream.
    type State: Default + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What the caller asks for.
    type Command: Debug + Send;
    /// What happened.
    type Event: Clone + Debug + PartialEq + Serialize + DeserializeOwned + EventName + Send + Sync;
    /// Why the command was refused.
    type Error: std::error::Error + Clone + PartialEq + Send + Sync + 'static;

    /// Decides which events a command produces, or why it is refused.
    fn decide(state: &Self::State, command: Self::Command)
    -> Result<Vec<Self::Event>, Self::Error>;
    /// Applies one event to the state.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Folds a whole stream.
    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), Self::evolve)
    }
}

/// Given / when / then helper for aggregate tests.
#[cfg(test)]
pub(crate) fn given_when<D: Decider>(
    given: &[D::Event],
    when: D::Command,
) -> Result<Vec<D::Event>, D::Error> {
    D::decide(&D::replay(given), when)
}
