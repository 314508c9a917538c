//! A user: credentials, phone verification and password resets. Personal data (email, phone)
//! is held sealed with the user's own key, so erasing the key forgets it without touching the log.

use crate::values::{Role, Sealed};
use crate::{Decider, EventName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The user aggregate: one stream per user.
pub struct User;

/// A user as rebuilt from their stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserState {
    /// The user's id; `None` until registered.
    pub user_id: Option<Uuid>,
    /// The account the user opened at signup.
    pub account_id: Option<Uuid>,
    /// Sign-in email, sealed; `None` once erased.
    pub email: Option<Sealed>,
    /// Hash of the current password.
    pub password_hash: String,
    /// What the user may do beyond watching.
    pub role: Role,
    /// The user's phone number, sealed.
    pub phone: Option<Sealed>,
    /// Whether `phone` was confirmed with a code.
    pub phone_verified: bool,
    /// A number waiting for its code, sealed.
    pub pending_phone: Option<Sealed>,
    /// The password reset in progress, if any.
    pub reset: Option<PendingReset>,
    /// Bumped on every password change; access tokens carry it so old ones stop working.
    pub credentials_version: u32,
    /// Whether the user's personal data was erased.
    pub erased: bool,
}

/// A password reset link that was sent and not yet used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingReset {
    /// Hash of the link's token.
    pub token_hash: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// What signup, sign-in and account settings ask of a user.
#[derive(Debug)]
pub enum UserCommand {
    /// Records a new user at signup.
    Register {
        /// The new user's id.
        user_id: Uuid,
        /// The account the user owns.
        account_id: Uuid,
        /// Sign-in email, sealed with the user's key.
        email: Sealed,
        /// Hash of the chosen password.
        password_hash: String,
        /// Phone number given at signup, sealed.
        phone: Option<Sealed>,
        /// The user's role.
        role: Role,
    },
    /// Records a number the user is verifying; the code was sent by the phone service.
    StartPhoneVerification {
        /// The number, sealed.
        phone: Sealed,
    },
    /// The user entered the right code: the pending number becomes theirs.
    ConfirmPhone,
    /// The user's key has been destroyed; read models must drop what they derived from it.
    ErasePersonalData,
    /// Records a password reset link sent to the user.
    RequestPasswordReset {
        /// Hash of the link's token.
        token_hash: String,
        /// When the link stops working.
        expires_at: DateTime<Utc>,
    },
    /// Sets a new password through a reset link.
    CompletePasswordReset {
        /// Hash of the token the link carried.
        token_hash: String,
        /// Hash of the new password.
        new_password_hash: String,
        /// The moment of the request, to check expiry.
        now: DateTime<Utc>,
    },
    /// A signed-in user sets a new password; the service has checked the current one.
    ChangePassword {
        /// Hash of the new password.
        new_password_hash: String,
    },
}

/// What happened to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// The user signed up.
    UserRegistered {
        /// The new user's id.
        user_id: Uuid,
        /// The account the user owns.
        account_id: Uuid,
        /// Sign-in email, sealed.
        email: Sealed,
        /// Hash of the chosen password.
        password_hash: String,
        /// Phone number given at signup, sealed.
        phone: Option<Sealed>,
        /// The user's role.
        role: Role,
    },
    /// A verification code was sent to a number.
    PhoneVerificationStarted {
        /// The number, sealed.
        phone: Sealed,
    },
    /// The user confirmed a number with its code.
    PhoneVerified {
        /// The confirmed number, sealed.
        phone: Sealed,
    },
    /// A password reset link was sent.
    PasswordResetRequested {
        /// Hash of the link's token.
        token_hash: String,
        /// When the link stops working.
        expires_at: DateTime<Utc>,
    },
    /// The password changed, by reset or by the signed-in user; older sessions and tokens end.
    PasswordChanged {
        /// Hash of the new password.
        password_hash: String,
    },
    /// The user's key was destroyed: their email and phone are unreadable for good.
    PersonalDataErased,
}

