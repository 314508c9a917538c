//! Profiles: the limit under a race, ownership, bad input, read-your-writes, and the audit view.

use cinelog_commands::CommandMeta;
use cinelog_domain::Actor;
use cinelog_domain::values::Role;
use cinelog_tests::{Backend, TestApp};
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn twenty_concurrent_creates_give_exactly_five_profiles() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = Arc::new(TestApp::spawn(backend).await);
        let (token, _) = app.signup_login("many@example.com").await;
        let creates = (0..20).map(|i| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                app.post(
                    "/api/profiles",
                    json!({"name": format!("r{i}")}),
                    Some(&token),
                )
                .await
            })
        });
        let answers: Vec<_> = futures::future::join_all(creates)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let created: Vec<_> = answers.iter().filter(|a| a.status == 201).collect();
        let refused = answers
            .iter()
            .filter(|a| a.status == 409 && a.error_code() == "profile_limit_reached")
            .count();
        assert_eq!(
            (created.len(), refused),
            (5, 15),
            "{backend:?}: {answers:?}"
        );
        let last = created
            .iter()
            .map(|a| a.body["position"].as_i64().unwrap())
            .max()
            .unwrap();
        let listed = app
            .get(&format!("/api/profiles?min_position={last}"), Some(&token))
            .await;
        assert_eq!(
            listed.body.as_array().map(Vec::len),
            Some(5),
            "{backend:?}: {:?}",
            listed.body
        );
        app.stop();
    }
}

