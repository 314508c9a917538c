//! The outbox relay against a real Kafka-compatible broker (tansu): every committed event on
//! `cinelog.<stream_type>`, keyed by stream id, in log order, as CloudEvents in binary mode;
//! a broker that is down at first loses nothing.

use cinelog_infra::Store;
use cinelog_infra::consumer::KafkaProjector;
use cinelog_infra::relay::{Relay, RelayConfig};
use cinelog_projections::{EventLog, Projections, ReadDb};
use cinelog_tests::fakes::Tansu;
use cinelog_tests::{
    Backend, Counter, TempDir, TestApp, fresh_pg_database, open_accounts, settings_for,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// One consumed message: topic, key, headers.
struct Seen {
    topic: String,
    key: String,
    headers: HashMap<String, String>,
}

/// A message's topic, key and headers.
fn seen_of(m: &rdkafka::message::BorrowedMessage<'_>) -> Seen {
    Seen {
        topic: m.topic().to_string(),
        key: String::from_utf8_lossy(m.key().unwrap_or_default()).to_string(),
        headers: m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A consumer of a new group, reading `cinelog.*` from the start.
fn reader(brokers: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("test-{}", uuid::Uuid::now_v7().simple()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("consumer");
    consumer.subscribe(&["^cinelog\\..*"]).expect("subscribe");
    consumer
}

/// Reads `cinelog.*` from the start until `want` distinct events (by `ce_id`) arrived.
async fn consume(brokers: &str, want: usize) -> Vec<Seen> {
    let consumer = reader(brokers);
    let mut seen = Vec::new();
    let mut ids = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ids.len() < want {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = tokio::time::timeout(remaining, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {want} events reached Kafka", ids.len()))
            .expect("a message");
        let s = seen_of(&m);
        ids.insert(s.headers["ce_id"].clone());
        seen.push(s);
    }
    seen
}

#[tokio::test]
async fn the_relay_publishes_the_whole_log_in_order_even_when_the_broker_comes_late() {
    let port = Tansu::free_port();
    let brokers = format!("127.0.0.1:{port}");
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Postgres, &dir).await;
    settings.kafka_brokers = Some(brokers.clone());
    settings.kafka_partitions = 3;
    // The broker is not there yet: commands still work.
    let app = TestApp::spawn_with(settings, dir, Default::default()).await;
    let (token, _) = app.signup_login("kafka@example.com").await;
    let made = app
        .post("/api/profiles", json!({"name": "Stream"}), Some(&token))
        .await;
    assert_eq!(made.status, 201);

    let _broker = Tansu::start(port).await;
    let log = app.log().await;
    let seen = consume(&brokers, log.len()).await;

    // Every event once (consumers drop repeats by ce_id), on its stream type's topic, keyed by
    // its stream, with the envelope in CloudEvents headers.
    let by_id: HashMap<&str, &Seen> = seen
        .iter()
        .map(|s| (s.headers["ce_id"].as_str(), s))
        .collect();
    assert_eq!(by_id.len(), log.len());
    for e in &log {
        let s = by_id
            .get(e.meta.event_id.to_string().as_str())
            .unwrap_or_else(|| panic!("{} {} missing", e.position, e.event_type));
        assert_eq!(s.topic, format!("cinelog.{}", e.stream_type));
        assert_eq!(s.key, e.stream_id);
        assert_eq!(s.headers["ce_specversion"], "1.0");
        assert_eq!(
            s.headers["ce_type"],
            format!("cinelog.{}.{}", e.stream_type, e.event_type)
        );
        assert_eq!(s.headers["cinelog_position"], e.position.to_string());
        assert_eq!(
            s.headers["cinelog_correlation_id"],
            e.meta.correlation_id.to_string()
        );
        assert_eq!(s.headers["cinelog_actor"], e.meta.actor.to_string());
    }
    // Per key, in stream order (the order a partition keeps). A batch the relay sent again
    // after the broker came up repeats events; a consumer keeps each event's first copy.
    let mut first_copies: HashMap<(String, String), Vec<i64>> = HashMap::new();
    let mut kept = HashSet::new();
    for s in &seen {
        if kept.insert(s.headers["ce_id"].clone()) {
            first_copies
                .entry((s.topic.clone(), s.key.clone()))
                .or_default()
                .push(s.headers["cinelog_version"].parse().unwrap());
        }
    }
    for (stream, versions) in first_copies {
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(versions, expected, "{stream:?} out of order");
    }

    // Later events follow.
    let more = app
        .post("/api/profiles", json!({"name": "Later"}), Some(&token))
        .await;
    assert_eq!(more.status, 201);
    let later = more.body["position"].as_i64().unwrap().to_string();
    let seen = consume(&brokers, log.len() + 1).await;
    assert!(seen.iter().any(|s| s.headers["cinelog_position"] == later));
    app.stop();
}

/// Two relays on one Postgres: one publishes, the other waits on the lease; when the first
/// dies, the second takes over from the checkpoint and nothing is lost.
#[tokio::test]
async fn a_second_relay_waits_and_takes_over_when_the_first_dies() {
    let broker = Tansu::start(Tansu::free_port()).await;
    let brokers = format!("127.0.0.1:{}", broker.port);
    let dir = TempDir::new();
    let settings = settings_for(Backend::Postgres, &dir).await;
    // The app itself runs no relay; the two below are the only publishers.
    let app = TestApp::spawn_with(settings.clone(), dir, Default::default()).await;
    let relay = |lock: &str| {
        let mut s = settings.clone();
        s.kafka_brokers = Some(brokers.clone());
        let state = app.running.state.clone();
        let lock = app.dir.0.join(lock);
        async move {
            s.data_dir = lock.parent().unwrap().to_path_buf();
            cinelog_api::app::relay_for(&s, &state.store, state.projections.db())
                .await
                .unwrap()
                .unwrap()
        }
    };
    let first = tokio::spawn(relay("a.lock").await.run());
    let (token, _) = app.signup_login("lease@example.com").await;
    let before = app.log().await.len();
    consume(&brokers, before).await;
    // The second starts while the first holds the lease.
    let second = tokio::spawn(relay("b.lock").await.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = app.settings.database_url.clone().unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let leases = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let held: i64 = sqlx::query_scalar(leases)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(held, 1, "both relays hold the lease");
    let holder: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    first.abort();
    let _ = first.await;
    // The second takes the lease from another session.
    let mut taken_by = holder;
    for _ in 0..100 {
        let now: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_optional(&mut admin)
        .await
        .unwrap();
        if let Some(pid) = now.filter(|p| *p != holder) {
            taken_by = pid;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(taken_by, holder, "the second relay never took the lease");
    // Events after the first died reach the broker through the second.
    let made = app
        .post("/api/profiles", json!({"name": "Handover"}), Some(&token))
        .await;
    assert_eq!(made.status, 201);
    let log = app.log().await;
    let seen = consume(&brokers, log.len()).await;
    let ids: HashSet<&str> = seen.iter().map(|s| s.headers["ce_id"].as_str()).collect();
    for e in &log {
        assert!(
            ids.contains(e.meta.event_id.to_string().as_str()),
            "{} lost",
            e.position
        );
    }
    second.abort();
    app.stop();
}

/// The counter's Kafka-fed generation: its number and count (0 before its first event).
async fn kafka_count(read: &ReadDb) -> Option<(i64, i64, bool)> {
    let (generation, active): (i64, i64) = sqlx::query_as(
        "SELECT generation, active FROM projection_state WHERE name = 'counter' AND source = 'kafka'",
    )
    .fetch_optional(&read.pool)
    .await
    .unwrap()?;
    let n: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT n FROM event_counts_g{generation} WHERE id = 1"
    ))
    .fetch_optional(&read.pool)
    .await
    .unwrap();
    Some((generation, n.unwrap_or(0), active == 1))
}

/// Partitions whose offset each worker moved last.
async fn owners(read: &ReadDb) -> HashMap<String, usize> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT owner FROM kafka_offsets WHERE projection = 'counter' AND generation = (SELECT MAX(generation) FROM kafka_offsets)",
    )
    .fetch_all(&read.pool)
    .await
    .unwrap();
    let mut by = HashMap::new();
    for owner in rows {
        *by.entry(owner).or_default() += 1;
    }
    by
}

/// Waits until the counter's Kafka-fed generation is live and has counted `want` events.
async fn counted(read: &ReadDb, want: i64) -> (i64, i64) {
    let mut last = None;
    for _ in 0..600 {
        last = kafka_count(read).await;
        if let Some((generation, n, true)) = last
            && n >= want
        {
            return (generation, n);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the Kafka-fed counter never reached {want}: {last:?}");
}

/// Two workers of one consumer group feed a deliberately non-idempotent counter from Kafka:
/// they split the partitions; one dies mid-run and the other takes its partitions over; every
/// event counts once. A worker of another group, replaying every topic from the start into the
/// same read model, adds nothing.
#[tokio::test]
async fn kafka_workers_split_the_partitions_and_apply_every_event_once() {
    let broker = Tansu::start(Tansu::free_port()).await;
    let brokers = format!("127.0.0.1:{}", broker.port);
    let dir = TempDir::new();
    let url = fresh_pg_database().await;
    let store = Store::open_postgres(&url, 8).await.unwrap();
    let read = ReadDb::connect(&url, 8).await.unwrap();
    let log: Arc<dyn EventLog> = Arc::new(store.clone());
    let projections = || {
        Projections::new(
            read.clone(),
            log.clone(),
            vec![Arc::new(Counter { version: 1 })],
        )
    };
    projections().setup().await.unwrap();
    let relay = Relay::new(
        RelayConfig {
            brokers: brokers.clone(),
            partitions: 4,
            replication: 1,
        },
        store.clone(),
        read.clone(),
        dir.0.join("relay.lock"),
    )
    .await
    .unwrap();
    let relay = AbortOnDrop(tokio::spawn(relay.run()));
    let worker = |group: &str| {
        let w = KafkaProjector::new(&brokers, group, projections(), &[]).unwrap();
        let id = w.id().to_string();
        (id, AbortOnDrop(tokio::spawn(w.run())))
    };

    open_accounts(&store, 400).await;
    let (first_id, first) = worker("counters");
    let (second_id, _second) = worker("counters");
    // Both workers own partitions once the group has settled and more events arrive.
    for round in 0..60 {
        open_accounts(&store, 20).await;
        let split = owners(&read).await;
        if split.contains_key(&first_id)
            && split.contains_key(&second_id)
            && split.values().sum::<usize>() == 4
        {
            break;
        }
        assert!(
            round < 59,
            "the workers never split the partitions: {split:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The first dies, possibly in the middle of a batch; the second takes over its partitions.
    drop(first);
    open_accounts(&store, 400).await;
    let total = store.head().await.unwrap();
    let (generation, n) = counted(&read, total).await;
    assert_eq!(n, total, "events applied {n} times for {total} events");
    for _ in 0..100 {
        open_accounts(&store, 4).await;
        if owners(&read).await.keys().all(|o| *o == second_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        owners(&read).await.keys().collect::<Vec<_>>(),
        [&second_id],
        "the survivor moves every partition"
    );
    let total = store.head().await.unwrap();
    let (_, n) = counted(&read, total).await;
    assert_eq!(n, total);
    // The plain-named view reads the Kafka-fed generation now.
    let viewed: i64 = sqlx::query_scalar("SELECT n FROM event_counts WHERE id = 1")
        .fetch_one(&read.pool)
        .await
        .unwrap();
    assert_eq!(viewed, total);

    // Redelivery of everything: a worker of a new group starts at offset zero of every topic.
    let (_, _replay) = worker("replay");
    // It has gone through everything once the offsets it commits (after each batch, from the
    // database) reach the ones the counter holds.
    let stored: HashMap<(String, i32), i64> = sqlx::query_as(
        "SELECT topic, part, next_offset FROM kafka_offsets WHERE projection = 'counter' AND generation = $1",
    )
    .bind(generation)
    .fetch_all(&read.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(t, p, o): (String, i32, i64)| ((t, p), o))
    .collect();
    let probe: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "replay")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for (topic, partition) in stored.keys() {
        list.add_partition(topic, *partition);
    }
    let mut committed = HashMap::new();
    for _ in 0..300 {
        committed = probe
            .committed_offsets(list.clone(), Duration::from_secs(10))
            .unwrap()
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                _ => None,
            })
            .collect();
        if committed == stored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        committed, stored,
        "the replaying worker read every partition"
    );
    let (again, n) = counted(&read, total).await;
    assert_eq!(
        (again, n),
        (generation, total),
        "the replay changed the count"
    );
    drop(relay);
}

/// Aborts a spawned task when dropped, so a failing test leaves nothing running.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The broker goes away in the middle of a run: commands keep working, and once a broker is
/// back the relay publishes every event appended meanwhile, in order per stream.
#[tokio::test]
async fn commands_go_on_while_the_broker_is_down_and_the_relay_catches_up() {
    let port = Tansu::free_port();
    let brokers = format!("127.0.0.1:{port}");
    let broker = Tansu::start(port).await;
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Postgres, &dir).await;
    settings.kafka_brokers = Some(brokers.clone());
    settings.kafka_partitions = 2;
    let app = TestApp::spawn_with(settings, dir, Default::default()).await;
    let (token, _) = app.signup_login("outage@example.com").await;
    consume(&brokers, app.log_len().await).await;

    // Down: a stopped broker (its memory storage goes with it).
    drop(broker);
    let before = app.log().await.last().map_or(0, |e| e.position);
    for n in 0..5 {
        let made = app
            .post(
                "/api/profiles",
                json!({"name": format!("Down {n}")}),
                Some(&token),
            )
            .await;
        assert_eq!(made.status, 201, "commands work while the broker is down");
    }
    let (other, _) = app.signup_login("during@example.com").await;
    app.post("/api/profiles", json!({"name": "Meanwhile"}), Some(&other))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Back: everything appended while it was away arrives, each stream in order.
    let _broker = Tansu::start(port).await;
    let missed: Vec<_> = app
        .log()
        .await
        .into_iter()
        .filter(|e| e.position > before)
        .collect();
    let seen = consume_ids(&brokers, &missed).await;
    let mut per_stream: HashMap<(String, String), Vec<i64>> = HashMap::new();
    let mut firsts = HashSet::new();
    for s in &seen {
        if firsts.insert(s.headers["ce_id"].clone()) {
            per_stream
                .entry((s.topic.clone(), s.key.clone()))
                .or_default()
                .push(s.headers["cinelog_version"].parse().unwrap());
        }
    }
    for (stream, versions) in per_stream {
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{stream:?} out of order: {versions:?}"
        );
    }
    app.stop();
}

/// Reads `cinelog.*` from the start until every event of `want` arrived (by `ce_id`).
async fn consume_ids(brokers: &str, want: &[cinelog_domain::RecordedEvent]) -> Vec<Seen> {
    let ids: HashSet<String> = want.iter().map(|e| e.meta.event_id.to_string()).collect();
    for _ in 0..60 {
        let seen = consume_for(brokers, Duration::from_secs(2)).await;
        let got: HashSet<&str> = seen.iter().map(|s| s.headers["ce_id"].as_str()).collect();
        if ids.iter().all(|id| got.contains(id.as_str())) {
            return seen;
        }
    }
    panic!("the relay never published the events appended while the broker was down");
}

/// Everything on `cinelog.*` that arrives within `window` of reading from the start.
async fn consume_for(brokers: &str, window: Duration) -> Vec<Seen> {
    let consumer = reader(brokers);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    // Until the window closes; a broker still making its topics answers errors meanwhile.
    while let Ok(received) = tokio::time::timeout_at(deadline, consumer.recv()).await {
        match received {
            Ok(m) => seen.push(seen_of(&m)),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    seen
}
