//! Catalog commands: importing titles (bundled, TMDB), attaching media, publishing.

use crate::error::CommandError;
use crate::execute::execute;
use crate::meta::CommandMeta;
use crate::store::EventStore;
use cinelog_domain::title::{Media, Title, TitleCommand, TitleInfo};

/// Catalog commands on titles.
#[derive(Clone)]
pub struct CatalogService<S> {
    store: S,
}

/// What an import did to a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// The title is new to the catalog.
    Added,
    /// The source's description changed.
    Updated,
    /// The title was already known exactly so; nothing was written.
    Unchanged,
}

impl<S: EventStore> CatalogService<S> {
    /// A service writing to `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// Adds a title or updates it when the source changed; an unchanged title appends nothing.
    pub async fn import(
        &self,
        id: &str,
        info: TitleInfo,
        meta: &CommandMeta,
    ) -> Result<(Imported, i64), CommandError> {
        let done = execute::<Title, _, CommandError>(&self.store, id, meta, |_| {
            Ok(TitleCommand::Import {
                info: info.clone(),
                publish: true,
            })
        })
        .await?;
        let outcome = match done.events.first() {
            None => Imported::Unchanged,
            Some(cinelog_domain::title::TitleEvent::TitleImported { .. }) => Imported::Added,
            Some(_) => Imported::Updated,
        };
        Ok((outcome, done.position))
    }

    /// Attaches an HLS ladder to a title (nothing if it already has exactly this one); with
    /// `replace: false`, only if it has none.
    pub async fn attach_media(
        &self,
        id: &str,
        media: Media,
        replace: bool,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let done = execute::<Title, _, CommandError>(&self.store, id, meta, |_| {
            Ok(TitleCommand::AttachMedia {
                media: media.clone(),
                replace,
            })
        })
        .await?;
        Ok(done.position)
    }

    /// Publishes (`true`) or withdraws (`false`) a title; nothing if it already is so.
    pub async fn set_published(
        &self,
        id: &str,
        published: bool,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let done = execute::<Title, _, CommandError>(&self.store, id, meta, |_| {
            Ok(if published {
                TitleCommand::Publish
            } else {
                TitleCommand::Withdraw
            })
        })
        .await?;
        Ok(done.position)
    }
}