#[tokio::test]
async fn another_accounts_profile_is_not_found_and_own_profiles_change() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (alice, _) = app.signup_login("alice@example.com").await;
    let (bob, _) = app.signup_login("bob@example.com").await;
    let created = app
        .post(
            "/api/profiles",
            json!({"name": "Alice", "kids": false}),
            Some(&alice),
        )
        .await;
    let id = created.body["profile_id"].as_str().unwrap().to_string();
    let path = format!("/api/profiles/{id}");
    let p = created.body["position"].as_i64().unwrap();

    assert_eq!(
        app.get(&format!("{path}?min_position={p}"), Some(&bob))
            .await
            .status,
        404
    );
    assert_eq!(
        app.call(
            Method::PATCH,
            &path,
            Some(json!({"name": "mine"})),
            Some(&bob)
        )
        .await
        .status,
        404
    );
    assert_eq!(
        app.call(Method::DELETE, &path, None, Some(&bob))
            .await
            .status,
        404
    );
    assert_eq!(
        app.get("/api/profiles/not-a-uuid", Some(&bob)).await.status,
        404
    );
    assert_eq!(
        app.get(&format!("{path}?min_position={p}"), Some(&alice))
            .await
            .status,
        200
    );

    let kid = app
        .post(
            "/api/profiles",
            json!({"name": "Kid", "kids": true}),
            Some(&alice),
        )
        .await;
    assert_eq!(kid.status, 201);
    let kid_id = kid.body["profile_id"].as_str().unwrap();
    let adult = app
        .call(
            Method::PATCH,
            &format!("/api/profiles/{kid_id}"),
            Some(json!({"maturity_rating": "18+"})),
            Some(&alice),
        )
        .await;
    assert_eq!(adult.status, 422, "kids profiles stay kids-rated");
    let dup = app
        .post("/api/profiles", json!({"name": "ALICE"}), Some(&alice))
        .await;
    assert_eq!(
        (dup.status.as_u16(), dup.error_code()),
        (409, "profile_name_taken")
    );

    let renamed = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "Alice B", "avatar": "red"})),
            Some(&alice),
        )
        .await;
    assert_eq!(renamed.status, 200);
    let p = renamed.body["position"].as_i64().unwrap();
    let shown = app
        .get(&format!("{path}?min_position={p}"), Some(&alice))
        .await;
    assert_eq!(
        (shown.body["name"].as_str(), shown.body["avatar"].as_str()),
        (Some("Alice B"), Some("red"))
    );
    assert_eq!(
        app.call(Method::DELETE, &path, None, Some(&alice))
            .await
            .status,
        204
    );
    assert_eq!(
        app.call(Method::DELETE, &path, None, Some(&alice))
            .await
            .status,
        404
    );

    let me = app.get("/api/me", Some(&alice)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["user"]["email"], "alice@example.com");
    app.stop();
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_appends_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("strict@example.com").await;
    let log_len = || app.log_len();
    let before = log_len().await;
    let raw = |body: Vec<u8>, content_type: &'static str| {
        app.http
            .post(app.url("/api/profiles"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(&str, Vec<u8>, &str, u16)> = vec![
        (
            "malformed",
            b"{\"name\": ".to_vec(),
            "application/json",
            400,
        ),
        ("not json", b"name=x".to_vec(), "application/json", 400),
        (
            "wrong type",
            b"{\"name\": 12}".to_vec(),
            "application/json",
            422,
        ),
        ("missing field", b"{}".to_vec(), "application/json", 422),
        (
            "non-utf8",
            vec![b'{', b'"', b'n', 0xff, 0xfe, b'"', b'}'],
            "application/json",
            400,
        ),
        (
            "wrong content type",
            b"{\"name\":\"x\"}".to_vec(),
            "text/plain",
            415,
        ),
        (
            "too large",
            format!("{{\"name\": \"{}\"}}", "x".repeat(1_100_000)).into_bytes(),
            "application/json",
            413,
        ),
        (
            "empty name",
            b"{\"name\": \"   \"}".to_vec(),
            "application/json",
            422,
        ),
        (
            "long name",
            format!("{{\"name\": \"{}\"}}", "x".repeat(41)).into_bytes(),
            "application/json",
            422,
        ),
        (
            "bad rating",
            b"{\"name\": \"x\", \"maturity_rating\": \"R\"}".to_vec(),
            "application/json",
            422,
        ),
        (
            "adult kids",
            b"{\"name\": \"x\", \"kids\": true, \"maturity_rating\": \"18+\"}".to_vec(),
            "application/json",
            422,
        ),
        (
            "bad avatar",
            b"{\"name\": \"x\", \"avatar\": \"<script>\"}".to_vec(),
            "application/json",
            422,
        ),
    ];
    for (what, body, content_type, want) in cases {
        let resp = raw(body, content_type).await.unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(status, want, "{what}: {body}");
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{what}: error body {body}"
        );
    }
    for (what, path, body) in [
        (
            "bad email",
            "/api/auth/signup",
            json!({"email": "nope", "password": "Corr3ct-horse-battery"}),
        ),
        (
            "short password",
            "/api/auth/signup",
            json!({"email": "ok@example.com", "password": "short"}),
        ),
        (
            "bad phone",
            "/api/auth/signup",
            json!({"email": "ok2@example.com", "password": "Corr3ct-horse-battery", "phone": "call me"}),
        ),
    ] {
        let a = app.post(path, body, None).await;
        assert_eq!(a.status, 422, "{what}: {:?}", a.body);
    }
    assert_eq!(app.get("/api/profiles", None).await.status, 401);
    assert_eq!(
        app.get("/api/profiles", Some("not-a-token")).await.status,
        401
    );
    assert_eq!(app.get("/api/nothing-here", None).await.status, 404);
    assert_eq!(
        app.call(Method::PUT, "/api/profiles", None, Some(&token))
            .await
            .status,
        405
    );
    assert_eq!(log_len().await, before, "refused commands appended events");
    app.stop();
}

#[tokio::test]
async fn queries_wait_for_min_position_and_say_when_they_cannot() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (token, _) = app.signup_login("ryw@example.com").await;
    let a = app
        .post("/api/profiles", json!({"name": "now"}), Some(&token))
        .await;
    let p = a.body["position"].as_i64().unwrap();
    // Read-your-writes: the very next read sees the write.
    let listed = app
        .get(&format!("/api/profiles?min_position={p}"), Some(&token))
        .await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    let future = app
        .get(
            &format!("/api/profiles?min_position={}", p + 1_000_000),
            Some(&token),
        )
        .await;
    // A position no write has reached cannot come by waiting: the caller's mistake, at once.
    assert_eq!(
        (future.status.as_u16(), future.error_code()),
        (422, "invalid_query")
    );
    assert_eq!(
        app.get("/api/profiles?min_position=abc", Some(&token))
            .await
            .status,
        400
    );
    // A transaction running on the server since before a signup holds the log back; the new
    // user's first look at their account waits for it instead of finding nobody.
    let server = sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let mut blocker = server.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let (late, _) = app.signup_login("late@example.com").await;
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        blocker.commit().await.unwrap();
    };
    let (me, ()) = tokio::join!(app.get("/api/me", Some(&late)), release);
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["user"]["email"], "late@example.com");
    app.stop();
}

