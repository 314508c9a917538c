//! The event-store contract, run against every backend.

use cinelog_commands::{CommandMeta, EventStore, StoreError, StreamHead};
use cinelog_domain::Actor;
use cinelog_domain::account::{Account, AccountEvent};
use cinelog_domain::envelope::GENESIS_HASH;
use cinelog_infra::Store;
use cinelog_projections::{Checkpoint, EventLog};
use cinelog_tests::{TempDir, fresh_pg_database, whole_log};
use uuid::Uuid;

async fn stores() -> Vec<(&'static str, Store, TempDir)> {
    let dir = TempDir::new();
    let sqlite = Store::open_sqlite(&dir.0.join("events.db"))
        .await
        .expect("sqlite store");
    let pg = Store::open_postgres(&fresh_pg_database().await, 4)
        .await
        .expect("postgres store");
    vec![("sqlite", sqlite, dir), ("postgres", pg, TempDir::new())]
}

fn opened() -> AccountEvent {
    AccountEvent::AccountOpened {
        owner: Uuid::now_v7(),
    }
}

fn meta() -> CommandMeta {
    CommandMeta {
        actor: Actor::User(Uuid::now_v7()),
        correlation_id: Uuid::now_v7(),
        causation_id: Some(Uuid::now_v7()),
    }
}

#[tokio::test]
async fn append_respects_the_expected_version() {
    for (name, store, _dir) in stores().await {
        expected_version_is_respected(name, &store).await;
    }
}

/// A stale expected version loses with a typed error and writes nothing.
pub(crate) async fn expected_version_is_respected(name: &str, store: &Store) {
    {
        let id = Uuid::now_v7().to_string();
        let fresh = store.load::<Account>(&id).await.unwrap();
        assert_eq!(fresh.head, StreamHead::default(), "{name}");

        let first = store
            .append::<Account>(&id, &fresh.head, &[opened()], &meta())
            .await
            .unwrap();
        assert_eq!(first.version, 1, "{name}");
        assert!(first.position > 0, "{name}");

        // A second writer that loaded the same (now stale) head loses, with a typed error.
        let stale = store
            .append::<Account>(&id, &fresh.head, &[opened()], &meta())
            .await;
        assert!(
            matches!(stale, Err(StoreError::Conflict)),
            "{name}: {stale:?}"
        );

        let loaded = store.load::<Account>(&id).await.unwrap();
        assert_eq!(loaded.head.version, 1, "{name}");
        assert_eq!(loaded.head.position, first.position, "{name}");
        assert!(loaded.state.owner.is_some(), "{name}");
        let history = store.read_stream("account", &id).await.unwrap();
        assert_eq!(history.len(), 1, "{name}: the losing append wrote nothing");
    }
}

#[tokio::test]
async fn global_log_reads_in_order_with_envelope_and_hash_chain() {
    for (name, store, _dir) in stores().await {
        global_log_is_ordered_and_chained(name, &store).await;
    }
}

