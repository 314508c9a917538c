//! Scale-out: three `cinelog serve` replicas and two `cinelog project --source kafka` workers,
//! as separate processes on one Postgres and one broker, under a load of viewers. One worker is
//! killed (SIGKILL, in the middle of whatever it was doing) mid-run and a replacement joins, as
//! an orchestrator would restart it. At the end every read model the workers fed equals a
//! rebuild from the log, so nothing was lost and no effect was doubled.
//!
//! (tansu evicts a member that died without leaving when another member joins or leaves the
//! group; a Kafka cluster also evicts it after `session.timeout.ms`, 6 s for these workers, and
//! a worker stopped with SIGTERM leaves the group at once.)
//!
//! And `serve` killed (SIGKILL) mid-load loses no acknowledged command and applies none twice.

use cinelog_tests::fakes::Tansu;
use cinelog_tests::{Backend, Client, TempDir, settings_for};
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A little over the workers' `session.timeout.ms`.
const SESSION_TIMEOUT: Duration = Duration::from_secs(7);

/// The `cinelog` binary, built from this tree if it is missing or older than the sources.
fn cinelog_bin() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "cinelog-api", "--bin", "cinelog"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building cinelog failed");
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/suite-… → target/<profile>/cinelog
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("cinelog")
}

/// A child process killed when dropped, its output kept in a file for a failing test.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(bin: &Path, config: &Path, args: &[&str], log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .args(args)
            .env("CINELOG_CONFIG", config)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("cinelog starts");
        Proc { child, log }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until a replica answers `/readyz`.
