//! An account and its viewing profiles (at most five).

use crate::values::{InvalidField, Maturity, ProfileName};
use crate::{Decider, EventName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Profiles an account may have at once.
pub const MAX_PROFILES: usize = 5;

/// The account aggregate: one stream per account, holding its owner and profiles.
pub struct Account;

/// One viewer within an account, with its own rating ceiling and preferences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Display name, unique within the account regardless of case.
    pub name: ProfileName,
    /// A kids profile, whose rating may not exceed [`Maturity::KIDS_MAX`].
    pub kids: bool,
    /// The highest rating the profile may watch.
    pub maturity_rating: Maturity,
    /// Avatar key, e.g. `blue`.
    pub avatar: String,
    /// Preferred language tag, e.g. `en`.
    pub language: String,
}

/// The account as rebuilt from its stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountState {
    /// The user who opened the account; `None` until it is opened.
    pub owner: Option<Uuid>,
    /// The account's profiles by id.
    pub profiles: BTreeMap<Uuid, Profile>,
    /// PIN hashes (argon2id, PHC strings) of the profiles locked with one.
    #[serde(default)]
    pub pins: BTreeMap<Uuid, String>,
}

/// Fields a profile update may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileChanges {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<ProfileName>,
    /// New kids flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kids: Option<bool>,
    /// New rating ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maturity_rating: Option<Maturity>,
    /// New avatar key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// New language tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

impl ProfileChanges {
    fn apply_to(&self, profile: &mut Profile) {
        if let Some(name) = &self.name {
            profile.name = name.clone();
        }
        if let Some(kids) = self.kids {
            profile.kids = kids;
        }
        if let Some(m) = self.maturity_rating {
            profile.maturity_rating = m;
        }
        if let Some(a) = &self.avatar {
            profile.avatar = a.clone();
        }
        if let Some(l) = &self.language {
            profile.language = l.clone();
        }
    }
}

/// What the owner may ask of an account.
#[derive(Debug)]
pub enum AccountCommand {
    /// Opens the account for its owner (once, at signup).
    Open {
        /// The user who owns the account.
        owner: Uuid,
    },
    /// Adds a profile, if the account has room and the name is free.
    CreateProfile {
        /// Id for the new profile.
        profile_id: Uuid,
        /// The profile as it starts.
        profile: Profile,
    },
    /// Changes some fields of a profile.
    UpdateProfile {
        /// The profile to change.
        profile_id: Uuid,
        /// The fields to change.
        changes: ProfileChanges,
    },
    /// Removes a profile.
    DeleteProfile {
        /// The profile to remove.
        profile_id: Uuid,
    },
    /// Locks a profile with a PIN (given hashed), or unlocks it (`None`).
    SetPin {
        /// The profile to lock or unlock.
        profile_id: Uuid,
        /// The PIN's hash; `None` removes the lock.
        pin_hash: Option<String>,
    },
}

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// The account was opened.
    AccountOpened {
        /// The user who owns it.
        owner: Uuid,
    },
    /// A profile was added.
    ProfileCreated {
        /// The new profile's id.
        profile_id: Uuid,
        /// The profile as it started.
        #[serde(flatten)]
        profile: Profile,
    },
    /// Some fields of a profile changed.
    ProfileUpdated {
        /// The profile that changed.
        profile_id: Uuid,
        /// The fields that changed, and their new values.
        #[serde(flatten)]
        changes: ProfileChanges,
    },
    /// A profile was removed.
    ProfileDeleted {
        /// The removed profile's id.
        profile_id: Uuid,
    },
    /// A profile was locked with a PIN (or its PIN changed).
    ProfilePinSet {
        /// The locked profile.
        profile_id: Uuid,
        /// The PIN's argon2id hash.
        pin_hash: String,
    },
    /// A profile's PIN was removed.
    ProfilePinRemoved {
        /// The unlocked profile.
        profile_id: Uuid,
    },
}

impl EventName for AccountEvent {
    fn event_name(&self) -> &'static str {
        match self {
            AccountEvent::AccountOpened { .. } => "AccountOpened",
            AccountEvent::ProfileCreated { .. } => "ProfileCreated",
            AccountEvent::ProfileUpdated { .. } => "ProfileUpdated",
            AccountEvent::ProfileDeleted { .. } => "ProfileDeleted",
            AccountEvent::ProfilePinSet { .. } => "ProfilePinSet",
            AccountEvent::ProfilePinRemoved { .. } => "ProfilePinRemoved",
        }
    }
}

/// Why an account command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The account is already open.
    #[error("the account is already open")]
    AlreadyOpen,
    /// The account was never opened.
    #[error("no such account")]
    NotOpen,
    /// The account already has [`MAX_PROFILES`] profiles.
    #[error("an account can have at most {MAX_PROFILES} profiles")]
    ProfileLimitReached,
    /// Another profile of the account has that name, regardless of case.
    #[error("another profile of this account already has that name")]
    ProfileNameTaken,
    /// No profile of the account has that id.
    #[error("no such profile")]
    ProfileNotFound,
    /// A field is invalid, e.g. a kids profile rated above the kids' ceiling.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
}

