//! The uniqueness of an email address, enforced by the log itself: one stream per
//! normalised-address hash, claimed at expected version 0. Two racing signups cannot both win.
//! A claim whose signup never finished (no user was ever registered for it) can be taken over
//! once it is old enough; the service looks that up and says so in the command. An erasure
//! releases the claim, so the address can sign up again.

use crate::{Decider, EventName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The email-claim aggregate: one stream per normalised address hash.
pub struct EmailClaim;

/// Who holds the address, if anyone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EmailClaimState {
    /// The user holding the address; `None` if unclaimed or released.
    pub user_id: Option<Uuid>,
    /// When the current claim was made (absent on claims recorded before this was kept).
    pub claimed_at: Option<DateTime<Utc>>,
}

/// What signups and erasures ask of an address.
#[derive(Debug)]
pub enum EmailClaimCommand {
    /// Claims the address for a signing-up user.
    Claim {
        /// The user signing up.
        user_id: Uuid,
        /// When the claim is made.
        at: DateTime<Utc>,
        /// The current claimer, if the service found its signup abandoned.
        abandoned_by: Option<Uuid>,
    },
    /// The claimer's personal data was erased: the address is free again.
    Release {
        /// The erased user; only the address's own holder releases it.
        user_id: Uuid,
    },
}

/// What happened to an address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EmailClaimEvent {
    /// A user claimed the address.
    EmailClaimed {
        /// The claiming user.
        user_id: Uuid,
        /// When; absent on claims recorded before it was kept.
        #[serde(default)]
        claimed_at: Option<DateTime<Utc>>,
    },
    /// The holder's data was erased, so the address is free.
    EmailClaimReleased {
        /// The user who held the address.
        user_id: Uuid,
    },
}

impl EventName for EmailClaimEvent {
    fn event_name(&self) -> &'static str {
        match self {
            EmailClaimEvent::EmailClaimed { .. } => "EmailClaimed",
            EmailClaimEvent::EmailClaimReleased { .. } => "EmailClaimReleased",
        }
    }
}

/// Why a claim is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailClaimError {
    /// Another user holds the address.
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
            EmailClaimCommand::Claim {
                user_id,
                at,
                abandoned_by,
            } => match state.user_id {
                Some(current) if abandoned_by != Some(current) => Err(EmailClaimError::EmailTaken),
                _ => Ok(vec![EmailClaimEvent::EmailClaimed {
                    user_id,
                    claimed_at: Some(at),
                }]),
            },
            // Only the claimer's own erasure frees the address; anything else changes nothing.
            EmailClaimCommand::Release { user_id } if state.user_id == Some(user_id) => {
                Ok(vec![EmailClaimEvent::EmailClaimReleased { user_id }])
            }
            EmailClaimCommand::Release { .. } => Ok(vec![]),
        }
    }

    fn evolve(mut state: Self::State, event: &Self::Event) -> Self::State {
        match event {
            EmailClaimEvent::EmailClaimed {
                user_id,
                claimed_at,
            } => {
                state.user_id = Some(*user_id);
                state.claimed_at = *claimed_at;
            }
            EmailClaimEvent::EmailClaimReleased { .. } => {
                state.user_id = None;
                state.claimed_at = None;
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;

    fn claim(user_id: Uuid, abandoned_by: Option<Uuid>) -> EmailClaimCommand {
        EmailClaimCommand::Claim {
            user_id,
            at: DateTime::<Utc>::UNIX_EPOCH,
            abandoned_by,
        }
    }

    #[test]
    fn first_claim_wins_and_second_is_refused() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let claimed = EmailClaimEvent::EmailClaimed {
            user_id: a,
            claimed_at: Some(DateTime::<Utc>::UNIX_EPOCH),
        };
        assert_eq!(
            given_when::<EmailClaim>(&[], claim(a, None)),
            Ok(vec![claimed.clone()])
        );
        assert_eq!(
            given_when::<EmailClaim>(&[claimed], claim(b, None)),
            Err(EmailClaimError::EmailTaken)
        );
    }

    #[test]
    fn an_abandoned_claim_can_be_taken_over_but_only_that_one() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let claimed = EmailClaimEvent::EmailClaimed {
            user_id: a,
            claimed_at: None,
        };
        assert!(
            given_when::<EmailClaim>(std::slice::from_ref(&claimed), claim(b, Some(a))).is_ok()
        );
        // Found abandoned by someone else: the claim moved on meanwhile, so it is taken.
        assert_eq!(
            given_when::<EmailClaim>(&[claimed], claim(b, Some(c))),
            Err(EmailClaimError::EmailTaken)
        );
    }

    #[test]
    fn a_released_claim_can_be_claimed_again_and_only_its_claimer_releases_it() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let claimed = EmailClaimEvent::EmailClaimed {
            user_id: a,
            claimed_at: None,
        };
        let released = EmailClaimEvent::EmailClaimReleased { user_id: a };
        assert_eq!(
            given_when::<EmailClaim>(
                std::slice::from_ref(&claimed),
                EmailClaimCommand::Release { user_id: b }
            ),
            Ok(vec![])
        );
        assert_eq!(
            given_when::<EmailClaim>(
                std::slice::from_ref(&claimed),
                EmailClaimCommand::Release { user_id: a }
            ),
            Ok(vec![released.clone()])
        );
        assert!(given_when::<EmailClaim>(&[claimed, released], claim(b, None)).is_ok());
    }
}
