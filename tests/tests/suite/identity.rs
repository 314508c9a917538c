//! Signup, login, tokens, password reset, phone verification: over HTTP, on real databases.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Form, Json, Router};
use cinelog_commands::ports::PhoneVerifier;
use cinelog_domain::values::Phone;
use cinelog_infra::Secret;
use cinelog_infra::phone::TwilioVerifier;
use cinelog_tests::{Backend, TestApp};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const PASSWORD: &str = "Corr3ct-horse-battery";

#[tokio::test]
async fn twenty_concurrent_signups_with_one_email_give_exactly_one_account() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = Arc::new(TestApp::spawn(backend).await);
        let attempts = (0..20).map(|i| {
            let app = app.clone();
            // Same address, differently cased: it is one email.
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@Example.com"
            };
            tokio::spawn(async move {
                app.post(
                    "/api/auth/signup",
                    json!({"email": email, "password": PASSWORD}),
                    None,
                )
                .await
            })
        });
        let answers: Vec<_> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let created = answers.iter().filter(|a| a.status == 201).count();
        let taken = answers
            .iter()
            .filter(|a| a.status == 409 && a.error_code() == "email_taken")
            .count();
        assert_eq!((created, taken), (1, 19), "{backend:?}: {answers:?}");
        app.login("race@example.com", PASSWORD).await;
        app.stop();
    }
}

