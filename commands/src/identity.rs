//! Signup, login, refresh-token rotation, logout, password reset and phone verification.

use crate::error::CommandError;
use crate::execute::execute;
use crate::meta::CommandMeta;
use crate::passwords;
use crate::ports::{Clock, Mailer, PhoneVerifier, SessionRegistry, Vault};
use crate::store::EventStore;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use cinelog_domain::Actor;
use cinelog_domain::account::{Account, AccountCommand};
use cinelog_domain::email_claim::{EmailClaim, EmailClaimCommand};
use cinelog_domain::session::{RevokeReason, Session, SessionCommand, SessionEvent};
use cinelog_domain::user::{User, UserCommand, UserError, UserState};
use cinelog_domain::values::{Email, Phone, Role};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// How long a refresh token (and its session) stays usable without rotation.
pub const REFRESH_TTL_DAYS: i64 = 30;
/// Age after which a claim with no registered user counts as an abandoned signup.
pub const ABANDONED_CLAIM_SECS: i64 = 60;
/// How long a password-reset link works.
pub const RESET_TTL_MINUTES: i64 = 30;

/// Identity commands: users, email claims, sign-in sessions.
#[derive(Clone)]
pub struct IdentityService<S> {
    store: S,
    phone: Arc<dyn PhoneVerifier>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    vault: Arc<dyn Vault>,
    sessions: Arc<dyn SessionRegistry>,
    /// Keys email-claim stream ids, so an address cannot be confirmed by hashing guesses.
    claim_key: Arc<[u8]>,
}

/// What the service needs besides the store.
pub struct IdentityPorts {
    /// Sends and checks phone verification codes.
    pub phone: Arc<dyn PhoneVerifier>,
    /// Sends password-reset mail.
    pub mailer: Arc<dyn Mailer>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Seals and opens personal data with each user's key.
    pub vault: Arc<dyn Vault>,
    /// Which sign-in sessions are open.
    pub sessions: Arc<dyn SessionRegistry>,
    /// Server secret that keys email-claim stream ids.
    pub claim_key: Vec<u8>,
}

/// A finished signup.
#[derive(Debug, Clone)]
pub struct SignedUp {
    /// The new user.
    pub user_id: Uuid,
    /// The account opened for them.
    pub account_id: Uuid,
    /// Log position of the last event written, for `?min_position` reads.
    pub position: i64,
}

/// A successful login or refresh: who, and the new refresh token (shown once, stored hashed).
#[derive(Debug, Clone)]
pub struct SessionGrant {
    /// The signed-in user.
    pub user_id: Uuid,
    /// The user's account.
    pub account_id: Uuid,
    /// What the user may do beyond watching.
    pub role: Role,
    /// The sign-in session the refresh token belongs to.
    pub session_id: Uuid,
    /// The new refresh token, `<session id>.<secret>`.
    pub refresh_token: String,
    /// Log position of the last event written, for `?min_position` reads.
    pub position: i64,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A token is `<stream id>.<secret>`: the id says which stream to load, the hash of the whole
/// token is what the stream remembers.
fn split_token(token: &str) -> Option<(Uuid, &str)> {
    let (id, secret) = token.split_once('.')?;
    (!secret.is_empty()).then_some(())?;
    Some((Uuid::parse_str(id).ok()?, secret))
}

impl<S: EventStore> IdentityService<S> {
    /// A service writing to `store` and reaching outside services through `ports`.
    pub fn new(store: S, ports: IdentityPorts) -> Self {
        Self {
            store,
            phone: ports.phone,
            mailer: ports.mailer,
            clock: ports.clock,
            vault: ports.vault,
            sessions: ports.sessions,
            claim_key: ports.claim_key.into(),
        }
    }

