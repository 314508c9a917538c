//! Ratings, My List and recommendations: idempotent commands, clean refusals, rows with reasons
//! that follow a like at once, kids' limits, and Groq re-ranking with every way it can fail.

use cinelog_api::Outside;
use cinelog_infra::Secret;
use cinelog_infra::settings::GroqSettings;
use cinelog_projections::Checkpoint;
use cinelog_tests::fakes::{GroqMode, RedisServer, Tansu, fake_groq};
use cinelog_tests::{Backend, TempDir, TestApp, settings_for};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn rate(
    app: &TestApp,
    token: &str,
    pid: &str,
    title: &str,
    rating: Value,
) -> cinelog_tests::Answer {
    app.call(
        Method::PUT,
        &format!("/api/profiles/{pid}/ratings/{title}"),
        Some(json!({"rating": rating})),
        Some(token),
    )
    .await
}

fn row<'a>(recs: &'a Value, kind: &str) -> Option<&'a Value> {
    recs["rows"].as_array()?.iter().find(|r| r["kind"] == kind)
}

fn row_ids(row: &Value) -> Vec<String> {
    row["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn ratings_and_my_list_are_idempotent_and_refusals_record_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("taste@example.com").await;
    let pid = app.profile(&token, json!({"name": "Taste"})).await;
    let a = rate(&app, &token, &pid, "marmalade-station", json!("like")).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let events = app.log_len().await;
    assert_eq!(
        rate(&app, &token, &pid, "marmalade-station", json!("like"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(app.log_len().await, events, "liking twice is one like");
    let loved = rate(&app, &token, &pid, "marmalade-station", json!("love")).await;
    assert_eq!(app.log_len().await, events + 1);

    // Refused: a rating outside the three, an unknown title, another account's profile.
    let (other, _) = app.signup_login("nosy@example.com").await;
    let before = app.log_len().await;
    for (title, rating, status) in [
        ("marmalade-station", json!("meh"), 422),
        ("marmalade-station", json!(5), 422),
        ("no-such-title", json!("like"), 404),
    ] {
        let a = rate(&app, &token, &pid, title, rating.clone()).await;
        assert_eq!(a.status.as_u16(), status, "{title} {rating}: {:?}", a.body);
    }
    let theirs = rate(&app, &other, &pid, "marmalade-station", json!("dislike")).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call(
            Method::PUT,
            &format!("/api/profiles/{pid}/list/no-such-title"),
            None,
            Some(&token)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(
            Method::PUT,
            &format!("/api/profiles/{pid}/list/marmalade-station"),
            None,
            Some(&other)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.log_len().await,
        before,
        "refused commands appended events"
    );

    // My List: added once, most recent first, removable.
    for title in ["marmalade-station", "tin-foxes", "marmalade-station"] {
        let a = app
            .call(
                Method::PUT,
                &format!("/api/profiles/{pid}/list/{title}"),
                None,
                Some(&token),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK);
    }
    let last = app
        .call(
            Method::PUT,
            &format!("/api/profiles/{pid}/list/tin-foxes"),
            None,
            Some(&token),
        )
        .await
        .body["position"]
        .as_i64()
        .unwrap();
    let list = app
        .get(
            &format!("/api/profiles/{pid}/list?min_position={last}"),
            Some(&token),
        )
        .await;
    let ids: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tin-foxes", "marmalade-station"]);
    let removed = app
        .call(
            Method::DELETE,
            &format!("/api/profiles/{pid}/list/tin-foxes"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let at: i64 = removed.headers["x-position"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let list = app
        .get(
            &format!("/api/profiles/{pid}/list?min_position={at}"),
            Some(&token),
        )
        .await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    let unrated = app
        .call(
            Method::DELETE,
            &format!("/api/profiles/{pid}/ratings/marmalade-station"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(unrated.status, StatusCode::NO_CONTENT);
    let at: i64 = unrated.headers["x-position"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let ratings = app
        .get(
            &format!("/api/profiles/{pid}/ratings?min_position={at}"),
            Some(&token),
        )
        .await;
    assert_eq!(ratings.body, json!([]));
    assert_eq!(loved.body["rating"], "love");
    app.stop();
}

#[tokio::test]
async fn recommendations_follow_likes_at_once_say_why_and_respect_kids() {
    let app = TestApp::spawn(Backend::Postgres).await;
    // Other viewers who liked "Tin Foxes" also liked "Ironbark Pass".
    for i in 0..4 {
        let (t, _) = app.signup_login(&format!("crowd{i}@example.com")).await;
        let p = app.profile(&t, json!({"name": "Crowd"})).await;
        for title in ["tin-foxes", "ironbark-pass"] {
            let a = rate(&app, &t, &p, title, json!("like")).await;
            assert_eq!(a.status, StatusCode::OK, "{title}: {:?}", a.body);
        }
    }
    let (token, _) = app.signup_login("fresh@example.com").await;
    let pid = app.profile(&token, json!({"name": "Sam"})).await;
    let kid = app
        .profile(
            &token,
            json!({"name": "Kid", "kids": true, "maturity_rating": "7+"}),
        )
        .await;

    // A fresh profile sees trending and popular rows, and nothing personal yet.
    let head = app.log().await.last().unwrap().position;
    let fresh = app
        .get(
            &format!("/api/profiles/{pid}/recommendations?min_position={head}"),
            Some(&token),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{:?}", fresh.body);
    assert!(row(&fresh.body, "popular").is_some());
    let trending = row(&fresh.body, "trending").expect("trending row");
    assert_eq!(trending["reason"], "Trending now");
    assert!(row_ids(trending).contains(&"tin-foxes".to_string()));
    assert!(row(&fresh.body, "because_you_liked").is_none());

    // One love, and the very next read (at its position) changes and says why.
    let liked = rate(&app, &token, &pid, "tin-foxes", json!("love")).await;
    let at = liked.body["position"].as_i64().unwrap();
    let recs = app
        .get(
            &format!("/api/profiles/{pid}/recommendations?min_position={at}"),
            Some(&token),
        )
        .await;
    let because = row(&recs.body, "because_you_liked").expect("a because-you-liked row");
    assert_eq!(because["reason"], "Because you loved Tin Foxes");
    assert_eq!(
        row_ids(because)[0],
        "ironbark-pass",
        "the co-liked title leads"
    );
    let picks = row(&recs.body, "top_picks").expect("top picks");
    assert_eq!(picks["reason"], "Top picks for Sam");
    assert_eq!(recs.body["reranked"], false);
    // Nothing already rated comes back.
    for r in recs.body["rows"].as_array().unwrap() {
        assert!(
            !row_ids(r).contains(&"tin-foxes".to_string()),
            "{}",
            r["reason"]
        );
    }
    // Disliking a recommended title removes it.
    let disliked = rate(&app, &token, &pid, "ironbark-pass", json!("dislike")).await;
    let at = disliked.body["position"].as_i64().unwrap();
    let recs = app
        .get(
            &format!("/api/profiles/{pid}/recommendations?min_position={at}"),
            Some(&token),
        )
        .await;
    for r in recs.body["rows"].as_array().unwrap() {
        assert!(!row_ids(r).contains(&"ironbark-pass".to_string()));
    }

    // A kids profile is never recommended a title above its rating, whatever it liked.
    let liked = rate(&app, &token, &kid, "tin-foxes", json!("like")).await;
    let at = liked.body["position"].as_i64().unwrap();
    let recs = app
        .get(
            &format!("/api/profiles/{kid}/recommendations?min_position={at}"),
            Some(&token),
        )
        .await;
    let mut seen = 0;
    for r in recs.body["rows"].as_array().unwrap() {
        for t in r["items"].as_array().unwrap() {
            seen += 1;
            assert!(
                ["all", "7+"].contains(&t["maturity_rating"].as_str().unwrap()),
                "{} in {}",
                t["id"],
                r["reason"]
            );
        }
    }
    assert!(seen > 0);
    let (other, _) = app.signup_login("other-recs@example.com").await;
    assert_eq!(
        app.get(
            &format!("/api/profiles/{pid}/recommendations"),
            Some(&other)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    app.stop();
}

#[tokio::test]
async fn groq_reorders_top_picks_and_anything_wrong_falls_back_to_the_local_order() {
    let groq = fake_groq().await;
    let dir = TempDir::new();
    let settings = cinelog_infra::Settings {
        groq: Some(GroqSettings {
            api_base: format!("{}/openai/v1", groq.fake.base),
            api_key: Secret::new("gsk_test"),
            model: "llama-3.1-8b-instant".into(),
            timeout_ms: 1_000,
        }),
        ..settings_for(Backend::Sqlite, &dir).await
    };
    let app = TestApp::spawn_with(settings, dir, Outside::default()).await;
    let (token, _) = app.signup_login("llm@example.com").await;
    let pid = app.profile(&token, json!({"name": "Robin"})).await;
    let liked = rate(&app, &token, &pid, "tin-foxes", json!("like")).await;
    let at = liked.body["position"].as_i64().unwrap();
    let path = format!("/api/profiles/{pid}/recommendations?min_position={at}");

    groq.set(GroqMode::Garbage);
    let local = app.get(&path, Some(&token)).await;
    assert_eq!(local.body["reranked"], false);
    let local_order = row_ids(row(&local.body, "top_picks").unwrap());

    groq.set(GroqMode::Reverse);
    let reranked = app.get(&path, Some(&token)).await;
    assert_eq!(reranked.body["reranked"], true);
    let picks = row(&reranked.body, "top_picks").unwrap();
    let order = row_ids(picks);
    assert_ne!(order, local_order, "the order changes");
    assert!(
        !order.contains(&"not-a-candidate".to_string()),
        "ids outside the candidates are dropped"
    );
    assert!(
        picks["items"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("Picked for you: ")
    );
    let sent = &groq.fake.seen("/openai/v1/chat/completions");
    let request: Value = serde_json::from_str(&sent.last().unwrap().body).unwrap();
    assert_eq!(request["response_format"]["type"], "json_object");
    assert!(
        request["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Tin Foxes"),
        "the history goes along"
    );
    assert_eq!(
        sent.last().unwrap().headers["authorization"],
        "Bearer gsk_test"
    );

    for mode in [GroqMode::Fail, GroqMode::Slow] {
        groq.set(mode);
        let fallback = app.get(&path, Some(&token)).await;
        assert_eq!(fallback.status, StatusCode::OK, "{mode:?}");
        assert_eq!(fallback.body["reranked"], false, "{mode:?}");
        assert_eq!(
            row_ids(row(&fallback.body, "top_picks").unwrap()),
            local_order,
            "{mode:?}"
        );
    }
    // With Groq unreachable, nothing breaks either.
    drop(groq);
    let down = app.get(&path, Some(&token)).await;
    assert_eq!(
        (down.status, down.body["reranked"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    app.stop();
}

#[tokio::test]
async fn trending_in_redis_counts_every_play_and_like_once_across_replicas() {
    let dir = TempDir::new();
    let prefix = format!("cinelog-trend-{}", uuid::Uuid::now_v7().simple());
    let settings = cinelog_infra::Settings {
        redis_url: Some("redis://127.0.0.1:6379".into()),
        redis_prefix: prefix.clone(),
        jwt_secret: Some(Secret::new("replicas share this key")),
        ..settings_for(Backend::Postgres, &dir).await
    };
    let first = TestApp::spawn_with(settings.clone(), dir, Outside::default()).await;
    let second_dir = TempDir::new();
    let second = TestApp::spawn_with(
        cinelog_infra::Settings {
            data_dir: second_dir.0.clone(),
            ..settings.clone()
        },
        second_dir,
        Outside::default(),
    )
    .await;
    let (token, _) = first.signup_login("trends@example.com").await;
    first.subscribe(&token, "premium").await;
    let mut plays = 0;
    for i in 0..3 {
        let app = if i % 2 == 0 { &first } else { &second };
        let pid = app.profile(&token, json!({"name": format!("P{i}")})).await;
        let a = app
            .post(
                &format!("/api/profiles/{pid}/playback"),
                json!({"title_id": "copperline"}),
                Some(&token),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        plays += 1;
        let sid = a.body["session_id"].as_str().unwrap().to_string();
        app.post(
            &format!("/api/playback/{sid}/stop"),
            json!({"position_secs": 1}),
            Some(&token),
        )
        .await;
        // Liking, then loving, is one profile starting to like the title: it counts once.
        for (title, rating) in [
            ("brass-and-bone", "like"),
            ("brass-and-bone", "love"),
            ("copperline", "dislike"),
        ] {
            let r = rate(app, &token, &pid, title, json!(rating)).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
    }
    // Both replicas' followers race over the same log and the same Redis.
    let head = Checkpoint::of(first.log().await.last().unwrap());
    let redis = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let ck_key = format!("{prefix}:trending:checkpoint");
    let mut reached = false;
    for _ in 0..200 {
        let ck: Option<String> = redis::AsyncCommands::get(&mut conn, &ck_key).await.unwrap();
        let ck = ck
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .map(|(tx, p)| Checkpoint {
                tx: tx.parse().unwrap(),
                position: p.parse().unwrap(),
            });
        if ck.is_some_and(|ck| ck >= head) {
            reached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reached, "trending in Redis reaches the log's head");
    let trending = first.running.state.trending.as_ref().unwrap();
    let top = trending.top(chrono::Utc::now(), 10).await.unwrap();
    assert_eq!(
        top,
        vec![
            ("brass-and-bone".to_string(), 3),
            ("copperline".to_string(), plays)
        ]
    );
    // The SQL read model of the embedded default counts the same.
    let state = &first.running.state;
    assert!(
        state
            .projections
            .wait_for(
                "engagement",
                head.position,
                std::time::Duration::from_secs(10)
            )
            .await
            .unwrap()
    );
    let since = (chrono::Utc::now() - chrono::Duration::days(6))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        cinelog_projections::engagement::trending(state.projections.db(), &since, 10)
            .await
            .unwrap(),
        top
    );
    // Running it again, from either replica, adds nothing.
    trending.catch_up().await.unwrap();
    second
        .running
        .state
        .trending
        .as_ref()
        .unwrap()
        .catch_up()
        .await
        .unwrap();
    assert_eq!(trending.top(chrono::Utc::now(), 10).await.unwrap(), top);
    // And the recommendations' trending row follows it.
    let pid = first.profile(&token, json!({"name": "Fresh"})).await;
    let head = first.log().await.last().unwrap().position;
    let recs = first
        .get(
            &format!("/api/profiles/{pid}/recommendations?min_position={head}"),
            Some(&token),
        )
        .await;
    assert_eq!(
        row_ids(row(&recs.body, "trending").unwrap())[..2],
        ["brass-and-bone".to_string(), "copperline".to_string()]
    );
    first.stop();
    second.stop();
}

/// A Redis of the test's own stopped in the middle of a run, then started again empty (as a
/// Redis that keeps nothing comes back): meanwhile commands and queries keep answering, the
/// trending row falls back to the SQL read model and the abuse limits to this process's memory
/// (still refusing a guesser, not lifted); once Redis is back, trending in Redis catches up
/// with the log and equals the SQL read model.
#[tokio::test]
async fn redis_stopped_mid_run_leaves_commands_queries_and_limits_working() {
    let port = Tansu::free_port();
    let redis = RedisServer::start(port).await;
    let dir = TempDir::new();
    let settings = cinelog_infra::Settings {
        redis_url: Some(redis.url()),
        redis_prefix: "fault".into(),
        ..settings_for(Backend::Postgres, &dir).await
    };
    let app = TestApp::spawn_with(settings, dir, Outside::default()).await;
    let (token, _) = app.signup_login("redis-down@example.com").await;
    app.subscribe(&token, "premium").await;
    let pid = app.profile(&token, json!({"name": "Main"})).await;
    let r = rate(&app, &token, &pid, "brass-and-bone", json!("like")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    drop(redis);
    let r = rate(&app, &token, &pid, "copperline", json!("love")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a command with Redis down: {:?}",
        r.body
    );
    let play = app
        .post(
            &format!("/api/profiles/{pid}/playback"),
            json!({"title_id": "copperline"}),
            Some(&token),
        )
        .await;
    assert_eq!(play.status, StatusCode::CREATED, "{:?}", play.body);
    let fresh = app.profile(&token, json!({"name": "Fresh"})).await;
    let head = app.log().await.last().unwrap().position;
    let titles = app
        .get(
            &format!("/api/titles?profile_id={pid}&min_position={head}"),
            Some(&token),
        )
        .await;
    assert_eq!(titles.status, StatusCode::OK, "{:?}", titles.body);
    let recs = app
        .get(
            &format!("/api/profiles/{fresh}/recommendations?min_position={head}"),
            Some(&token),
        )
        .await;
    assert_eq!(recs.status, StatusCode::OK, "{:?}", recs.body);
    assert_eq!(
        row_ids(row(&recs.body, "trending").expect("a trending row from SQL"))[..2],
        ["copperline", "brass-and-bone"],
        "{:?}",
        recs.body
    );
    // A newcomer signs up and signs in; a guesser is still refused after five failures.
    app.signup_login("while-down@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let wrong = app
            .post(
                "/api/auth/login",
                json!({"email": "while-down@example.com", "password": "not-the-password"}),
                None,
            )
            .await;
        statuses.push(wrong.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);

    let _back = RedisServer::start(port).await;
    let trending = app.running.state.trending.as_ref().unwrap();
    let since = (chrono::Utc::now() - chrono::Duration::days(6))
        .format("%Y-%m-%d")
        .to_string();
    let projections = &app.running.state.projections;
    let waited = projections.wait_for("engagement", head, std::time::Duration::from_secs(10));
    assert!(waited.await.unwrap());
    let sql = cinelog_projections::engagement::trending(projections.db(), &since, 10)
        .await
        .unwrap();
    assert_eq!(
        sql,
        vec![
            ("copperline".to_string(), 2),
            ("brass-and-bone".to_string(), 1)
        ]
    );
    let mut top = Vec::new();
    for _ in 0..600 {
        match trending.top(chrono::Utc::now(), 10).await {
            Ok(now) if now == sql => return,
            Ok(now) => top = now,
            Err(_) => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("trending in Redis never caught up: {top:?}, SQL has {sql:?}");
}

/// A profile's rows are kept only while nothing they come from moves: another account's likes
/// (which move trending and co-engagement) show in the next answer at their position.
#[tokio::test]
async fn kept_recommendations_follow_other_profiles_likes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("kept@example.com").await;
    let pid = app.profile(&token, json!({"name": "Kim"})).await;
    let at = rate(&app, &token, &pid, "tin-foxes", json!("like"))
        .await
        .body["position"]
        .as_i64()
        .unwrap();
    let path = |at: i64| format!("/api/profiles/{pid}/recommendations?min_position={at}");
    let before = app.get(&path(at), Some(&token)).await;
    assert_eq!(before.status, StatusCode::OK, "{:?}", before.body);
    assert!(row(&before.body, "trending").is_none(), "{:?}", before.body);
    assert_eq!(app.get(&path(at), Some(&token)).await.body, before.body);

    let (other, _) = app.signup_login("others@example.com").await;
    let mut last = 0;
    for name in ["A", "B"] {
        let p = app.profile(&other, json!({"name": name})).await;
        last = rate(&app, &other, &p, "copperline", json!("love"))
            .await
            .body["position"]
            .as_i64()
            .unwrap();
    }
    let after = app.get(&path(last), Some(&token)).await;
    assert_eq!(after.status, StatusCode::OK, "{:?}", after.body);
    let trending = row(&after.body, "trending").expect("a trending row after others' likes");
    assert_eq!(row_ids(trending)[0], "copperline");
}
