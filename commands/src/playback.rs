//! Playback: the rules for starting a session (entitlement, maturity, episode, the plan's screen
//! limit), heartbeats that record progress and end the session when the subscription has, and
//! the check every stream URL passes (signature, expiry, a live session, the plan's quality).

use crate::error::CommandError;
use crate::execute::execute;
use crate::meta::CommandMeta;
use crate::ports::{Clock, Ladders, ResumePoints, StreamSigner};
use crate::store::EventStore;
use chrono::{DateTime, Utc};
use cinelog_domain::plan::Plan;
use cinelog_domain::subscription::Subscription;
use cinelog_domain::title::{Rendition, Title};
use cinelog_domain::values::Maturity;
use cinelog_domain::viewing::{self, PlaybackError, Viewing, ViewingCommand};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// How long a stream URL works.
pub const STREAM_URL_TTL_SECS: i64 = 6 * 60 * 60;

/// What a stream URL grants: one session's ladder, up to a height, until a moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamGrant {
    /// The account playing.
    pub account: Uuid,
    /// The playback session the URL belongs to; the URL plays while it is live.
    pub session: Uuid,
    /// The ladder's folder in the media store.
    pub ladder: String,
    /// The highest rendition height the plan plays.
    pub max_height: u32,
    /// Unix time after which the URL no longer plays.
    pub expires: i64,
}

/// The outside parts playback needs.
#[derive(Clone)]
pub struct PlaybackPorts {
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Signs stream grants into URL tokens and reads them back.
    pub signer: Arc<dyn StreamSigner>,
    /// Where a profile left off, from the read side.
    pub resume: Arc<dyn ResumePoints>,
    /// The HLS ladders in the media store.
    pub ladders: Arc<dyn Ladders>,
}

/// Opens, keeps and closes playback sessions, and admits stream requests.
#[derive(Clone)]
pub struct PlaybackService<S> {
    store: S,
    ports: PlaybackPorts,
}

/// A session that started.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The new session's id, for heartbeats and the stop.
    pub session_id: Uuid,
    /// The title's name, for the player.
    pub title_name: String,
    /// The signed grant for the session's stream URLs.
    pub token: String,
    /// Where the profile left off in this title (or episode).
    pub resume_position_secs: f64,
    /// The highest rendition height the plan plays.
    pub max_quality: u32,
    /// The renditions the plan plays, e.g. `["240p", "480p", "720p"]`.
    pub qualities: Vec<String>,
    /// For series, the episode playing.
    pub episode_id: Option<String>,
    /// The media's length.
    pub duration_secs: f64,
    /// The log position of the session's start.
    pub position: i64,
}

/// A stream request that may be served: its grant and the renditions the plan plays.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAccess {
    /// What the URL grants.
    pub grant: StreamGrant,
    /// The ladder's renditions within the plan's quality.
    pub renditions: Vec<Rendition>,
}

impl<S: EventStore> PlaybackService<S> {
    /// A playback service over the store and these ports.
    pub fn new(store: S, ports: PlaybackPorts) -> Self {
        Self { store, ports }
    }

    /// Starts playing a title (for series an episode, else the first) on a profile whose
    /// rating ceiling is `ceiling`, if the account's plan plays now and has a screen free.
    #[tracing::instrument(skip_all, fields(%account_id, %profile_id, title_id))]
    pub async fn start(
        &self,
        account_id: Uuid,
        profile_id: Uuid,
        ceiling: Maturity,
        title_id: &str,
        episode_id: Option<String>,
        meta: &CommandMeta,
    ) -> Result<Started, CommandError> {
        let now = self.ports.clock.now();
        let title = match cinelog_domain::title::plausible_id(title_id) {
            true => self.store.load::<Title>(title_id).await?.state,
            false => Default::default(),
        };
        let plan = self.playing_plan(account_id, now).await?;
        let admitted = viewing::admit(&title, plan, ceiling, profile_id, title_id, episode_id)?;
        let session_id = Uuid::now_v7();
        let done =
            execute::<Viewing, _, CommandError>(&self.store, &account_id.to_string(), meta, |_| {
                Ok(ViewingCommand::Start {
                    session_id,
                    watched: admitted.watched.clone(),
                    limit: admitted.streams,
                    at: now,
                })
            })
            .await?;
        let resume = self
            .ports
            .resume
            .resume_at(&admitted.watched, done.position)
            .await
            .map_err(CommandError::Service)?;
        let grant = StreamGrant {
            account: account_id,
            session: session_id,
            ladder: admitted.media.ladder.clone(),
            max_height: admitted.max_height,
            expires: now.timestamp() + STREAM_URL_TTL_SECS,
        };
        Ok(Started {
            session_id,
            title_name: admitted.title_name,
            token: self.ports.signer.sign(&grant),
            resume_position_secs: resume,
            max_quality: admitted.max_height,
            qualities: admitted
                .media
                .renditions
                .iter()
                .filter(|r| r.height <= admitted.max_height)
                .map(|r| r.name.clone())
                .collect(),
            episode_id: admitted.watched.episode_id,
            duration_secs: admitted.media.duration_secs,
            position: done.position,
        })
    }

