//! A title in the catalog: a movie or a series with seasons and episodes. Imported (from the
//! bundled catalog or TMDB), updated when its source changes, given media, published, withdrawn.

use crate::values::Maturity;
use crate::{Decider, EventName};
use serde::{Deserialize, Serialize};

/// The title aggregate: one stream per catalog title.
pub struct Title;

/// Whether a title is a film or a show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A single film.
    Movie,
    /// A show with seasons of episodes.
    Series,
}

impl Kind {
    /// The kind as clients and the catalog spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Movie => "movie",
            Kind::Series => "series",
        }
    }

    /// Reads a kind as clients send it (`movie`, `series`); `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "movie" => Some(Kind::Movie),
            "series" => Some(Kind::Series),
            _ => None,
        }
    }
}

/// One episode of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Its number within the season, from 1.
    pub number: u32,
    /// The episode's own title.
    pub title: String,
    /// Length in minutes.
    pub runtime_mins: u32,
    /// What happens in it; empty when the source has none.
    #[serde(default)]
    pub synopsis: String,
}

/// One season of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Season {
    /// Its number within the series, from 1.
    pub number: u32,
    /// Its episodes, in order.
    pub episodes: Vec<Episode>,
}

/// What the catalog says about a title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitleInfo {
    /// Film or series.
    pub kind: Kind,
    /// The title as shown to viewers.
    pub name: String,
    /// Release year.
    pub year: i32,
    /// Genre names, e.g. `Drama`, used for browsing and recommendations.
    pub genres: Vec<String>,
    /// Its rating; profiles with a lower ceiling never see it.
    pub maturity: Maturity,
    /// Movie length, or a typical episode's.
    pub runtime_mins: u32,
    /// What it is about.
    pub synopsis: String,
    /// A one-line hook; empty when the source has none.
    #[serde(default)]
    pub tagline: String,
    /// The source's popularity score, used to rank titles for profiles with no history yet.
    pub popularity: f64,
    /// Poster URL; `None` means the generated one.
    #[serde(default)]
    pub poster: Option<String>,
    /// Wide picture URL; `None` means the generated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backdrop: Option<String>,
    /// The seasons of a series; empty for a film.
    #[serde(default)]
    pub seasons: Vec<Season>,
    /// Where it came from, e.g. `bundled` or `tmdb:movie:603`.
    pub source: String,
}

/// One rendition of an HLS ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    /// The rendition's name and folder within the ladder, e.g. `720p`.
    pub name: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels; plans cap what they play by this.
    pub height: u32,
    /// Bits per second, as the HLS playlist's `BANDWIDTH` announces it.
    pub bandwidth: u64,
    /// The HLS `CODECS` string, e.g. `avc1.4d4028,mp4a.40.2`.
    pub codecs: String,
}

/// Playable media: an HLS ladder stored under a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// The ladder's folder name in the media store.
    pub ladder: String,
    /// Length of the media in seconds.
    pub duration_secs: f64,
    /// The renditions a player may choose between.
    pub renditions: Vec<Rendition>,
}

/// A title as rebuilt from its stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TitleState {
    /// What the catalog says about it; `None` until imported.
    pub info: Option<TitleInfo>,
    /// Its playable media, if any is attached.
    pub media: Option<Media>,
    /// Whether viewers can find and play it.
    pub published: bool,
}

/// Whether `id` could name a title: ids longer than this or holding control characters are
/// refused before any lookup.
pub fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 200 && !id.chars().any(char::is_control)
}

/// An episode's id within its series: `s<season>e<number>`.
pub fn episode_id(season: u32, number: u32) -> String {
    format!("s{season}e{number}")
}

impl TitleState {
    /// Whether a profile with this maturity ceiling (none: no profile) may see the title: it is
    /// published and rated within the ceiling.
    pub fn visible_to(&self, ceiling: Option<Maturity>) -> bool {
        self.published
            && self
                .info
                .as_ref()
                .is_some_and(|i| ceiling.is_none_or(|c| c.allows(i.maturity)))
    }

    /// The episode ids (`s<season>e<number>`) of a series, in order.
    pub fn episode_ids(&self) -> Vec<String> {
        self.info.as_ref().map_or_else(Vec::new, |i| {
            i.seasons
                .iter()
                .flat_map(|s| {
                    s.episodes
                        .iter()
                        .map(move |e| episode_id(s.number, e.number))
                })
                .collect()
        })
    }
}

/// What the catalog import, media ingest and operators ask of a title.
#[derive(Debug)]
pub enum TitleCommand {
    /// Adds the title, or updates it if the source says something new (nothing if not).
    Import {
        /// The title as the source describes it.
        info: TitleInfo,
        /// Publishes the title too when it is new.
        publish: bool,
    },
    /// Attaches a ladder; with `replace: false` only to a title that has none yet (bundled demo
    /// media never replaces an ingested ladder).
    AttachMedia {
        /// The ladder to attach.
        media: Media,
        /// Whether it may replace a ladder already attached.
        replace: bool,
    },
    /// Makes the title visible to viewers.
    Publish,
    /// Hides the title from viewers.
    Withdraw,
}

/// What happened to a title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TitleEvent {
    /// The title entered the catalog.
    TitleImported {
        /// The title as the source describes it.
        info: TitleInfo,
    },
    /// The source's description of the title changed.
    TitleUpdated {
        /// The new description, whole.
        info: TitleInfo,
    },
    /// Playable media was attached (or replaced).
    MediaAttached {
        /// The ladder now played.
        media: Media,
    },
    /// The title became visible to viewers.
    TitlePublished,
    /// The title was hidden from viewers.
    TitleWithdrawn,
}

