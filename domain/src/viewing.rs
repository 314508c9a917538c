//! An account's playback sessions, one stream per account: a session opens only while the
//! account has fewer live sessions than its plan allows (live = a heartbeat within
//! [`LIVE_SECS`]); heartbeats and stops record how far each profile got.

use crate::{Decider, EventName};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A session without a heartbeat for this long no longer counts against the stream limit.
pub const LIVE_SECS: i64 = 60;

pub struct Viewing;

/// What is being played: a title, and for series an episode (`s1e2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watched {
    pub profile_id: Uuid,
    pub title_id: String,
    pub episode_id: Option<String>,
    /// Length of the media, so read models can tell how much was watched.
    pub duration_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSession {
    pub watched: Watched,
    pub last_seen: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ViewingState {
    pub sessions: BTreeMap<Uuid, LiveSession>,
}

impl ViewingState {
    pub fn live_at(&self, at: DateTime<Utc>) -> usize {
        self.sessions
            .values()
            .filter(|s| at - s.last_seen < Duration::seconds(LIVE_SECS))
            .count()
    }
}

#[derive(Debug)]
pub enum ViewingCommand {
    Start {
        session_id: Uuid,
        watched: Watched,
        /// Streams the plan allows at once.
        limit: u32,
        at: DateTime<Utc>,
    },
    Heartbeat {
        session_id: Uuid,
        position_secs: f64,
        at: DateTime<Utc>,
    },
    Stop {
        session_id: Uuid,
        position_secs: f64,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ViewingEvent {
    PlaybackStarted {
        session_id: Uuid,
        #[serde(flatten)]
        watched: Watched,
        /// Sessions gone quiet, dropped from the live set.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lapsed: Vec<Uuid>,
        at: DateTime<Utc>,
    },
    PlaybackProgressed {
        session_id: Uuid,
        #[serde(flatten)]
        watched: Watched,
        position_secs: f64,
        at: DateTime<Utc>,
    },
    PlaybackStopped {
        session_id: Uuid,
        #[serde(flatten)]
        watched: Watched,
        position_secs: f64,
        at: DateTime<Utc>,
    },
}

impl EventName for ViewingEvent {
    fn event_name(&self) -> &'static str {
        match self {
            ViewingEvent::PlaybackStarted { .. } => "PlaybackStarted",
            ViewingEvent::PlaybackProgressed { .. } => "PlaybackProgressed",
            ViewingEvent::PlaybackStopped { .. } => "PlaybackStopped",
        }
    }
}

/// The furthest a playback position may be: no title runs for a day.
pub const MAX_POSITION_SECS: f64 = 86_400.0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewingError {
    #[error("this account is already playing on as many screens as its plan allows ({0})")]
    StreamLimitReached(u32),
    #[error("no such playback session")]
    SessionNotFound,
    #[error("position_secs must be a number of seconds from 0 to {MAX_POSITION_SECS}")]
    BadPosition,
}

impl Decider for Viewing {
    const STREAM_TYPE: &'static str = "viewing";
    type State = ViewingState;
    type Command = ViewingCommand;
    type Event = ViewingEvent;
    type Error = ViewingError;

    fn decide(
        state: &ViewingState,
        command: ViewingCommand,
    ) -> Result<Vec<ViewingEvent>, ViewingError> {
        use ViewingEvent as E;
        match command {
            ViewingCommand::Start {
                session_id,
                watched,
                limit,
                at,
            } => {
                if state.live_at(at) >= limit as usize {
                    return Err(ViewingError::StreamLimitReached(limit));
                }
                let lapsed = state
                    .sessions
                    .iter()
                    .filter(|(_, s)| at - s.last_seen >= Duration::seconds(LIVE_SECS))
                    .map(|(id, _)| *id)
                    .collect();
                Ok(vec![E::PlaybackStarted {
                    session_id,
                    watched,
                    lapsed,
                    at,
                }])
            }
            ViewingCommand::Heartbeat { position_secs, .. }
            | ViewingCommand::Stop { position_secs, .. }
                if !(0.0..=MAX_POSITION_SECS).contains(&position_secs) =>
            {
                Err(ViewingError::BadPosition)
            }
            ViewingCommand::Heartbeat {
                session_id,
                position_secs,
                at,
            } => progress(state, session_id, position_secs, at, false),
            ViewingCommand::Stop {
                session_id,
                position_secs,
                at,
            } => progress(state, session_id, position_secs, at, true),
        }
    }

    fn evolve(mut state: ViewingState, event: &ViewingEvent) -> ViewingState {
        match event {
            ViewingEvent::PlaybackStarted {
                session_id,
                watched,
                lapsed,
                at,
            } => {
                for id in lapsed {
                    state.sessions.remove(id);
                }
                state.sessions.insert(
                    *session_id,
                    LiveSession {
                        watched: watched.clone(),
                        last_seen: *at,
                    },
                );
            }
            ViewingEvent::PlaybackProgressed { session_id, at, .. } => {
                if let Some(s) = state.sessions.get_mut(session_id) {
                    s.last_seen = *at;
                }
            }
            ViewingEvent::PlaybackStopped { session_id, .. } => {
                state.sessions.remove(session_id);
            }
        }
        state
    }
}

/// How far a live session got (`stop`: and that it ended); positions past the end count as
/// the end.
fn progress(
    state: &ViewingState,
    session_id: Uuid,
    position_secs: f64,
    at: DateTime<Utc>,
    stop: bool,
) -> Result<Vec<ViewingEvent>, ViewingError> {
    let session = state
        .sessions
        .get(&session_id)
        .ok_or(ViewingError::SessionNotFound)?;
    let (watched, position_secs) = (
        session.watched.clone(),
        position_secs.min(session.watched.duration_secs),
    );
    Ok(vec![if stop {
        ViewingEvent::PlaybackStopped {
            session_id,
            watched,
            position_secs,
            at,
        }
    } else {
        ViewingEvent::PlaybackProgressed {
            session_id,
            watched,
            position_secs,
            at,
        }
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;

    fn watched() -> Watched {
        Watched {
            profile_id: Uuid::nil(),
            title_id: "t".into(),
            episode_id: None,
            duration_secs: 100.0,
        }
    }

    fn start(id: u128, at: DateTime<Utc>) -> ViewingCommand {
        ViewingCommand::Start {
            session_id: Uuid::from_u128(id),
            watched: watched(),
            limit: 2,
            at,
        }
    }

    #[test]
    fn the_plan_caps_live_sessions_and_quiet_ones_lapse() {
        let t0 = Utc::now();
        let mut history = given_when::<Viewing>(&[], start(1, t0)).unwrap();
        history.extend(given_when::<Viewing>(&history, start(2, t0)).unwrap());
        assert_eq!(
            given_when::<Viewing>(&history, start(3, t0)),
            Err(ViewingError::StreamLimitReached(2))
        );
        // Session 1 keeps beating; session 2 goes quiet and stops counting after a minute.
        let later = t0 + Duration::seconds(LIVE_SECS);
        history.extend(
            given_when::<Viewing>(
                &history,
                ViewingCommand::Heartbeat {
                    session_id: Uuid::from_u128(1),
                    position_secs: 30.0,
                    at: later,
                },
            )
            .unwrap(),
        );
        let third = given_when::<Viewing>(&history, start(3, later)).unwrap();
        assert!(
            matches!(&third[..], [ViewingEvent::PlaybackStarted { lapsed, .. }] if lapsed == &vec![Uuid::from_u128(2)])
        );
    }

    #[test]
    fn stopping_frees_the_screen_and_positions_are_checked() {
        let t0 = Utc::now();
        let mut history = given_when::<Viewing>(&[], start(1, t0)).unwrap();
        let stop = |p: f64| ViewingCommand::Stop {
            session_id: Uuid::from_u128(1),
            position_secs: p,
            at: t0,
        };
        assert_eq!(
            given_when::<Viewing>(&history, stop(-1.0)),
            Err(ViewingError::BadPosition)
        );
        for bad in [f64::NAN, f64::INFINITY, MAX_POSITION_SECS + 1.0, 1e308] {
            assert_eq!(
                given_when::<Viewing>(&history, stop(bad)),
                Err(ViewingError::BadPosition),
                "{bad}"
            );
        }
        let stopped = given_when::<Viewing>(&history, stop(500.0)).unwrap();
        assert!(
            matches!(&stopped[..], [ViewingEvent::PlaybackStopped { position_secs, .. }] if *position_secs == 100.0)
        );
        history.extend(stopped);
        assert_eq!(Viewing::replay(&history).live_at(t0), 0);
        assert_eq!(
            given_when::<Viewing>(&history, stop(1.0)),
            Err(ViewingError::SessionNotFound)
        );
    }
}
