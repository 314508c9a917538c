//! An account's playback sessions, one stream per account: a session opens only while the
//! account has fewer live sessions than its plan allows (live = a heartbeat within
//! [`LIVE_SECS`]); heartbeats and stops record how far each profile got.

use crate::plan::Plan;
use crate::title::{Kind, Media, TitleState};
use crate::values::Maturity;
use crate::{Decider, EventName};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A session without a heartbeat for this long no longer counts against the stream limit.
pub const LIVE_SECS: i64 = 60;

/// The viewing aggregate: one stream per account, holding its live playback sessions.
pub struct Viewing;

/// What is being played: a title, and for series an episode (`s1e2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watched {
    /// The profile watching.
    pub profile_id: Uuid,
    /// The title played.
    pub title_id: String,
    /// The episode played, for series (`s1e2`).
    pub episode_id: Option<String>,
    /// Length of the media, so read models can tell how much was watched.
    pub duration_secs: f64,
}

/// A playback session that has not stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSession {
    /// What it plays.
    pub watched: Watched,
    /// Its last start or heartbeat.
    pub last_seen: DateTime<Utc>,
}

/// An account's playback as rebuilt from its stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ViewingState {
    /// Sessions not stopped, by id; some may have gone quiet.
    pub sessions: BTreeMap<Uuid, LiveSession>,
}

impl ViewingState {
    /// How many sessions count against the stream limit at `at`.
    pub fn live_at(&self, at: DateTime<Utc>) -> usize {
        self.sessions
            .values()
            .filter(|s| at - s.last_seen < Duration::seconds(LIVE_SECS))
            .count()
    }

    /// Whether the session has started, not stopped, and been heard from within [`LIVE_SECS`].
    pub fn is_live(&self, session_id: Uuid, at: DateTime<Utc>) -> bool {
        self.sessions
            .get(&session_id)
            .is_some_and(|s| at - s.last_seen < Duration::seconds(LIVE_SECS))
    }
}

/// Why playback does not start, or a stream URL does not play.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaybackError {
    /// No published title has this id.
    #[error("title not found")]
    TitleNotFound,
    /// The account has no subscription that plays now.
    #[error("subscribe to a plan to watch")]
    SubscriptionRequired,
    /// The title is rated above the profile's ceiling.
    #[error("this profile may watch titles rated up to {}", .0.as_str())]
    MaturityBlocked(Maturity),
    /// The title has no media yet.
    #[error("this title has no video yet")]
    NotPlayable,
    /// The series has no such episode.
    #[error("episode not found")]
    EpisodeNotFound,
    /// The subscription ended while the session played.
    #[error("your subscription has ended; subscribe again to keep watching")]
    SubscriptionEnded,
    /// The stream URL's session was stopped or went quiet.
    #[error("this playback session has ended; start playback again")]
    SessionEnded,
    /// The stream URL is past its expiry.
    #[error("this stream URL has expired; start playback again")]
    UrlExpired,
    /// The stream URL was not signed here, or was altered.
    #[error("the stream URL is malformed or its signature is wrong")]
    BadUrl,
    /// The rendition is above the plan's quality.
    #[error("your plan plays up to {0}p")]
    QualityNotInPlan(u32),
    /// The ladder has no such rendition.
    #[error("rendition not found")]
    RenditionNotFound,
    /// The grant's ladder is not in the media store.
    #[error("media not found")]
    MediaNotFound,
}

/// What a profile is let to play: the session's content, its media and the plan's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// What the session plays.
    pub watched: Watched,
    /// The title's name, for the player.
    pub title_name: String,
    /// The title's media.
    pub media: Media,
    /// The highest rendition height the plan plays.
    pub max_height: u32,
    /// Screens the plan plays on at once.
    pub streams: u32,
}

/// The rules for starting playback, in the order a viewer meets them: the title exists, the
/// account's plan plays now (`plan`), the title is within the profile's rating, it has media,
/// and for series the episode exists (the first one when none is asked for).
pub fn admit(
    title: &TitleState,
    plan: Option<&Plan>,
    ceiling: Maturity,
    profile_id: Uuid,
    title_id: &str,
    episode: Option<String>,
) -> Result<Admitted, PlaybackError> {
    let info = match &title.info {
        Some(info) if title.visible_to(None) => info,
        _ => return Err(PlaybackError::TitleNotFound),
    };
    let plan = plan.ok_or(PlaybackError::SubscriptionRequired)?;
    if !title.visible_to(Some(ceiling)) {
        return Err(PlaybackError::MaturityBlocked(ceiling));
    }
    let media = title.media.clone().ok_or(PlaybackError::NotPlayable)?;
    let episodes = title.episode_ids();
    let episode_id = match (info.kind, episode) {
        (Kind::Series, Some(e)) if episodes.contains(&e) => Some(e),
        (_, Some(_)) => return Err(PlaybackError::EpisodeNotFound),
        (Kind::Series, None) => episodes.into_iter().next(),
        (_, None) => None,
    };
    Ok(Admitted {
        watched: Watched {
            profile_id,
            title_id: title_id.to_string(),
            episode_id,
            duration_secs: media.duration_secs,
        },
        title_name: info.name.clone(),
        media,
        max_height: plan.max_quality,
        streams: plan.concurrent_streams,
    })
}

