//! A sign-in session: one family of rotating refresh tokens. Presenting a token that was
//! already rotated away means it was stolen or replayed, so the whole family is revoked; so is a
//! session whose user changed their password since it started.

use crate::{Decider, EventName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The session aggregate: one stream per sign-in session.
pub struct Session;

/// A session as rebuilt from its stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionState {
    /// The signed-in user; `None` until the session starts.
    pub user_id: Option<Uuid>,
    /// Hash of the one refresh token that may be presented next.
    pub current_hash: String,
    /// Hashes of tokens already rotated away; presenting one revokes the session.
    pub used_hashes: Vec<String>,
    /// When the current refresh token stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the session has ended; a revoked session never comes back.
    pub revoked: bool,
    /// The user's credentials version when the session started.
    pub credentials_version: u32,
}

/// What sign-in, refresh and sign-out ask of a session.
#[derive(Debug)]
pub enum SessionCommand {
    /// Starts the session at sign-in.
    Start {
        /// The user signing in.
        user_id: Uuid,
        /// Hash of the first refresh token.
        refresh_hash: String,
        /// When that token stops working.
        expires_at: DateTime<Utc>,
        /// The user's credentials version at sign-in.
        credentials_version: u32,
    },
    /// Exchanges the current refresh token for a new one.
    Rotate {
        /// The user's credentials version now, looked up by the service.
        credentials_version: u32,
        /// Hash of the token the client presented.
        presented_hash: String,
        /// Hash of the token that replaces it.
        new_hash: String,
        /// When the new token stops working.
        expires_at: DateTime<Utc>,
        /// The moment of the request, to check expiry.
        now: DateTime<Utc>,
    },
    /// Ends the session.
    Revoke {
        /// Why it ends.
        reason: RevokeReason,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The user signed out.
    Logout,
    /// A token already rotated away was presented again (stolen or replayed).
    TokenReuse,
    /// The user's password changed since the session started.
    CredentialsChanged,
    /// The user's personal data was erased.
    Erased,
}

/// What happened to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SessionEvent {
    /// The user signed in.
    SessionStarted {
        /// The signed-in user.
        user_id: Uuid,
        /// Hash of the first refresh token.
        refresh_hash: String,
        /// When that token stops working.
        expires_at: DateTime<Utc>,
        /// The user's credentials version at sign-in (0 on sessions recorded before it was kept).
        #[serde(default)]
        credentials_version: u32,
    },
    /// The refresh token was rotated.
    SessionRefreshed {
        /// Hash of the new token.
        refresh_hash: String,
        /// When the new token stops working.
        expires_at: DateTime<Utc>,
    },
    /// The session ended for good.
    SessionRevoked {
        /// Why it ended.
        reason: RevokeReason,
    },
}

impl EventName for SessionEvent {
    fn event_name(&self) -> &'static str {
        match self {
            SessionEvent::SessionStarted { .. } => "SessionStarted",
            SessionEvent::SessionRefreshed { .. } => "SessionRefreshed",
            SessionEvent::SessionRevoked { .. } => "SessionRevoked",
        }
    }
}

/// Why a session command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A session with this id has already started.
    #[error("the session already exists")]
    AlreadyStarted,
    /// The session is unknown, expired or revoked, or the token is not its current one.
    #[error("the session is unknown, expired or revoked")]
    Invalid,
}

impl Decider for Session {
    const STREAM_TYPE: &'static str = "session";
    type State = SessionState;
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;

    fn decide(
        state: &SessionState,
        command: SessionCommand,
    ) -> Result<Vec<SessionEvent>, SessionError> {
        use SessionCommand as C;
        use SessionEvent as E;
        let started = state.user_id.is_some();
        match command {
            C::Start { .. } if started => Err(SessionError::AlreadyStarted),
            C::Start {
                user_id,
                refresh_hash,
                expires_at,
                credentials_version,
            } => Ok(vec![E::SessionStarted {
                user_id,
                refresh_hash,
                expires_at,
                credentials_version,
            }]),
            _ if !started || state.revoked => Err(SessionError::Invalid),
            C::Rotate { presented_hash, .. } if state.used_hashes.contains(&presented_hash) => {
                // A rotated-away token came back: revoke the family. The caller still answers 401.
                Ok(vec![E::SessionRevoked {
                    reason: RevokeReason::TokenReuse,
                }])
            }
            C::Rotate { presented_hash, .. } if presented_hash != state.current_hash => {
                Err(SessionError::Invalid)
            }
            C::Rotate {
                credentials_version,
                ..
            } if credentials_version != state.credentials_version => {
                // The password changed since sign-in: this session ends.
                Ok(vec![E::SessionRevoked {
                    reason: RevokeReason::CredentialsChanged,
                }])
            }
            C::Rotate { now, .. } if state.expires_at.is_some_and(|e| e <= now) => {
                Err(SessionError::Invalid)
            }
            C::Rotate {
                new_hash,
                expires_at,
                ..
            } => Ok(vec![E::SessionRefreshed {
                refresh_hash: new_hash,
                expires_at,
            }]),
            C::Revoke { reason } => Ok(vec![E::SessionRevoked { reason }]),
        }
    }

