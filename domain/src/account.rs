//! An account and its viewing profiles (at most five).

use crate::values::{InvalidField, Maturity, ProfileName};
use crate::{Decider, EventName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Profiles an account may have at once.
pub const MAX_PROFILES: usize = 5;

pub struct Account;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: ProfileName,
    pub kids: bool,
    pub maturity_rating: Maturity,
    pub avatar: String,
    pub language: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountState {
    pub owner: Option<Uuid>,
    pub profiles: BTreeMap<Uuid, Profile>,
}

/// Fields a profile update may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<ProfileName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kids: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maturity_rating: Option<Maturity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
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

#[derive(Debug)]
pub enum AccountCommand {
    Open {
        owner: Uuid,
    },
    CreateProfile {
        profile_id: Uuid,
        profile: Profile,
    },
    UpdateProfile {
        profile_id: Uuid,
        changes: ProfileChanges,
    },
    DeleteProfile {
        profile_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    AccountOpened {
        owner: Uuid,
    },
    ProfileCreated {
        profile_id: Uuid,
        #[serde(flatten)]
        profile: Profile,
    },
    ProfileUpdated {
        profile_id: Uuid,
        #[serde(flatten)]
        changes: ProfileChanges,
    },
    ProfileDeleted {
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
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("no such account")]
    NotOpen,
    #[error("an account can have at most {MAX_PROFILES} profiles")]
    ProfileLimitReached,
    #[error("another profile of this account already has that name")]
    ProfileNameTaken,
    #[error("no such profile")]
    ProfileNotFound,
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
}