    /// Records progress. A subscription that has ended since the session started ends the
    /// session: the position is kept, and its stream URLs stop working.
    pub async fn heartbeat(
        &self,
        account_id: Uuid,
        session_id: Uuid,
        position_secs: f64,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let now = self.ports.clock.now();
        let plays = self.playing_plan(account_id, now).await?.is_some();
        let position = self
            .progress(account_id, session_id, position_secs, !plays, meta)
            .await?;
        match plays {
            true => Ok(position),
            false => Err(PlaybackError::SubscriptionEnded.into()),
        }
    }

    /// The plan the account's subscription plays at `now`, as the log knows it (a change made a
    /// moment ago, on any replica, counts).
    async fn playing_plan(
        &self,
        account_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<&'static Plan>, CommandError> {
        let subscription = self
            .store
            .load::<Subscription>(&account_id.to_string())
            .await?;
        Ok(subscription.state.playing_plan(now))
    }

    /// Ends a session at a position; answers the log position of the stop.
    pub async fn stop(
        &self,
        account_id: Uuid,
        session_id: Uuid,
        position_secs: f64,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        self.progress(account_id, session_id, position_secs, true, meta)
            .await
    }

    /// Records progress (`stop = false`) or the end of a session.
    async fn progress(
        &self,
        account_id: Uuid,
        session_id: Uuid,
        position_secs: f64,
        stop: bool,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let at = self.ports.clock.now();
        let done =
            execute::<Viewing, _, CommandError>(&self.store, &account_id.to_string(), meta, |_| {
                Ok(if stop {
                    ViewingCommand::Stop {
                        session_id,
                        position_secs,
                        at,
                    }
                } else {
                    ViewingCommand::Heartbeat {
                        session_id,
                        position_secs,
                        at,
                    }
                })
            })
            .await?;
        Ok(done.position)
    }

    /// Admits a stream request: the token was signed here and has not expired, its session is
    /// live, and the rendition asked for (if any) is in the ladder and within the plan.
    pub async fn stream(
        &self,
        token: &str,
        rendition: Option<&str>,
    ) -> Result<StreamAccess, CommandError> {
        let now = self.ports.clock.now();
        let grant = self.ports.signer.open(token).ok_or(PlaybackError::BadUrl)?;
        if grant.expires <= now.timestamp() {
            return Err(PlaybackError::UrlExpired.into());
        }
        self.live(&grant).await?;
        let media = self
            .ports
            .ladders
            .ladder(&grant.ladder)
            .ok_or(PlaybackError::MediaNotFound)?;
        if let Some(name) = rendition {
            let asked = media
                .renditions
                .iter()
                .find(|r| r.name == name)
                .ok_or(PlaybackError::RenditionNotFound)?;
            if asked.height > grant.max_height {
                return Err(PlaybackError::QualityNotInPlan(grant.max_height).into());
            }
        }
        let renditions = media
            .renditions
            .into_iter()
            .filter(|r| r.height <= grant.max_height)
            .collect();
        Ok(StreamAccess { grant, renditions })
    }

    /// Whether the grant's session still plays. The in-memory stream state answers first; a
    /// refusal is confirmed against the log, so a heartbeat taken by another replica is never
    /// missed.
    async fn live(&self, grant: &StreamGrant) -> Result<(), CommandError> {
        let now = self.ports.clock.now();
        let account = grant.account.to_string();
        let cached = self.store.load_for_append::<Viewing>(&account).await?;
        if cached.state.is_live(grant.session, now) {
            return Ok(());
        }
        let fresh = self.store.load::<Viewing>(&account).await?;
        match fresh.state.is_live(grant.session, now) {
            true => Ok(()),
            false => Err(PlaybackError::SessionEnded.into()),
        }
    }
}
