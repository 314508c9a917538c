//! The log on KurrentDB, through the official `kurrentdb` client against the fake server of
//! `cinelog_tests::kurrent` (KurrentDB's own gRPC protocol): the store contract, the projection
//! runtime, auditors' reads and one whole viewer's flow through the API, as on SQLite and
//! Postgres; and the fake's answers as the protocol documents them.

use crate::{audit, browser, contract, projections};
use cinelog_commands::{CommandMeta, EventStore, StoreError, StreamHead};
use cinelog_domain::Actor;
use cinelog_domain::account::{Account, AccountEvent};
use cinelog_infra::Store;
use cinelog_projections::{Checkpoint, EventLog, Projections, ReadDb};
use cinelog_tests::kurrent::start_for_test;
use cinelog_tests::{
    Backend, Counter, TempDir, TestApp, fresh_pg_database, ids, settings_for, whole_log,
};
use kurrentdb::{
    AppendToStreamOptions, Client, EventData, ReadAllOptions, ReadStreamOptions, StreamPosition,
    StreamState, SubscribeToAllOptions, SubscriptionEvent,
};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A store with its log in a fresh fake KurrentDB (side tables in a fresh Postgres database);
/// answers the log's URL too, for a second replica.
async fn kurrent_store() -> (Store, String) {
    let log = start_for_test().await;
    let store = Store::open_postgres(&fresh_pg_database().await, 4)
        .await
        .unwrap()
        .on_kurrent(&log)
        .await
        .unwrap();
    (store, log)
}

fn meta() -> CommandMeta {
    CommandMeta {
        actor: Actor::System,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
    }
}

fn opened() -> AccountEvent {
    AccountEvent::AccountOpened {
        owner: Uuid::now_v7(),
    }
}

#[tokio::test]
async fn kurrent_store_respects_the_expected_version() {
    let (store, _) = kurrent_store().await;
    assert_eq!(store.backend_name(), "kurrentdb");
    contract::expected_version_is_respected("kurrentdb", &store).await;
}

#[tokio::test]
async fn kurrent_global_log_reads_in_order_with_envelope_and_hash_chain() {
    let (store, _) = kurrent_store().await;
    contract::global_log_is_ordered_and_chained("kurrentdb", &store).await;
}

#[tokio::test]
async fn kurrent_replicas_see_each_others_appends() {
    let (a, log) = kurrent_store().await;
    let b = Store::open_postgres(&fresh_pg_database().await, 4)
        .await
        .unwrap()
        .on_kurrent(&log)
        .await
        .unwrap();
    contract::replicas_see_each_other(&a, &b).await;
}

#[tokio::test]
async fn kurrent_concurrent_appends_at_one_head_let_exactly_one_win() {
    let (store, _) = kurrent_store().await;
    let id = Uuid::now_v7().to_string();
    let first = store
        .append::<Account>(&id, &StreamHead::default(), &[opened()], &meta())
        .await
        .unwrap();
    let head = store.load::<Account>(&id).await.unwrap().head;
    assert_eq!((head.version, head.position), (1, first.position));
    let racers: Vec<_> = (0..16)
        .map(|n| {
            let (store, id, head) = (store.clone(), id.clone(), head.clone());
            tokio::spawn(async move {
                let event = AccountEvent::ProfileDeleted {
                    profile_id: Uuid::from_u128(n),
                };
                store.append::<Account>(&id, &head, &[event], &meta()).await
            })
        })
        .collect();
    let answers: Vec<_> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let won = answers.iter().filter(|a| a.is_ok()).count();
    let lost = answers
        .iter()
        .filter(|a| matches!(a, Err(StoreError::Conflict)))
        .count();
    assert_eq!((won, lost), (1, 15), "{answers:?}");
    let history = store.read_stream("account", &id).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(history[1].meta.prev_hash, history[0].meta.hash);
}

#[tokio::test]
async fn kurrent_rebuild_from_zero_equals_the_live_read_model() {
    projections::rebuild_equals_live(Backend::Kurrent).await;
}

