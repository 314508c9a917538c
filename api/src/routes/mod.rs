pub mod audit;
pub mod auth;
pub mod billing;
pub mod catalog;
pub mod engagement;
pub mod ops;
pub mod playback;
pub mod profiles;