/// What players ask of an account's viewing.
#[derive(Debug)]
pub enum ViewingCommand {
    /// Opens a playback session, if the account has a screen left.
    Start {
        /// Id for the new session.
        session_id: Uuid,
        /// What it plays.
        watched: Watched,
        /// Streams the plan allows at once.
        limit: u32,
        /// The moment playback starts.
        at: DateTime<Utc>,
    },
    /// Reports how far a session got while it plays.
    Heartbeat {
        /// The playing session.
        session_id: Uuid,
        /// Seconds into the media.
        position_secs: f64,
        /// The moment of the report.
        at: DateTime<Utc>,
    },
    /// Ends a session, recording where it stopped.
    Stop {
        /// The session to end.
        session_id: Uuid,
        /// Seconds into the media.
        position_secs: f64,
        /// The moment it stopped.
        at: DateTime<Utc>,
    },
}

/// What happened to an account's viewing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ViewingEvent {
    /// A playback session opened.
    PlaybackStarted {
        /// The new session's id.
        session_id: Uuid,
        /// What it plays.
        #[serde(flatten)]
        watched: Watched,
        /// Sessions gone quiet, dropped from the live set.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lapsed: Vec<Uuid>,
        /// The moment it started.
        at: DateTime<Utc>,
    },
    /// A playing session reported its position.
    PlaybackProgressed {
        /// The session.
        session_id: Uuid,
        /// What it plays.
        #[serde(flatten)]
        watched: Watched,
        /// Seconds into the media, capped at its length.
        position_secs: f64,
        /// The moment of the report.
        at: DateTime<Utc>,
    },
    /// A session stopped.
    PlaybackStopped {
        /// The session.
        session_id: Uuid,
        /// What it played.
        #[serde(flatten)]
        watched: Watched,
        /// Where it stopped, in seconds, capped at the media's length.
        position_secs: f64,
        /// The moment it stopped.
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

/// Why a viewing command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewingError {
    /// The account already plays on as many screens as its plan allows (the limit).
    #[error("this account is already playing on as many screens as its plan allows ({0})")]
    StreamLimitReached(u32),
    /// The account has no open session with this id (never started, stopped, or lapsed).
    #[error("no such playback session")]
    SessionNotFound,
    /// The position is negative, not a number, or beyond [`MAX_POSITION_SECS`].
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

    fn series(maturity: Maturity, media: bool) -> TitleState {
        use crate::title::{Episode, Rendition, Season, TitleInfo};
        let episode = |number| Episode {
            number,
            title: format!("E{number}"),
            runtime_mins: 30,
            synopsis: String::new(),
        };
        TitleState {
            info: Some(TitleInfo {
                kind: Kind::Series,
                name: "Show".into(),
                year: 2020,
                genres: vec![],
                maturity,
                runtime_mins: 30,
                synopsis: String::new(),
                tagline: String::new(),
                popularity: 1.0,
                poster: None,
                backdrop: None,
                seasons: vec![Season {
                    number: 1,
                    episodes: vec![episode(1), episode(2)],
                }],
                source: "bundled".into(),
            }),
            media: media.then(|| Media {
                ladder: "bundled/show".into(),
                duration_secs: 100.0,
                renditions: vec![Rendition {
                    name: "720p".into(),
                    width: 1280,
                    height: 720,
                    bandwidth: 1,
                    codecs: "avc1".into(),
                }],
            }),
            published: true,
        }
    }

    #[test]
    fn playback_is_admitted_in_the_order_a_viewer_meets_the_rules() {
        use crate::plan::PlanId;
        let plan = Some(PlanId::Standard.plan());
        let admit = |title: &TitleState, plan, ceiling, episode: Option<&str>| {
            admit(
                title,
                plan,
                ceiling,
                Uuid::nil(),
                "show",
                episode.map(Into::into),
            )
        };
        let adult = series(Maturity::Age18, true);
        assert_eq!(
            admit(&TitleState::default(), None, Maturity::Age7, None),
            Err(PlaybackError::TitleNotFound)
        );
        assert_eq!(
            admit(&adult, None, Maturity::Age7, None),
            Err(PlaybackError::SubscriptionRequired)
        );
        assert_eq!(
            admit(&adult, plan, Maturity::Age7, None),
            Err(PlaybackError::MaturityBlocked(Maturity::Age7))
        );
        assert_eq!(
            admit(&series(Maturity::All, false), plan, Maturity::Age7, None),
            Err(PlaybackError::NotPlayable)
        );
        assert_eq!(
            admit(&adult, plan, Maturity::Age18, Some("s9e9")),
            Err(PlaybackError::EpisodeNotFound)
        );
        let first = admit(&adult, plan, Maturity::Age18, None).unwrap();
        assert_eq!(first.watched.episode_id.as_deref(), Some("s1e1"));
        assert_eq!((first.max_height, first.streams), (1080, 2));
        let second = admit(&adult, plan, Maturity::Age18, Some("s1e2")).unwrap();
        assert_eq!(second.watched.episode_id.as_deref(), Some("s1e2"));
        let withdrawn = TitleState {
            published: false,
            ..adult
        };
        assert_eq!(
            admit(&withdrawn, plan, Maturity::Age18, None),
            Err(PlaybackError::TitleNotFound)
        );
    }
}