impl EventName for UserEvent {
    fn event_name(&self) -> &'static str {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::PhoneVerificationStarted { .. } => "PhoneVerificationStarted",
            UserEvent::PhoneVerified { .. } => "PhoneVerified",
            UserEvent::PasswordResetRequested { .. } => "PasswordResetRequested",
            UserEvent::PasswordChanged { .. } => "PasswordChanged",
            UserEvent::PersonalDataErased => "PersonalDataErased",
        }
    }
}

/// Why a user command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A user with this id already exists.
    #[error("the user is already registered")]
    AlreadyRegistered,
    /// No user has this id.
    #[error("no such user")]
    NotRegistered,
    /// A phone was confirmed without a verification in progress.
    #[error("no phone verification is in progress")]
    NoPendingVerification,
    /// The reset token is not the one last sent, or was already used.
    #[error("the reset link is invalid or was already used")]
    ResetTokenInvalid,
    /// The reset link is past its expiry.
    #[error("the reset link has expired")]
    ResetTokenExpired,
    /// The user's personal data was erased.
    #[error("this account was erased")]
    Erased,
}

impl Decider for User {
    const STREAM_TYPE: &'static str = "user";
    type State = UserState;
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(state: &UserState, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        use UserCommand as C;
        use UserEvent as E;
        let registered = state.user_id.is_some();
        match command {
            C::Register { .. } if registered => Err(UserError::AlreadyRegistered),
            C::Register {
                user_id,
                account_id,
                email,
                password_hash,
                phone,
                role,
            } => Ok(vec![E::UserRegistered {
                user_id,
                account_id,
                email,
                password_hash,
                phone,
                role,
            }]),
            _ if !registered => Err(UserError::NotRegistered),
            C::StartPhoneVerification { phone } => Ok(vec![E::PhoneVerificationStarted { phone }]),
            C::ConfirmPhone => match &state.pending_phone {
                Some(phone) => Ok(vec![E::PhoneVerified {
                    phone: phone.clone(),
                }]),
                None => Err(UserError::NoPendingVerification),
            },
            C::ChangePassword { .. } if state.erased => Err(UserError::Erased),
            C::ChangePassword { new_password_hash } => Ok(vec![E::PasswordChanged {
                password_hash: new_password_hash,
            }]),
            C::ErasePersonalData if state.erased => Ok(vec![]),
            C::ErasePersonalData => Ok(vec![E::PersonalDataErased]),
            C::RequestPasswordReset {
                token_hash,
                expires_at,
            } => Ok(vec![E::PasswordResetRequested {
                token_hash,
                expires_at,
            }]),
            C::CompletePasswordReset {
                token_hash,
                new_password_hash,
                now,
            } => match &state.reset {
                Some(reset) if reset.token_hash != token_hash => Err(UserError::ResetTokenInvalid),
                Some(reset) if reset.expires_at <= now => Err(UserError::ResetTokenExpired),
                Some(_) => Ok(vec![E::PasswordChanged {
                    password_hash: new_password_hash,
                }]),
                None => Err(UserError::ResetTokenInvalid),
            },
        }
    }