/// An app with an auditor signed in (auditors are created by operators, not by signup).
async fn app_with_auditor() -> (TestApp, String) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.running
        .state
        .identity
        .signup(
            "auditor@example.com",
            "Corr3ct-horse-battery",
            None,
            Role::Auditor,
            &CommandMeta::new(Actor::System),
        )
        .await
        .unwrap();
    let (auditor, _) = app
        .login("auditor@example.com", "Corr3ct-horse-battery")
        .await;
    (app, auditor)
}

#[tokio::test]
async fn auditors_read_a_streams_history_with_envelopes() {
    let (app, auditor) = app_with_auditor().await;
    let signup = app
        .post(
            "/api/auth/signup",
            json!({"email": "watched@example.com", "password": "Corr3ct-horse-battery"}),
            None,
        )
        .await;
    let account = signup.body["account_id"].as_str().unwrap().to_string();
    let (viewer, _) = app
        .login("watched@example.com", "Corr3ct-horse-battery")
        .await;
    app.post("/api/profiles", json!({"name": "audited"}), Some(&viewer))
        .await;

    let path = format!("/api/audit/streams/account/{account}");
    assert_eq!(app.get(&path, Some(&viewer)).await.status, 403);
    assert_eq!(app.get(&path, None).await.status, 401);
    let history = app.get(&path, Some(&auditor)).await;
    assert_eq!(history.status, 200, "{:?}", history.body);
    assert_eq!(history.body["chain_intact"], true);
    let events = history.body["events"].as_array().unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e["event_type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["AccountOpened", "ProfileCreated"]
    );
    for e in events {
        for field in [
            "position",
            "version",
            "event_id",
            "correlation_id",
            "actor",
            "recorded_at",
            "hash",
            "prev_hash",
            "payload",
        ] {
            assert!(!e[field].is_null(), "{field} missing in {e}");
        }
        assert!(e["actor"].as_str().unwrap().starts_with("user:"));
    }
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);
    assert_eq!(
        app.get("/api/audit/streams/account/nope", Some(&auditor))
            .await
            .status,
        404
    );
    app.stop();
}

#[tokio::test]
async fn audit_history_never_shows_password_hashes() {
    let (app, auditor) = app_with_auditor().await;
    let signup = app
        .post(
            "/api/auth/signup",
            json!({"email": "hashed@example.com", "password": "Corr3ct-horse-battery"}),
            None,
        )
        .await;
    let user_id = signup.body["user_id"].as_str().unwrap();
    let history = app
        .get(
            &format!("/api/audit/streams/user/{user_id}"),
            Some(&auditor),
        )
        .await;
    assert_eq!(history.status, 200);
    assert_eq!(history.body["chain_intact"], true);
    let text = history.body.to_string();
    assert!(!text.contains("$argon2id$"), "{text}");
    assert_eq!(
        history.body["events"][0]["payload"]["UserRegistered"]["password_hash"],
        "[redacted]"
    );
    app.stop();
}

