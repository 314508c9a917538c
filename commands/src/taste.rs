//! Ratings and My List per profile.

use crate::error::CommandError;
use crate::execute::execute;
use crate::meta::CommandMeta;
use crate::store::EventStore;
use cinelog_domain::taste::{Rating, Taste, TasteCommand};
use uuid::Uuid;

#[derive(Clone)]
pub struct TasteService<S> {
    store: S,
}

/// What a taste command asks for.
#[derive(Debug, Clone)]
pub enum TasteChange {
    Rate(Rating),
    Unrate,
    AddToList,
    RemoveFromList,
}

impl<S: EventStore> TasteService<S> {
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// Applies the change to the profile's taste; answers the log position it stands at (the
    /// change's event, or the stream's head if it changed nothing).
    pub async fn change(
        &self,
        profile_id: Uuid,
        title_id: &str,
        change: TasteChange,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
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
