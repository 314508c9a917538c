//! Accounts and sessions against an attacker: revocation, fair throttling, mail, erasure,
//! headers, the UI socket, and replayed sandbox links.

use cinelog_infra::settings::{LimitSettings, SmtpSecurity, SmtpSettings};
use cinelog_tests::fakes::SmtpSink;
use cinelog_tests::{Answer, Backend, TempDir, TestApp, settings_for};
use reqwest::Method;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASSWORD: &str = "Corr3ct-horse-battery";

/// A client calling from its own loopback address, so limits count it apart.
fn client_at(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .expect("client")
}

async fn login_from(app: &TestApp, client: &reqwest::Client, email: &str, password: &str) -> u16 {
    client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login sent")
        .status()
        .as_u16()
}

async fn me(app: &TestApp, token: &str) -> Answer {
    app.get("/api/me", Some(token)).await
}

#[tokio::test]
async fn an_access_token_dies_with_its_session() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // Logout.
    let (access, _) = app.signup_login("dora@example.com").await;
    assert_eq!(me(&app, &access).await.status, 200);
    let out = app
        .call(Method::POST, "/api/auth/logout", None, Some(&access))
        .await;
    assert_eq!(out.status, 204);
    let after = me(&app, &access).await;
    assert_eq!(
        (after.status.as_u16(), after.error_code()),
        (401, "session_ended")
    );

    // A password change ends every session of the user, the other device's too.
    let (here, _) = app.login("dora@example.com", PASSWORD).await;
    let (there, there_refresh) = app.login("dora@example.com", PASSWORD).await;
    let changed = app
        .post(
            "/api/auth/password",
            json!({"current_password": PASSWORD, "new_password": "N3w-lantern-keeper"}),
            Some(&here),
        )
        .await;
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    assert_eq!(me(&app, &here).await.status, 401);
    assert_eq!(me(&app, &there).await.status, 401);
    let refresh = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": there_refresh}),
            None,
        )
        .await;
    assert_eq!(refresh.status, 401);
    // Each ended session has its own event.
    let ended = app
        .log()
        .await
        .iter()
        .filter(|e| e.event_type == "SessionRevoked")
        .count();
    assert_eq!(
        ended, 3,
        "logout, then both sessions at the password change"
    );

    // A password reset ends them too.
    let (reset_victim, _) = app.login("dora@example.com", "N3w-lantern-keeper").await;
    app.post(
        "/api/auth/password-reset",
        json!({"email": "dora@example.com"}),
        None,
    )
    .await;
    let token = app.mailer.wait_for_reset_token().await;
    let confirmed = app
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "new_password": "Th1rd-lantern-keeper"}),
            None,
        )
        .await;
    assert_eq!(confirmed.status, 204, "{:?}", confirmed.body);
    assert_eq!(me(&app, &reset_victim).await.status, 401);

    // And erasure.
    let (erased, _) = app.login("dora@example.com", "Th1rd-lantern-keeper").await;
    let gone = app
        .call(
            Method::DELETE,
            "/api/me",
            Some(json!({"password": "Th1rd-lantern-keeper"})),
            Some(&erased),
        )
        .await;
    assert_eq!(gone.status, 204, "{:?}", gone.body);
    assert_eq!(me(&app, &erased).await.status, 401);
    app.stop();
}

#[tokio::test]
async fn a_session_ended_on_one_replica_is_refused_on_the_other() {
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Postgres, &dir).await;
    settings.jwt_secret = Some(cinelog_infra::Secret::new(
        "a shared secret for both replicas, long enough",
    ));
    let a = TestApp::spawn_with(settings.clone(), TempDir::new(), Default::default()).await;
    let b = TestApp::spawn_with(settings, TempDir::new(), Default::default()).await;
    let (access, _) = a.signup_login("replica-logout@example.com").await;
    assert_eq!(me(&b, &access).await.status, 200);
    let out = a
        .call(Method::POST, "/api/auth/logout", None, Some(&access))
        .await;
    assert_eq!(out.status, 204);
    // The other replica learns of the end from the log; a few ticks of its guard at most.
    let mut status = 0;
    for _ in 0..100 {
        status = me(&b, &access).await.status.as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401, "replica B still accepts the ended session");
    // A restarted replica refuses it from its first request.
    let c = TestApp::spawn_with(b.settings.clone(), TempDir::new(), Default::default()).await;
    assert_eq!(me(&c, &access).await.status, 401);
    a.stop();
    b.stop();
    c.stop();
}

