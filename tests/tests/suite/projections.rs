//! The projection runtime: rebuild equals live, and concurrent runners apply each event once.

use cinelog_infra::Store;
use cinelog_projections::{EventLog, Projections, ReadDb, accounts};
use cinelog_tests::{
    Backend, Counter, TempDir, TestApp, fresh_pg_database, open_accounts, whole_log,
};
use serde_json::json;
use std::sync::Arc;

/// Drives a varied history through the API: signups, profiles created, renamed, deleted, phones.
async fn busy_history(app: &TestApp) -> i64 {
    let mut last = 0;
    for i in 0..4 {
        let (token, _) = app.signup_login(&format!("user{i}@example.com")).await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let a = app
                .post(
                    "/api/profiles",
                    json!({"name": format!("p{n}"), "kids": n == 2}),
                    Some(&token),
                )
                .await;
            ids.push(a.body["profile_id"].as_str().unwrap().to_string());
            last = a.body["position"].as_i64().unwrap();
        }
        // Edits of one profile in a row: a rebuild merges them in one batch, the live follower
        // takes them in whatever batches they arrive in; both must end the same.
        for edit in [
            json!({"name": "renamed", "language": "pt-BR"}),
            json!({"avatar": "teal"}),
            json!({"name": "renamed again", "maturity_rating": "13+"}),
        ] {
            let a = app
                .call(
                    reqwest::Method::PATCH,
                    &format!("/api/profiles/{}", ids[0]),
                    Some(edit),
                    Some(&token),
                )
                .await;
            assert_eq!(a.status, 200, "{:?}", a.body);
        }
        let a = app
            .call(
                reqwest::Method::DELETE,
                &format!("/api/profiles/{}", ids[1]),
                None,
                Some(&token),
            )
            .await;
        assert_eq!(a.status, 204);
        assert_eq!(
            app.post(
                "/api/auth/phone/start",
                json!({"phone": format!("+1415555010{i}")}),
                Some(&token)
            )
            .await
            .status,
            202
        );
    }
    last
}

#[tokio::test]
async fn rebuild_from_zero_equals_the_live_read_model() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        rebuild_equals_live(backend).await;
    }
}

/// A rebuild from the start of the log equals the live read model, and the follower carries on.
pub(crate) async fn rebuild_equals_live(backend: Backend) {
    {
        let app = TestApp::spawn(backend).await;
        let last = busy_history(&app).await;
        let projections = &app.running.state.projections;
        assert!(
            projections
                .wait_for(accounts::NAME, last, std::time::Duration::from_secs(10))
                .await
                .unwrap()
        );
        assert!(
            projections
                .catch_up_with_log(accounts::NAME, std::time::Duration::from_secs(10))
                .await
                .unwrap(),
            "{backend:?}: the live read model reaches the log's head"
        );
        let live = accounts::dump(projections.db()).await.unwrap();
        assert!(live.len() > 10, "{backend:?}: the model has content");
        assert!(
            live.iter()
                .any(|row| ["renamed again|", "pt-BR", "teal", "13+"]
                    .iter()
                    .all(|part| row.contains(part))),
            "{backend:?}: every edit applied, the later one of a field winning: {live:?}"
        );

        let before = projections.status().await.unwrap()[0].generation;
        let generation = projections
            .rebuild(accounts::NAME)
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: rebuild failed: {e:#}"));
        assert_eq!(generation, before + 1, "{backend:?}");
        let rebuilt = accounts::dump(projections.db()).await.unwrap();
        assert_eq!(
            rebuilt, live,
            "{backend:?}: rebuilt read model differs from the live one"
        );

        // The live follower carries on with the new generation.
        let (token, _) = app.signup_login("after-rebuild@example.com").await;
        let a = app
            .post("/api/profiles", json!({"name": "late"}), Some(&token))
            .await;
        let p = a.body["position"]
            .as_i64()
            .unwrap_or_else(|| panic!("{backend:?}: {a:?}"));
        let listed = app
            .get(&format!("/api/profiles?min_position={p}"), Some(&token))
            .await;
        assert_eq!(
            listed.body.as_array().map(Vec::len),
            Some(1),
            "{backend:?}: {:?}",
            listed.body
        );
        app.stop();
    }
}

#[tokio::test]
async fn concurrent_runners_apply_every_event_exactly_once() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        runners_apply_each_event_once(backend).await;
    }
}

