//! Users, accounts and profiles as the API and UI read them.

use crate::db::ReadDb;
use crate::pii::PiiReader;
use crate::runtime::{Projection, Tables};
use async_trait::async_trait;
use cinelog_domain::RecordedEvent;
use cinelog_domain::account::{AccountEvent, ProfileChanges};
use cinelog_domain::envelope::format_time;
use cinelog_domain::user::UserEvent;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::sync::Arc;
use uuid::Uuid;

/// The accounts read model: `users`, `accounts` and `profiles`. Personal data is opened with the
/// owner's key as it is projected; after an erasure it is dropped.
pub struct AccountsProjection {
    pub pii: Arc<dyn PiiReader>,
}

pub const NAME: &str = "accounts";

#[async_trait]
impl Projection for AccountsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [&'static str] {
        &["user", "account"]
    }

    fn version(&self) -> i64 {
        2
    }

    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "users",
                "user_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, email TEXT, role TEXT NOT NULL, phone TEXT, phone_verified BIGINT NOT NULL, created_at TEXT NOT NULL",
            ),
            (
                "accounts",
                "account_id TEXT PRIMARY KEY, owner_user_id TEXT NOT NULL, created_at TEXT NOT NULL",
            ),
            (
                "profiles",
                "profile_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, kids BIGINT NOT NULL, maturity_rating TEXT NOT NULL, avatar TEXT NOT NULL, language TEXT NOT NULL, created_at TEXT NOT NULL, created_position BIGINT NOT NULL, locked BIGINT NOT NULL DEFAULT 0",
            ),
        ]
    }

    fn analytics_views(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "users",
                "SELECT user_id, account_id, role, phone_verified = 1 AS phone_verified, email IS NULL AS erased, created_at::timestamptz AS created_at FROM users",
            ),
            (
                "accounts",
                "SELECT account_id, owner_user_id, created_at::timestamptz AS created_at FROM accounts",
            ),
            (
                "profiles",
                "SELECT profile_id, account_id, kids = 1 AS kids, maturity_rating, language, created_at::timestamptz AS created_at FROM profiles",
            ),
        ]
    }

    fn indexes(&self) -> &'static [&'static str] {
        &["CREATE INDEX profiles_account_{g} ON {profiles} (account_id, created_position)"]
    }

    /// Profile edits in a row are merged per profile and written with one statement; any other
    /// event first writes the edits before it, so the order of effects stays the log's.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        let mut edits = ProfileEdits::default();
        for e in events {
            let edit = (e.stream_type == "account")
                .then(|| serde_json::from_value::<AccountEvent>(e.payload.clone()).ok())
                .flatten();
            match edit {
                Some(AccountEvent::ProfileUpdated {
                    profile_id,
                    changes,
                }) => edits.add(profile_id, changes),
                _ => {
                    edits.write(conn, t).await?;
                    self.apply(conn, t, e)
                        .await
                        .map_err(|err| err.context(format!("event at position {}", e.position)))?;
                }
            }
        }
        edits.write(conn, t).await
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &RecordedEvent,
    ) -> anyhow::Result<()> {
        let at = format_time(e.meta.recorded_at);
        match e.stream_type.as_str() {
            "user" => match serde_json::from_value::<UserEvent>(e.payload.clone())? {
                UserEvent::UserRegistered {
                    user_id,
                    account_id,
                    email,
                    phone,
                    role,
                    ..
                } => {
                    sqlx::query(&format!(
                        "INSERT INTO {} (user_id, account_id, email, role, phone, phone_verified, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6)
                         ON CONFLICT (user_id) DO NOTHING",
                        t.name("users")
                    ))
                    .bind(user_id.to_string())
                    .bind(account_id.to_string())
                    .bind(self.pii.open(user_id, &email).await?)
                    .bind(role.as_str())
                    .bind(match phone {
                        Some(p) => self.pii.open(user_id, &p).await?,
                        None => None,
                    })
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::PhoneVerified { phone } => {
                    let owner = Uuid::parse_str(&e.stream_id)?;
                    sqlx::query(&format!(
                        "UPDATE {} SET phone = $1, phone_verified = 1 WHERE user_id = $2",
                        t.name("users")
                    ))
                    .bind(self.pii.open(owner, &phone).await?)
                    .bind(e.stream_id.clone())
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::PersonalDataErased => {
                    sqlx::query(&format!(
                        "UPDATE {} SET email = NULL, phone = NULL WHERE user_id = $1",
                        t.name("users")
                    ))
                    .bind(e.stream_id.clone())
                    .execute(&mut *conn)
                    .await?;
                }
                _ => {}
            },
            "account" => match serde_json::from_value::<AccountEvent>(e.payload.clone())? {
                AccountEvent::AccountOpened { owner } => {
                    sqlx::query(&format!("INSERT INTO {} (account_id, owner_user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (account_id) DO NOTHING", t.name("accounts")))
                        .bind(e.stream_id.clone())
                        .bind(owner.to_string())
                        .bind(at)
                        .execute(&mut *conn)
                        .await?;
                }
                AccountEvent::ProfileCreated {
                    profile_id,
                    profile,
                } => {
                    sqlx::query(&format!(
                        "INSERT INTO {} (profile_id, account_id, name, kids, maturity_rating, avatar, language, created_at, created_position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (profile_id) DO NOTHING",
                        t.name("profiles")
                    ))
                    .bind(profile_id.to_string())
                    .bind(e.stream_id.clone())
                    .bind(profile.name.as_str().to_string())
                    .bind(i64::from(profile.kids))
                    .bind(profile.maturity_rating.as_str())
                    .bind(profile.avatar)
                    .bind(profile.language)
                    .bind(at)
                    .bind(e.position)
                    .execute(&mut *conn)
                    .await?;
                }
                AccountEvent::ProfileUpdated {
                    profile_id,
                    changes,
                } => {
                    sqlx::query(&format!(
                        "UPDATE {} SET name = COALESCE($1, name), kids = COALESCE($2, kids), maturity_rating = COALESCE($3, maturity_rating),
                         avatar = COALESCE($4, avatar), language = COALESCE($5, language) WHERE profile_id = $6",
                        t.name("profiles")
                    ))
                    .bind(changes.name.map(|n| n.as_str().to_string()))
                    .bind(changes.kids.map(i64::from))
                    .bind(changes.maturity_rating.map(|m| m.as_str()))
                    .bind(changes.avatar)
                    .bind(changes.language)
                    .bind(profile_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                AccountEvent::ProfileDeleted { profile_id } => {
                    sqlx::query(&format!(
                        "DELETE FROM {} WHERE profile_id = $1",
                        t.name("profiles")
                    ))
                    .bind(profile_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                AccountEvent::ProfilePinSet { profile_id, .. } => {
                    set_locked(conn, t, profile_id, true).await?;
                }
                AccountEvent::ProfilePinRemoved { profile_id } => {
                    set_locked(conn, t, profile_id, false).await?;
                }
            },
            _ => {}
        }
        Ok(())
    }
}

/// Profile edits not yet written, merged per profile (a later change of a field wins).
#[derive(Default)]
struct ProfileEdits {
    merged: std::collections::HashMap<Uuid, ProfileChanges>,
}

/// Rows per statement (six binds each), well under either database's bind limit.
const EDITS_PER_STATEMENT: usize = 1_000;

impl ProfileEdits {
    fn add(&mut self, profile_id: Uuid, changes: ProfileChanges) {
        match self.merged.get_mut(&profile_id) {
            Some(merged) => {
                merged.name = changes.name.or(merged.name.take());
                merged.kids = changes.kids.or(merged.kids);
                merged.maturity_rating = changes.maturity_rating.or(merged.maturity_rating);
                merged.avatar = changes.avatar.or(merged.avatar.take());
                merged.language = changes.language.or(merged.language.take());
            }
            None => {
                self.merged.insert(profile_id, changes);
            }
        }
    }

    /// Writes and forgets the merged edits.
    async fn write(&mut self, conn: &mut AnyConnection, t: &Tables) -> anyhow::Result<()> {
        let merged: Vec<_> = self.merged.drain().collect();
        for chunk in merged.chunks(EDITS_PER_STATEMENT) {
            let profiles = t.name("profiles");
            // Numbered placeholders: both databases read `$n` (the Any driver's query builder
            // writes `?`, which Postgres does not).
            let rows: Vec<String> = (0..chunk.len())
                .map(|r| {
                    let n = |c: usize| format!("${}", r * 6 + c);
                    format!(
                        "({}, {}, {}, {}, {}, {})",
                        n(1),
                        n(2),
                        n(3),
                        n(4),
                        n(5),
                        n(6)
                    )
                })
                .collect();
            let sql = format!(
                "WITH v (profile_id, name, kids, maturity_rating, avatar, language) AS (VALUES {})
                 UPDATE {profiles} SET name = COALESCE(v.name, {profiles}.name),
                 kids = COALESCE(v.kids, {profiles}.kids),
                 maturity_rating = COALESCE(v.maturity_rating, {profiles}.maturity_rating),
                 avatar = COALESCE(v.avatar, {profiles}.avatar),
                 language = COALESCE(v.language, {profiles}.language)
                 FROM v WHERE {profiles}.profile_id = v.profile_id",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (id, c) in chunk {
                q = q
                    .bind(id.to_string())
                    .bind(c.name.as_ref().map(|n| n.as_str().to_string()))
                    .bind(c.kids.map(i64::from))
                    .bind(c.maturity_rating.map(|m| m.as_str().to_string()))
                    .bind(c.avatar.clone())
                    .bind(c.language.clone());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Marks a profile locked by a PIN, or not.
async fn set_locked(
    conn: &mut AnyConnection,
    t: &Tables,
    profile_id: uuid::Uuid,
    locked: bool,
) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "UPDATE {} SET locked = $1 WHERE profile_id = $2",
        t.name("profiles")
    ))
    .bind(i64::from(locked))
    .bind(profile_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProfileView {
    pub id: String,
    pub profile_id: String,
    pub name: String,
    pub kids: bool,
    pub maturity_rating: String,
    pub avatar: String,
    pub language: String,
    pub created_at: String,
    /// Whether a PIN locks the profile.
    pub locked: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserView {
    pub user_id: String,
    pub account_id: String,
    pub email: Option<String>,
    pub role: String,
    pub phone: Option<String>,
    pub phone_verified: bool,
    pub created_at: String,
}

const PROFILE_COLUMNS: &str =
    "profile_id, name, kids, maturity_rating, avatar, language, created_at, locked";

fn profile_row(r: &sqlx::any::AnyRow) -> ProfileView {
    let id: String = r.get(0);
    ProfileView {
        id: id.clone(),
        profile_id: id,
        name: r.get(1),
        kids: r.get::<i64, _>(2) != 0,
        maturity_rating: r.get(3),
        avatar: r.get(4),
        language: r.get(5),
        created_at: r.get(6),
        locked: r.get::<i64, _>(7) != 0,
    }
}

/// An account's profiles, oldest first.
pub async fn profiles_of(db: &ReadDb, account_id: &str) -> anyhow::Result<Vec<ProfileView>> {
    let rows = sqlx::query(&format!(
        "SELECT {PROFILE_COLUMNS} FROM profiles WHERE account_id = $1 ORDER BY created_position"
    ))
    .bind(account_id.to_string())
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(profile_row).collect())
}

/// One profile, only if it belongs to the account.
pub async fn profile(
    db: &ReadDb,
    account_id: &str,
    profile_id: &str,
) -> anyhow::Result<Option<ProfileView>> {
    let row = sqlx::query(&format!(
        "SELECT {PROFILE_COLUMNS} FROM profiles WHERE account_id = $1 AND profile_id = $2"
    ))
    .bind(account_id.to_string())
    .bind(profile_id.to_string())
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.as_ref().map(profile_row))
}

pub async fn user(db: &ReadDb, user_id: &str) -> anyhow::Result<Option<UserView>> {
    let row = sqlx::query("SELECT user_id, account_id, email, role, phone, phone_verified, created_at FROM users WHERE user_id = $1")
        .bind(user_id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| UserView {
        user_id: r.get(0),
        account_id: r.get(1),
        email: r.get(2),
        role: r.get(3),
        phone: r.get(4),
        phone_verified: r.get::<i64, _>(5) != 0,
        created_at: r.get(6),
    }))
}

/// The user's email address, if the read model holds it.
pub async fn email(db: &ReadDb, user_id: Uuid) -> anyhow::Result<Option<String>> {
    Ok(user(db, &user_id.to_string()).await?.and_then(|u| u.email))
}

/// Every row of every table of the model, in a stable order, for comparing two builds.
pub async fn dump(db: &ReadDb) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (sql, n) in [
        (
            "SELECT user_id, account_id, email, role, phone, phone_verified, created_at FROM users ORDER BY user_id",
            7,
        ),
        (
            "SELECT account_id, owner_user_id, created_at FROM accounts ORDER BY account_id",
            3,
        ),
        (
            "SELECT profile_id, account_id, name, kids, maturity_rating, avatar, language, created_at, created_position, locked FROM profiles ORDER BY profile_id",
            10,
        ),
    ] {
        for r in sqlx::query(sql).fetch_all(&db.pool).await? {
            let cells: Vec<String> = (0..n)
                .map(|i| {
                    r.try_get::<String, _>(i)
                        .or_else(|_| r.try_get::<i64, _>(i).map(|v| v.to_string()))
                        .unwrap_or_else(|_| "NULL".into())
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    Ok(out)
}

/// A signed-in user with their account's profiles.
pub struct Overview {
    /// The account the user belongs to.
    pub account_id: Uuid,
    /// The user.
    pub user: UserView,
    /// The account's profiles.
    pub profiles: Vec<ProfileView>,
}

/// The user and their account's profiles. A signed-in user is in the log: a read model without
/// them has not applied it yet, so it is brought up to the log's head (within `wait`) before
/// answering `None`.
pub async fn overview(
    projections: &crate::Projections,
    user_id: Uuid,
    account_id: Uuid,
    wait: std::time::Duration,
) -> anyhow::Result<Option<Overview>> {
    let db = projections.db();
    let mut found = user(db, &user_id.to_string()).await?;
    if found.is_none() && projections.catch_up_with_log(NAME, wait).await? {
        found = user(db, &user_id.to_string()).await?;
    }
    let Some(user) = found else {
        return Ok(None);
    };
    Ok(Some(Overview {
        account_id,
        user,
        profiles: profiles_of(db, &account_id.to_string()).await?,
    }))
}
