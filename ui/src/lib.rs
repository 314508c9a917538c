//! The Cinelog web UI (Dioxus, rendered server-side over LiveView). It reads and writes only
//! through the public HTTP API, like any other client, and keeps the session in the browser's
//! localStorage so a reload resumes where the viewer was.

mod api;
mod audit;
mod catalog;
mod dashboard;
mod pages;

pub use pages::{App, AppProps};

/// The page's stylesheet.
pub const STYLE: &str = include_str!("style.css");

/// hls.js (vendored, see `assets/hls.js.LICENSE`), served to the page for the player.
pub const HLS_JS: &[u8] = include_bytes!("../assets/hls.min.js");
/// hls.js's licence, served beside it.
pub const HLS_JS_LICENSE: &str = include_str!("../assets/hls.js.LICENSE");