    fn evolve(mut state: SessionState, event: &SessionEvent) -> SessionState {
        match event {
            SessionEvent::SessionStarted {
                user_id,
                refresh_hash,
                expires_at,
                credentials_version,
            } => {
                state.credentials_version = *credentials_version;
                state.user_id = Some(*user_id);
                state.current_hash = refresh_hash.clone();
                state.expires_at = Some(*expires_at);
            }
            SessionEvent::SessionRefreshed {
                refresh_hash,
                expires_at,
            } => {
                let old = std::mem::replace(&mut state.current_hash, refresh_hash.clone());
                state.used_hashes.push(old);
                state.expires_at = Some(*expires_at);
            }
            SessionEvent::SessionRevoked { .. } => state.revoked = true,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;
    use chrono::Duration;

    fn history() -> (Vec<SessionEvent>, DateTime<Utc>) {
        let now = Utc::now();
        let later = now + Duration::days(30);
        (
            vec![
                SessionEvent::SessionStarted {
                    user_id: Uuid::now_v7(),
                    refresh_hash: "r1".into(),
                    expires_at: later,
                    credentials_version: 0,
                },
                SessionEvent::SessionRefreshed {
                    refresh_hash: "r2".into(),
                    expires_at: later,
                },
            ],
            now,
        )
    }

    fn rotate(presented: &str, now: DateTime<Utc>) -> SessionCommand {
        SessionCommand::Rotate {
            credentials_version: 0,
            presented_hash: presented.into(),
            new_hash: "r3".into(),
            expires_at: now + Duration::days(30),
            now,
        }
    }

    #[test]
    fn a_password_change_ends_the_session() {
        let (given, now) = history();
        let SessionCommand::Rotate {
            presented_hash,
            new_hash,
            expires_at,
            ..
        } = rotate("r2", now)
        else {
            unreachable!()
        };
        let changed = SessionCommand::Rotate {
            credentials_version: 1,
            presented_hash,
            new_hash,
            expires_at,
            now,
        };
        assert_eq!(
            given_when::<Session>(&given, changed),
            Ok(vec![SessionEvent::SessionRevoked {
                reason: RevokeReason::CredentialsChanged
            }])
        );
    }

    #[test]
    fn current_token_rotates() {
        let (given, now) = history();
        let events = given_when::<Session>(&given, rotate("r2", now)).unwrap();
        assert!(
            matches!(&events[..], [SessionEvent::SessionRefreshed { refresh_hash, .. }] if refresh_hash == "r3")
        );
    }

    #[test]
    fn reused_token_revokes_the_family() {
        let (mut given, now) = history();
        let events = given_when::<Session>(&given, rotate("r1", now)).unwrap();
        assert_eq!(
            events,
            vec![SessionEvent::SessionRevoked {
                reason: RevokeReason::TokenReuse
            }]
        );
        given.extend(events);
        assert_eq!(
            given_when::<Session>(&given, rotate("r2", now)),
            Err(SessionError::Invalid)
        );
    }

    #[test]
    fn unknown_or_expired_tokens_are_invalid() {
        let (given, now) = history();
        assert_eq!(
            given_when::<Session>(&given, rotate("nope", now)),
            Err(SessionError::Invalid)
        );
        assert_eq!(
            given_when::<Session>(&given, rotate("r2", now + Duration::days(31))),
            Err(SessionError::Invalid)
        );
        assert_eq!(
            given_when::<Session>(&[], rotate("r2", now)),
            Err(SessionError::Invalid)
        );
    }
}