/// A profile locked with a PIN: the PIN is stored hashed (as an event, never shown to auditors
/// or analysts), opens the profile only when right, changes or goes only given the current
/// one, bad PINs change nothing, and guesses run into a limit. The account password can be
/// confirmed (to leave a kids profile) the same way.
#[tokio::test]
async fn a_pin_locks_a_profile_and_guesses_are_limited() {
    let (app, auditor) = app_with_auditor().await;
    let (token, _) = app.signup_login("locked@example.com").await;
    let pid = app.profile(&token, json!({"name": "Mum"})).await;
    let pin = format!("/api/profiles/{pid}/pin");
    let unlock = format!("/api/profiles/{pid}/unlock");
    let locked = |position: i64| {
        let app = &app;
        let token = token.clone();
        let pid = pid.clone();
        async move {
            let list = app
                .get(
                    &format!("/api/profiles?min_position={position}"),
                    Some(&token),
                )
                .await;
            list.body
                .as_array()
                .expect("profiles")
                .iter()
                .find(|p| p["profile_id"] == pid.as_str())
                .expect("the profile")["locked"]
                .clone()
        }
    };

    // Bad PINs are refused and change nothing.
    let before = app.log_len().await;
    for bad in ["123", "12345", "12a4", ""] {
        let refused = app
            .call(Method::PUT, &pin, Some(json!({"pin": bad})), Some(&token))
            .await;
        assert_eq!(refused.status, 422, "{bad}: {:?}", refused.body);
        assert!(
            refused.body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("pin:")),
            "{:?}",
            refused.body
        );
    }
    assert_eq!(app.log_len().await, before);

    let set = app
        .call(
            Method::PUT,
            &pin,
            Some(json!({"pin": "2468"})),
            Some(&token),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(locked(set.body["position"].as_i64().unwrap()).await, true);

    let wrong = app
        .post(&unlock, json!({"pin": "1357"}), Some(&token))
        .await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.error_code()),
        (403, "wrong_pin")
    );
    let right = app
        .post(&unlock, json!({"pin": "2468"}), Some(&token))
        .await;
    assert_eq!(right.status, 204, "{:?}", right.body);

    // Changing or removing it needs the current PIN.
    let unasked = app
        .call(
            Method::PUT,
            &pin,
            Some(json!({"pin": "0000"})),
            Some(&token),
        )
        .await;
    assert_eq!(
        (unasked.status.as_u16(), unasked.error_code()),
        (403, "wrong_pin")
    );
    let changed = app
        .call(
            Method::PUT,
            &pin,
            Some(json!({"pin": "1111", "current_pin": "2468"})),
            Some(&token),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let kept = app
        .call(
            Method::DELETE,
            &pin,
            Some(json!({"current_pin": "2468"})),
            Some(&token),
        )
        .await;
    assert_eq!(kept.error_code(), "wrong_pin");
    let removed = app
        .call(
            Method::DELETE,
            &pin,
            Some(json!({"current_pin": "1111"})),
            Some(&token),
        )
        .await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert_eq!(
        locked(removed.body["position"].as_i64().unwrap()).await,
        false
    );
    let open = app
        .post(&unlock, json!({"pin": "9999"}), Some(&token))
        .await;
    assert_eq!(open.status, 204, "a profile without a PIN always opens");

    // The PIN's hash is in the log but not in what auditors read.
    let account = app.account_id(&token).await;
    let history = app
        .get(
            &format!("/api/audit/streams/account/{account}"),
            Some(&auditor),
        )
        .await;
    assert_eq!(history.status, 200);
    let text = history.body.to_string();
    assert!(text.contains("ProfilePinSet"), "{text}");
    assert!(!text.contains("$argon2id$"), "{text}");

    // Guesses are limited: five wrong ones in the window, then even the right PIN waits.
    let dad = app.profile(&token, json!({"name": "Dad"})).await;
    let set = app
        .call(
            Method::PUT,
            &format!("/api/profiles/{dad}/pin"),
            Some(json!({"pin": "8642"})),
            Some(&token),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let mut answers = Vec::new();
    for guess in ["0001", "0002", "0003", "0004", "0005", "0006", "8642"] {
        answers.push(
            app.post(
                &format!("/api/profiles/{dad}/unlock"),
                json!({"pin": guess}),
                Some(&token),
            )
            .await
            .status
            .as_u16(),
        );
    }
    assert_eq!(answers, [403, 403, 403, 403, 403, 429, 429], "{answers:?}");

    // The account password, confirmed again.
    let confirm = |password: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            app.post(
                "/api/auth/confirm",
                json!({"password": password}),
                Some(&token),
            )
            .await
            .status
            .as_u16()
        }
    };
    assert_eq!(confirm("Corr3ct-horse-battery").await, 204);
    assert_eq!(confirm("not-the-password").await, 401);
    app.stop();
}
