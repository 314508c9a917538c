//! The HTTP API, the web UI's host, and the `cinelog` binary's pieces.

pub mod app;
pub mod artwork;
pub mod auth;
pub mod cli;
pub mod error;
pub mod extract;
pub mod headers;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod web;

pub use app::{AppState, Outside, Running, app, build, start};