/// The global log reads back in order, with envelopes, hash chains, limits, backlog and
/// checkpoints.
pub(crate) async fn global_log_is_ordered_and_chained(name: &str, store: &Store) {
    {
        let streams: Vec<String> = (0..3).map(|_| Uuid::now_v7().to_string()).collect();
        let m = meta();
        let mut positions = Vec::new();
        for id in &streams {
            let head = store.load::<Account>(id).await.unwrap().head;
            positions.push(
                store
                    .append::<Account>(id, &head, &[opened()], &m)
                    .await
                    .unwrap()
                    .position,
            );
        }
        // Two more events on the first stream, in one append.
        let head = store.load::<Account>(&streams[0]).await.unwrap().head;
        let created = AccountEvent::ProfileDeleted {
            profile_id: Uuid::nil(),
        };
        let two = store
            .append::<Account>(&streams[0], &head, &[created.clone(), created], &m)
            .await
            .unwrap();
        assert_eq!(two.version, 3, "{name}");

        let log = whole_log(store).await;
        assert_eq!(log.len(), 5, "{name}");
        assert!(
            log.windows(2)
                .all(|w| Checkpoint::of(&w[0]) < Checkpoint::of(&w[1])),
            "{name}: log order"
        );
        assert_eq!(
            log.iter().take(3).map(|e| e.position).collect::<Vec<_>>(),
            positions,
            "{name}"
        );
        assert_eq!(log[4].position, two.position, "{name}");
        for e in &log {
            assert_eq!(e.meta.actor, m.actor, "{name}");
            assert_eq!(e.meta.correlation_id, m.correlation_id, "{name}");
            assert_eq!(e.meta.causation_id, m.causation_id, "{name}");
            assert_eq!(
                e.meta.event_id.get_version_num(),
                7,
                "{name}: event ids are UUIDv7"
            );
            assert_eq!(e.computed_hash(), e.meta.hash, "{name}: hash round-trips");
            assert_eq!(e.schema_version, "1");
        }
        let chain = store.read_stream("account", &streams[0]).await.unwrap();
        assert_eq!(chain[0].meta.prev_hash, GENESIS_HASH, "{name}");
        assert_eq!(chain[1].meta.prev_hash, chain[0].meta.hash, "{name}");
        assert_eq!(chain[2].meta.prev_hash, chain[1].meta.hash, "{name}");
        assert_eq!(
            chain.iter().map(|e| e.version).collect::<Vec<_>>(),
            [1, 2, 3],
            "{name}"
        );

        let after_two = store
            .read_after(Checkpoint::of(&log[1]), 100)
            .await
            .unwrap();
        assert_eq!(
            after_two.iter().map(|e| e.position).collect::<Vec<_>>(),
            log[2..].iter().map(|e| e.position).collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(
            store.read_after(Checkpoint::START, 2).await.unwrap().len(),
            2,
            "{name}: limit"
        );
        let (backlog, oldest) = store.backlog(Checkpoint::of(&log[2])).await.unwrap();
        assert_eq!(backlog, 2, "{name}");
        assert!(oldest.is_some(), "{name}");
        assert_eq!(
            store.checkpoint_of(log[3].position).await.unwrap(),
            Some(Checkpoint::of(&log[3])),
            "{name}"
        );
    }
}

#[tokio::test]
async fn stored_events_cannot_be_changed_or_deleted() {
    let (_, pg, _) = stores().await.pop().expect("postgres");
    let id = Uuid::now_v7().to_string();
    pg.append::<Account>(&id, &StreamHead::default(), &[opened()], &meta())
        .await
        .unwrap();
    let pool = pg.pg_pool().expect("pg");
    assert!(
        sqlx::query("UPDATE events SET payload = '{}'")
            .execute(pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM events")
            .execute(pool)
            .await
            .is_err()
    );

    let dir = TempDir::new();
    let path = dir.0.join("events.db");
    let sqlite = Store::open_sqlite(&path).await.unwrap();
    sqlite
        .append::<Account>(&id, &StreamHead::default(), &[opened()], &meta())
        .await
        .unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(
        sqlx::query("UPDATE events SET payload = '{}'")
            .execute(&pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM events")
            .execute(&pool)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn two_store_instances_over_one_database_see_each_others_appends() {
    let dir = TempDir::new();
    let pg_url = fresh_pg_database().await;
    let pairs = [
        (
            Store::open_sqlite(&dir.0.join("events.db")).await.unwrap(),
            Store::open_sqlite(&dir.0.join("events.db")).await.unwrap(),
        ),
        (
            Store::open_postgres(&pg_url, 4).await.unwrap(),
            Store::open_postgres(&pg_url, 4).await.unwrap(),
        ),
    ];
    for (a, b) in pairs {
        replicas_see_each_other(&a, &b).await;
    }
}

/// `b`, another replica, appends behind `a`'s back: `a` neither misses it nor appends over it.
pub(crate) async fn replicas_see_each_other(a: &Store, b: &Store) {
    {
        let id = Uuid::now_v7().to_string();
        let loaded = a.load::<Account>(&id).await.unwrap();
        a.append::<Account>(&id, &loaded.head, &[opened()], &meta())
            .await
            .unwrap();
        // `a` now holds the stream in memory; `b` (another replica) appends behind its back.
        let at_b = b.load::<Account>(&id).await.unwrap();
        let profile_id = Uuid::now_v7();
        let created = AccountEvent::ProfileDeleted { profile_id };
        b.append::<Account>(&id, &at_b.head, &[created], &meta())
            .await
            .unwrap();
        // `a` must neither miss b's event nor append over it.
        let at_a = a.load::<Account>(&id).await.unwrap();
        assert_eq!(at_a.head.version, 2, "{}", a.backend_name());
        let stale = a
            .append::<Account>(&id, &loaded.head, &[opened()], &meta())
            .await;
        assert!(
            matches!(stale, Err(StoreError::Conflict)),
            "{}",
            a.backend_name()
        );
        let chain = b.read_stream("account", &id).await.unwrap();
        assert_eq!(chain[1].meta.prev_hash, chain[0].meta.hash);
    }
}

/// A long stream is loaded from its newest snapshot and the events after it; a snapshot folded
/// by another build of the domain is not trusted, and the stream is read from its start.
#[tokio::test]
async fn a_long_stream_loads_from_its_snapshot_unless_another_build_folded_it() {
    sqlx::any::install_default_drivers();
    let dir = TempDir::new();
    let path = dir.0.join("events.db");
    let backends = [
        ("sqlite", format!("sqlite://{}", path.display())),
        ("postgres", fresh_pg_database().await),
    ];
    for (name, url) in backends {
        let open = || async {
            if name == "sqlite" {
                Store::open_sqlite(&path).await.unwrap()
            } else {
                Store::open_postgres(&url, 4).await.unwrap()
            }
        };
        let store = open().await;
        let id = Uuid::now_v7().to_string();
        let meta = CommandMeta::new(Actor::System);
        let mut owner = None;
        for _ in 0..250 {
            let head = store.load_for_append::<Account>(&id).await.unwrap().head;
            let opened = Uuid::now_v7();
            let event = AccountEvent::AccountOpened { owner: opened };
            store
                .append::<Account>(&id, &head, &[event], &meta)
                .await
                .unwrap();
            owner = Some(opened);
        }
        let raw = sqlx::AnyPool::connect(&url).await.unwrap();
        let (text, json) = if name == "sqlite" {
            ("payload", "$1")
        } else {
            ("payload::text", "$1::json")
        };
        // Written in the background: wait for the one at version 200.
        let newest = format!(
            "SELECT last_sequence, {text} FROM snapshots WHERE aggregate_id = $1 ORDER BY last_sequence DESC LIMIT 1"
        );
        let mut snapshot = None;
        for _ in 0..1000 {
            snapshot = sqlx::query_as::<_, (i64, String)>(&newest)
                .bind(&id)
                .fetch_optional(&raw)
                .await
                .unwrap()
                .filter(|(version, _)| *version == 200);
            if snapshot.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let (_, payload) = snapshot.unwrap_or_else(|| panic!("{name}: no snapshot at 200"));

        // A process that has not cached the stream.
        let whole = open().await.load::<Account>(&id).await.unwrap();
        assert_eq!(whole.state.owner, owner, "{name}");
        assert_eq!(whole.head.version, 250, "{name}");
        let last = whole_log(&store).await.into_iter().last().unwrap();
        assert_eq!(
            (whole.head.hash.as_str(), whole.head.position),
            (last.meta.hash.as_str(), last.position),
            "{name}: the head continues the hash chain"
        );

        // Marked, the snapshot shows in what a load folds: it was read, then the 50 events after it.
        let mut marked: serde_json::Value = serde_json::from_str(&payload).unwrap();
        marked["state"]["pins"] =
            serde_json::json!({ Uuid::nil().to_string(): "from the snapshot" });
        sqlx::query(&format!(
            "UPDATE snapshots SET payload = {json} WHERE aggregate_id = $2"
        ))
        .bind(marked.to_string())
        .bind(&id)
        .execute(&raw)
        .await
        .unwrap();
        let through = open().await.load::<Account>(&id).await.unwrap();
        assert_eq!(
            through.state.pins.get(&Uuid::nil()).map(String::as_str),
            Some("from the snapshot"),
            "{name}"
        );
        assert_eq!(through.state.owner, owner, "{name}");
        assert_eq!(through.head, whole.head, "{name}");

        // Ignored, the stream is read from its start: a snapshot ahead of the log (a log
        // restored on its own), then one of another build.
        for (case, change) in [
            (
                "ahead",
                "UPDATE snapshots SET last_sequence = 1000 WHERE aggregate_id = $1",
            ),
            (
                "another build",
                "UPDATE snapshots SET current_snapshot = 0 WHERE aggregate_id = $1",
            ),
        ] {
            sqlx::query(change).bind(&id).execute(&raw).await.unwrap();
            let read = open().await.load::<Account>(&id).await.unwrap();
            assert!(
                read.state.pins.is_empty(),
                "{name} {case}: {:?}",
                read.state.pins
            );
            assert_eq!(read.state.owner, owner, "{name} {case}");
            assert_eq!(read.head, whole.head, "{name} {case}");
        }
    }
}
