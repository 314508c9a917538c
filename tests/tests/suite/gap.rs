//! The late-commit gap: a writer that took a lower position but commits last must not be
//! skipped by a projection that already saw the higher position.

use chrono::{SubsecRound, Utc};
use cinelog_commands::{CommandMeta, EventStore, StreamHead};
use cinelog_domain::account::{Account, AccountEvent};
use cinelog_domain::envelope::{GENESIS_HASH, HashInput};
use cinelog_domain::{Actor, EventMeta};
use cinelog_infra::Store;
use cinelog_projections::accounts::AccountsProjection;
use cinelog_projections::{Checkpoint, EventLog, Projections, ReadDb};
use cinelog_tests::{fresh_pg_database, whole_log};
use sqlx::Connection;
use std::sync::Arc;
use uuid::Uuid;

/// Inserts an AccountOpened event the way the store does, inside a transaction the caller holds.
async fn insert_open_account(tx: &mut sqlx::PgConnection, account_id: &str) -> i64 {
    let payload = serde_json::to_value(AccountEvent::AccountOpened {
        owner: Uuid::now_v7(),
    })
    .unwrap();
    let (event_id, correlation_id, actor, recorded_at) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Actor::System,
        Utc::now().trunc_subsecs(6),
    );
    let hash = HashInput {
        prev_hash: GENESIS_HASH,
        stream_type: "account",
        stream_id: account_id,
        version: 1,
        event_type: "AccountOpened",
        schema_version: "1",
        payload: &payload,
        event_id,
        correlation_id,
        causation_id: None,
        actor: &actor,
        recorded_at,
    }
    .hash();
    let meta = EventMeta {
        event_id,
        correlation_id,
        causation_id: None,
        actor,
        recorded_at,
        hash,
        prev_hash: GENESIS_HASH.into(),
    };
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('account', $1, 1, 'AccountOpened', '1', $2, $3) RETURNING position",
    )
    .bind(account_id)
    .bind(payload)
    .bind(serde_json::to_value(meta).unwrap())
    .fetch_one(tx)
    .await
    .unwrap()
}

#[tokio::test]
async fn projection_waits_for_a_late_commit_and_sees_both_events_in_order() {
    let url = fresh_pg_database().await;
    let store = Store::open_postgres(&url, 4).await.unwrap();
    let read = ReadDb::connect(&url, 4).await.unwrap();
    let projections = Projections::new(
        read.clone(),
        Arc::new(store.clone()),
        vec![Arc::new(AccountsProjection {
            pii: Arc::new(cinelog_infra::vault::KeyVault::new(store.clone())),
        })],
    );
    projections.setup().await.unwrap();

    // Writer A takes the lower position and holds its transaction open.
    let (slow_id, fast_id) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let mut slow = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut slow_tx = slow.begin().await.unwrap();
    let slow_position = insert_open_account(&mut slow_tx, &slow_id).await;

    // Writer B takes a higher position and commits first.
    let meta = CommandMeta::new(Actor::System);
    let fast = store
        .append::<Account>(
            &fast_id,
            &StreamHead::default(),
            &[AccountEvent::AccountOpened {
                owner: Uuid::now_v7(),
            }],
            &meta,
        )
        .await
        .unwrap();
    assert!(
        fast.position > slow_position,
        "the committed event has the higher position"
    );

    // A reader ordered by position alone would now pass the slow writer's position for good.
    let committed: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
        .fetch_all(store.pg_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(committed, [fast.position]);

    // The log reader holds back instead, and the projection's checkpoint does not move.
    assert!(
        store
            .read_after(Checkpoint::START, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(projections.catch_up("accounts").await.unwrap(), 0);
    let status = projections.status().await.unwrap();
    assert_eq!(
        status[0].position, 0,
        "checkpoint stayed before the uncommitted event"
    );
    assert!(
        !projections
            .wait_for(
                "accounts",
                fast.position,
                std::time::Duration::from_millis(300)
            )
            .await
            .unwrap()
    );

    slow_tx.commit().await.unwrap();

    let log = whole_log(&store).await;
    assert_eq!(
        log.iter().map(|e| e.position).collect::<Vec<_>>(),
        [slow_position, fast.position],
        "both, in commit-safe order"
    );
    assert_eq!(projections.catch_up("accounts").await.unwrap(), 2);
    let accounts: Vec<String> =
        sqlx::query_scalar("SELECT account_id FROM accounts ORDER BY account_id")
            .fetch_all(&read.pool)
            .await
            .unwrap();
    let mut expected = vec![slow_id, fast_id];
    expected.sort();
    assert_eq!(accounts, expected);
    assert!(
        projections
            .wait_for("accounts", fast.position, std::time::Duration::from_secs(1))
            .await
            .unwrap()
    );
    assert!(
        projections
            .wait_for("accounts", slow_position, std::time::Duration::from_secs(1))
            .await
            .unwrap()
    );
}

/// The log reader walks the `(tx, position)` index in order: no sort of the whole tail per
/// batch, however long the log.
#[tokio::test]
async fn the_postgres_log_read_walks_its_index_without_sorting() {
    let url = fresh_pg_database().await;
    let _store = Store::open_postgres(&url, 2).await.expect("store");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // Enough rows that a plan is a real choice; the planner is told to avoid a plain scan so the
    // only way to the order without a Sort is the index.
    for i in 0..200 {
        let mut tx = conn.begin().await.unwrap();
        insert_open_account(&mut tx, &format!("plan-{i}")).await;
        tx.commit().await.unwrap();
    }
    sqlx::query("ANALYZE events")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN {}",
        cinelog_infra::store::pg_read_after()
            .replace("$1::text::xid8", "'0'::xid8")
            .replace("$2", "0")
            .replace("$3", "500")
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("events_log_order"), "{plan}");
    assert!(
        !plan.contains("Sort"),
        "the read sorts instead of walking the index:\n{plan}"
    );
}