/// Four runners racing over one log and read model apply each event exactly once.
pub(crate) async fn runners_apply_each_event_once(backend: Backend) {
    {
        let dir = TempDir::new();
        let (store, read_url) = match backend {
            Backend::Sqlite => (
                Store::open_sqlite(&dir.0.join("events.db")).await.unwrap(),
                format!("sqlite://{}?mode=rwc", dir.0.join("read.db").display()),
            ),
            Backend::Postgres => {
                let url = fresh_pg_database().await;
                (Store::open_postgres(&url, 8).await.unwrap(), url)
            }
            Backend::Kurrent => {
                let url = fresh_pg_database().await;
                let store = Store::open_postgres(&url, 8).await.unwrap();
                let log = cinelog_tests::kurrent::start_for_test().await;
                (store.on_kurrent(&log).await.unwrap(), url)
            }
        };
        open_accounts(&store, 1200).await;
        // Every event readable before the race starts: a transaction elsewhere on the server
        // may hold the newest back for a moment.
        assert_eq!(whole_log(&store).await.len(), 1200);
        let read = ReadDb::connect(&read_url, 8).await.unwrap();
        let log: Arc<dyn EventLog> = Arc::new(store.clone());
        let first = Projections::new(
            read.clone(),
            log.clone(),
            vec![Arc::new(Counter { version: 1 })],
        );
        first.setup().await.unwrap();
        // Four runners (as if four processes) race over the same log and read model.
        let runners: Vec<_> = (0..4)
            .map(|_| {
                let p = Projections::new(
                    read.clone(),
                    log.clone(),
                    vec![Arc::new(Counter { version: 1 })],
                );
                tokio::spawn(async move { p.catch_up("counter").await.unwrap() })
            })
            .collect();
        let applied: usize = futures::future::join_all(runners)
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
        let n: i64 = sqlx::query_scalar("SELECT n FROM event_counts WHERE id = 1")
            .fetch_one(&read.pool)
            .await
            .unwrap();
        assert_eq!(
            n, 1200,
            "{backend:?}: events applied {n} times in the read model"
        );
        assert_eq!(applied, 1200, "{backend:?}: runners reported {applied}");
        // Redelivery: catching up again applies nothing.
        assert_eq!(first.catch_up("counter").await.unwrap(), 0);
        let (lag, _) = store
            .backlog(cinelog_projections::Checkpoint { tx: 0, position: 0 })
            .await
            .unwrap();
        assert_eq!(lag, 1200);
    }
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = TempDir::new();
    let settings = cinelog_tests::settings_for(Backend::Sqlite, &dir).await;
    let app = TestApp::spawn_with(settings.clone(), TempDir::new(), Default::default()).await;
    let (token, _) = app.signup_login("restart@example.com").await;
    let mut last = 0;
    for name in ["a", "b"] {
        last = app
            .post("/api/profiles", json!({"name": name}), Some(&token))
            .await
            .body["position"]
            .as_i64()
            .unwrap();
    }
    assert_eq!(
        app.get(&format!("/api/profiles?min_position={last}"), Some(&token))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    app.stop();
    drop(app);

    let again = TestApp::spawn_with(settings, TempDir::new(), Default::default()).await;
    let (token, _) = again
        .login("restart@example.com", "Corr3ct-horse-battery")
        .await;
    let listed = again.get("/api/profiles", Some(&token)).await;
    let names: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    again.stop();
}

#[tokio::test]
async fn a_new_projection_version_rebuilds_beside_the_live_one_and_takes_over() {
    let dir = TempDir::new();
    let store = Store::open_sqlite(&dir.0.join("events.db")).await.unwrap();
    let read = ReadDb::connect(
        &format!("sqlite://{}?mode=rwc", dir.0.join("read.db").display()),
        4,
    )
    .await
    .unwrap();
    open_accounts(&store, 300).await;
    let log: Arc<dyn EventLog> = Arc::new(store.clone());
    let v1 = Projections::new(
        read.clone(),
        log.clone(),
        vec![Arc::new(Counter { version: 1 })],
    );
    v1.setup().await.unwrap();
    v1.catch_up("counter").await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT n FROM event_counts WHERE id = 1")
            .fetch_one(&read.pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 300);

    // The next release ships version 2: its follower rebuilds beside version 1, then swaps.
    let v2 = Projections::new(read.clone(), log, vec![Arc::new(Counter { version: 2 })]);
    // Until its rebuild runs, version 2 leaves version 1's tables alone, and a wait for them to
    // reach the log's head answers at once that they will not, however long it may wait.
    open_accounts(&store, 10).await;
    assert!(
        !v2.catch_up_with_log("counter", std::time::Duration::from_secs(3600))
            .await
            .unwrap()
    );
    assert_eq!(count().await, 300);
    let followers = v2.spawn_followers();
    open_accounts(&store, 10).await;
    let generations = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT generation FROM projection_state WHERE name = 'counter'",
        )
        .fetch_all(&read.pool)
        .await
        .unwrap()
    };
    let mut status = v2.status().await.unwrap();
    for _ in 0..300 {
        if status[0].version == 2 && status[0].lag_events == 0 && generations().await == [2] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        status = v2.status().await.unwrap();
    }
    assert_eq!(
        (status[0].version, status[0].generation),
        (2, 2),
        "{status:?}"
    );
    assert_eq!(
        count().await,
        320,
        "the new generation counted every event exactly once"
    );
    assert_eq!(generations().await, [2], "the old generation is gone");
    followers.iter().for_each(|f| f.abort());
}

