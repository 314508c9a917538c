//! The Cinelog web UI (Dioxus, rendered server-side over LiveView). It reads and writes only
//! through the public HTTP API, like any other client, and keeps the session in the browser's
//! localStorage so a reload resumes where the viewer was.

mod api;
mod pages;

pub use pages::{App, AppProps};

/// The page's stylesheet.
pub const STYLE: &str = include_str!("style.css");
