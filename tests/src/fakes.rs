//! Local stand-ins for the payment providers, speaking their wire formats over HTTP, and a clock
//! tests can move.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use cinelog_commands::ports::Clock;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A clock that stands still until moved.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(Utc::now())))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock") += by;
    }

    pub fn now_time(&self) -> DateTime<Utc> {
        self.now()
    }

    /// Now as Unix seconds.
    pub fn now_ts(&self) -> i64 {
        self.now().timestamp()
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    sessions: usize,
    /// Stripe subscriptions by id: their price and whether they end at the period end.
    subscriptions: HashMap<String, (String, bool)>,
}

type Shared = Arc<Mutex<Inner>>;

fn remember(shared: &Shared, path: String, headers: &HeaderMap, body: &str) {
    let headers = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    shared.lock().expect("fake state").seen.push(Seen {
        path,
        headers,
        body: body.to_string(),
    });
}

/// A fake server on a free port; answers its base URL and what it saw.
pub struct Fake {
    pub base: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn serve(router: Router<Shared>) -> Fake {
        let shared = Shared::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = router.with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake {
            base,
            shared,
            server,
        }
    }

    /// Requests received at paths starting with `prefix`.
    pub fn seen(&self, prefix: &str) -> Vec<Seen> {
        self.shared
            .lock()
            .expect("fake state")
            .seen
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub const STRIPE_KEY: &str = "sk_test_cinelog";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_cinelog_test";

fn stripe_error(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
}

/// Stripe's API as far as Cinelog uses it: Checkout Sessions and subscription updates.
pub async fn fake_stripe() -> Fake {
    async fn sessions(
        State(shared): State<Shared>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(&shared, "/v1/checkout/sessions".into(), &headers, &body);
        if headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {STRIPE_KEY}"))
        {
            return stripe_error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
        }
        let form: HashMap<String, String> = url_form(&body);
        for required in [
            "mode",
            "line_items[0][price]",
            "line_items[0][quantity]",
            "success_url",
            "cancel_url",
            "client_reference_id",
        ] {
            if !form.contains_key(required) {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Missing required param: {required}."),
                );
            }
        }
        let n = {
            let mut inner = shared.lock().expect("fake state");
            inner.sessions += 1;
            inner.sessions
        };
        let id = format!("cs_test_{n:04}");
        (
            StatusCode::OK,
            Json(json!({
                "id": id,
                "object": "checkout.session",
                "mode": "subscription",
                "status": "open",
                "client_reference_id": form["client_reference_id"],
                "url": format!("https://checkout.stripe.test/c/pay/{id}"),
                "livemode": false,
            })),
        )
    }
    /// A subscription as Stripe answers it: one item, whose price the last update set.
    fn subscription_object(shared: &Shared, id: &str) -> Value {
        let inner = shared.lock().expect("fake state");
        let (price, cancel) = inner
            .subscriptions
            .get(id)
            .cloned()
            .unwrap_or_else(|| ("price_standard".into(), false));
        json!({
            "id": id,
            "object": "subscription",
            "status": "active",
            "cancel_at_period_end": cancel,
            "items": {"object": "list", "data": [{"id": format!("si_{id}"), "object": "subscription_item", "price": {"id": price}}]},
        })
    }
    async fn show_subscription(
        State(shared): State<Shared>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> (StatusCode, Json<Value>) {
        remember(&shared, format!("GET /v1/subscriptions/{id}"), &headers, "");
        (StatusCode::OK, Json(subscription_object(&shared, &id)))
    }
    async fn update_subscription(
        State(shared): State<Shared>,
        Path(id): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(&shared, format!("/v1/subscriptions/{id}"), &headers, &body);
        let form = url_form(&body);
        if form.contains_key("items[0][price]")
            && form.get("items[0][id]") != Some(&format!("si_{id}"))
        {
            return stripe_error(StatusCode::BAD_REQUEST, "No such subscription item");
        }
        {
            let mut inner = shared.lock().expect("fake state");
            let entry = inner
                .subscriptions
                .entry(id.clone())
                .or_insert_with(|| ("price_standard".into(), false));
            if let Some(price) = form.get("items[0][price]") {
                entry.0 = price.clone();
            }
            if let Some(cancel) = form.get("cancel_at_period_end") {
                entry.1 = cancel == "true";
            }
        }
        (StatusCode::OK, Json(subscription_object(&shared, &id)))
    }
    Fake::serve(
        Router::new()
            .route("/v1/checkout/sessions", post(sessions))
            .route(
                "/v1/subscriptions/{id}",
                post(update_subscription).get(show_subscription),
            ),
    )
    .await
}

fn url_form(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

pub const PAYPAL_CLIENT: &str = "paypal-client";
pub const PAYPAL_SECRET: &str = "paypal-secret";
pub const PAYPAL_WEBHOOK_ID: &str = "WH-ID-cinelog";
/// The transmission signature the fake PayPal vouches for; any other fails verification.
pub const PAYPAL_GOOD_SIG: &str = "good-signature";

/// PayPal's REST API as far as Cinelog uses it.
pub async fn fake_paypal() -> Fake {
    async fn token(
        State(shared): State<Shared>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(&shared, "/v1/oauth2/token".into(), &headers, &body);
        use base64::Engine;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{PAYPAL_CLIENT}:{PAYPAL_SECRET}"))
        );
        let authorized =
            headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&expected);
        if !authorized || body != "grant_type=client_credentials" {
            return (
                StatusCode::UNAUTHORIZED,
                Json(
                    json!({"error": "invalid_client", "error_description": "Client Authentication failed"}),
                ),
            );
        }
        (
            StatusCode::OK,
            Json(
                json!({"scope": "https://uri.paypal.com/services/subscriptions", "access_token": "A21AAtoken", "token_type": "Bearer", "app_id": "APP-80W284485P519543T", "expires_in": 32400, "nonce": "n"}),
            ),
        )
    }
    fn bearer_ok(headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer A21AAtoken")
    }
    async fn create(
        State(shared): State<Shared>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(&shared, "/v1/billing/subscriptions".into(), &headers, &body);
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if !bearer_ok(&headers) || parsed["plan_id"].as_str().is_none() {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"name": "INVALID_REQUEST", "message": "Request is not well-formed"})),
            );
        }
        let n = {
            let mut inner = shared.lock().expect("fake state");
            inner.sessions += 1;
            inner.sessions
        };
        let id = format!("I-FAKE{n:06}");
        (
            StatusCode::CREATED,
            Json(json!({
                "id": id,
                "status": "APPROVAL_PENDING",
                "plan_id": parsed["plan_id"],
                "custom_id": parsed["custom_id"],
                "links": [
                    {"href": format!("https://www.sandbox.paypal.test/webapps/billing/subscriptions?ba_token=BA-{n}"), "rel": "approve", "method": "GET"},
                    {"href": format!("https://api.paypal.test/v1/billing/subscriptions/{id}"), "rel": "self", "method": "GET"}
                ]
            })),
        )
    }
    async fn cancel(
        State(shared): State<Shared>,
        Path(id): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> StatusCode {
        remember(
            &shared,
            format!("/v1/billing/subscriptions/{id}"),
            &headers,
            &body,
        );
        if bearer_ok(&headers) {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::UNAUTHORIZED
        }
    }
    async fn verify(
        State(shared): State<Shared>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(
            &shared,
            "/v1/notifications/verify-webhook-signature".into(),
            &headers,
            &body,
        );
        let check: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let good = bearer_ok(&headers)
            && check["transmission_sig"] == PAYPAL_GOOD_SIG
            && check["webhook_id"] == PAYPAL_WEBHOOK_ID
            && check["webhook_event"]["id"].is_string();
        (
            StatusCode::OK,
            Json(json!({"verification_status": if good { "SUCCESS" } else { "FAILURE" }})),
        )
    }
    Fake::serve(
        Router::new()
            .route("/v1/oauth2/token", post(token))
            .route("/v1/billing/subscriptions", post(create))
            .route("/v1/billing/subscriptions/{id}/cancel", post(cancel))
            .route("/v1/notifications/verify-webhook-signature", post(verify)),
    )
    .await
}