/// Counts session events only: account events pass it by.
struct SessionCounter;

#[async_trait::async_trait]
impl cinelog_projections::Projection for SessionCounter {
    fn name(&self) -> &'static str {
        "session_counter"
    }
    fn version(&self) -> i64 {
        1
    }
    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[("session_counts", "id BIGINT PRIMARY KEY, n BIGINT NOT NULL")]
    }
    fn streams(&self) -> &'static [&'static str] {
        &["session"]
    }
    async fn apply(
        &self,
        conn: &mut sqlx::AnyConnection,
        t: &cinelog_projections::Tables,
        _: &cinelog_domain::RecordedEvent,
    ) -> anyhow::Result<()> {
        cinelog_tests::count_one(conn, &t.name("session_counts")).await
    }
}

async fn start_session(store: &Store) {
    use cinelog_commands::store::EventStore;
    let meta = cinelog_commands::CommandMeta::new(cinelog_domain::Actor::System);
    let event = cinelog_domain::session::SessionEvent::SessionStarted {
        user_id: uuid::Uuid::now_v7(),
        refresh_hash: "h".into(),
        expires_at: chrono::Utc::now(),
        credentials_version: 1,
    };
    store
        .append::<cinelog_domain::session::Session>(
            &uuid::Uuid::now_v7().to_string(),
            &Default::default(),
            &[event],
            &meta,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_follower_passes_events_it_does_not_read_and_keeps_its_place() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let dir = TempDir::new();
        let (store, read_url) = match backend {
            Backend::Postgres => {
                let url = fresh_pg_database().await;
                (Store::open_postgres(&url, 8).await.unwrap(), url)
            }
            _ => (
                Store::open_sqlite(&dir.0.join("events.db")).await.unwrap(),
                format!("sqlite://{}?mode=rwc", dir.0.join("read.db").display()),
            ),
        };
        let read = ReadDb::connect(&read_url, 8).await.unwrap();
        let log: Arc<dyn EventLog> = Arc::new(store.clone());
        let here = Projections::new(read.clone(), log.clone(), vec![Arc::new(SessionCounter)]);
        here.setup().await.unwrap();
        let followers = here.spawn_followers();
        // Another process that only reads: it sees what the database holds.
        let elsewhere = Projections::new(read.clone(), log.clone(), vec![Arc::new(SessionCounter)]);
        let wait = std::time::Duration::from_secs(30);

        start_session(&store).await;
        open_accounts(&store, 300).await;
        let head = log.head().await.unwrap();
        assert!(
            here.wait_for("session_counter", head, wait).await.unwrap(),
            "{backend:?}: the follower passed the account events"
        );
        // The place is written even though nothing else arrives.
        assert!(
            elsewhere
                .wait_for("session_counter", head, wait)
                .await
                .unwrap(),
            "{backend:?}: the place reached the database"
        );
        let status = elsewhere.status().await.unwrap();
        assert_eq!(status[0].lag_events, 0, "{backend:?}: {status:?}");

        // A session event among passed-by ones is applied once, after them.
        open_accounts(&store, 50).await;
        start_session(&store).await;
        open_accounts(&store, 50).await;
        let head = log.head().await.unwrap();
        assert!(
            elsewhere
                .wait_for("session_counter", head, wait)
                .await
                .unwrap()
        );
        let n: i64 = sqlx::query_scalar("SELECT n FROM session_counts WHERE id = 1")
            .fetch_one(&read.pool)
            .await
            .unwrap();
        assert_eq!(n, 2, "{backend:?}: session events applied");
        for f in followers {
            f.abort();
        }
    }
}
