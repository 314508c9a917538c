//! Helpers for Cinelog's end-to-end tests: an app on port 0 with its own database, typed request
//! helpers, fake outside services, and a real Chromium through chromedriver.

pub mod browser;
pub mod fakes;
pub mod kurrent;

use async_trait::async_trait;
use cinelog_api::{Outside, Running};
use cinelog_commands::EventStore;
use cinelog_commands::ports::Mailer;
use cinelog_domain::values::Email;
use cinelog_infra::Settings;
use cinelog_infra::phone::ConsoleVerifier;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Base URL of the Postgres server tests create their databases on.
pub fn pg_base() -> String {
    std::env::var("CINELOG_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh, empty Postgres database; answers its URL.
pub async fn fresh_pg_database() -> String {
    let name = format!("cinelog_t_{}", Uuid::now_v7().simple());
    let admin = format!("{}/postgres", pg_base());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("Postgres must be running (see README: ./scripts/test)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    format!("{}/{name}", pg_base())
}

/// Every committed event, in log order.
///
/// On Postgres the log reader holds back events while an older transaction anywhere on the server
/// is still running (other tests' included), so this reads until it sees as many events as the
/// table holds.
pub async fn whole_log(store: &cinelog_infra::Store) -> Vec<cinelog_domain::RecordedEvent> {
    use cinelog_projections::{Checkpoint, EventLog};
    for _ in 0..600 {
        let (stored, _) = store.backlog(Checkpoint::START).await.expect("count");
        let log = store
            .read_after(Checkpoint::START, 1_000_000)
            .await
            .expect("read the log");
        if log.len() as i64 == stored {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the log reader never caught up with the committed events");
}

/// A fresh temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("cinelog-test-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Mail that was sent, kept for the test to read (the outside mail service's stand-in).
#[derive(Default)]
pub struct RecordingMailer {
    pub resets: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send_password_reset(&self, to: &Email, token: &str) -> Result<(), String> {
        self.resets
            .lock()
            .map_err(|e| e.to_string())?
            .push((to.as_str().to_string(), token.to_string()));
        Ok(())
    }
}

impl RecordingMailer {
    pub fn last_reset_token(&self) -> Option<String> {
        self.resets.lock().ok()?.last().map(|(_, t)| t.clone())
    }

    /// Waits (up to 5 s) for a reset mail: it is sent after the request has been answered.
    pub async fn wait_for_reset_token(&self) -> String {
        for _ in 0..250 {
            if let Some(token) = self.last_reset_token() {
                return token;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no password-reset mail was sent");
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// The log in a fake KurrentDB (see [`kurrent`]) started for the test, read models in
    /// Postgres.
    Kurrent,
}

/// A running Cinelog with its own database.
pub struct TestApp {
    pub running: Running,
    pub client: Client,
    pub mailer: Arc<RecordingMailer>,
    pub phone: Arc<ConsoleVerifier>,
    pub settings: Settings,
    pub dir: TempDir,
}

/// Typed requests to one Cinelog server.
pub struct Client {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(base: impl Into<String>) -> Client {
        Client {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            headers,
        }
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Answer {
        self.call(Method::POST, path, Some(body), token).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, None, token).await
    }

    /// Signs up and logs in; answers (access token, refresh token).
    pub async fn signup_login(&self, email: &str) -> (String, String) {
        let a = self
            .post(
                "/api/auth/signup",
                serde_json::json!({"email": email, "password": "Corr3ct-horse-battery"}),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "signup: {:?}", a.body);
        self.login(email, "Corr3ct-horse-battery").await
    }

    pub async fn login(&self, email: &str, password: &str) -> (String, String) {
        let a = self
            .post(
                "/api/auth/login",
                serde_json::json!({"email": email, "password": password}),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "login: {:?}", a.body);
        (
            a.body["access_token"]
                .as_str()
                .expect("access token")
                .to_string(),
            a.body["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_string(),
        )
    }

    /// The caller's account id.
    pub async fn account_id(&self, token: &str) -> Uuid {
        let me = self.get("/api/me", Some(token)).await;
        assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
        Uuid::parse_str(
            me.body["account"]["account_id"]
                .as_str()
                .expect("account id"),
        )
        .expect("uuid")
    }

    /// Posts a raw body with extra headers.
    pub async fn post_raw(&self, path: &str, body: &[u8], headers: &[(&str, String)]) -> Answer {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            headers,
        }
    }

    /// Starts a checkout of `plan` (with the default provider unless one is named); answers
    /// the URL the user is sent to.
    pub async fn start_checkout(&self, token: &str, plan: &str, provider: Option<&str>) -> String {
        let mut body = serde_json::json!({ "plan": plan });
        if let Some(provider) = provider {
            body["provider"] = provider.into();
        }
        let started = self
            .post("/api/subscription/checkout", body, Some(token))
            .await;
        assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
        started.body["redirect_url"]
            .as_str()
            .expect("redirect url")
            .to_string()
    }

    /// Approves or declines a sandbox checkout as the subscriber would on its page; answers where
    /// the page sends them back to.
    pub async fn answer_sandbox(&self, redirect_url: &str, answer: &str) -> String {
        let page = self
            .http
            .get(redirect_url)
            .send()
            .await
            .expect("checkout page");
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.expect("page");
        let session = html
            .split(&format!("action=\"/sandbox/checkout/{answer}?session="))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page has the form")
            .to_string();
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let response = no_redirects
            .post(self.url(&format!("/sandbox/checkout/{answer}?session={session}")))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        response.headers()["location"]
            .to_str()
            .expect("location")
            .to_string()
    }

    /// Subscribes the caller's account to `plan` through the sandbox and waits until the
    /// entitlement shows it.
    pub async fn subscribe(&self, token: &str, plan: &str) {
        let redirect = self.start_checkout(token, plan, None).await;
        let back = self.answer_sandbox(&redirect, "approve").await;
        let position = back
            .split("position=")
            .nth(1)
            .and_then(|p| p.split('&').next())
            .expect("position");
        let sub = self
            .get(
                &format!("/api/subscription?min_position={position}"),
                Some(token),
            )
            .await;
        assert_eq!(sub.body["status"], "active", "{:?}", sub.body);
    }

    /// The caller's subscription (`GET /api/subscription`), read at `min_position` when given.
    pub async fn subscription(&self, token: &str, min_position: Option<i64>) -> SubscriptionView {
        let path = match min_position {
            Some(p) => format!("/api/subscription?min_position={p}"),
            None => "/api/subscription".into(),
        };
        let a = self.get(&path, Some(token)).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        a.decode()
    }

    /// Creates a profile; answers its id.
    pub async fn profile(&self, token: &str, body: Value) -> String {
        let a = self.post("/api/profiles", body, Some(token)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        a.body["profile_id"]
            .as_str()
            .expect("profile id")
            .to_string()
    }
}

impl std::ops::Deref for TestApp {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// What a call answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn error_code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// The body as a typed answer; panics, showing the body, when it does not have that shape.
    pub fn decode<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone())
            .unwrap_or_else(|e| panic!("{} ({e}): {:?}", std::any::type_name::<T>(), self.body))
    }
}

/// The subscription answer (`GET /api/subscription`): the entitlement, the provider and the
/// payment history.
#[derive(Debug, Deserialize)]
pub struct SubscriptionView {
    /// `none`, `active`, `past_due`, `canceled`, `expired`, ...
    pub status: String,
    pub entitled: bool,
    pub plan: Option<String>,
    pub plan_name: Option<String>,
    /// A downgrade waiting for the period end.
    pub pending_plan: Option<String>,
    /// Highest rendition height playable, 0 when not entitled.
    pub max_quality: u32,
    pub concurrent_streams: u32,
    /// RFC 3339.
    pub period_end: Option<String>,
    pub cancel_at_period_end: bool,
    pub provider: Option<String>,
    /// Newest first.
    pub payments: Vec<PaymentView>,
}

/// One line of the subscription answer's payment history.
#[derive(Debug, Deserialize)]
pub struct PaymentView {
    /// `paid`, `failed` or `rejected`.
    pub outcome: String,
    /// In minor units (cents).
    pub amount: Option<i64>,
}

/// The playback start answer (`POST /api/profiles/{pid}/playback`).
#[derive(Debug, Deserialize)]
pub struct PlaybackStarted {
    pub session_id: String,
    pub master_playlist_url: String,
    pub resume_position_secs: f64,
    /// Highest height the plan plays, e.g. 1080.
    pub max_quality: u32,
    /// The renditions offered, e.g. `["240p", "480p", "720p"]`.
    pub qualities: Vec<String>,
    pub episode_id: Option<String>,
    pub duration_secs: f64,
}

/// The title ids of a page of `/api/titles`, in order.
pub fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

pub async fn settings_for(backend: Backend, dir: &TempDir) -> Settings {
    Settings {
        addr: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.0.clone(),
        database_url: match backend {
            Backend::Sqlite => None,
            Backend::Postgres | Backend::Kurrent => Some(fresh_pg_database().await),
        },
        eventstore_url: match backend {
            Backend::Kurrent => Some(kurrent::start_for_test().await),
            _ => None,
        },
        max_connections: 8,
        ..Settings::default()
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        let dir = TempDir::new();
        let settings = settings_for(backend, &dir).await;
        Self::spawn_with(settings, dir, Outside::default()).await
    }

    /// An app on a clock the test moves.
    pub async fn spawn_on_clock(
        settings: Settings,
        dir: TempDir,
    ) -> (TestApp, Arc<fakes::ManualClock>) {
        let clock = fakes::ManualClock::new();
        let outside = Outside {
            clock: Some(clock.clone()),
            ..Outside::default()
        };
        (Self::spawn_with(settings, dir, outside).await, clock)
    }

    /// An app that builds its own mail and phone services from its settings (SMTP, or the
    /// outbox and console SMS), as the binary does.
    pub async fn spawn_with_own_mailer(
        settings: Settings,
        dir: TempDir,
        outside: Outside,
    ) -> TestApp {
        let running = cinelog_api::start(settings.clone(), outside)
            .await
            .expect("app starts");
        TestApp {
            client: Client::new(running.url()),
            running,
            mailer: Arc::default(),
            phone: Arc::default(),
            settings,
            dir,
        }
    }

    pub async fn spawn_with(settings: Settings, dir: TempDir, outside: Outside) -> TestApp {
        let mailer = Arc::new(RecordingMailer::default());
        let phone = Arc::new(ConsoleVerifier::default());
        let outside = Outside {
            mailer: Some(outside.mailer.unwrap_or_else(|| mailer.clone())),
            phone: Some(outside.phone.unwrap_or_else(|| phone.clone())),
            clock: outside.clock,
        };
        let running = cinelog_api::start(settings.clone(), outside)
            .await
            .expect("app starts");
        TestApp {
            client: Client::new(running.url()),
            running,
            mailer,
            phone,
            settings,
            dir,
        }
    }

    /// The server's address.
    pub fn url(&self, path: &str) -> String {
        self.client.url(path)
    }

    /// Number of events in the log.
    /// Whether the named read model reaches log `position` within ten seconds.
    pub async fn reaches(&self, projection: &str, position: i64) -> bool {
        self.running
            .state
            .projections
            .wait_for(projection, position, std::time::Duration::from_secs(10))
            .await
            .unwrap()
    }

    pub async fn log_len(&self) -> usize {
        self.log().await.len()
    }

    /// Every event in the log, oldest first.
    pub async fn log(&self) -> Vec<cinelog_domain::RecordedEvent> {
        whole_log(&self.running.state.store).await
    }

    /// Creates a user with `role` (as `cinelog user create` does) and signs in; answers the
    /// access token.
    pub async fn signed_in_as(&self, email: &str, role: cinelog_domain::values::Role) -> String {
        self.running
            .state
            .identity
            .signup(
                email,
                "Corr3ct-horse-battery",
                None,
                role,
                &cinelog_commands::CommandMeta::new(cinelog_domain::Actor::System),
            )
            .await
            .expect("user created");
        self.login(email, "Corr3ct-horse-battery").await.0
    }

    /// Stops serving (the database stays).
    pub fn stop(&self) {
        self.running.stop();
    }
}

/// Appends `n` one-event account streams, as many signups would.
pub async fn open_accounts(store: &cinelog_infra::Store, n: usize) {
    let meta = cinelog_commands::CommandMeta::new(cinelog_domain::Actor::System);
    for _ in 0..n {
        let id = Uuid::now_v7().to_string();
        store
            .append::<cinelog_domain::account::Account>(
                &id,
                &Default::default(),
                &[cinelog_domain::account::AccountEvent::AccountOpened { owner: Uuid::nil() }],
                &meta,
            )
            .await
            .unwrap();
    }
}

/// Counts events with a non-idempotent increment: any double application shows.
pub struct Counter {
    pub version: i64,
}

#[async_trait]
impl cinelog_projections::Projection for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[("event_counts", "id BIGINT PRIMARY KEY, n BIGINT NOT NULL")]
    }
    async fn apply(
        &self,
        conn: &mut sqlx::AnyConnection,
        t: &cinelog_projections::Tables,
        _: &cinelog_domain::RecordedEvent,
    ) -> anyhow::Result<()> {
        count_one(conn, &t.name("event_counts")).await
    }
}

/// Adds one to the count in row 1 of a counting projection's `table`.
pub async fn count_one(conn: &mut sqlx::AnyConnection, table: &str) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {table} (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!("UPDATE {table} SET n = n + 1 WHERE id = 1"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