    /// The stream that claims an address: an HMAC of the normalised address under the server's
    /// key, so the stream's name says nothing to someone without the key.
    pub fn claim_id(&self, email: &Email) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.claim_key).expect("HMAC takes any key");
        mac.update(email.as_str().as_bytes());
        format!("k1-{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The claimer of an address, if a user was registered for it and not erased. Claims made
    /// before ids were keyed (a plain SHA-256 of the address) are still honoured.
    async fn claimer(&self, email: &Email) -> Result<Option<UserState>, CommandError> {
        for claim_id in [self.claim_id(email), email.claim_id()] {
            let claim = self.store.load::<EmailClaim>(&claim_id).await?;
            let Some(user_id) = claim.state.user_id else {
                continue;
            };
            let user = self.store.load::<User>(&user_id.to_string()).await?;
            if user.state.user_id.is_some() && !user.state.erased {
                return Ok(Some(user.state));
            }
        }
        Ok(None)
    }

    async fn seal(
        &self,
        owner: Uuid,
        plaintext: &str,
    ) -> Result<cinelog_domain::values::Sealed, CommandError> {
        self.vault
            .seal(owner, plaintext)
            .await
            .map_err(CommandError::Service)
    }

    async fn open_phone(
        &self,
        owner: Uuid,
        sealed: &cinelog_domain::values::Sealed,
    ) -> Result<Phone, CommandError> {
        let plain = self
            .vault
            .open(owner, sealed)
            .await
            .map_err(CommandError::Service)?;
        let plain = plain.ok_or(cinelog_domain::values::InvalidField {
            field: "phone",
            message: "this phone number was erased; give it again".into(),
        })?;
        Ok(Phone::parse(&plain)?)
    }

    /// Forgets the personal data of the user with this address (`cinelog user erase`).
    pub async fn erase_personal_data(
        &self,
        email: &str,
        meta: &CommandMeta,
    ) -> Result<Uuid, CommandError> {
        let email = Email::parse(email)?;
        let user = self
            .find_user(&email)
            .await?
            .ok_or(UserError::NotRegistered)?;
        let user_id = user.user_id.expect("registered");
        self.erase(user_id, &email, meta).await?;
        Ok(user_id)
    }

    /// Checks the user's password again (to leave a kids profile, say); changes nothing.
    pub async fn confirm_password(
        &self,
        user_id: Uuid,
        password: &str,
    ) -> Result<(), CommandError> {
        let user = self.user(user_id).await?;
        if user.erased {
            return Err(UserError::Erased.into());
        }
        if passwords::verify(password.to_string(), user.password_hash.clone()).await {
            Ok(())
        } else {
            Err(CommandError::BadCredentials)
        }
    }

    /// A signed-in user erases their own account, re-entering their password.
    #[tracing::instrument(skip_all)]
    pub async fn erase_self(
        &self,
        user_id: Uuid,
        password: &str,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let user = self.user(user_id).await?;
        if user.erased {
            return Err(UserError::Erased.into());
        }
        if !passwords::verify(password.to_string(), user.password_hash.clone()).await {
            return Err(CommandError::BadCredentials);
        }
        let sealed = user.email.clone().ok_or(UserError::Erased)?;
        let plain = self
            .vault
            .open(user_id, &sealed)
            .await
            .map_err(CommandError::Service)?
            .ok_or(UserError::Erased)?;
        self.erase(user_id, &Email::parse(&plain)?, meta).await
    }

    /// Destroys the user's key, records the erasure (read models drop what they derived; the
    /// log is untouched and its hash chains stay valid), frees the address and ends every
    /// session.
    async fn erase(
        &self,
        user_id: Uuid,
        email: &Email,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let open = self.open_sessions(user_id).await?;
        self.vault
            .destroy(user_id)
            .await
            .map_err(CommandError::Service)?;
        let erased =
            execute::<User, _, CommandError>(&self.store, &user_id.to_string(), meta, |_| {
                Ok(UserCommand::ErasePersonalData)
            })
            .await?;
        let mut position = erased.position;
        for claim_id in [self.claim_id(email), email.claim_id()] {
            let released =
                execute::<EmailClaim, _, CommandError>(&self.store, &claim_id, meta, |_| {
                    Ok(EmailClaimCommand::Release { user_id })
                })
                .await?;
            position = position.max(released.position);
        }
        let ended = self.end_sessions(&open, RevokeReason::Erased, meta).await?;
        Ok(position.max(ended))
    }

    /// The user's open sessions, listed before a credential change is recorded: the sessions
    /// read model ends them all when it applies the change, so listing afterwards would find
    /// none to end with their own event.
    async fn open_sessions(&self, user_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        self.sessions
            .open_sessions(user_id)
            .await
            .map_err(CommandError::Service)
    }

    /// Ends these sessions, each with its own event, and tells this replica at once. A session
    /// started after they were listed is ended by the read model on the change itself.
    async fn end_sessions(
        &self,
        open: &[Uuid],
        reason: RevokeReason,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        self.sessions.ended(open);
        let mut position = 0;
        for session_id in open {
            let stream_id = session_id.to_string();
            let done = execute::<Session, _, CommandError>(&self.store, &stream_id, meta, |_| {
                Ok(SessionCommand::Revoke { reason })
            });
            match done.await {
                Ok(d) => position = position.max(d.position),
                Err(CommandError::Session(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(position)
    }

    /// A signed-in user changes their password; every session, this one included, ends.
    #[tracing::instrument(skip_all)]
    pub async fn change_password(
        &self,
        user_id: Uuid,
        current_password: &str,
        new_password: &str,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let user = self.user(user_id).await?;
        if !passwords::verify(current_password.to_string(), user.password_hash.clone()).await {
            return Err(CommandError::BadCredentials);
        }
        passwords::check_strength(new_password, &[])?;
        let new_password_hash = passwords::hash(new_password.to_string()).await?;
        let open = self.open_sessions(user_id).await?;
        let done =
            execute::<User, _, CommandError>(&self.store, &user_id.to_string(), meta, |_| {
                Ok(UserCommand::ChangePassword {
                    new_password_hash: new_password_hash.clone(),
                })
            })
            .await?;
        let ended = self
            .end_sessions(&open, RevokeReason::CredentialsChanged, meta)
            .await?;
        Ok(done.position.max(ended))
    }

    /// Registers a user and opens their account. The email is claimed first, in its own stream
    /// at expected version 0, so of any number of racing signups exactly one proceeds.
    #[tracing::instrument(skip_all)]
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        phone: Option<&str>,
        role: Role,
        meta: &CommandMeta,
    ) -> Result<SignedUp, CommandError> {
        let email = Email::parse(email)?;
        passwords::check_strength(password, &[email.as_str()])?;
        let phone = phone
            .filter(|p| !p.trim().is_empty())
            .map(Phone::parse)
            .transpose()?;
        let password_hash = passwords::hash(password.to_string()).await?;
        let (user_id, account_id) = (Uuid::now_v7(), Uuid::now_v7());
        let meta = meta.acting_as(Actor::User(user_id));
        let sealed_email = self.seal(user_id, email.as_str()).await?;
        let sealed_phone = match &phone {
            Some(p) => Some(self.seal(user_id, p.as_str()).await?),
            None => None,
        };

        let abandoned_by = self.abandoned_claimer(&email).await?;
        let now = self.clock.now();
        if self.legacy_claimer(&email).await?.is_some() {
            return Err(cinelog_domain::email_claim::EmailClaimError::EmailTaken.into());
        }
        // Each step is caused by the one before: claim → registration → account.
        let claimed = execute::<EmailClaim, _, CommandError>(
            &self.store,
            &self.claim_id(&email),
            &meta,
            |_| {
                Ok(EmailClaimCommand::Claim {
                    user_id,
                    at: now,
                    abandoned_by,
                })
            },
        )
        .await?;
        let meta = meta.caused_by(claimed.last_event_id);
        let registered =
            execute::<User, _, CommandError>(&self.store, &user_id.to_string(), &meta, |_| {
                Ok(UserCommand::Register {
                    user_id,
                    account_id,
                    email: sealed_email.clone(),
                    password_hash: password_hash.clone(),
                    phone: sealed_phone.clone(),
                    role,
                })
            })
            .await?;
        let meta = meta.caused_by(registered.last_event_id);
        let opened = execute::<Account, _, CommandError>(
            &self.store,
            &account_id.to_string(),
            &meta,
            |_| Ok(AccountCommand::Open { owner: user_id }),
        )
        .await?;
        Ok(SignedUp {
            user_id,
            account_id,
            position: opened.position,
        })
    }

    /// The claimer of an email whose signup never got as far as registering a user, once the
    /// claim is old enough that the signup cannot still be under way.
    async fn abandoned_claimer(&self, email: &Email) -> Result<Option<Uuid>, CommandError> {
        let claim = self.store.load::<EmailClaim>(&self.claim_id(email)).await?;
        let (Some(claimer), Some(at)) = (claim.state.user_id, claim.state.claimed_at) else {
            return Ok(None);
        };
        if self.clock.now() - at < Duration::seconds(ABANDONED_CLAIM_SECS) {
            return Ok(None);
        }
        let user = self.store.load::<User>(&claimer.to_string()).await?;
        Ok(user.state.user_id.is_none().then_some(claimer))
    }

    /// Opens the user's account if their signup died between registering and opening it.
    async fn ensure_account_open(
        &self,
        user_id: Uuid,
        account_id: Uuid,
        meta: &CommandMeta,
    ) -> Result<(), CommandError> {
        let stream_id = account_id.to_string();
        let account = self.store.load_for_append::<Account>(&stream_id).await?;
        if account.state.owner.is_none() {
            let meta = meta.acting_as(Actor::User(user_id));
            let opened =
                execute::<Account, _, CommandError>(&self.store, &stream_id, &meta, |_| {
                    Ok(AccountCommand::Open { owner: user_id })
                });
            match opened.await {
                Ok(_)
                | Err(CommandError::Account(cinelog_domain::account::AccountError::AlreadyOpen)) => {
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The user an email belongs to, read from the log (the claim stream), not a read model.
    async fn find_user(&self, email: &Email) -> Result<Option<UserState>, CommandError> {
        self.claimer(email).await
    }

    /// A live user holding the address through a claim made before claim ids were keyed.
    async fn legacy_claimer(&self, email: &Email) -> Result<Option<Uuid>, CommandError> {
        let claim = self.store.load::<EmailClaim>(&email.claim_id()).await?;
        let Some(user_id) = claim.state.user_id else {
            return Ok(None);
        };
        let user = self.store.load::<User>(&user_id.to_string()).await?;
        Ok((user.state.user_id.is_some() && !user.state.erased).then_some(user_id))
    }

    /// A registered user's state as the log has it; `NotRegistered` if there is none.
    pub async fn user(&self, user_id: Uuid) -> Result<UserState, CommandError> {
        let user = self.store.load::<User>(&user_id.to_string()).await?;
        if user.state.user_id.is_none() {
            return Err(UserError::NotRegistered.into());
        }
        Ok(user.state)
    }

    /// Checks credentials and starts a session.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        meta: &CommandMeta,
    ) -> Result<SessionGrant, CommandError> {
        let Ok(email) = Email::parse(email) else {
            return Err(CommandError::BadCredentials);
        };
        let user = self.find_user(&email).await?;
        let phc = user
            .as_ref()
            .map_or(passwords::DUMMY_HASH.to_string(), |u| {
                u.password_hash.clone()
            });
        let ok = passwords::verify(password.to_string(), phc).await;
        let (Some(user), true) = (user, ok) else {
            return Err(CommandError::BadCredentials);
        };
        let (user_id, account_id) = (
            user.user_id.expect("registered"),
            user.account_id.expect("registered"),
        );
        self.ensure_account_open(user_id, account_id, meta).await?;

        let session_id = Uuid::now_v7();
        let refresh_token = format!("{session_id}.{}", random_secret());
        let expires_at = self.clock.now() + Duration::days(REFRESH_TTL_DAYS);
        let meta = meta.acting_as(Actor::User(user_id));
        let started = execute::<Session, _, CommandError>(
            &self.store,
            &session_id.to_string(),
            &meta,
            |_| {
                Ok(SessionCommand::Start {
                    user_id,
                    refresh_hash: sha256_hex(&refresh_token),
                    expires_at,
                    credentials_version: user.credentials_version,
                })
            },
        )
        .await?;
        Ok(SessionGrant {
            user_id,
            account_id,
            role: user.role,
            session_id,
            refresh_token,
            position: started.position,
        })
    }

    /// Rotates a refresh token. A token that was already rotated away revokes the whole session.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        token: &str,
        meta: &CommandMeta,
    ) -> Result<SessionGrant, CommandError> {
        let (session_id, _) =
            split_token(token).ok_or(cinelog_domain::session::SessionError::Invalid)?;
        let new_token = format!("{session_id}.{}", random_secret());
        let now = self.clock.now();
        let presented_hash = sha256_hex(token);
        let session = self.store.load::<Session>(&session_id.to_string()).await?;
        let owner = session
            .state
            .user_id
            .ok_or(cinelog_domain::session::SessionError::Invalid)?;
        let credentials_version = self.user(owner).await?.credentials_version;
        let done =
            execute::<Session, _, CommandError>(&self.store, &session_id.to_string(), meta, |_| {
                Ok(SessionCommand::Rotate {
                    credentials_version,
                    presented_hash: presented_hash.clone(),
                    new_hash: sha256_hex(&new_token),
                    expires_at: now + Duration::days(REFRESH_TTL_DAYS),
                    now,
                })
            })
            .await?;
        if done
            .events
            .iter()
            .any(|e| matches!(e, SessionEvent::SessionRevoked { .. }))
        {
            self.sessions.ended(&[session_id]);
            tracing::warn!(%session_id, "refresh token reused or password changed; session revoked");
            return Err(cinelog_domain::session::SessionError::Invalid.into());
        }
        let user = self
            .user(done.state.user_id.expect("started session"))
            .await?;
        Ok(SessionGrant {
            user_id: user.user_id.expect("registered"),
            account_id: user.account_id.expect("registered"),
            role: user.role,
            session_id,
            refresh_token: new_token,
            position: done.position,
        })
    }

    /// Ends a session; its refresh token stops working.
    pub async fn logout(&self, session_id: Uuid, meta: &CommandMeta) -> Result<i64, CommandError> {
        let stream_id = session_id.to_string();
        let done = execute::<Session, _, CommandError>(&self.store, &stream_id, meta, |_| {
            Ok(SessionCommand::Revoke {
                reason: RevokeReason::Logout,
            })
        });
        let position = match done.await {
            Ok(d) => d.position,
            // Logging out of a session that is already gone is not an error for the caller.
            Err(CommandError::Session(_)) => 0,
            Err(e) => return Err(e),
        };
        self.sessions.ended(&[session_id]);
        Ok(position)
    }

    /// Starts a password reset. Says nothing about whether the email exists.
    #[tracing::instrument(skip_all)]
    pub async fn request_password_reset(
        &self,
        email: &str,
        meta: &CommandMeta,
    ) -> Result<(), CommandError> {
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        // The work happens after the answer, so neither its time nor its failures tell whether
        // the address has an account.
        let this = self.clone();
        let meta = meta.clone();
        tokio::spawn(async move {
            if let Err(e) = this.send_password_reset(&email, &meta).await {
                tracing::warn!(error = %e, "password reset not sent");
            }
        });
        Ok(())
    }

    async fn send_password_reset(
        &self,
        email: &Email,
        meta: &CommandMeta,
    ) -> Result<(), CommandError> {
        let Some(user) = self.find_user(email).await? else {
            return Ok(());
        };
        let user_id = user.user_id.expect("registered");
        let token = format!("{user_id}.{}", random_secret());
        let expires_at = self.clock.now() + Duration::minutes(RESET_TTL_MINUTES);
        execute::<User, _, CommandError>(&self.store, &user_id.to_string(), meta, |_| {
            Ok(UserCommand::RequestPasswordReset {
                token_hash: sha256_hex(&token),
                expires_at,
            })
        })
        .await?;
        self.mailer
            .send_password_reset(email, &token)
            .await
            .map_err(CommandError::Service)
    }

    /// Sets a new password with a reset token (single use, expiring).
    #[tracing::instrument(skip_all)]
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        passwords::check_strength(new_password, &[])?;
        let (user_id, _) = split_token(token).ok_or(UserError::ResetTokenInvalid)?;
        let current = self.store.load::<User>(&user_id.to_string()).await?;
        if current.state.reset.is_none() {
            return Err(UserError::ResetTokenInvalid.into());
        }
        let new_password_hash = passwords::hash(new_password.to_string()).await?;
        let open = self.open_sessions(user_id).await?;
        let now = self.clock.now();
        let token_hash = sha256_hex(token);
        let done = execute::<User, _, CommandError>(
            &self.store,
            &user_id.to_string(),
            &meta.acting_as(Actor::User(user_id)),
            |_| {
                Ok(UserCommand::CompletePasswordReset {
                    token_hash: token_hash.clone(),
                    new_password_hash: new_password_hash.clone(),
                    now,
                })
            },
        )
        .await
        .map_err(|e| match e {
            CommandError::User(UserError::NotRegistered) => UserError::ResetTokenInvalid.into(),
            other => other,
        })?;
        let ended = self
            .end_sessions(&open, RevokeReason::CredentialsChanged, meta)
            .await?;
        Ok(done.position.max(ended))
    }

    /// Sends a verification code to the given phone, or to the one given at signup.
    pub async fn start_phone_verification(
        &self,
        user_id: Uuid,
        phone: Option<&str>,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let user = self.user(user_id).await?;
        if user.erased {
            return Err(cinelog_domain::values::InvalidField {
                field: "phone",
                message: "this account's personal data was erased".into(),
            }
            .into());
        }
        let phone = match (phone.filter(|p| !p.trim().is_empty()), &user.phone) {
            (Some(p), _) => Phone::parse(p)?,
            (None, Some(on_file)) => self.open_phone(user_id, on_file).await?,
            (None, None) => {
                return Err(cinelog_domain::values::InvalidField {
                    field: "phone",
                    message: "no phone number on file; give one".into(),
                }
                .into());
            }
        };
        self.phone
            .start(&phone)
            .await
            .map_err(CommandError::Service)?;
        let sealed = self.seal(user_id, phone.as_str()).await?;
        let done =
            execute::<User, _, CommandError>(&self.store, &user_id.to_string(), meta, |_| {
                Ok(UserCommand::StartPhoneVerification {
                    phone: sealed.clone(),
                })
            })
            .await?;
        Ok(done.position)
    }

    /// Checks the code sent to the pending phone; the phone is verified only if it matches.
    pub async fn verify_phone(
        &self,
        user_id: Uuid,
        code: &str,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let user = self.user(user_id).await?;
        let pending = user.pending_phone.ok_or(UserError::NoPendingVerification)?;
        let phone = self.open_phone(user_id, &pending).await?;
        let code = code.trim();
        if code.is_empty()
            || code.len() > 10
            || !self
                .phone
                .check(&phone, code)
                .await
                .map_err(CommandError::Service)?
        {
            return Err(CommandError::WrongCode);
        }
        let done =
            execute::<User, _, CommandError>(&self.store, &user_id.to_string(), meta, |_| {
                Ok(UserCommand::ConfirmPhone)
            })
            .await?;
        Ok(done.position)
    }
}
