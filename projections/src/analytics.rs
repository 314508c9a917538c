//! SQL for analysts (Postgres): a read-only `analytics` schema of views over the log (one row
//! per event, credentials removed, personal data left sealed) and over the main read models
//! (each projection names its own; they are made again whenever its generation is swapped), and
//! roles that can read that schema and nothing else.

use crate::db::ReadDb;

/// The schema analysts' tools connect to.
pub const SCHEMA: &str = "analytics";

/// The log, one row per event. Password, PIN, reset-token and refresh-token hashes are removed from
/// payloads; sealed email and phone values stay ciphertext.
const EVENTS_VIEW: &str = "CREATE OR REPLACE VIEW analytics.events AS
SELECT e.position,
       e.recorded_at,
       e.aggregate_type AS stream_type,
       e.aggregate_id AS stream_id,
       e.sequence AS version,
       e.event_type,
       e.event_version AS schema_version,
       (e.metadata ->> 'event_id')::uuid AS event_id,
       (e.metadata ->> 'correlation_id')::uuid AS correlation_id,
       (e.metadata ->> 'causation_id')::uuid AS causation_id,
       e.metadata ->> 'actor' AS actor,
       e.metadata ->> 'hash' AS hash,
       CASE WHEN jsonb_typeof(e.payload::jsonb) = 'object' THEN e.payload::jsonb
         #- '{UserRegistered,password_hash}' #- '{PasswordChanged,password_hash}'
         #- '{PasswordResetRequested,token_hash}' #- '{SessionStarted,refresh_hash}'
         #- '{SessionRefreshed,refresh_hash}' #- '{ProfilePinSet,pin_hash}'
       ELSE e.payload::jsonb END AS payload
FROM events e";

/// Creates the schema, the log's view and the read models' views where they are missing
/// (idempotent; run at every start on Postgres). A swap makes a read model's views again.
pub async fn install(db: &ReadDb, views: &[(&str, &str)]) -> anyhow::Result<()> {
    if db.sqlite {
        return Ok(());
    }
    // Several processes may start at once: a transaction-wide lock lets one create at a time.
    let mut tx = db.pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7270425901)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE SCHEMA IF NOT EXISTS analytics")
        .execute(&mut *tx)
        .await?;
    sqlx::query(EVENTS_VIEW).execute(&mut *tx).await?;
    for (name, select) in views {
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_views WHERE schemaname = 'analytics' AND viewname = $1",
        )
        .bind(name.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if exists == 0 {
            sqlx::query(&format!("CREATE VIEW analytics.{name} AS {select}"))
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A Postgres identifier, quoted.
fn ident(name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "a role name is 1 to 63 letters, digits or underscores"
    );
    Ok(format!("\"{name}\""))
}

/// Creates (or updates) a login role that can read the `analytics` schema and nothing else:
/// no raw tables, no writes, and its sessions are read-only. Views made later (a read model's
/// next generation) are readable too.
pub async fn grant(db: &ReadDb, role: &str, password: Option<&str>) -> anyhow::Result<()> {
    anyhow::ensure!(
        !db.sqlite,
        "the analytics schema needs Postgres (--database-url postgres://…)"
    );
    install(db, &[]).await?;
    let role = ident(role)?;
    let mut tx = db.pool.begin().await?;
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_roles WHERE rolname = $1")
        .bind(role.trim_matches('"').to_string())
        .fetch_one(&mut *tx)
        .await?;
    let password = match password {
        Some(p) => format!(" PASSWORD '{}'", p.replace('\'', "''")),
        None => String::new(),
    };
    let verb = if exists == 0 { "CREATE" } else { "ALTER" };
    sqlx::query(&format!(
        "{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT{password}"
    ))
    .execute(&mut *tx)
    .await?;
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *tx)
        .await?;
    for statement in [
        format!("GRANT CONNECT ON DATABASE \"{database}\" TO {role}"),
        format!("GRANT USAGE ON SCHEMA analytics TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO {role}"),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO {role}"),
        format!("REVOKE CREATE ON SCHEMA public FROM {role}"),
        format!("ALTER ROLE {role} SET default_transaction_read_only = on"),
    ] {
        sqlx::query(&statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The views in the `analytics` schema.
pub async fn views(db: &ReadDb) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT viewname::text FROM pg_views WHERE schemaname = 'analytics' ORDER BY viewname",
    )
    .fetch_all(&db.pool)
    .await?)
}