pub const TMDB_TOKEN: &str = "tmdb-read-token";

/// TMDB as far as Cinelog uses it. The first discover request is rate limited (429), and the
/// overview of movie 603 can be changed between imports.
pub struct FakeTmdb {
    pub fake: Fake,
    overview: Arc<Mutex<String>>,
}

impl FakeTmdb {
    pub fn set_overview(&self, text: &str) {
        *self.overview.lock().expect("overview") = text.to_string();
    }

    pub fn requests(&self, prefix: &str) -> usize {
        self.fake.seen(prefix).len()
    }
}

pub async fn fake_tmdb() -> FakeTmdb {
    let overview = Arc::new(Mutex::new(
        "A hacker learns what the world really is.".to_string(),
    ));
    let limited = Arc::new(std::sync::atomic::AtomicBool::new(false));
    fn authorized(headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TMDB_TOKEN}"))
    }
    fn unauthorized() -> (StatusCode, Json<Value>) {
        (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"status_code": 7, "status_message": "Invalid API key: You must be granted a valid key.", "success": false}),
            ),
        )
    }
    let router = {
        let overview = overview.clone();
        Router::new()
            .route(
                "/genre/{kind}/list",
                axum::routing::get(|State(shared): State<Shared>, Path(kind): Path<String>, headers: HeaderMap| async move {
                    remember(&shared, format!("/genre/{kind}/list"), &headers, "");
                    if !authorized(&headers) {
                        return unauthorized();
                    }
                    (StatusCode::OK, Json(json!({"genres": [{"id": 28, "name": "Action"}, {"id": 878, "name": "Science Fiction"}, {"id": 16, "name": "Animation"}, {"id": 10751, "name": "Family"}, {"id": 18, "name": "Drama"}]})))
                }),
            )
            .route(
                "/discover/{kind}",
                axum::routing::get(move |State(shared): State<Shared>, Path(kind): Path<String>, headers: HeaderMap| {
                    let limited = limited.clone();
                    async move {
                        remember(&shared, format!("/discover/{kind}"), &headers, "");
                        if !authorized(&headers) {
                            return unauthorized();
                        }
                        if !limited.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            return (
                                StatusCode::TOO_MANY_REQUESTS,
                                Json(json!({"status_code": 25, "status_message": "Your request count (41) is over the allowed limit of 40.", "success": false})),
                            );
                        }
                        let results = if kind == "movie" {
                            json!([
                                {"id": 603, "title": "The Matrix", "original_title": "The Matrix", "overview": "…", "genre_ids": [28, 878], "popularity": 88.5, "poster_path": "/m.jpg", "backdrop_path": null, "release_date": "1999-03-31", "original_language": "en", "adult": false, "vote_average": 8.2, "video": false},
                                {"id": 862, "title": "Toy Story", "original_title": "Toy Story", "overview": "Toys.", "genre_ids": [16, 10751], "popularity": 70.1, "poster_path": "/t.jpg", "release_date": "1995-10-30", "original_language": "en", "adult": false, "vote_average": 8.0}
                            ])
                        } else {
                            json!([{"id": 1399, "name": "Game of Thrones", "original_name": "Game of Thrones", "overview": "Seven kingdoms.", "genre_ids": [18], "popularity": 99.0, "poster_path": "/g.jpg", "first_air_date": "2011-04-17", "original_language": "en", "origin_country": ["US"]}])
                        };
                        (StatusCode::OK, Json(json!({"page": 1, "results": results, "total_pages": 1, "total_results": 3})))
                    }
                }),
            )
            .route(
                "/{kind}/{id}",
                axum::routing::get(move |State(shared): State<Shared>, Path((kind, id)): Path<(String, i64)>, headers: HeaderMap| {
                    let overview = overview.clone();
                    async move {
                        remember(&shared, format!("/{kind}/{id}"), &headers, "");
                        if !authorized(&headers) {
                            return unauthorized();
                        }
                        let body = match (kind.as_str(), id) {
                            ("movie", 603) => json!({"id": 603, "title": "The Matrix", "overview": *overview.lock().expect("overview"), "genres": [{"id": 28, "name": "Action"}, {"id": 878, "name": "Science Fiction"}], "runtime": 136, "tagline": "Welcome to the Real World.", "status": "Released", "imdb_id": "tt0133093", "release_date": "1999-03-31", "poster_path": "/m.jpg", "backdrop_path": "/mb.jpg", "adult": false}),
                            ("movie", 862) => json!({"id": 862, "title": "Toy Story", "overview": "Toys.", "genres": [{"id": 16, "name": "Animation"}, {"id": 10751, "name": "Family"}], "runtime": 81, "tagline": "", "release_date": "1995-10-30", "adult": false}),
                            ("tv", 1399) => json!({"id": 1399, "name": "Game of Thrones", "overview": "Seven kingdoms.", "genres": [{"id": 18, "name": "Drama"}], "number_of_seasons": 2, "number_of_episodes": 20, "episode_run_time": [60], "first_air_date": "2011-04-17",
                                "seasons": [{"season_number": 0, "episode_count": 3, "air_date": null}, {"season_number": 1, "episode_count": 10, "air_date": "2011-04-17"}, {"season_number": 2, "episode_count": 10, "air_date": "2012-04-01"}]}),
                            _ => return (StatusCode::NOT_FOUND, Json(json!({"status_code": 34, "status_message": "The resource you requested could not be found.", "success": false}))),
                        };
                        (StatusCode::OK, Json(body))
                    }
                }),
            )
    };
    // TMDB's image host (image.tmdb.org/t/p/{size}/{file}): a few bytes per image.
    let router = router.route(
        "/t/p/{size}/{file}",
        axum::routing::get(
            |State(shared): State<Shared>,
             Path((size, file)): Path<(String, String)>,
             headers: HeaderMap| async move {
                remember(&shared, format!("/t/p/{size}/{file}"), &headers, "");
                (
                    [(axum::http::header::CONTENT_TYPE, "image/jpeg")],
                    format!("\u{ff}\u{d8}image {size} {file}").into_bytes(),
                )
            },
        ),
    );
    FakeTmdb {
        fake: Fake::serve(router).await,
        overview,
    }
}

