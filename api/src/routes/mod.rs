pub mod audit;
pub mod auth;
pub mod ops;
pub mod profiles;