/// Kids profiles may not be set above the kids' ceiling.
fn check_kids_rating(profile: &Profile) -> Result<(), AccountError> {
    if profile.kids && profile.maturity_rating > Maturity::KIDS_MAX {
        return Err(InvalidField {
            field: "maturity_rating",
            message: format!(
                "a kids profile can be rated at most {}",
                Maturity::KIDS_MAX.as_str()
            ),
        }
        .into());
    }
    Ok(())
}

impl Decider for Account {
    const STREAM_TYPE: &'static str = "account";
    type State = AccountState;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(
        state: &AccountState,
        command: AccountCommand,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand as C;
        use AccountEvent as E;
        let open = state.owner.is_some();
        let name_taken = |name: &ProfileName, except: Option<Uuid>| {
            state
                .profiles
                .iter()
                .any(|(id, p)| Some(*id) != except && p.name.same_as(name))
        };
        match command {
            C::Open { .. } if open => Err(AccountError::AlreadyOpen),
            C::Open { owner } => Ok(vec![E::AccountOpened { owner }]),
            _ if !open => Err(AccountError::NotOpen),
            C::CreateProfile { .. } if state.profiles.len() >= MAX_PROFILES => {
                Err(AccountError::ProfileLimitReached)
            }
            C::CreateProfile { profile, .. } if name_taken(&profile.name, None) => {
                Err(AccountError::ProfileNameTaken)
            }
            C::CreateProfile {
                profile_id,
                profile,
            } => {
                check_kids_rating(&profile)?;
                Ok(vec![E::ProfileCreated {
                    profile_id,
                    profile,
                }])
            }
            C::UpdateProfile {
                profile_id,
                changes,
            } => {
                let mut profile = state
                    .profiles
                    .get(&profile_id)
                    .ok_or(AccountError::ProfileNotFound)?
                    .clone();
                if changes
                    .name
                    .as_ref()
                    .is_some_and(|n| name_taken(n, Some(profile_id)))
                {
                    return Err(AccountError::ProfileNameTaken);
                }
                changes.apply_to(&mut profile);
                check_kids_rating(&profile)?;
                Ok(vec![E::ProfileUpdated {
                    profile_id,
                    changes,
                }])
            }
            C::DeleteProfile { profile_id } if !state.profiles.contains_key(&profile_id) => {
                Err(AccountError::ProfileNotFound)
            }
            C::DeleteProfile { profile_id } => Ok(vec![E::ProfileDeleted { profile_id }]),
            C::SetPin { profile_id, .. } if !state.profiles.contains_key(&profile_id) => {
                Err(AccountError::ProfileNotFound)
            }
            C::SetPin {
                profile_id,
                pin_hash: Some(pin_hash),
            } => Ok(vec![E::ProfilePinSet {
                profile_id,
                pin_hash,
            }]),
            C::SetPin {
                profile_id,
                pin_hash: None,
            } if state.pins.contains_key(&profile_id) => {
                Ok(vec![E::ProfilePinRemoved { profile_id }])
            }
            C::SetPin { pin_hash: None, .. } => Ok(vec![]),
        }
    }