#[tokio::test]
async fn kurrent_concurrent_runners_apply_every_event_exactly_once() {
    projections::runners_apply_each_event_once(Backend::Kurrent).await;
}

/// The gap test of Postgres, adapted: there a late commit may take a lower position, and
/// readers wait for it. `$all` is totally ordered, so here a projection following the log while
/// another replica appends sees every event once, in commit order, and is woken by the `$all`
/// subscription rather than by its own appends.
#[tokio::test]
async fn kurrent_a_follower_sees_another_replicas_appends_in_order_and_once() {
    let log = start_for_test().await;
    let database = fresh_pg_database().await;
    let open = || async {
        Store::open_postgres(&database, 4)
            .await
            .unwrap()
            .on_kurrent(&log)
            .await
            .unwrap()
    };
    let (reader, writer) = (open().await, open().await);
    let read = ReadDb::connect(&database, 4).await.unwrap();
    let events: Arc<dyn EventLog> = Arc::new(reader.clone());
    let projections =
        Projections::new(read.clone(), events, vec![Arc::new(Counter { version: 1 })]);
    projections.setup().await.unwrap();

    // Woken by the other replica's append.
    let woken = reader.appended();
    let waiting = woken.notified();
    let writing = writer.clone();
    let appended = tokio::spawn(async move {
        writing
            .append::<Account>(
                &Uuid::now_v7().to_string(),
                &StreamHead::default(),
                &[opened()],
                &meta(),
            )
            .await
            .unwrap()
    });
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the $all subscription wakes followers on another replica's append");
    appended.await.unwrap();

    // Appends race with the follower stepping through the log.
    let writes = tokio::spawn(async move {
        let mut last = 0;
        for _ in 0..200 {
            last = writer
                .append::<Account>(
                    &Uuid::now_v7().to_string(),
                    &StreamHead::default(),
                    &[opened(), opened()],
                    &meta(),
                )
                .await
                .unwrap()
                .position;
        }
        last
    });
    let mut applied = 0;
    while !writes.is_finished() {
        applied += projections.catch_up("counter").await.unwrap();
    }
    let last = writes.await.unwrap();
    // What the writer appended after the last step is taken now: `$all` has no late commits,
    // so one more catch-up reaches the writer's last event.
    applied += projections.catch_up("counter").await.unwrap();
    assert!(
        projections
            .wait_for("counter", last, Duration::from_secs(30))
            .await
            .unwrap()
    );
    let log = whole_log(&reader).await;
    assert_eq!(log.len(), 401);
    assert!(
        log.windows(2)
            .all(|w| Checkpoint::of(&w[0]) < Checkpoint::of(&w[1]))
    );
    let n: i64 = sqlx::query_scalar("SELECT n FROM event_counts WHERE id = 1")
        .fetch_one(&read.pool)
        .await
        .unwrap();
    assert_eq!((n, applied), (401, 401), "every event applied once");
}

#[tokio::test]
async fn kurrent_auditors_query_history_state_and_verify_chains() {
    audit::auditors_read_history_on(Backend::Kurrent).await;
}

