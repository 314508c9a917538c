//! Adapters: the event store backends and global log readers, outside-service clients, and settings.

pub mod audit;
pub mod cache;
pub mod catalog_cache;
pub mod consumer;
pub mod export;
pub mod groq;
pub mod history;
pub mod images;
pub mod kurrent;
pub mod limits;
pub mod mail;
pub mod media;
pub mod payments;
pub mod phone;
pub mod reads;
pub mod redis_link;
pub mod relay;
pub mod settings;
pub mod signed;
pub mod store;
pub mod tmdb;
pub mod trending;
pub mod vault;

pub use settings::{Secret, Settings};
pub use store::Store;