    fn evolve(mut state: AccountState, event: &AccountEvent) -> AccountState {
        match event {
            AccountEvent::AccountOpened { owner } => state.owner = Some(*owner),
            AccountEvent::ProfileCreated {
                profile_id,
                profile,
            } => {
                state.profiles.insert(*profile_id, profile.clone());
            }
            AccountEvent::ProfileUpdated {
                profile_id,
                changes,
            } => {
                if let Some(p) = state.profiles.get_mut(profile_id) {
                    changes.apply_to(p);
                }
            }
            AccountEvent::ProfileDeleted { profile_id } => {
                state.profiles.remove(profile_id);
                state.pins.remove(profile_id);
            }
            AccountEvent::ProfilePinSet {
                profile_id,
                pin_hash,
            } => {
                state.pins.insert(*profile_id, pin_hash.clone());
            }
            AccountEvent::ProfilePinRemoved { profile_id } => {
                state.pins.remove(profile_id);
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given_when;

    fn profile(name: &str, kids: bool) -> Profile {
        Profile {
            name: ProfileName::parse(name).unwrap(),
            kids,
            maturity_rating: Maturity::default_for(kids),
            avatar: "blue".into(),
            language: "en".into(),
        }
    }

    fn opened() -> AccountEvent {
        AccountEvent::AccountOpened {
            owner: Uuid::now_v7(),
        }
    }

    fn created(name: &str) -> AccountEvent {
        AccountEvent::ProfileCreated {
            profile_id: Uuid::now_v7(),
            profile: profile(name, false),
        }
    }

    #[test]
    fn creates_a_profile_on_an_open_account() {
        let id = Uuid::now_v7();
        let result = given_when::<Account>(
            &[opened()],
            AccountCommand::CreateProfile {
                profile_id: id,
                profile: profile("Ann", true),
            },
        );
        assert_eq!(
            result,
            Ok(vec![AccountEvent::ProfileCreated {
                profile_id: id,
                profile: profile("Ann", true)
            }])
        );
    }

    #[test]
    fn sixth_profile_is_refused() {
        let mut given = vec![opened()];
        given.extend(["a", "b", "c", "d", "e"].map(created));
        let result = given_when::<Account>(
            &given,
            AccountCommand::CreateProfile {
                profile_id: Uuid::now_v7(),
                profile: profile("f", false),
            },
        );
        assert_eq!(result, Err(AccountError::ProfileLimitReached));
    }

    #[test]
    fn deleting_frees_a_place() {
        let mut given = vec![opened()];
        given.extend(["a", "b", "c", "d", "e"].map(created));
        let AccountEvent::ProfileCreated { profile_id, .. } = given[1].clone() else {
            unreachable!()
        };
        given.push(AccountEvent::ProfileDeleted { profile_id });
        let result = given_when::<Account>(
            &given,
            AccountCommand::CreateProfile {
                profile_id: Uuid::now_v7(),
                profile: profile("f", false),
            },
        );
        assert!(result.is_ok());
    }

    #[test]
    fn names_are_unique_per_account_ignoring_case() {
        let result = given_when::<Account>(
            &[opened(), created("Mum")],
            AccountCommand::CreateProfile {
                profile_id: Uuid::now_v7(),
                profile: profile("MUM", false),
            },
        );
        assert_eq!(result, Err(AccountError::ProfileNameTaken));
    }

    #[test]
    fn kids_profiles_cannot_be_rated_for_adults() {
        let mut p = profile("Kid", true);
        p.maturity_rating = Maturity::Age18;
        let result = given_when::<Account>(
            &[opened()],
            AccountCommand::CreateProfile {
                profile_id: Uuid::now_v7(),
                profile: p,
            },
        );
        assert!(matches!(
            result,
            Err(AccountError::Invalid(InvalidField {
                field: "maturity_rating",
                ..
            }))
        ));
        let kid = AccountEvent::ProfileCreated {
            profile_id: Uuid::nil(),
            profile: profile("Kid", true),
        };
        let changes = ProfileChanges {
            maturity_rating: Some(Maturity::Age18),
            ..Default::default()
        };
        let result = given_when::<Account>(
            &[opened(), kid],
            AccountCommand::UpdateProfile {
                profile_id: Uuid::nil(),
                changes,
            },
        );
        assert!(matches!(result, Err(AccountError::Invalid(_))));
    }

    #[test]
    fn unknown_profiles_and_closed_accounts_are_refused() {
        let del = AccountCommand::DeleteProfile {
            profile_id: Uuid::now_v7(),
        };
        assert_eq!(
            given_when::<Account>(&[opened()], del),
            Err(AccountError::ProfileNotFound)
        );
        let create = AccountCommand::CreateProfile {
            profile_id: Uuid::now_v7(),
            profile: profile("a", false),
        };
        assert_eq!(
            given_when::<Account>(&[], create),
            Err(AccountError::NotOpen)
        );
    }

    #[test]
    fn a_pin_locks_a_profile_until_removed_and_goes_with_it() {
        let id = Uuid::now_v7();
        let created = AccountEvent::ProfileCreated {
            profile_id: id,
            profile: profile("Mum", false),
        };
        let lock = |hash: Option<&str>| AccountCommand::SetPin {
            profile_id: id,
            pin_hash: hash.map(str::to_string),
        };
        let set = given_when::<Account>(&[opened(), created.clone()], lock(Some("h1"))).unwrap();
        assert_eq!(
            set,
            vec![AccountEvent::ProfilePinSet {
                profile_id: id,
                pin_hash: "h1".into()
            }]
        );
        let locked = Account::evolve(
            Account::evolve(
                Account::evolve(AccountState::default(), &opened()),
                &created,
            ),
            &set[0],
        );
        assert_eq!(locked.pins.get(&id).map(String::as_str), Some("h1"));
        let removed = Account::decide(&locked, lock(None)).unwrap();
        assert_eq!(
            removed,
            vec![AccountEvent::ProfilePinRemoved { profile_id: id }]
        );
        // Removing a lock that is not there changes nothing.
        let open = Account::evolve(locked.clone(), &removed[0]);
        assert!(open.pins.is_empty());
        assert_eq!(Account::decide(&open, lock(None)), Ok(vec![]));
        // A deleted profile's PIN goes with it; an unknown profile cannot be locked.
        let gone = Account::evolve(locked, &AccountEvent::ProfileDeleted { profile_id: id });
        assert!(gone.pins.is_empty());
        assert_eq!(
            Account::decide(&gone, lock(Some("h2"))),
            Err(AccountError::ProfileNotFound)
        );
    }
}
