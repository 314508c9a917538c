//! A title in the catalog: a movie or a series with seasons and episodes. Imported (from the
//! bundled catalog or TMDB), updated when its source changes, given media, published, withdrawn.

use crate::values::Maturity;
use crate::{Decider, EventName};
use serde::{Deserialize, Serialize};

pub struct Title;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Movie,
    Series,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Movie => "movie",
            Kind::Series => "series",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "movie" => Some(Kind::Movie),
            "series" => Some(Kind::Series),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub number: u32,
    pub title: String,
    pub runtime_mins: u32,
    #[serde(default)]
    pub synopsis: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Season {
    pub number: u32,
    pub episodes: Vec<Episode>,
}

/// What the catalog says about a title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitleInfo {
    pub kind: Kind,
    pub name: String,
    pub year: i32,
    pub genres: Vec<String>,
    pub maturity: Maturity,
    /// Movie length, or a typical episode's.
    pub runtime_mins: u32,
    pub synopsis: String,
    #[serde(default)]
    pub tagline: String,
    pub popularity: f64,
    /// Poster URL; `None` means the generated one.
    #[serde(default)]
    pub poster: Option<String>,
    #[serde(default)]
    pub seasons: Vec<Season>,
    /// Where it came from, e.g. `bundled` or `tmdb:movie:603`.
    pub source: String,
}

/// One rendition of an HLS ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bandwidth: u64,
    pub codecs: String,
}

/// Playable media: an HLS ladder stored under a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// The ladder's folder name in the media store.
    pub ladder: String,
    pub duration_secs: f64,
    pub renditions: Vec<Rendition>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TitleState {
    pub info: Option<TitleInfo>,
    pub media: Option<Media>,
    pub published: bool,
}

#[derive(Debug)]
pub enum TitleCommand {
    /// Adds the title, or updates it if the source says something new (nothing if not).
    Import {
        info: TitleInfo,
        publish: bool,
    },
    /// Attaches a ladder; with `replace: false` only to a title that has none yet (bundled demo
    /// media never replaces an ingested ladder).
    AttachMedia {
        media: Media,
        replace: bool,
    },
    Publish,
    Withdraw,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TitleEvent {
    TitleImported { info: TitleInfo },
    TitleUpdated { info: TitleInfo },
    MediaAttached { media: Media },
    TitlePublished,
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TitleError {
    #[error("no such title")]
    NotFound,
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
