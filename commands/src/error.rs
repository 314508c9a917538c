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
use cinelog_domain::viewing::ViewingError;

/// Why a command did not happen. Business refusals and infrastructure failures stay apart.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    EmailClaim(#[from] EmailClaimError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Title(#[from] TitleError),
    #[error(transparent)]
    Viewing(#[from] ViewingError),
    #[error(transparent)]
    Taste(#[from] TasteError),
    #[error("payments through {0} are not offered here")]
    ProviderNotOffered(&'static str),
    #[error("wrong email or password")]
    BadCredentials,
    #[error("the verification code is wrong or expired")]
    WrongCode,
    #[error("too many concurrent changes, try again")]
    Contention,
    #[error("outside service failed: {0}")]
    Service(String),
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
