//! Cinelog's end-to-end suite, one binary: real SQLite and Postgres, real HTTP, real Chromium.

mod analysts;
mod audit;
mod billing;
mod browser;
mod catalog;
mod contract;
mod engagement;
mod gap;
mod identity;
mod kafka;
mod kurrent;
mod paypal;
mod playback;
mod profiles;
mod projections;
mod scale;
mod security;
mod stripe;
