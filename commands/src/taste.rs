//! Ratings and My List per profile.

use crate::error::CommandError;
use crate::execute::execute;
use crate::meta::CommandMeta;
use crate::store::EventStore;
use cinelog_domain::taste::{Rating, Taste, TasteCommand};
use cinelog_domain::title::{Title, TitleError, plausible_id};
use cinelog_domain::values::Maturity;
use uuid::Uuid;

/// Ratings and My List commands.
#[derive(Clone)]
pub struct TasteService<S> {
    store: S,
}

/// What a taste command asks for.
#[derive(Debug, Clone)]
pub enum TasteChange {
    /// Rate the title.
    Rate(Rating),
    /// Take the rating back.
    Unrate,
    /// Put the title on My List.
    AddToList,
    /// Take it off My List.
    RemoveFromList,
}

impl<S: EventStore> TasteService<S> {
    /// A taste service over the store.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// Applies the change to the profile's taste for a title it may see (one in the catalog as
    /// the log knows it, so a just-imported title counts, within the profile's rating
    /// `ceiling`); answers the log position it stands at (the change's event, or the stream's
    /// head if it changed nothing).
    pub async fn change(
        &self,
        profile_id: Uuid,
        ceiling: Maturity,
        title_id: &str,
        change: TasteChange,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        if !plausible_id(title_id)
            || !self
                .store
                .load::<Title>(title_id)
                .await?
                .state
                .visible_to(Some(ceiling))
        {
            return Err(TitleError::NotFound.into());
        }
        let done =
            execute::<Taste, _, CommandError>(&self.store, &profile_id.to_string(), meta, |_| {
                let title_id = title_id.to_string();
                Ok(match change.clone() {
                    TasteChange::Rate(rating) => TasteCommand::Rate { title_id, rating },
                    TasteChange::Unrate => TasteCommand::Unrate { title_id },
                    TasteChange::AddToList => TasteCommand::AddToList { title_id },
                    TasteChange::RemoveFromList => TasteCommand::RemoveFromList { title_id },
                })
            })
            .await?;
        Ok(done.position)
    }
}