#[tokio::test]
async fn another_clients_failures_never_lock_the_owner_out() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.signup_login("erin@example.com").await;
    let attacker = client_at(2);
    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(login_from(&app, &attacker, "erin@example.com", "wrong-password").await);
    }
    assert_eq!(answers, [401, 401, 401, 401, 401, 429, 429, 429]);
    let owner = client_at(1);
    assert_eq!(
        login_from(&app, &owner, "erin@example.com", PASSWORD).await,
        200
    );
    // Even the right password does not help the client that has been guessing.
    assert_eq!(
        login_from(&app, &attacker, "erin@example.com", PASSWORD).await,
        429
    );
    app.stop();
}

#[tokio::test]
async fn one_client_trying_many_accounts_is_stopped() {
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Sqlite, &dir).await;
    settings.limits = LimitSettings {
        login_per_client: 10,
        ..LimitSettings::default()
    };
    let app = TestApp::spawn_with(settings, dir, Default::default()).await;
    let stuffer = client_at(3);
    let mut last = 0;
    for i in 0..11 {
        last = login_from(&app, &stuffer, &format!("victim{i}@example.com"), PASSWORD).await;
    }
    assert_eq!(last, 429, "the 11th account from one client");
    app.signup_login("bystander@example.com").await;
    app.stop();
}

#[tokio::test]
async fn signups_resets_and_phone_codes_are_limited_per_client_and_user() {
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Sqlite, &dir).await;
    settings.limits = LimitSettings {
        signup_per_client: 3,
        reset_per_client: 2,
        reset_per_email: 1,
        phone_codes_per_user: 2,
        ..LimitSettings::default()
    };
    let app = TestApp::spawn_with(settings, dir, Default::default()).await;
    let bot = client_at(4);
    let mut statuses = Vec::new();
    for i in 0..4 {
        let a = bot
            .post(app.url("/api/auth/signup"))
            .json(&json!({"email": format!("bot{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        if a.status() == 429 {
            assert!(a.headers().contains_key("retry-after"));
        }
        statuses.push(a.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 429]);
    let before = app.log_len().await;
    // Another client signs up as usual.
    let (token, _) = app.signup_login("human@example.com").await;
    assert!(app.log_len().await > before);

    let reset = |email: &'static str| {
        bot.post(app.url("/api/auth/password-reset"))
            .json(&json!({"email": email}))
            .send()
    };
    assert_eq!(reset("bot0@example.com").await.unwrap().status(), 202);
    // One request per address per window, whoever asks.
    assert_eq!(reset("bot0@example.com").await.unwrap().status(), 429);
    assert_eq!(reset("bot1@example.com").await.unwrap().status(), 429);

    for expected in [202, 202, 429] {
        let a = app
            .post(
                "/api/auth/phone/start",
                json!({"phone": "+14155550123"}),
                Some(&token),
            )
            .await;
        assert_eq!(a.status.as_u16(), expected, "{:?}", a.body);
    }
    app.stop();
}

#[tokio::test]
async fn weak_passwords_are_refused_with_the_reason() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let before = app.log_len().await;
    for weak in ["password1234", "qwertyuiop12", "weak@example.com1"] {
        let a = app
            .post(
                "/api/auth/signup",
                json!({"email": "weak@example.com", "password": weak}),
                None,
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.error_code()),
            (422, "invalid_field"),
            "{weak}"
        );
        let message = a.body["message"].as_str().unwrap_or_default();
        assert!(message.contains("too easy to guess"), "{message}");
    }
    assert_eq!(
        app.log_len().await,
        before,
        "a refused signup writes nothing"
    );
    app.stop();
}