#[tokio::test]
async fn login_fails_cleanly_and_locks_after_repeated_failures() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.signup_login("lock@example.com").await;
    let bad = json!({"email": "lock@example.com", "password": "wrong-password"});
    let unknown = app
        .post(
            "/api/auth/login",
            json!({"email": "nobody@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.error_code()),
        (401, "invalid_credentials")
    );
    for _ in 0..5 {
        let a = app.post("/api/auth/login", bad.clone(), None).await;
        assert_eq!(
            (a.status.as_u16(), a.error_code()),
            (401, "invalid_credentials")
        );
    }
    let locked = app
        .post(
            "/api/auth/login",
            json!({"email": "lock@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(locked.status, 429, "{:?}", locked.body);
    let wait: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 900);
    app.stop();
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (_, r1) = app.signup_login("rotate@example.com").await;
    let a = app
        .post("/api/auth/refresh", json!({"refresh_token": r1}), None)
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let r2 = a.body["refresh_token"].as_str().unwrap().to_string();
    let access = a.body["access_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_eq!(app.get("/api/profiles", Some(&access)).await.status, 200);

    // r1 was rotated away: presenting it again is theft or replay.
    let reuse = app
        .post("/api/auth/refresh", json!({"refresh_token": r1}), None)
        .await;
    assert_eq!(reuse.status, 401);
    // ...and the whole family is gone, r2 included.
    assert_eq!(
        app.post("/api/auth/refresh", json!({"refresh_token": r2}), None)
            .await
            .status,
        401
    );
    assert_eq!(
        app.post(
            "/api/auth/refresh",
            json!({"refresh_token": "garbage"}),
            None
        )
        .await
        .status,
        401
    );

    // Logout revokes the session's refresh token.
    let (access, refresh) = app.login("rotate@example.com", PASSWORD).await;
    let out = app
        .call(
            reqwest::Method::POST,
            "/api/auth/logout",
            None,
            Some(&access),
        )
        .await;
    assert_eq!(out.status, 204);
    assert_eq!(
        app.post("/api/auth/refresh", json!({"refresh_token": refresh}), None)
            .await
            .status,
        401
    );
    assert_eq!(
        app.call(reqwest::Method::POST, "/api/auth/logout", None, None)
            .await
            .status,
        401
    );
    app.stop();
}

#[tokio::test]
async fn password_reset_is_silent_single_use_and_changes_the_password() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, old_refresh) = app.signup_login("reset@example.com").await;
    let reset =
        |email: &'static str| app.post("/api/auth/password-reset", json!({"email": email}), None);
    assert_eq!(reset("ghost@example.com").await.status, 202);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        app.mailer.last_reset_token().is_none(),
        "no mail for an unknown address"
    );

    assert_eq!(reset("Reset@Example.com").await.status, 202);
    // The mail goes out after the answer, so the answer says nothing about the address.
    let token = app.mailer.wait_for_reset_token().await;
    let confirm = |token: String, password: &'static str| {
        app.post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "new_password": password}),
            None,
        )
    };
    assert_eq!(confirm(token.clone(), "short").await.status, 422);
    let forged = confirm(format!("{token}x"), "N3w-password-123").await;
    assert_eq!(
        (forged.status.as_u16(), forged.error_code()),
        (422, "invalid_token")
    );
    let ok = confirm(token.clone(), "N3w-password-123").await;
    assert_eq!(ok.status, 204, "{:?}", ok.body);
    let again = confirm(token, "Another-pass-456").await;
    assert_eq!(
        (again.status.as_u16(), again.error_code()),
        (422, "invalid_token")
    );

    let old = app
        .post(
            "/api/auth/login",
            json!({"email": "reset@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(old.status, 401);
    // A session opened before the change ends with it.
    let stale = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": old_refresh}),
            None,
        )
        .await;
    assert_eq!(
        stale.status, 401,
        "a session from before the password change still refreshes"
    );
    app.login("reset@example.com", "N3w-password-123").await;
    app.stop();
}

#[tokio::test]
async fn phone_verification_with_the_console_verifier() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("phone@example.com").await;
    assert_eq!(
        app.post(
            "/api/auth/phone/verify",
            json!({"code": "123456"}),
            Some(&token)
        )
        .await
        .status,
        409,
        "nothing pending yet"
    );
    let no_phone = app
        .call(
            reqwest::Method::POST,
            "/api/auth/phone/start",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(no_phone.status, 422, "no phone on file and none given");
    assert_eq!(
        app.post(
            "/api/auth/phone/start",
            json!({"phone": "12345"}),
            Some(&token)
        )
        .await
        .status,
        422
    );
    assert_eq!(
        app.post(
            "/api/auth/phone/start",
            json!({"phone": "+1 415 555 0100"}),
            Some(&token)
        )
        .await
        .status,
        202
    );
    let phone = Phone::parse("+14155550100").unwrap();
    let code = app.phone.code_for(&phone).expect("code sent");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let a = app
        .post(
            "/api/auth/phone/verify",
            json!({"code": wrong}),
            Some(&token),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.error_code()), (422, "wrong_code"));
    let a = app
        .post(
            "/api/auth/phone/verify",
            json!({"code": code}),
            Some(&token),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let me = app.get("/api/me?min_position=1", Some(&token)).await;
    // The read model catches up shortly after the command.
    let mut verified = me.body["user"]["phone_verified"].as_bool();
    for _ in 0..300 {
        if verified == Some(true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        verified = app.get("/api/me", Some(&token)).await.body["user"]["phone_verified"].as_bool();
    }
    assert_eq!(verified, Some(true));
    app.stop();
}

/// A request the fake received: which endpoint, and its form fields.
type Call = (String, HashMap<String, String>);

/// A local Twilio Verify: checks Basic auth and form fields, approves code 424242.
#[derive(Clone, Default)]
struct FakeTwilio {
    calls: Arc<Mutex<Vec<Call>>>,
}

async fn fake_start(
    State(f): State<FakeTwilio>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (axum::http::StatusCode, Json<Value>) {
    let authed = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some("Basic QUN0ZXN0OnNlY3JldA=="); // ACtest:secret
    f.calls.lock().unwrap().push(("start".into(), form.clone()));
    if !authed {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"code": 20003, "message": "Authenticate"})),
        );
    }
    (
        axum::http::StatusCode::CREATED,
        Json(
            json!({"sid": "VEabc", "status": "pending", "to": form["To"], "channel": form["Channel"], "valid": false, "extra": {"ignored": true}}),
        ),
    )
}

async fn fake_check(
    State(f): State<FakeTwilio>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    f.calls.lock().unwrap().push(("check".into(), form.clone()));
    let ok = form.get("Code").map(String::as_str) == Some("424242");
    Json(json!({"sid": "VEabc", "status": if ok { "approved" } else { "pending" }, "valid": ok}))
}

