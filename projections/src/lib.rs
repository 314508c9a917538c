//! Read models and the runtime that keeps them current: named, versioned projections, each
//! with a checkpoint written in the same transaction as its read-model change.

pub mod accounts;
pub mod analyst;
pub mod analyst_streams;
pub mod analytics;
pub mod catalog;
pub mod db;
pub mod engagement;
pub mod evaluate;
pub mod external;
pub mod log;
pub mod pii;
pub mod recommend;
pub mod recommendations;
pub mod runtime;
pub mod sessions;
pub mod stats;
pub mod subscriptions;
pub mod tail;
pub mod text;
pub mod watching;

pub use db::ReadDb;
pub use log::{Checkpoint, EventLog, Wanted};
pub use runtime::{Projection, ProjectionStatus, Projections, Tables};
