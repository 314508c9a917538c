//! The uniqueness of an email address, enforced by the log itself: one stream per
//! normalised-address hash, claimed at expected version 0. Two racing signups cannot both win.

use crate::{Decider, EventName};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub struct EmailClaim;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EmailClaimState {
    pub user_id: Option<Uuid>,
}

#[derive(Debug)]
pub enum EmailClaimCommand {
    Claim { user_id: Uuid },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EmailClaimEvent {
    EmailClaimed { user_id: Uuid },
}

impl EventName for EmailClaimEvent {
    fn event_name(&self) -> &'static str {
        "EmailClaimed"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailClaimError {
    #[error("this email is already registered")]
    EmailTaken,
}

impl Decider for EmailClaim {
    const STREAM_TYPE: &'static str = "email";
    type State = EmailClaimState;
    type Command = EmailClaimCommand;
    type Event = EmailClaimEvent;
    type Error = EmailClaimError;

    fn decide(
        state: &Self::State,
        command: Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Error> {
        match command {
            EmailClaimCommand::Claim { .. } if state.user_id.is_some() => {
                Err(EmailClaimError::EmailTaken)
            }
            EmailClaimCommand::Claim { user_id } => {
                Ok(vec![EmailClaimEvent::EmailClaimed { user_id }])
            }
        }
    }

    fn evolve(mut state: Self::State, event: &Self::Event) -> Self::State {
        match event {
            EmailClaimEvent::EmailClaimed { user_id } => state.user_id = Some(*user_id),
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;

    #[test]
    fn first_claim_wins_and_second_is_refused() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            given_when::<EmailClaim>(&[], EmailClaimCommand::Claim { user_id: a }),
            Ok(vec![EmailClaimEvent::EmailClaimed { user_id: a }])
        );
        assert_eq!(
            given_when::<EmailClaim>(
                &[EmailClaimEvent::EmailClaimed { user_id: a }],
                EmailClaimCommand::Claim { user_id: b }
            ),
            Err(EmailClaimError::EmailTaken)
        );
    }
}