#[tokio::test]
async fn reset_mail_goes_out_over_smtp() {
    let sink = SmtpSink::start().await;
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Sqlite, &dir).await;
    settings.smtp = Some(SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port,
        username: None,
        password: None,
        from: "Cinelog <no-reply@cinelog.test>".into(),
        security: SmtpSecurity::None,
    });
    settings.public_url = Some("https://cinelog.test".into());
    // No mailer passed in: the app builds its own from [smtp].
    let outside = cinelog_api::Outside {
        mailer: None,
        ..Default::default()
    };
    let app = TestApp::spawn_with_own_mailer(settings, dir, outside).await;
    app.signup_login("smtp@example.com").await;
    let asked = app
        .post(
            "/api/auth/password-reset",
            json!({"email": "smtp@example.com"}),
            None,
        )
        .await;
    assert_eq!(asked.status, 202);
    let (to, raw) = sink.wait_for_message().await;
    // The body is quoted-printable, as a mail client reads it: soft line breaks and `=3D`.
    let data = raw.replace("=\n", "").replace("=3D", "=");
    assert_eq!(to, ["smtp@example.com"]);
    assert!(
        data.contains("Subject: Reset your Cinelog password"),
        "{data}"
    );
    let link = data
        .lines()
        .find(|l| l.starts_with("https://cinelog.test/?reset="))
        .expect("a reset link in the mail");
    let token = link.trim_start_matches("https://cinelog.test/?reset=");
    let confirmed = app
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "new_password": "Mail3d-lantern-keeper"}),
            None,
        )
        .await;
    assert_eq!(confirmed.status, 204, "{:?}", confirmed.body);
    app.login("smtp@example.com", "Mail3d-lantern-keeper").await;
    // Nothing was written to the outbox: the outbox is only for a deployment without SMTP.
    assert!(!app.dir.0.join("outbox").exists());
    app.stop();
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_the_log_at_any_level() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Sqlite, &dir).await;
    settings.jwt_secret = Some(cinelog_infra::Secret::new(
        "jwt-secret-that-must-never-be-logged",
    ));
    // The app's own outbox mailer and console SMS, as in the embedded default.
    let app = TestApp::spawn_with_own_mailer(settings, dir, Default::default()).await;
    let signup = app
        .post(
            "/api/auth/signup",
            json!({"email": "quiet@example.com", "password": PASSWORD, "phone": "+14155550142"}),
            None,
        )
        .await;
    assert_eq!(signup.status, 201);
    let (access, refresh) = app.login("quiet@example.com", PASSWORD).await;
    let refreshed = app
        .post("/api/auth/refresh", json!({"refresh_token": refresh}), None)
        .await;
    assert_eq!(refreshed.status, 200);
    let new_refresh = refreshed.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let access2 = refreshed.body["access_token"].as_str().unwrap().to_string();

    // Phone: the code is read from the outbox, as a developer would.
    assert_eq!(
        app.post("/api/auth/phone/start", json!({}), Some(&access2))
            .await
            .status,
        202
    );
    let sms = read_outbox(&app, "-sms.txt").await;
    let code = sms
        .split_whitespace()
        .last()
        .expect("a code in the message")
        .to_string();
    let verified = app
        .post(
            "/api/auth/phone/verify",
            json!({"code": code}),
            Some(&access2),
        )
        .await;
    assert_eq!(verified.status, 204, "{:?}", verified.body);

    // Reset, with the link from the outbox.
    app.post(
        "/api/auth/password-reset",
        json!({"email": "quiet@example.com"}),
        None,
    )
    .await;
    let mail = read_outbox(&app, "-password-reset.eml").await;
    let reset_token = mail
        .lines()
        .find_map(|l| l.split_once("?reset=").map(|(_, t)| t.to_string()))
        .expect("a reset link");
    let new_password = "Qu1et-lantern-keeper";
    let confirmed = app
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": reset_token, "new_password": new_password}),
            None,
        )
        .await;
    assert_eq!(confirmed.status, 204, "{:?}", confirmed.body);

    // Checkout through the sandbox.
    let (access3, _) = app.login("quiet@example.com", new_password).await;
    let redirect = app.start_checkout(&access3, "standard", None).await;
    app.answer_sandbox(&redirect, "approve").await;
    let sandbox_session = redirect.split("session=").nth(1).unwrap().to_string();

    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(
        log.contains("password-reset mail written to the outbox"),
        "the log was not captured"
    );
    for secret in [
        PASSWORD,
        new_password,
        &access,
        &access2,
        &access3,
        &refresh,
        &new_refresh,
        &reset_token,
        &code,
        &sandbox_session,
        "jwt-secret-that-must-never-be-logged",
        "quiet@example.com",
        "4155550142",
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
    app.stop();
}