#[tokio::test]
async fn twilio_verify_adapter_speaks_the_wire_format() {
    let fake = FakeTwilio::default();
    let router = Router::new()
        .route("/v2/Services/VAtest/Verifications", post(fake_start))
        .route("/v2/Services/VAtest/VerificationCheck", post(fake_check))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v2", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let twilio = Arc::new(TwilioVerifier::new(
        &base,
        "VAtest",
        "ACtest",
        Secret::new("secret"),
    ));
    let wrong_key = TwilioVerifier::new(&base, "VAtest", "ACtest", Secret::new("nope"));
    let phone = Phone::parse("+14155550123").unwrap();
    assert!(
        wrong_key.start(&phone).await.is_err(),
        "a rejected key is an error, not a silent success"
    );

    // Through the app: start sends To and Channel=sms; a wrong code is refused, the right one verifies.
    let dir = cinelog_tests::TempDir::new();
    let settings = cinelog_tests::settings_for(Backend::Sqlite, &dir).await;
    let app = TestApp::spawn_with(
        settings,
        dir,
        cinelog_api::Outside {
            phone: Some(twilio),
            ..Default::default()
        },
    )
    .await;
    let (token, _) = app.signup_login("twilio@example.com").await;
    assert_eq!(
        app.post(
            "/api/auth/phone/start",
            json!({"phone": "+14155550123"}),
            Some(&token)
        )
        .await
        .status,
        202
    );
    assert_eq!(
        app.post(
            "/api/auth/phone/verify",
            json!({"code": "000000"}),
            Some(&token)
        )
        .await
        .status,
        422
    );
    assert_eq!(
        app.post(
            "/api/auth/phone/verify",
            json!({"code": "424242"}),
            Some(&token)
        )
        .await
        .status,
        204
    );
    let calls = fake.calls.lock().unwrap().clone();
    let started = calls.iter().rfind(|(k, _)| k == "start").unwrap();
    assert_eq!(
        started.1.get("To").map(String::as_str),
        Some("+14155550123")
    );
    assert_eq!(started.1.get("Channel").map(String::as_str), Some("sms"));
    assert_eq!(calls.iter().filter(|(k, _)| k == "check").count(), 2);
    app.stop();
}

#[tokio::test]
async fn personal_data_is_sealed_in_the_log_and_erasure_forgets_it() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let signup = app.post("/api/auth/signup", json!({"email": "Private@Example.com", "password": PASSWORD, "phone": "+14155550199"}), None).await;
        assert_eq!(signup.status, 201);
        let user_id = signup.body["user_id"].as_str().unwrap().to_string();
        let (token, _) = app.login("private@example.com", PASSWORD).await;
        let p = signup.body["position"].as_i64().unwrap();
        let me = app
            .get(&format!("/api/me?min_position={p}"), Some(&token))
            .await;
        assert_eq!(
            me.body["user"]["email"], "private@example.com",
            "{backend:?}"
        );
        assert_eq!(me.body["user"]["phone"], "+14155550199", "{backend:?}");

        // Nowhere in the log is the address or number in clear.
        let state = &app.running.state;
        let history = state.store.read_stream("user", &user_id).await.unwrap();
        let stored = serde_json::to_string(&history).unwrap();
        assert!(
            !stored.to_lowercase().contains("private@example.com")
                && !stored.contains("4155550199"),
            "{backend:?}: {stored}"
        );

        let erased_id = state
            .identity
            .erase_personal_data(
                "private@example.com",
                &cinelog_commands::CommandMeta::new(cinelog_domain::Actor::System),
            )
            .await
            .unwrap();
        assert_eq!(erased_id.to_string(), user_id);
        let mut email = Value::Null;
        for _ in 0..300 {
            email = app.get("/api/me", Some(&token)).await.body["user"]["email"].clone();
            if email.is_null() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            email.is_null(),
            "{backend:?}: email still shown after erasure: {email}"
        );

        // The chain still verifies, and a rebuild from the log cannot bring the data back.
        let history = state.store.read_stream("user", &user_id).await.unwrap();
        let mut prev = cinelog_domain::envelope::GENESIS_HASH.to_string();
        for e in &history {
            assert_eq!(
                (e.computed_hash(), e.meta.prev_hash.clone()),
                (e.meta.hash.clone(), prev.clone()),
                "{backend:?}"
            );
            prev = e.meta.hash.clone();
        }
        state.projections.rebuild("accounts").await.unwrap();
        let me = app.get("/api/me", Some(&token)).await;
        assert!(
            me.body["user"]["email"].is_null() && me.body["user"]["phone"].is_null(),
            "{backend:?}: {:?}",
            me.body
        );
        app.stop();
    }
}