    fn evolve(mut state: UserState, event: &UserEvent) -> UserState {
        match event {
            UserEvent::UserRegistered {
                user_id,
                account_id,
                email,
                password_hash,
                phone,
                role,
            } => {
                state.user_id = Some(*user_id);
                state.account_id = Some(*account_id);
                state.email = Some(email.clone());
                state.password_hash = password_hash.clone();
                state.phone = phone.clone();
                state.role = *role;
            }
            UserEvent::PhoneVerificationStarted { phone } => {
                state.pending_phone = Some(phone.clone())
            }
            UserEvent::PhoneVerified { phone } => {
                state.phone = Some(phone.clone());
                state.phone_verified = true;
                state.pending_phone = None;
            }
            UserEvent::PasswordResetRequested {
                token_hash,
                expires_at,
            } => {
                state.reset = Some(PendingReset {
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
                });
            }
            UserEvent::PersonalDataErased => {
                // Every session and token of the user ends with their data.
                state.credentials_version += 1;
                state.erased = true;
                state.email = None;
                state.phone = None;
                state.pending_phone = None;
            }
            UserEvent::PasswordChanged { password_hash } => {
                state.password_hash = password_hash.clone();
                state.reset = None;
                state.credentials_version += 1;
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;
    use chrono::Duration;

    fn registered() -> UserEvent {
        UserEvent::UserRegistered {
            user_id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
            email: Sealed("sealed email".into()),
            password_hash: "h0".into(),
            phone: None,
            role: Role::Viewer,
        }
    }

    #[test]
    fn reset_token_is_single_use_and_expires() {
        let now = Utc::now();
        let requested = UserEvent::PasswordResetRequested {
            token_hash: "t".into(),
            expires_at: now + Duration::minutes(30),
        };
        let complete = |token: &str, at| UserCommand::CompletePasswordReset {
            token_hash: token.into(),
            new_password_hash: "h1".into(),
            now: at,
        };
        let given = [registered(), requested.clone()];
        assert_eq!(
            given_when::<User>(&given, complete("t", now)),
            Ok(vec![UserEvent::PasswordChanged {
                password_hash: "h1".into()
            }])
        );
        assert_eq!(
            given_when::<User>(&given, complete("x", now)),
            Err(UserError::ResetTokenInvalid)
        );
        assert_eq!(
            given_when::<User>(&given, complete("t", now + Duration::hours(1))),
            Err(UserError::ResetTokenExpired)
        );
        let used = [
            registered(),
            requested,
            UserEvent::PasswordChanged {
                password_hash: "h1".into(),
            },
        ];
        assert_eq!(
            given_when::<User>(&used, complete("t", now)),
            Err(UserError::ResetTokenInvalid)
        );
    }

    #[test]
    fn phone_is_verified_only_after_a_start() {
        let phone = Sealed("sealed phone".into());
        assert_eq!(
            given_when::<User>(&[registered()], UserCommand::ConfirmPhone),
            Err(UserError::NoPendingVerification)
        );
        let started = [
            registered(),
            UserEvent::PhoneVerificationStarted {
                phone: phone.clone(),
            },
        ];
        assert_eq!(
            given_when::<User>(&started, UserCommand::ConfirmPhone),
            Ok(vec![UserEvent::PhoneVerified { phone }])
        );
    }

    #[test]
    fn commands_before_registration_are_refused() {
        assert_eq!(
            given_when::<User>(&[], UserCommand::ConfirmPhone),
            Err(UserError::NotRegistered)
        );
        let r = registered();
        let UserEvent::UserRegistered {
            user_id,
            account_id,
            email,
            ..
        } = r.clone()
        else {
            unreachable!()
        };
        let again = UserCommand::Register {
            user_id,
            account_id,
            email,
            password_hash: "h".into(),
            phone: None,
            role: Role::Viewer,
        };
        assert_eq!(
            given_when::<User>(&[r], again),
            Err(UserError::AlreadyRegistered)
        );
    }

    #[test]
    fn personal_data_is_erased_once() {
        let erased = given_when::<User>(&[registered()], UserCommand::ErasePersonalData).unwrap();
        assert_eq!(erased, vec![UserEvent::PersonalDataErased]);
        let state = User::replay(&[registered(), UserEvent::PersonalDataErased]);
        assert!(state.erased && state.email.is_none());
        assert_eq!(
            given_when::<User>(
                &[registered(), UserEvent::PersonalDataErased],
                UserCommand::ErasePersonalData
            ),
            Ok(vec![])
        );
    }
}
