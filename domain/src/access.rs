//! Audited access: each read by an auditor or analyst (history, trace, state, verify, export,
//! live tail) is recorded as one event, who read what with which filters, in a stream of its
//! own, so auditors can query the reads like any other history.

use crate::{Decider, EventName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One recorded read.
pub struct AccessRecord;

/// Whether this read's stream already holds its record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccessState {
    /// Set once the read is recorded; a stream records exactly one read.
    pub recorded: bool,
}

/// Records one audited read.
#[derive(Debug)]
pub struct RecordRead {
    /// What was read, e.g. `audit.events`, `events.export`.
    pub what: String,
    /// The filters and parameters of the read.
    pub filters: Value,
}

/// What the access stream records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccessEvent {
    /// An auditor or analyst read `what` with these `filters`.
    LogRead {
        /// What was read, e.g. `audit.events`.
        what: String,
        /// The filters and parameters of the read.
        filters: Value,
    },
}

impl EventName for AccessEvent {
    fn event_name(&self) -> &'static str {
        match self {
            AccessEvent::LogRead { .. } => "LogRead",
        }
    }
}

/// Why a read record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The stream already records a read; each read gets a stream of its own.
    #[error("this read is already recorded")]
    AlreadyRecorded,
}

impl Decider for AccessRecord {
    const STREAM_TYPE: &'static str = "access";
    type State = AccessState;
    type Command = RecordRead;
    type Event = AccessEvent;
    type Error = AccessError;

    fn decide(state: &AccessState, command: RecordRead) -> Result<Vec<AccessEvent>, AccessError> {
        if state.recorded {
            return Err(AccessError::AlreadyRecorded);
        }
        Ok(vec![AccessEvent::LogRead {
            what: command.what,
            filters: command.filters,
        }])
    }

    fn evolve(_: AccessState, _: &AccessEvent) -> AccessState {
        AccessState { recorded: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;

    #[test]
    fn a_read_is_recorded_once() {
        let read = || RecordRead {
            what: "audit.events".into(),
            filters: serde_json::json!({"type": "ProfileCreated"}),
        };
        let events = given_when::<AccessRecord>(&[], read()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            given_when::<AccessRecord>(&events, read()),
            Err(AccessError::AlreadyRecorded)
        );
    }
}