/// How the fake Groq answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroqMode {
    /// Reverses the candidates, with a reason each, plus an id that is not a candidate.
    Reverse,
    /// A chat completion whose content is not the JSON asked for.
    Garbage,
    /// Answers correctly, but only after three seconds.
    Slow,
    /// HTTP 500.
    Fail,
}

pub struct FakeGroq {
    pub fake: Fake,
    mode: Arc<Mutex<GroqMode>>,
}

impl FakeGroq {
    pub fn set(&self, mode: GroqMode) {
        *self.mode.lock().expect("mode") = mode;
    }
}

/// Groq's chat-completions endpoint (OpenAI wire format).
pub async fn fake_groq() -> FakeGroq {
    let mode = Arc::new(Mutex::new(GroqMode::Reverse));
    let current = mode.clone();
    let router = Router::new().route(
        "/openai/v1/chat/completions",
        post(move |State(shared): State<Shared>, headers: HeaderMap, body: String| {
            let mode = *current.lock().expect("mode");
            async move {
                remember(&shared, "/openai/v1/chat/completions".into(), &headers, &body);
                let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if request["response_format"]["type"] != "json_object" {
                    return (StatusCode::BAD_REQUEST, Json(json!({"error": {"message": "json mode expected"}})));
                }
                let prompt = request["messages"][1]["content"].as_str().unwrap_or("");
                let candidates: Vec<Value> = prompt
                    .split("Candidates: ")
                    .nth(1)
                    .and_then(|c| serde_json::from_str(c).ok())
                    .unwrap_or_default();
                let content = match mode {
                    GroqMode::Fail => {
                        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": {"message": "boom"}})));
                    }
                    GroqMode::Garbage => "Sure! Here are my favourite films: 1. The Godfather".to_string(),
                    GroqMode::Reverse | GroqMode::Slow => {
                        if mode == GroqMode::Slow {
                            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                        }
                        let mut ranking: Vec<Value> = candidates
                            .iter()
                            .rev()
                            .map(|c| json!({"id": c["id"], "reason": format!("Picked for you: {}", c["title"].as_str().unwrap_or(""))}))
                            .collect();
                        ranking.insert(1, json!({"id": "not-a-candidate", "reason": "invented"}));
                        json!({"ranking": ranking}).to_string()
                    }
                };
                (
                    StatusCode::OK,
                    Json(json!({
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": request["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
                    })),
                )
            }
        }),
    );
    FakeGroq {
        fake: Fake::serve(router).await,
        mode,
    }
}