/// A viewer's whole flow on an app whose log is in KurrentDB and read models in Postgres: sign
/// up, a profile, a subscription through the sandbox checkout, playback; then a restart reads
/// it all back from the log.
#[tokio::test]
async fn kurrent_app_serves_a_viewer_from_signup_to_playback() {
    let dir = TempDir::new();
    let settings = settings_for(Backend::Kurrent, &dir).await;
    let app = TestApp::spawn_with(settings.clone(), TempDir::new(), Default::default()).await;
    let health = app.get("/readyz", None).await;
    assert_eq!(health.status, StatusCode::OK, "{:?}", health.body);
    let (token, _) = app.signup_login("kurrent@example.com").await;
    let made = app
        .post("/api/profiles", json!({"name": "Kay"}), Some(&token))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let pid = made.body["profile_id"].as_str().unwrap().to_string();
    // Read models follow the log: ask for the one that holds the new profile.
    let listed_at = format!("/api/profiles?min_position={}", made.body["position"]);
    let listed = app.get(&listed_at, Some(&token)).await;
    assert_eq!(listed.body[0]["name"], "Kay", "{:?}", listed.body);
    app.subscribe(&token, "standard").await;
    let movie = ids(&app.get("/api/titles?kind=movie", None).await.body)[0].clone();
    let played = app
        .post(
            &format!("/api/profiles/{pid}/playback"),
            json!({"title_id": movie}),
            Some(&token),
        )
        .await;
    assert_eq!(played.status, StatusCode::CREATED, "{:?}", played.body);
    let master = app
        .http
        .get(played.body["master_playlist_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(master.status(), StatusCode::OK);
    assert!(master.text().await.unwrap().starts_with("#EXTM3U"));
    let sid = played.body["session_id"].as_str().unwrap().to_string();
    let stopped = app
        .post(
            &format!("/api/playback/{sid}/stop"),
            json!({"position_secs": 4.0}),
            Some(&token),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT);
    let events = app.log().await;
    for name in [
        "UserRegistered",
        "ProfileCreated",
        "SubscriptionActivated",
        "PlaybackStarted",
    ] {
        assert!(
            events.iter().any(|e| e.event_type == name),
            "{name} is in the KurrentDB log"
        );
    }

    // Another process on the same KurrentDB and Postgres: the account is there.
    app.stop();
    drop(app);
    let again = TestApp::spawn_with(settings, TempDir::new(), Default::default()).await;
    let (token, _) = again
        .login("kurrent@example.com", "Corr3ct-horse-battery")
        .await;
    let sub = again.subscription(&token, None).await;
    assert_eq!((sub.status.as_str(), sub.entitled), ("active", true));
    let listed = again.get(&listed_at, Some(&token)).await;
    assert_eq!(listed.body[0]["name"], "Kay", "{:?}", listed.body);
    again.stop();
}

/// The viewer's app in Chromium on a log in KurrentDB: sign-up, checkout, cancel.
#[tokio::test]
async fn kurrent_chromium_subscribes_through_the_sandbox_and_cancels() {
    browser::subscribes_and_cancels_on(Backend::Kurrent).await;
}

/// The viewer's app in Chromium on a log in KurrentDB: play, switch quality, resume.
#[tokio::test]
async fn kurrent_chromium_plays_a_title_switches_quality_and_resumes() {
    browser::plays_switches_and_resumes_on(Backend::Kurrent).await;
}

/// The fake's answers, through the official client, as KurrentDB's gRPC documentation describes
/// the server: so the backend is tested against the protocol, not against the fake's quirks.
#[tokio::test]
async fn kurrent_fake_answers_as_the_protocol_documents() {
    let url = start_for_test().await;
    let client = Client::new(url.parse().unwrap()).unwrap();

    // A fresh node's log starts with a system event, not at position zero.
    let mut all = client
        .read_all(&ReadAllOptions::default().forwards().max_count(10))
        .await
        .unwrap();
    let first = all.next().await.unwrap().expect("a system event");
    assert!(first.get_original_event().stream_id().starts_with('$'));
    assert!(first.get_original_event().position.commit > 0);

    // Reading a stream never written: not found.
    let missing = client
        .read_stream("nothing-here", &ReadStreamOptions::default())
        .await
        .unwrap()
        .next()
        .await;
    assert!(matches!(missing, Err(kurrentdb::Error::ResourceNotFound)));

    // Appends: revisions from 0, positions growing with commit = prepare.
    let event = |n: u32| EventData::json("Counted", &json!({ "n": n })).unwrap();
    let one = client
        .append_to_stream(
            "count-1",
            &AppendToStreamOptions::default().stream_state(StreamState::NoStream),
            vec![event(0), event(1)],
        )
        .await
        .unwrap();
    assert_eq!(one.next_expected_version, 1);
    assert_eq!(one.position.commit, one.position.prepare);
    let wrong = client
        .append_to_stream(
            "count-1",
            &AppendToStreamOptions::default().stream_state(StreamState::StreamRevision(0)),
            vec![event(9)],
        )
        .await;
    match wrong {
        Err(kurrentdb::Error::WrongExpectedVersion { expected, current }) => {
            assert_eq!(expected, StreamState::StreamRevision(0));
            assert_eq!(current, kurrentdb::CurrentRevision::Current(1));
        }
        other => panic!("a stale revision is refused: {other:?}"),
    }
    let again = client
        .append_to_stream(
            "count-1",
            &AppendToStreamOptions::default().stream_state(StreamState::NoStream),
            vec![event(9)],
        )
        .await;
    assert!(matches!(
        again,
        Err(kurrentdb::Error::WrongExpectedVersion {
            current: kurrentdb::CurrentRevision::Current(1),
            ..
        })
    ));
    client
        .append_to_stream("count-2", &Default::default(), vec![event(2)])
        .await
        .unwrap();

    // Backwards from the end, and forwards from a revision.
    let mut back = client
        .read_stream(
            "count-1",
            &ReadStreamOptions::default()
                .backwards()
                .position(StreamPosition::End),
        )
        .await
        .unwrap();
    let mut revisions = Vec::new();
    while let Some(e) = back.next().await.unwrap() {
        revisions.push(e.get_original_event().revision);
    }
    assert_eq!(revisions, [1, 0]);
    let mut from_one = client
        .read_stream(
            "count-1",
            &ReadStreamOptions::default().position(StreamPosition::Position(1)),
        )
        .await
        .unwrap();
    let e = from_one.next().await.unwrap().unwrap();
    assert_eq!(
        e.get_original_event()
            .as_json::<serde_json::Value>()
            .unwrap()["n"],
        1
    );
    assert!(from_one.next().await.unwrap().is_none());

    // $all in commit order, forwards from a position (inclusive) and backwards (before it).
    let mut all = client
        .read_all(&ReadAllOptions::default().forwards())
        .await
        .unwrap();
    let mut positions = Vec::new();
    while let Some(e) = all.next().await.unwrap() {
        positions.push(e.get_original_event().position);
    }
    assert_eq!(positions.len(), 4);
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert!(
        positions.windows(2).any(|w| w[1].commit - w[0].commit > 1),
        "positions are log offsets, not counters"
    );
    let mut from = client
        .read_all(
            &ReadAllOptions::default()
                .forwards()
                .position(StreamPosition::Position(positions[2])),
        )
        .await
        .unwrap();
    assert_eq!(
        from.next()
            .await
            .unwrap()
            .unwrap()
            .get_original_event()
            .position,
        positions[2]
    );
    let mut before = client
        .read_all(
            &ReadAllOptions::default()
                .backwards()
                .position(StreamPosition::Position(positions[2]))
                .max_count(1),
        )
        .await
        .unwrap();
    assert_eq!(
        before
            .next()
            .await
            .unwrap()
            .unwrap()
            .get_original_event()
            .position,
        positions[1]
    );

    // A catch-up subscription: what is there, caught up, then live.
    let mut sub = client
        .subscribe_to_all(&SubscribeToAllOptions::default().position(StreamPosition::Start))
        .await;
    let mut seen = 0;
    loop {
        match sub.next_subscription_event().await.unwrap() {
            SubscriptionEvent::EventAppeared(_) => seen += 1,
            SubscriptionEvent::CaughtUp(_) => break,
            _ => {}
        }
    }
    assert_eq!(seen, 4);
    client
        .append_to_stream("count-3", &Default::default(), vec![event(3)])
        .await
        .unwrap();
    let live = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("live events arrive")
        .unwrap();
    assert_eq!(live.get_original_event().stream_id(), "count-3");
}
