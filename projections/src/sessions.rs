//! Sign-in sessions: which are open and which have ended. A session ends with its own
//! `SessionRevoked`, and also with a credential change of its user (a password change or reset,
//! an erasure): every session started before that event ends with it, whether or not the write
//! side had listed it when it revoked the user's sessions one by one. Both sides compare log
//! positions rather than relying on the order they are applied in, so a model fed from Kafka,
//! where a user's and a session's streams may arrive in either order, ends the same sessions.
//!
//! [`SessionGuard`] keeps, in memory, the sessions that ended recently enough for one of their
//! access tokens to still be unexpired, so checking a token costs no database round trip.

use crate::db::ReadDb;
use crate::runtime::{Projection, Tables};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_domain::RecordedEvent;
use cinelog_domain::envelope::format_time;
use cinelog_domain::session::SessionEvent;
use cinelog_domain::user::UserEvent;
use sqlx::{AnyConnection, Row};
use std::time::Duration;
use uuid::Uuid;

pub const NAME: &str = "sessions";

/// The sessions read model: `sessions` (one row per session, `ended_at` once it ended).
pub struct SessionsProjection;

#[async_trait]
impl Projection for SessionsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [&'static str] {
        &["session", "user"]
    }

    fn version(&self) -> i64 {
        2
    }

    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "sessions",
                "session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, started_at TEXT NOT NULL, started_position BIGINT NOT NULL, ended_at TEXT, end_reason TEXT, ended_position BIGINT",
            ),
            // Users' credential changes: each ends the sessions started before it.
            (
                "credential_cutoffs",
                "user_id TEXT NOT NULL, position BIGINT NOT NULL, at TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (user_id, position)",
            ),
        ]
    }

    fn indexes(&self) -> &'static [&'static str] {
        &[
            "CREATE INDEX sessions_user_{g} ON {sessions} (user_id, ended_at)",
            "CREATE INDEX sessions_ended_{g} ON {sessions} (ended_at)",
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &RecordedEvent,
    ) -> anyhow::Result<()> {
        let at = format_time(e.meta.recorded_at);
        let sessions = t.name("sessions");
        match e.stream_type.as_str() {
            "session" => match serde_json::from_value::<SessionEvent>(e.payload.clone())? {
                SessionEvent::SessionStarted { user_id, .. } => {
                    let cutoffs = t.name("credential_cutoffs");
                    sqlx::query(&format!(
                        "INSERT INTO {sessions} (session_id, user_id, started_at, started_position) VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO NOTHING"
                    ))
                    .bind(e.stream_id.clone())
                    .bind(user_id.to_string())
                    .bind(at)
                    .bind(e.position)
                    .execute(&mut *conn)
                    .await?;
                    // A credential change applied first but logged later ends it at once: the
                    // first one after its start, as in log order.
                    sqlx::query(&format!(
                        "UPDATE {sessions} SET ended_at = c.at, end_reason = c.reason, ended_position = c.position FROM {cutoffs} c
                         WHERE {sessions}.session_id = $1 AND c.user_id = $2
                           AND c.position = (SELECT MIN(position) FROM {cutoffs} WHERE user_id = $2 AND position > $3)
                           AND ({sessions}.ended_position IS NULL OR {sessions}.ended_position > c.position)"
                    ))
                    .bind(e.stream_id.clone())
                    .bind(user_id.to_string())
                    .bind(e.position)
                    .execute(&mut *conn)
                    .await?;
                }
                SessionEvent::SessionRevoked { reason } => {
                    sqlx::query(&format!(
                        "UPDATE {sessions} SET ended_at = $1, end_reason = $2, ended_position = $4
                         WHERE session_id = $3 AND (ended_position IS NULL OR ended_position > $4)"
                    ))
                    .bind(at)
                    .bind(
                        serde_json::to_value(reason)?
                            .as_str()
                            .unwrap_or("revoked")
                            .to_string(),
                    )
                    .bind(e.stream_id.clone())
                    .bind(e.position)
                    .execute(&mut *conn)
                    .await?;
                }
                SessionEvent::SessionRefreshed { .. } => {}
            },
            "user" => {
                let reason = match serde_json::from_value::<UserEvent>(e.payload.clone())? {
                    UserEvent::PasswordChanged { .. } => "credentials_changed",
                    UserEvent::PersonalDataErased => "erased",
                    _ => return Ok(()),
                };
                // Every session this user started before the change ends with it; one applied
                // later but started earlier meets the cutoff when it arrives.
                let cutoffs = t.name("credential_cutoffs");
                sqlx::query(&format!(
                    "UPDATE {sessions} SET ended_at = $1, end_reason = $2, ended_position = $4
                     WHERE user_id = $3 AND started_position < $4
                       AND (ended_position IS NULL OR ended_position > $4)"
                ))
                .bind(&at)
                .bind(reason)
                .bind(e.stream_id.clone())
                .bind(e.position)
                .execute(&mut *conn)
                .await?;
                sqlx::query(&format!(
                    "INSERT INTO {cutoffs} (user_id, position, at, reason) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id, position) DO NOTHING"
                ))
                .bind(e.stream_id.clone())
                .bind(e.position)
                .bind(at)
                .bind(reason)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The user's sessions that have not ended.
pub async fn open_sessions_of(db: &ReadDb, user_id: &str) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query(
        "SELECT session_id FROM sessions WHERE user_id = $1 AND ended_at IS NULL ORDER BY started_at",
    )
    .bind(user_id.to_string())
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Sessions that ended at or after `since`.
pub async fn ended_since(db: &ReadDb, since: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
    Ok(
        sqlx::query("SELECT session_id FROM sessions WHERE ended_at >= $1")
            .bind(format_time(since))
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}

/// This process's view of ended sessions, for refusing their access tokens without a database
/// round trip. It holds a session for as long as one of its access tokens could still be
/// unexpired; [`SessionGuard::refresh`] reads the read model's recent ends (other replicas' and
/// other processes' included) and [`SessionGuard::end`] records this replica's own at once.
pub struct SessionGuard {
    ended: moka::sync::Cache<Uuid, ()>,
    /// How far back an end still matters: the access-token lifetime plus clock leeway.
    horizon: Duration,
}

impl SessionGuard {
    pub fn new(access_token_ttl: Duration) -> Self {
        let horizon = access_token_ttl + Duration::from_secs(60);
        Self {
            ended: moka::sync::Cache::builder().time_to_live(horizon).build(),
            horizon,
        }
    }

    /// Whether the session has ended.
    pub fn is_ended(&self, session_id: Uuid) -> bool {
        self.ended.contains_key(&session_id)
    }

    /// Records sessions this process just ended.
    pub fn end(&self, sessions: &[Uuid]) {
        for s in sessions {
            self.ended.insert(*s, ());
        }
    }

    /// Reads the sessions that ended within the horizon from the read model.
    pub async fn refresh(&self, db: &ReadDb, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let since = now - chrono::Duration::from_std(self.horizon)?;
        let ended = ended_since(db, since).await?;
        for id in &ended {
            if let Ok(id) = Uuid::parse_str(id)
                && !self.ended.contains_key(&id)
            {
                self.ended.insert(id, ());
            }
        }
        Ok(ended.len())
    }
}
