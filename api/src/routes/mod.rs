pub mod audit;
pub mod auth;
pub mod billing;
pub mod ops;
pub mod profiles;
