//! Profile commands on an account.

use crate::error::CommandError;
use crate::execute::execute;
use crate::meta::CommandMeta;
use crate::passwords;
use crate::store::EventStore;
use cinelog_domain::account::{Account, AccountCommand, AccountError, Profile, ProfileChanges};
use cinelog_domain::values::check_pin;
use uuid::Uuid;

/// How old a cached account may be when a read asks for one of its profiles.
const PROFILE_FRESHNESS: std::time::Duration = std::time::Duration::from_secs(1);

/// Profile commands on accounts.
#[derive(Clone)]
pub struct AccountService<S> {
    store: S,
}

impl<S: EventStore> AccountService<S> {
    /// A service writing to `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// A profile of the account as the write side knows it (no read-model lag).
    pub async fn profile(
        &self,
        account_id: Uuid,
        profile_id: Uuid,
    ) -> Result<Option<Profile>, CommandError> {
        // Another replica may have changed the account: its change counts within a second.
        let loaded = self
            .store
            .load_recent::<Account>(&account_id.to_string(), PROFILE_FRESHNESS)
            .await?;
        Ok(loaded.state.profiles.get(&profile_id).cloned())
    }

    /// Creates a profile; the aggregate refuses a sixth.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn create_profile(
        &self,
        account_id: Uuid,
        profile: Profile,
        meta: &CommandMeta,
    ) -> Result<(Uuid, i64), CommandError> {
        let profile_id = Uuid::now_v7();
        let done =
            execute::<Account, _, CommandError>(&self.store, &account_id.to_string(), meta, |_| {
                Ok(AccountCommand::CreateProfile {
                    profile_id,
                    profile: profile.clone(),
                })
            })
            .await?;
        Ok((profile_id, done.position))
    }

    /// Changes some fields of a profile; answers the profile as it now is and the log position.
    #[tracing::instrument(skip_all, fields(%account_id, %profile_id))]
    pub async fn update_profile(
        &self,
        account_id: Uuid,
        profile_id: Uuid,
        changes: ProfileChanges,
        meta: &CommandMeta,
    ) -> Result<(Profile, i64), CommandError> {
        let done =
            execute::<Account, _, CommandError>(&self.store, &account_id.to_string(), meta, |_| {
                Ok(AccountCommand::UpdateProfile {
                    profile_id,
                    changes: changes.clone(),
                })
            })
            .await?;
        let profile = done
            .state
            .profiles
            .get(&profile_id)
            .cloned()
            .ok_or(AccountError::ProfileNotFound)?;
        Ok((profile, done.position))
    }

    /// Deletes a profile; answers the log position.
    #[tracing::instrument(skip_all, fields(%account_id, %profile_id))]
    pub async fn delete_profile(
        &self,
        account_id: Uuid,
        profile_id: Uuid,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        let done =
            execute::<Account, _, CommandError>(&self.store, &account_id.to_string(), meta, |_| {
                Ok(AccountCommand::DeleteProfile { profile_id })
            })
            .await?;
        Ok(done.position)
    }

    /// Whether `pin` opens the profile: always for a profile without a PIN; for a locked one,
    /// when it matches.
    pub async fn pin_opens(
        &self,
        account_id: Uuid,
        profile_id: Uuid,
        pin: Option<&str>,
    ) -> Result<bool, CommandError> {
        let loaded = self
            .store
            .load_recent::<Account>(&account_id.to_string(), PROFILE_FRESHNESS)
            .await?;
        if !loaded.state.profiles.contains_key(&profile_id) {
            return Err(AccountError::ProfileNotFound.into());
        }
        Ok(match (loaded.state.pins.get(&profile_id), pin) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(hash), Some(pin)) => passwords::verify(pin.to_string(), hash.clone()).await,
        })
    }

    /// Locks a profile with a new PIN, or unlocks it (`new_pin` `None`). A profile locked
    /// already needs its current PIN first. Answers the log position.
    #[tracing::instrument(skip_all, fields(%account_id, %profile_id))]
    pub async fn set_pin(
        &self,
        account_id: Uuid,
        profile_id: Uuid,
        new_pin: Option<String>,
        current_pin: Option<&str>,
        meta: &CommandMeta,
    ) -> Result<i64, CommandError> {
        if !self.pin_opens(account_id, profile_id, current_pin).await? {
            return Err(CommandError::WrongPin);
        }
        let pin_hash = match new_pin {
            Some(pin) => Some(passwords::hash(check_pin(&pin)?).await?),
            None => None,
        };
        let done =
            execute::<Account, _, CommandError>(&self.store, &account_id.to_string(), meta, |_| {
                Ok(AccountCommand::SetPin {
                    profile_id,
                    pin_hash: pin_hash.clone(),
                })
            })
            .await?;
        Ok(done.position)
    }
}
