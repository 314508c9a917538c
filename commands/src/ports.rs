//! Outside services the write side needs, as traits. `infra` has the real adapters and the
//! local defaults.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_domain::values::{Email, Phone};

/// Sends and checks one-time codes for phone numbers (Twilio Verify, or the console).
#[async_trait]
pub trait PhoneVerifier: Send + Sync {
    /// Sends a code to the phone.
    async fn start(&self, phone: &Phone) -> Result<(), String>;
    /// Whether the code is the right one for the phone.
    async fn check(&self, phone: &Phone, code: &str) -> Result<bool, String>;
}

/// Delivers messages to users' email addresses.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send_password_reset(&self, to: &Email, token: &str) -> Result<(), String>;
}

/// The time, injectable so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