impl EventName for TitleEvent {
    fn event_name(&self) -> &'static str {
        match self {
            TitleEvent::TitleImported { .. } => "TitleImported",
            TitleEvent::TitleUpdated { .. } => "TitleUpdated",
            TitleEvent::MediaAttached { .. } => "MediaAttached",
            TitleEvent::TitlePublished => "TitlePublished",
            TitleEvent::TitleWithdrawn => "TitleWithdrawn",
        }
    }
}

/// Why a title command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TitleError {
    /// The title was never imported.
    #[error("no such title")]
    NotFound,
    /// The imported title has a blank name.
    #[error("a title needs a name")]
    Unnamed,
}

impl Decider for Title {
    const STREAM_TYPE: &'static str = "title";
    type State = TitleState;
    type Command = TitleCommand;
    type Event = TitleEvent;
    type Error = TitleError;

    fn decide(state: &TitleState, command: TitleCommand) -> Result<Vec<TitleEvent>, TitleError> {
        use TitleEvent as E;
        let exists = state.info.is_some();
        match command {
            TitleCommand::Import { info, .. } if info.name.trim().is_empty() => {
                Err(TitleError::Unnamed)
            }
            TitleCommand::Import { info, publish } => {
                let mut events = match &state.info {
                    None => vec![E::TitleImported { info }],
                    Some(known) if *known == info => vec![],
                    Some(_) => vec![E::TitleUpdated { info }],
                };
                if publish && !exists {
                    events.push(E::TitlePublished);
                }
                Ok(events)
            }
            _ if !exists => Err(TitleError::NotFound),
            TitleCommand::AttachMedia { media, replace } => match &state.media {
                Some(known) if *known == media || !replace => Ok(vec![]),
                _ => Ok(vec![E::MediaAttached { media }]),
            },
            TitleCommand::Publish if state.published => Ok(vec![]),
            TitleCommand::Publish => Ok(vec![E::TitlePublished]),
            TitleCommand::Withdraw if !state.published => Ok(vec![]),
            TitleCommand::Withdraw => Ok(vec![E::TitleWithdrawn]),
        }
    }

    fn evolve(mut state: TitleState, event: &TitleEvent) -> TitleState {
        match event {
            TitleEvent::TitleImported { info } | TitleEvent::TitleUpdated { info } => {
                state.info = Some(info.clone());
            }
            TitleEvent::MediaAttached { media } => state.media = Some(media.clone()),
            TitleEvent::TitlePublished => state.published = true,
            TitleEvent::TitleWithdrawn => state.published = false,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;

    fn info(name: &str) -> TitleInfo {
        TitleInfo {
            kind: Kind::Movie,
            name: name.into(),
            year: 2001,
            genres: vec!["Drama".into()],
            maturity: Maturity::Age13,
            runtime_mins: 100,
            synopsis: "A story.".into(),
            tagline: String::new(),
            popularity: 5.0,
            poster: None,
            backdrop: None,
            seasons: vec![],
            source: "bundled".into(),
        }
    }

    #[test]
    fn importing_adds_then_updates_only_on_change() {
        let first = given_when::<Title>(
            &[],
            TitleCommand::Import {
                info: info("A"),
                publish: true,
            },
        )
        .unwrap();
        assert_eq!(
            first,
            vec![
                TitleEvent::TitleImported { info: info("A") },
                TitleEvent::TitlePublished
            ]
        );
        let same = given_when::<Title>(
            &first,
            TitleCommand::Import {
                info: info("A"),
                publish: true,
            },
        )
        .unwrap();
        assert!(same.is_empty());
        let changed = given_when::<Title>(
            &first,
            TitleCommand::Import {
                info: info("B"),
                publish: true,
            },
        )
        .unwrap();
        assert_eq!(changed, vec![TitleEvent::TitleUpdated { info: info("B") }]);
    }

    #[test]
    fn media_and_publication_need_a_title() {
        assert_eq!(
            given_when::<Title>(&[], TitleCommand::Publish),
            Err(TitleError::NotFound)
        );
        let known = [TitleEvent::TitleImported { info: info("A") }];
        assert_eq!(
            given_when::<Title>(&known, TitleCommand::Withdraw).unwrap(),
            vec![]
        );
        assert_eq!(
            given_when::<Title>(&known, TitleCommand::Publish).unwrap(),
            vec![TitleEvent::TitlePublished]
        );
        assert_eq!(
            given_when::<Title>(
                &[],
                TitleCommand::Import {
                    info: info(" "),
                    publish: false
                }
            ),
            Err(TitleError::Unnamed)
        );
    }

    #[test]
    fn offered_media_never_replaces_a_ladder_but_attached_media_does() {
        let media = |name: &str| Media {
            ladder: name.into(),
            duration_secs: 8.0,
            renditions: vec![],
        };
        let known = [TitleEvent::TitleImported { info: info("A") }];
        let offer = |m: &str| TitleCommand::AttachMedia {
            media: media(m),
            replace: false,
        };
        assert_eq!(
            given_when::<Title>(&known, offer("demo")).unwrap(),
            vec![TitleEvent::MediaAttached {
                media: media("demo")
            }]
        );
        let ingested = [
            TitleEvent::TitleImported { info: info("A") },
            TitleEvent::MediaAttached {
                media: media("ingested"),
            },
        ];
        assert_eq!(
            given_when::<Title>(&ingested, offer("demo")).unwrap(),
            vec![]
        );
        let attach = |m: &str| TitleCommand::AttachMedia {
            media: media(m),
            replace: true,
        };
        assert_eq!(
            given_when::<Title>(&ingested, attach("ingested")).unwrap(),
            vec![]
        );
        assert_eq!(
            given_when::<Title>(&ingested, attach("new")).unwrap(),
            vec![TitleEvent::MediaAttached {
                media: media("new")
            }]
        );
    }
}