async fn ready(client: &Client, proc: &Proc) {
    for _ in 0..600 {
        if let Ok(r) = client.http.get(client.url("/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "replica at {} never got ready:\n{}",
        client.base,
        proc.output()
    );
}

/// One viewer's visit: signs up, makes profiles, renames one, rates and lists titles.
async fn visit(client: &Client, n: usize) {
    let (token, _) = client.signup_login(&format!("scale{n}@example.com")).await;
    let a = client.profile(&token, json!({"name": "main"})).await;
    let b = client
        .profile(&token, json!({"name": "kid", "kids": true}))
        .await;
    let renamed = client
        .call(
            Method::PATCH,
            &format!("/api/profiles/{b}"),
            Some(json!({"name": "junior"})),
            Some(&token),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    for (title, rating) in [("marmalade-station", "like"), ("tin-foxes", "love")] {
        let rated = client
            .call(
                Method::PUT,
                &format!("/api/profiles/{a}/ratings/{title}"),
                Some(json!({"rating": rating})),
                Some(&token),
            )
            .await;
        assert!(rated.status.is_success(), "{:?}", rated.body);
    }
    let listed = client
        .call(
            Method::PUT,
            &format!("/api/profiles/{a}/list/marmalade-station"),
            None,
            Some(&token),
        )
        .await;
    assert!(listed.status.is_success(), "{:?}", listed.body);
}

/// Every row of every read-model view, as JSON text, by view.
async fn read_models(pool: &sqlx::PgPool) -> BTreeMap<String, Vec<String>> {
    let views: Vec<String> = sqlx::query_scalar(
        "SELECT table_name FROM information_schema.views WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut all = BTreeMap::new();
    for view in views {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(v)::text FROM {view} v ORDER BY 1"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        all.insert(view, rows);
    }
    all
}

/// Projections whose live generation Kafka workers feed.
async fn kafka_fed(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM projection_state WHERE active = 1 AND source = 'kafka' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_and_two_kafka_workers_end_equal_to_a_rebuild() {
    let bin = cinelog_bin();
    let broker = Tansu::start(Tansu::free_port()).await;
    let brokers = format!("127.0.0.1:{}", broker.port);
    let dir = TempDir::new();
    let settings = settings_for(Backend::Postgres, &dir).await;
    let url = settings.database_url.clone().expect("postgres");
    let config = dir.0.join("cinelog.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\ndatabase_url = {url:?}\nkafka_brokers = {brokers:?}\nkafka_partitions = 4\n\
             jwt_secret = \"scale-out-secret-shared-by-every-replica\"\nmax_connections = 6\n\
             [limits]\nsignup_per_client = 100000\n",
            dir.0.display().to_string()
        ),
    )
    .unwrap();
    // The schema and read models first, so the replicas start on a migrated database.
    let migrated = Command::new(&bin)
        .arg("migrate")
        .env("CINELOG_CONFIG", &config)
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");

    let mut replicas = Vec::new();
    for i in 0..3 {
        let port = Tansu::free_port();
        let addr = format!("127.0.0.1:{port}");
        let proc = Proc::start(
            &bin,
            &config,
            &["serve", "--addr", &addr],
            dir.0.join(format!("serve{i}.log")),
        );
        let client = Client::new(format!("http://{addr}"));
        ready(&client, &proc).await;
        replicas.push((client, proc));
    }
    let worker = |i: usize| {
        Proc::start(
            &bin,
            &config,
            &["project", "--source", "kafka", "--group", "scale"],
            dir.0.join(format!("worker{i}.log")),
        )
    };
    let mut workers = vec![worker(0), worker(1)];

    // Viewers arrive on every replica; halfway, one worker dies without a goodbye, and once the
    // group could have noticed (its session timeout), a replacement joins.
    let visits = 60;
    let mut killed = None;
    for round in 0..visits / 6 {
        let batch = (0..6).map(|k| {
            let n = round * 6 + k;
            visit(&replicas[n % 3].0, n)
        });
        futures::future::join_all(batch).await;
        if round == visits / 12 {
            workers[0].kill();
            killed = Some(tokio::time::Instant::now());
        }
        if let Some(at) = killed
            && workers.len() == 2
            && at.elapsed() > SESSION_TIMEOUT
        {
            workers.push(worker(2));
        }
    }
    if workers.len() == 2 {
        tokio::time::sleep_until(killed.expect("killed") + SESSION_TIMEOUT).await;
        workers.push(worker(2));
    }

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // The survivor takes every partition; it has caught up once the relay has published the
    // whole log and each Kafka-fed model has applied the newest event of every stream.
    let names: Vec<String> = sqlx::query_scalar("SELECT DISTINCT name FROM projection_state")
        .fetch_all(&pool)
        .await
        .unwrap();
    let caught_up = "SELECT COUNT(*) FROM (
            SELECT aggregate_type, aggregate_id, MAX(position) AS position FROM events
            GROUP BY aggregate_type, aggregate_id) s
         CROSS JOIN projection_state p
         LEFT JOIN kafka_streams k ON k.projection = p.name AND k.generation = p.generation
              AND k.stream_type = s.aggregate_type AND k.stream_id = s.aggregate_id
         WHERE p.active = 1 AND COALESCE(k.position, 0) < s.position";
    let mut behind = i64::MAX;
    for _ in 0..1200 {
        if kafka_fed(&pool).await.len() == names.len() {
            behind = sqlx::query_scalar(caught_up)
                .fetch_one(&pool)
                .await
                .unwrap();
            if behind == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (kafka_fed(&pool).await.len(), behind),
        (names.len(), 0),
        "the Kafka-fed read models never caught up; workers:\n{}\n{}",
        workers[1].output(),
        workers[2].output()
    );
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT o.owner FROM kafka_offsets o JOIN projection_state p
         ON p.name = o.projection AND p.generation = o.generation AND p.active = 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        owners.len() >= 2,
        "more than one worker fed the live models: {owners:?}"
    );

    // Nothing runs any more; then each read model is rebuilt from the log beside the one the
    // workers fed, and the two must match row for row.
    drop(workers);
    drop(replicas);
    let fed = read_models(&pool).await;
    assert!(
        fed["profiles"].len() >= 2 * visits,
        "profiles: {}",
        fed["profiles"].len()
    );
    for name in &names {
        let rebuilt = Command::new(&bin)
            .args(["rebuild", name])
            .env("CINELOG_CONFIG", &config)
            .output()
            .unwrap();
        assert!(rebuilt.status.success(), "{rebuilt:?}");
    }
    assert!(kafka_fed(&pool).await.is_empty());
    let rebuilt = read_models(&pool).await;
    assert_eq!(
        fed.keys().collect::<Vec<_>>(),
        rebuilt.keys().collect::<Vec<_>>()
    );
    for (view, rows) in &fed {
        assert_eq!(
            rows, &rebuilt[view],
            "{view}: the Kafka-fed read model differs from a rebuild from the log"
        );
    }
    drop(broker);
}

/// A viewer's commands until `stop`: renames of a profile and ratings of two titles, in turn.
/// Answers each acknowledged command's (event type, position); any other answer, or none (the
/// server died), is not counted.
async fn keep_commanding(
    client: Client,
    token: String,
    profile: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Load {
    let mut load = Load::default();
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        n += 1;
        let (kind, method, path, body) = if n % 2 == 0 {
            let name = format!("n{n}");
            (
                "ProfileUpdated",
                Method::PATCH,
                format!("/api/profiles/{profile}"),
                Some(json!({ "name": name })),
            )
        } else {
            let title = ["marmalade-station", "tin-foxes"][n % 4 / 2];
            let rating = ["like", "love"][n % 3 % 2];
            (
                "TitleRated",
                Method::PUT,
                format!("/api/profiles/{profile}/ratings/{title}"),
                Some(json!({ "rating": rating })),
            )
        };
        let url = client.url(&path);
        let sent = client
            .http
            .request(method, url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        let Ok(answer) = sent else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if !answer.status().is_success() {
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap_or_default();
            load.refused.push((status, body));
            continue;
        }
        if let Ok(body) = answer.json::<serde_json::Value>().await
            && let Some(position) = body["position"].as_i64()
        {
            load.acked.push((kind, position));
        }
    }
    load
}

/// What one client's commands got: the acknowledged ones (event type and position) and the
/// refused ones (status and body).
#[derive(Default)]
struct Load {
    acked: Vec<(&'static str, i64)>,
    refused: Vec<(u16, String)>,
}

/// A server on Postgres for a fault test, its config and a client.
struct Rig {
    bin: PathBuf,
    dir: TempDir,
    config: PathBuf,
    url: String,
    addr: String,
    client: Client,
}

impl Rig {
    async fn new() -> Rig {
        let dir = TempDir::new();
        let settings = settings_for(Backend::Postgres, &dir).await;
        let url = settings.database_url.clone().expect("postgres");
        let config = dir.0.join("cinelog.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\ndatabase_url = {url:?}\njwt_secret = \"fault-test-secret-of-this-suite\"\n\
                 [limits]\nsignup_per_client = 100000\nlogin_per_client = 100000\n",
                dir.0.display().to_string()
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", Tansu::free_port());
        let client = Client::new(format!("http://{addr}"));
        Rig {
            bin: cinelog_bin(),
            dir,
            config,
            url,
            addr,
            client,
        }
    }

    /// Starts `serve` and waits until it is ready.
    async fn serve(&self, name: &str) -> Proc {
        let server = Proc::start(
            &self.bin,
            &self.config,
            &["serve", "--addr", &self.addr],
            self.dir.0.join(format!("{name}.log")),
        );
        ready(&self.client, &server).await;
        server
    }

    /// Signs up `n` viewers with a profile each: (token, profile id).
    async fn viewers(&self, n: usize) -> Vec<(String, String)> {
        let mut viewers = Vec::new();
        for i in 0..n {
            let (token, _) = self
                .client
                .signup_login(&format!("fault{i}@example.com"))
                .await;
            let profile = self.client.profile(&token, json!({"name": "main"})).await;
            viewers.push((token, profile));
        }
        viewers
    }

    /// Each viewer sends commands, one after the other, until `stop` is set.
    fn load(
        &self,
        viewers: &[(String, String)],
        stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Vec<tokio::task::JoinHandle<Load>> {
        viewers
            .iter()
            .map(|(token, profile)| {
                tokio::spawn(keep_commanding(
                    Client::new(self.client.base.clone()),
                    token.clone(),
                    profile.clone(),
                    stop.clone(),
                ))
            })
            .collect()
    }
}

/// Every acknowledged command is in the log as the event it answered.
async fn acknowledged_in_log(pool: &sqlx::PgPool, acked: &[(&'static str, i64)]) {
    for (kind, position) in acked {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT event_type FROM events WHERE position = $1")
                .bind(position)
                .fetch_optional(pool)
                .await
                .unwrap();
        assert_eq!(
            stored.as_deref(),
            Some(*kind),
            "acknowledged command at {position} is not in the log"
        );
    }
}

/// `serve` on Postgres killed (SIGKILL) in the middle of a load of commands, then started
/// again: every command it acknowledged is in the log as the event it answered, and once the
/// restarted server has caught up, every read model equals a rebuild from the log — so nothing
/// acknowledged was lost and nothing was applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_mid_load_loses_and_doubles_nothing() {
    let rig = Rig::new().await;
    let mut first = rig.serve("first").await;
    let viewers = rig.viewers(6).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = rig.load(&viewers, &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acked = Vec::new();
    for task in load {
        acked.extend(task.await.unwrap().acked);
    }
    assert!(acked.len() > 20, "the load ran: {} commands", acked.len());

    let restarted = rig.serve("restarted").await;
    let pool = sqlx::PgPool::connect(&rig.url).await.unwrap();
    acknowledged_in_log(&pool, &acked).await;
    caught_up_equal_to_rebuild(&rig.bin, &rig.config, &pool, restarted, viewers.len()).await;
}

/// Postgres ends every connection of the server (`pg_terminate_backend`) again and again in
/// the middle of a load of commands: each command answers 2xx or a clear 503 with
/// `Retry-After`, never another error; the pools recover by themselves (a command after the
/// faults succeeds); every acknowledged command is in the log, and the followers, which lost
/// their connections too, catch up to read models equal to a rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_killed_mid_load_answer_503_and_lose_nothing() {
    let rig = Rig::new().await;
    let server = rig.serve("server").await;
    let viewers = rig.viewers(6).await;
    let admin = sqlx::PgPool::connect(&rig.url).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = rig.load(&viewers, &stop);
    let mut terminated = 0;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let ended: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        terminated += ended;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for task in load {
        let load = task.await.unwrap();
        acked.extend(load.acked);
        refused.extend(load.refused);
    }
    assert!(terminated > 6, "connections were ended: {terminated}");
    assert!(acked.len() > 20, "the load ran: {} commands", acked.len());
    for (status, body) in &refused {
        assert_eq!(*status, 503, "a command failed other than with 503: {body}");
        let error: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(error["error"], "service_unavailable", "{body}");
    }

    let (token, profile) = &viewers[0];
    let after = rig
        .client
        .http
        .patch(rig.client.url(&format!("/api/profiles/{profile}")))
        .bearer_auth(token)
        .json(&json!({"name": "after the faults"}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200, "the pool did not recover");
    acknowledged_in_log(&admin, &acked).await;
    caught_up_equal_to_rebuild(&rig.bin, &rig.config, &admin, server, viewers.len()).await;
}

/// Waits until `server`'s followers have caught up with the whole log, stops it, and checks
/// every read model equals a rebuild from the log (so nothing was lost or applied twice).
async fn caught_up_equal_to_rebuild(
    bin: &Path,
    config: &Path,
    pool: &sqlx::PgPool,
    server: Proc,
    profiles: usize,
) {
    let behind = "SELECT COUNT(*) FROM projection_state
         WHERE active = 1 AND ck_position < (SELECT MAX(position) FROM events)";
    let mut lagging = i64::MAX;
    for _ in 0..600 {
        lagging = sqlx::query_scalar(behind).fetch_one(pool).await.unwrap();
        if lagging == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        lagging,
        0,
        "read models never caught up:\n{}",
        server.output()
    );
    drop(server);
    let live = read_models(pool).await;
    assert_eq!(live["profiles"].len(), profiles);
    let names: Vec<String> = sqlx::query_scalar("SELECT DISTINCT name FROM projection_state")
        .fetch_all(pool)
        .await
        .unwrap();
    for name in &names {
        let rebuilt = Command::new(bin)
            .args(["rebuild", name])
            .env("CINELOG_CONFIG", config)
            .output()
            .unwrap();
        assert!(rebuilt.status.success(), "{rebuilt:?}");
    }
    let rebuilt = read_models(pool).await;
    for (view, rows) in &live {
        assert_eq!(
            rows, &rebuilt[view],
            "{view}: the read model kept through the fault differs from a rebuild from the log"
        );
    }
}
