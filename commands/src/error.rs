//! Why a command did not happen.

use crate::ports::WebhookError;
use crate::store::StoreError;
use cinelog_domain::account::AccountError;
use cinelog_domain::email_claim::EmailClaimError;
use cinelog_domain::session::SessionError;
use cinelog_domain::subscription::SubscriptionError;
use cinelog_domain::taste::TasteError;
use cinelog_domain::title::TitleError;
use cinelog_domain::user::UserError;
use cinelog_domain::values::InvalidField;
use cinelog_domain::viewing::{PlaybackError, ViewingError};

/// Why a command did not happen. Business refusals and infrastructure failures stay apart.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A field of the command is not valid.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The account refused the change.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The user refused the change.
    #[error(transparent)]
    User(#[from] UserError),
    /// The email address is taken.
    #[error(transparent)]
    EmailClaim(#[from] EmailClaimError),
    /// The sign-in session refused the change.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The subscription refused the change.
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    /// A provider's webhook was refused.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// The catalog refused the change.
    #[error(transparent)]
    Title(#[from] TitleError),
    /// The account's playback refused the change.
    #[error(transparent)]
    Viewing(#[from] ViewingError),
    /// Playback does not start, or a stream URL does not play.
    #[error(transparent)]
    Playback(#[from] PlaybackError),
    /// A profile's taste refused the change.
    #[error(transparent)]
    Taste(#[from] TasteError),
    /// The payment provider is not configured here.
    #[error("payments through {0} are not offered here")]
    ProviderNotOffered(&'static str),
    /// The email or password is wrong.
    #[error("wrong email or password")]
    BadCredentials,
    /// The PIN of a locked profile is not right (or none was given).
    #[error("that PIN is not right")]
    WrongPin,
    /// The phone verification code is wrong or expired.
    #[error("the verification code is wrong or expired")]
    WrongCode,
    /// The stream kept changing under the command; the caller may try again.
    #[error("too many concurrent changes, try again")]
    Contention,
    /// An outside service (provider, mail, phone) failed.
    #[error("outside service failed: {0}")]
    Service(String),
    /// The event store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => CommandError::Contention,
            other => CommandError::Store(other),
        }
    }
}
