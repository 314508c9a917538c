//! Cinelog's domain: events, commands and aggregates as pure `decide` / `evolve` functions,
//! value types and business errors. Nothing here does IO or reads a clock.

#![warn(missing_docs)]

pub mod access;
pub mod account;
pub mod decider;
pub mod email_claim;
pub mod envelope;
pub mod plan;
pub mod session;
pub mod subscription;
pub mod taste;
pub mod title;
pub mod user;
pub mod values;
pub mod viewing;

pub use decider::{Decider, EventName};
pub use envelope::{Actor, EventMeta, RecordedEvent};