#[tokio::test]
async fn two_replicas_on_postgres_and_redis_share_accounts_and_lockouts() {
    let dir = cinelog_tests::TempDir::new();
    let mut settings = cinelog_tests::settings_for(Backend::Postgres, &dir).await;
    settings.redis_url = Some(
        std::env::var("CINELOG_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    );
    settings.redis_prefix = format!("cinelog-test-{}", uuid::Uuid::now_v7().simple());
    settings.jwt_secret = Some(Secret::new(
        "a shared secret for both replicas, long enough",
    ));
    let a = TestApp::spawn_with(
        settings.clone(),
        cinelog_tests::TempDir::new(),
        Default::default(),
    )
    .await;
    let b = TestApp::spawn_with(settings, cinelog_tests::TempDir::new(), Default::default()).await;

    // Signed up on one replica, signed in and served on the other.
    let (token, _) = a.signup_login("replicas@example.com").await;
    let created = b
        .post("/api/profiles", json!({"name": "on b"}), Some(&token))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let p = created.body["position"].as_i64().unwrap();
    let listed = a
        .get(&format!("/api/profiles?min_position={p}"), Some(&token))
        .await;
    assert_eq!(
        listed.body.as_array().map(Vec::len),
        Some(1),
        "{:?}",
        listed.body
    );

    // Failures counted on one replica lock the address on the other.
    for _ in 0..5 {
        assert_eq!(
            a.post(
                "/api/auth/login",
                json!({"email": "replicas@example.com", "password": "wrong-password"}),
                None
            )
            .await
            .status,
            401
        );
    }
    let locked = b
        .post(
            "/api/auth/login",
            json!({"email": "replicas@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(locked.status, 429, "{:?}", locked.body);
    assert!(locked.headers.contains_key("retry-after"));
    a.stop();
    b.stop();
}

#[tokio::test]
async fn an_email_left_claimed_by_an_unfinished_signup_is_freed_after_a_while() {
    use cinelog_commands::EventStore;
    use cinelog_domain::email_claim::{EmailClaim, EmailClaimEvent};
    use cinelog_domain::values::Email;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let store = &app.running.state.store;
    let meta = cinelog_commands::CommandMeta::new(cinelog_domain::Actor::System);
    // Two signups that claimed their address and then died before registering a user.
    for (email, age_secs) in [("crashed@example.com", 300), ("inflight@example.com", 5)] {
        let claimed_at = chrono::Utc::now() - chrono::Duration::seconds(age_secs);
        let event = EmailClaimEvent::EmailClaimed {
            user_id: uuid::Uuid::now_v7(),
            claimed_at: Some(claimed_at),
        };
        store
            .append::<EmailClaim>(
                &app.running
                    .state
                    .identity
                    .claim_id(&Email::parse(email).unwrap()),
                &Default::default(),
                &[event],
                &meta,
            )
            .await
            .unwrap();
    }
    // Old enough: the address is free again.
    app.signup_login("crashed@example.com").await;
    // Too recent to tell from a signup still under way: still taken.
    let recent = app
        .post(
            "/api/auth/signup",
            json!({"email": "inflight@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        (recent.status.as_u16(), recent.error_code()),
        (409, "email_taken")
    );
    // A finished signup is never taken over, however old.
    let again = app
        .post(
            "/api/auth/signup",
            json!({"email": "crashed@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(again.status, 409);
    app.stop();
}

#[tokio::test]
async fn a_signup_that_died_before_opening_the_account_is_repaired_at_login() {
    use cinelog_commands::EventStore;
    use cinelog_commands::ports::Vault;
    use cinelog_domain::email_claim::{EmailClaim, EmailClaimEvent};
    use cinelog_domain::user::{User, UserEvent};
    use cinelog_domain::values::{Email, Role};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let store = &app.running.state.store;
    let meta = cinelog_commands::CommandMeta::new(cinelog_domain::Actor::System);
    let (user_id, account_id) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let email = Email::parse("halfway@example.com").unwrap();
    let claimed = EmailClaimEvent::EmailClaimed {
        user_id,
        claimed_at: Some(chrono::Utc::now()),
    };
    store
        .append::<EmailClaim>(&email.claim_id(), &Default::default(), &[claimed], &meta)
        .await
        .unwrap();
    let vault = cinelog_infra::vault::KeyVault::new(store.clone());
    let registered = UserEvent::UserRegistered {
        user_id,
        account_id,
        email: vault.seal(user_id, email.as_str()).await.unwrap(),
        password_hash: cinelog_commands::passwords::hash(PASSWORD.into())
            .await
            .unwrap(),
        phone: None,
        role: Role::Viewer,
    };
    store
        .append::<User>(
            &user_id.to_string(),
            &Default::default(),
            &[registered],
            &meta,
        )
        .await
        .unwrap();

    let (token, _) = app.login("halfway@example.com", PASSWORD).await;
    let created = app
        .post("/api/profiles", json!({"name": "finally"}), Some(&token))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    app.stop();
}
