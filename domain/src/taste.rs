//! A profile's ratings (dislike / like / love) and My List, one stream per profile. Every
//! command is idempotent: rating a title the way it is already rated, or adding a title already
//! on the list, records nothing.

use crate::{Decider, EventName};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The taste aggregate: one stream per profile, holding its ratings and My List.
pub struct Taste;

/// How a profile rated a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    /// Wants fewer titles like it.
    Dislike,
    /// Wants more titles like it.
    Like,
    /// Wants many more titles like it.
    Love,
}

impl Rating {
    /// Reads a rating as clients send it (`dislike`, `like`, `love`); `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "dislike" => Some(Rating::Dislike),
            "like" => Some(Rating::Like),
            "love" => Some(Rating::Love),
            _ => None,
        }
    }

    /// The rating as clients and the log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Dislike => "dislike",
            Rating::Like => "like",
            Rating::Love => "love",
        }
    }

    /// How much the rating says the profile wants more like it.
    pub fn weight(self) -> f64 {
        match self {
            Rating::Dislike => -1.0,
            Rating::Like => 1.0,
            Rating::Love => 2.0,
        }
    }
}

/// A profile's taste as rebuilt from its stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TasteState {
    /// The profile's rating of each rated title, by title id.
    pub ratings: BTreeMap<String, Rating>,
    /// Title ids on the profile's My List.
    pub list: BTreeSet<String>,
}

/// What a profile may ask about its ratings and list.
#[derive(Debug)]
pub enum TasteCommand {
    /// Rates a title, replacing any earlier rating.
    Rate {
        /// The title, by id.
        title_id: String,
        /// The new rating.
        rating: Rating,
    },
    /// Withdraws the profile's rating of a title.
    Unrate {
        /// The title, by id.
        title_id: String,
    },
    /// Puts a title on My List.
    AddToList {
        /// The title, by id.
        title_id: String,
    },
    /// Takes a title off My List.
    RemoveFromList {
        /// The title, by id.
        title_id: String,
    },
}

/// What happened to a profile's taste.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TasteEvent {
    /// The profile rated a title (first time or changed).
    TitleRated {
        /// The title, by id.
        title_id: String,
        /// The profile's rating of it.
        rating: Rating,
    },
    /// The profile withdrew its rating of a title.
    RatingRemoved {
        /// The title, by id.
        title_id: String,
    },
    /// A title was put on My List.
    AddedToList {
        /// The title, by id.
        title_id: String,
    },
    /// A title was taken off My List.
    RemovedFromList {
        /// The title, by id.
        title_id: String,
    },
}

impl EventName for TasteEvent {
    fn event_name(&self) -> &'static str {
        match self {
            TasteEvent::TitleRated { .. } => "TitleRated",
            TasteEvent::RatingRemoved { .. } => "RatingRemoved",
            TasteEvent::AddedToList { .. } => "AddedToList",
            TasteEvent::RemovedFromList { .. } => "RemovedFromList",
        }
    }
}

/// Taste commands are never refused once the title and profile are known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TasteError {}

impl Decider for Taste {
    const STREAM_TYPE: &'static str = "taste";
    type State = TasteState;
    type Command = TasteCommand;
    type Event = TasteEvent;
    type Error = TasteError;

    fn decide(state: &TasteState, command: TasteCommand) -> Result<Vec<TasteEvent>, TasteError> {
        use TasteEvent as E;
        Ok(match command {
            TasteCommand::Rate { title_id, rating } => {
                if state.ratings.get(&title_id) == Some(&rating) {
                    vec![]
                } else {
                    vec![E::TitleRated { title_id, rating }]
                }
            }
            TasteCommand::Unrate { title_id } if state.ratings.contains_key(&title_id) => {
                vec![E::RatingRemoved { title_id }]
            }
            TasteCommand::AddToList { title_id } if !state.list.contains(&title_id) => {
                vec![E::AddedToList { title_id }]
            }
            TasteCommand::RemoveFromList { title_id } if state.list.contains(&title_id) => {
                vec![E::RemovedFromList { title_id }]
            }
            _ => vec![],
        })
    }

    fn evolve(mut state: TasteState, event: &TasteEvent) -> TasteState {
        match event {
            TasteEvent::TitleRated { title_id, rating } => {
                state.ratings.insert(title_id.clone(), *rating);
            }
            TasteEvent::RatingRemoved { title_id } => {
                state.ratings.remove(title_id);
            }
            TasteEvent::AddedToList { title_id } => {
                state.list.insert(title_id.clone());
            }
            TasteEvent::RemovedFromList { title_id } => {
                state.list.remove(title_id);
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;

    fn rate(r: Rating) -> TasteCommand {
        TasteCommand::Rate {
            title_id: "t".into(),
            rating: r,
        }
    }

    #[test]
    fn rating_twice_is_one_rating_and_changes_are_recorded() {
        let liked = given_when::<Taste>(&[], rate(Rating::Like)).unwrap();
        assert_eq!(liked.len(), 1);
        assert!(
            given_when::<Taste>(&liked, rate(Rating::Like))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            given_when::<Taste>(&liked, rate(Rating::Love)).unwrap(),
            vec![TasteEvent::TitleRated {
                title_id: "t".into(),
                rating: Rating::Love
            }]
        );
        let removed = given_when::<Taste>(
            &liked,
            TasteCommand::Unrate {
                title_id: "t".into(),
            },
        )
        .unwrap();
        assert_eq!(
            removed,
            vec![TasteEvent::RatingRemoved {
                title_id: "t".into()
            }]
        );
        assert!(
            given_when::<Taste>(
                &[],
                TasteCommand::Unrate {
                    title_id: "t".into()
                }
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn the_list_holds_a_title_once() {
        let added = given_when::<Taste>(
            &[],
            TasteCommand::AddToList {
                title_id: "t".into(),
            },
        )
        .unwrap();
        assert!(
            given_when::<Taste>(
                &added,
                TasteCommand::AddToList {
                    title_id: "t".into()
                }
            )
            .unwrap()
            .is_empty()
        );
        assert_eq!(
            given_when::<Taste>(
                &added,
                TasteCommand::RemoveFromList {
                    title_id: "t".into()
                }
            )
            .unwrap()
            .len(),
            1
        );
        assert!(
            given_when::<Taste>(
                &[],
                TasteCommand::RemoveFromList {
                    title_id: "t".into()
                }
            )
            .unwrap()
            .is_empty()
        );
        assert_eq!(Rating::parse("meh"), None);
    }
}
