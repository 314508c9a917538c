//! The write side: command services that load an aggregate's stream, let the pure domain decide,
//! and append the events with their metadata. Outside services are reached through the traits
//! (ports) in [`ports`]; `infra` implements them.

#![warn(missing_docs)]

pub mod accounts;
pub mod billing;
pub mod catalog;
pub mod cqrs;
pub mod error;
pub mod execute;
pub mod identity;
pub mod meta;
pub mod passwords;
pub mod playback;
pub mod ports;
pub mod store;
pub mod taste;

pub use error::CommandError;
pub use execute::{Executed, execute};
pub use meta::CommandMeta;
pub use store::{Appended, EventStore, Loaded, StoreError, StreamHead};