/// A message an SMTP sink received: its recipients and its data.
pub type Received = (Vec<String>, String);

/// A mail server that speaks real SMTP (EHLO, MAIL, RCPT, DATA, QUIT) and keeps what it is sent.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<Received>>>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP sink");
        let sink = SmtpSink {
            port: listener.local_addr().expect("addr").port(),
            messages: Arc::default(),
        };
        let messages = sink.messages.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(smtp_session(stream, messages.clone()));
            }
        });
        sink
    }

    /// Waits (up to 5 s) for a message to arrive; answers its recipients and data.
    pub async fn wait_for_message(&self) -> Received {
        for _ in 0..250 {
            if let Some(m) = self.messages.lock().expect("sink").last().cloned() {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no mail reached the SMTP sink");
    }
}

async fn smtp_session(
    stream: tokio::net::TcpStream,
    messages: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut recipients = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 OK\r\n",
            "RCPT" => {
                recipients.push(line[8..].trim().trim_matches(['<', '>']).to_string());
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                while let Some(l) = lines.next_line().await? {
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push('\n');
                }
                messages
                    .lock()
                    .expect("sink")
                    .push((std::mem::take(&mut recipients), data));
                b"250 queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

/// A Kafka-compatible broker (tansu, memory storage) on a port of this machine, stopped when
/// dropped. The binary is `TANSU`, or `tansu` on the PATH (`./scripts/test` installs it).
pub struct Tansu {
    child: std::process::Child,
    pub port: u16,
}

impl Tansu {
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    pub async fn start(port: u16) -> Tansu {
        let bin = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
        let listener = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &listener,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} must be installed (./scripts/test does it): {e}"));
        let broker = Tansu { child, port };
        listening(port, "tansu").await;
        broker
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` of the test's own on a given port, keeping nothing on disk; stopped on drop.
pub struct RedisServer {
    child: std::process::Child,
    pub port: u16,
}

impl RedisServer {
    pub async fn start(port: u16) -> RedisServer {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server must be installed: {e}"));
        let server = RedisServer { child, port };
        listening(port, "redis-server").await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 10 s) until something listens on a local port.
async fn listening(port: u16, what: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what} did not listen on {port}");
}