/// The newest outbox file whose name ends with `suffix` (waits up to 5 s: mail goes out after
/// the answer).
async fn read_outbox(app: &TestApp, suffix: &str) -> String {
    let dir = app.dir.0.join("outbox");
    for _ in 0..250 {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect();
            files.sort();
            if let Some(newest) = files.last() {
                return std::fs::read_to_string(newest).expect("outbox file");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing ending in {suffix} in the outbox");
}

#[tokio::test]
async fn erasure_frees_the_address_and_leaves_nothing_to_confirm_it_by() {
    use sha2::Digest;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let (token, _) = app.signup_login("fay@example.com").await;
        let before = app.log_len().await;
        let wrong = app
            .call(
                Method::DELETE,
                "/api/me",
                Some(json!({"password": "not-my-password"})),
                Some(&token),
            )
            .await;
        assert_eq!(
            (wrong.status.as_u16(), wrong.error_code()),
            (401, "invalid_credentials")
        );
        assert_eq!(
            app.log_len().await,
            before,
            "{backend:?}: a refusal writes nothing"
        );
        let gone = app
            .call(
                Method::DELETE,
                "/api/me",
                Some(json!({"password": PASSWORD})),
                Some(&token),
            )
            .await;
        assert_eq!(gone.status, 204, "{backend:?}: {:?}", gone.body);
        let log = app.log().await;
        assert!(log.iter().any(|e| e.event_type == "EmailClaimReleased"));
        // No stream is named by a plain hash of the address: guessing cannot confirm it.
        let plain = hex::encode(sha2::Sha256::digest(b"fay@example.com"));
        assert!(
            log.iter().all(|e| e.stream_id != plain),
            "{backend:?}: a claim stream is named by the address's plain hash"
        );
        // The address signs up again, as a new user.
        app.signup_login("fay@example.com").await;
        // The old user cannot sign in with the old password.
        let old = app
            .post(
                "/api/auth/login",
                json!({"email": "fay@example.com", "password": "wrong-one-here"}),
                None,
            )
            .await;
        assert_eq!(old.status, 401);
        app.stop();
    }
}

#[tokio::test]
async fn answers_carry_security_headers() {
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Sqlite, &dir).await;
    settings.public_url = Some("https://cinelog.example".into());
    let app = TestApp::spawn_with(settings, dir, Default::default()).await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    let h = page.headers().clone();
    let html = page.text().await.unwrap();
    let csp = h["content-security-policy"].to_str().unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("the page's script nonce");
    assert!(html.contains(&format!("<script nonce=\"{nonce}\">")));
    assert!(
        csp.contains("frame-ancestors 'none'")
            && !csp.contains("script-src 'self' 'unsafe-inline'")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    // A second load gets a new nonce.
    let again = app.http.get(app.url("/")).send().await.unwrap();
    assert_ne!(again.headers()["content-security-policy"], csp);

    let login = app
        .post(
            "/api/auth/login",
            json!({"email": "nobody@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.headers["cache-control"], "no-store");
    assert!(
        login.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    // Without an https public URL there is no HSTS (it would pin plain-http development).
    let plain = TestApp::spawn(Backend::Sqlite).await;
    let h = plain.http.get(plain.url("/healthz")).send().await.unwrap();
    assert!(!h.headers().contains_key("strict-transport-security"));
    assert_eq!(h.headers()["x-content-type-options"], "nosniff");
    plain.stop();
    app.stop();
}

/// Opens a WebSocket to `/ws` with this Origin; answers the handshake's status, and the socket
/// when it was accepted.
async fn open_socket(
    app: &TestApp,
    origin: &str,
) -> (
    u16,
    Option<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>,
) {
    open_socket_from(app, origin, 1).await
}

/// The same from `127.0.0.<last>`.
async fn open_socket_from(
    app: &TestApp,
    origin: &str,
    last: u8,
) -> (
    u16,
    Option<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>,
) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/ws", app.running.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, last], 0)))
        .unwrap();
    let tcp = socket.connect(app.running.addr).await.unwrap();
    match tokio_tungstenite::client_async(request, tcp).await {
        Ok((socket, response)) => (response.status().as_u16(), Some(socket)),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            (response.status().as_u16(), None)
        }
        Err(e) => panic!("socket handshake failed: {e}"),
    }
}

/// Polls the gauge (up to 5 s) until it reads `want`; answers the last reading.
async fn wait_for_live(app: &TestApp, want: i64) -> i64 {
    let mut live = -1;
    for _ in 0..100 {
        live = live_sessions(app).await;
        if live == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    live
}

async fn live_sessions(app: &TestApp) -> i64 {
    let metrics = app.get("/metrics", None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("cinelog_ui_sessions_live "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the live-session gauge")
}

#[tokio::test]
async fn the_ui_socket_checks_origin_caps_clients_and_frees_closed_sessions() {
    use futures::StreamExt;
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Sqlite, &dir).await;
    settings.limits = LimitSettings {
        sockets_per_client: 5,
        ..LimitSettings::default()
    };
    let app = TestApp::spawn_with(settings, dir, Default::default()).await;
    let own = app.running.url();
    let (status, _) = open_socket(&app, "http://evil.example").await;
    assert_eq!(status, 403, "a foreign Origin");

    // Sessions open and close; every one is freed.
    for _ in 0..40 {
        let (status, socket) = open_socket(&app, &own).await;
        assert_eq!(status, 101);
        let mut socket = socket.unwrap();
        // The first render arrives: the session really ran.
        let first = socket.next().await.expect("a first message").unwrap();
        assert!(!first.into_data().is_empty());
        socket.close(None).await.unwrap();
        while socket.next().await.is_some() {}
    }
    assert_eq!(
        wait_for_live(&app, 0).await,
        0,
        "closed sockets left sessions behind"
    );

    // A socket dropped without a close frame ends its session too.
    let (_, socket) = open_socket(&app, &own).await;
    assert_eq!(wait_for_live(&app, 1).await, 1);
    drop(socket);
    assert_eq!(
        wait_for_live(&app, 0).await,
        0,
        "a dropped socket's session lives on"
    );

    // At most five at once from one client.
    let mut held = Vec::new();
    for _ in 0..5 {
        let (status, socket) = open_socket(&app, &own).await;
        assert_eq!(status, 101);
        held.push(socket.unwrap());
    }
    let (sixth, _) = open_socket(&app, &own).await;
    assert_eq!(sixth, 429);
    // Another client is not held back by this one.
    let (other, _) = open_socket_from(&app, &own, 9).await;
    assert_eq!(other, 101);
    for mut s in held {
        s.close(None).await.unwrap();
    }
    assert_eq!(wait_for_live(&app, 0).await, 0);
    app.stop();
}

#[tokio::test]
async fn a_replayed_sandbox_link_appends_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("replay@example.com").await;
    let redirect = app.start_checkout(&token, "standard", None).await;
    let back = app.answer_sandbox(&redirect, "approve").await;
    let position = back
        .split("position=")
        .nth(1)
        .and_then(|p| p.split('&').next())
        .expect("the approval's position")
        .to_string();
    let after_first = app.log_len().await;
    let session = redirect.split("session=").nth(1).unwrap();
    for answer in ["approve", "approve", "decline"] {
        let again = app
            .http
            .post(app.url(&format!("/sandbox/checkout/{answer}?session={session}")))
            .send()
            .await
            .unwrap();
        assert!(again.status().is_success() || again.status().is_redirection());
    }
    assert_eq!(app.log_len().await, after_first, "a replay appended events");
    // Read once the read model has the approval (it may lag on a loaded machine).
    let sub = app
        .get(
            &format!("/api/subscription?min_position={position}"),
            Some(&token),
        )
        .await;
    assert_eq!(sub.body["status"], "active", "{:?}", sub.body);
    app.stop();
}

#[tokio::test]
async fn an_oversized_webhook_gets_the_json_error() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let big = vec![b' '; 2 * 1024 * 1024];
    let a = app.post_raw("/webhooks/sandbox", &big, &[]).await;
    assert_eq!((a.status.as_u16(), a.error_code()), (413, "body_too_large"));
    app.stop();
}

#[tokio::test]
async fn playback_right_after_an_upgrade_plays_at_the_new_plan() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (token, _) = app.signup_login("upgrade@example.com").await;
    app.subscribe(&token, "basic").await;
    let profile = app.profile(&token, json!({"name": "Up"})).await;
    let titles = app.get("/api/titles", Some(&token)).await;
    let title = titles.body["items"][0]["id"]
        .as_str()
        .or_else(|| titles.body[0]["id"].as_str())
        .expect("a title")
        .to_string();
    let changed = app
        .post(
            "/api/subscription/change",
            json!({"plan": "premium"}),
            Some(&token),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    // At once, with no min_position: the start waits for the caller's own change.
    let started = app
        .post(
            &format!("/api/profiles/{profile}/playback"),
            json!({"title_id": title}),
            Some(&token),
        )
        .await;
    assert_eq!(started.status, 201, "{:?}", started.body);
    assert_eq!(started.body["max_quality"], 2160, "{:?}", started.body);
    app.stop();
}

/// `schemathesis` (installed by `./scripts/test`, found through `SCHEMATHESIS`) drives every
/// documented operation with data from the schema, signed in: no 5xx besides documented 503s,
/// and no status, content type or body the schema does not describe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_holds_against_a_schema_driven_fuzzer() {
    let tool = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("fuzz@example.com").await;
    // Logging out ends the fuzzer's session, so it is tried last, alone.
    for operations in [
        ["--exclude-path", "/api/auth/logout"],
        ["--include-path", "/api/auth/logout"],
    ] {
        let run = tokio::process::Command::new(&tool)
            .args([
                "run",
                &app.url("/api/openapi.json"),
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "15",
                "--seed",
                "7",
                "--request-timeout",
                "10",
                "--no-color",
            ])
            .args(operations)
            .arg("--report-dir")
            .arg(app.dir.0.join("schemathesis"))
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}"))
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{tool} must be installed (./scripts/test does it): {e}"));
        let out = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "schemathesis found problems:\n{out}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(out.contains("passed"), "{out}");
    }
    app.stop();
}
