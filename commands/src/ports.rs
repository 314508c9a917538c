//! Outside services the write side needs, as traits. `infra` has the real adapters and the
//! local defaults.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_domain::values::{Email, Phone, Sealed};
use uuid::Uuid;

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

/// Seals personal data with its owner's key, and opens it again while the key exists.
#[async_trait]
pub trait Vault: Send + Sync {
    /// Encrypts `plaintext` under `owner`'s key (created on first use).
    async fn seal(&self, owner: Uuid, plaintext: &str) -> Result<Sealed, String>;
    /// Decrypts; `None` once the owner's key has been destroyed.
    async fn open(&self, owner: Uuid, sealed: &Sealed) -> Result<Option<String>, String>;
    /// Destroys the owner's key: everything sealed with it becomes unreadable.
    async fn destroy(&self, owner: Uuid) -> Result<(), String>;
}
