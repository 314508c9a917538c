//! Analysts read the log: NDJSON from any position and a live Server-Sent Events tail, with
//! credentials and personal data kept out.

use cinelog_domain::values::Role;
use cinelog_tests::{Backend, TestApp};
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "Corr3ct-horse-battery";

/// Creates a user with a role, as `cinelog user create --role` does, and signs them in.
/// Every line of an NDJSON answer, parsed.
async fn ndjson(app: &TestApp, path: &str, token: &str) -> (u16, String, Vec<Value>) {
    let resp = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let lines = if status == 200 {
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    } else {
        Vec::new()
    };
    (status, ctype, lines)
}

fn positions(lines: &[Value]) -> Vec<i64> {
    lines
        .iter()
        .map(|l| l["position"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn analysts_read_the_log_as_ndjson_in_order_with_a_cursor() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let (viewer, _) = app.signup_login("viewer@example.com").await;
        let signup = app
            .post(
                "/api/auth/signup",
                json!({"email": "phoned@example.com", "password": PASSWORD, "phone": "+14155550177"}),
                None,
            )
            .await;
        assert_eq!(signup.status, 201);
        let analyst = app.signed_in_as("ana@example.com", Role::Analyst).await;

        let (status, _, _) = ndjson(&app, "/api/events?after=0&limit=20", &viewer).await;
        assert_eq!(status, 403, "{backend:?}: a viewer");

        let (status, ctype, all) = ndjson(&app, "/api/events?limit=100000", &analyst).await;
        assert_eq!(status, 200);
        assert_eq!(ctype, "application/x-ndjson");
        // The whole log but the record of reads (auditors query those), this one included.
        let log = app.log().await;
        let reads = log.iter().filter(|e| e.stream_type == "access").count();
        assert!(reads >= 1, "{backend:?}: the read was recorded");
        assert_eq!(all.len(), log.len() - reads, "{backend:?}: the whole log");
        let pos = positions(&all);
        let mut sorted = pos.clone();
        sorted.dedup();
        assert_eq!(pos.len(), sorted.len());
        // Log order on SQLite is position order.
        if backend == Backend::Sqlite {
            sorted.sort();
            assert_eq!(pos, sorted);
        }
        // Pages joined with the cursor are the whole log, in the same order.
        let mut paged = Vec::new();
        let mut after = 0;
        loop {
            let (_, _, page) = ndjson(
                &app,
                &format!("/api/events?after={after}&limit=7"),
                &analyst,
            )
            .await;
            let Some(last) = page.last() else { break };
            after = last["position"].as_i64().unwrap();
            paged.extend(page);
        }
        assert_eq!(positions(&paged), pos, "{backend:?}");

        // Envelopes, without credentials or personal data.
        let text = serde_json::to_string(&all).unwrap();
        assert!(
            !text.contains("$argon2id"),
            "{backend:?}: a password hash left"
        );
        assert!(!text.contains("phoned@example.com") && !text.contains("4155550177"));
        let registered: Vec<&Value> = all
            .iter()
            .filter(|e| e["event_type"] == "UserRegistered")
            .collect();
        assert_eq!(registered.len(), 3);
        let first = registered[0];
        for field in [
            "event_id",
            "correlation_id",
            "actor",
            "recorded_at",
            "hash",
            "stream_id",
        ] {
            assert!(!first[field].is_null(), "{field} missing: {first}");
        }
        assert_eq!(
            first["payload"]["UserRegistered"]["email"],
            "[personal data]"
        );

        // Filters.
        let (_, _, users) = ndjson(&app, "/api/events?stream_type=user&limit=1000", &analyst).await;
        assert!(users.iter().all(|e| e["stream_type"] == "user"));
        assert_eq!(users.len(), 3);
        let (_, _, typed) = ndjson(&app, "/api/events?type=UserRegistered", &analyst).await;
        assert_eq!(typed.len(), 3);
        let future = "2999-01-01T00:00:00Z";
        let (_, _, none) = ndjson(&app, &format!("/api/events?from={future}"), &analyst).await;
        assert!(none.is_empty());

        // Bad input is a clear 4xx.
        assert_eq!(ndjson(&app, "/api/events?limit=0", &analyst).await.0, 422);
        assert_eq!(
            ndjson(&app, "/api/events?after=99999999", &analyst).await.0,
            422
        );
        assert_eq!(ndjson(&app, "/api/events?after=x", &analyst).await.0, 400);

        // After an erasure, the user's sealed data reads as erased.
        let (token, _) = app.login("phoned@example.com", PASSWORD).await;
        let gone = app
            .call(
                reqwest::Method::DELETE,
                "/api/me",
                Some(json!({"password": PASSWORD})),
                Some(&token),
            )
            .await;
        assert_eq!(gone.status, 204);
        let user_id = signup.body["user_id"].as_str().unwrap();
        let (_, _, theirs) = ndjson(&app, "/api/events?stream_type=user", &analyst).await;
        let erased = theirs
            .iter()
            .find(|e| e["stream_id"] == user_id && e["event_type"] == "UserRegistered")
            .unwrap();
        assert_eq!(erased["payload"]["UserRegistered"]["email"], "[erased]");
        assert_eq!(erased["payload"]["UserRegistered"]["phone"], "[erased]");
        app.stop();
    }
}

/// Reads SSE frames until `want` events arrived; answers (id, event, data) of each.
async fn sse_events(
    resp: reqwest::Response,
    want: usize,
) -> (Vec<(i64, String, Value)>, impl futures::Stream) {
    let mut stream = resp.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < want {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let (mut id, mut name, mut data) = (None, String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if let Some(id) = id {
                events.push((id, name, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    (events, stream)
}

#[tokio::test]
async fn the_live_tail_catches_up_follows_and_resumes_exactly() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let analyst = app.signed_in_as("tail@example.com", Role::Analyst).await;
    let (viewer, _) = app.signup_login("walker@example.com").await;
    let open = |after: Option<i64>| {
        let mut req = app
            .http
            .get(app.url("/api/events/live?stream_type=account"))
            .bearer_auth(&analyst)
            .header("accept", "text/event-stream");
        if let Some(last) = after {
            req = req.header("last-event-id", last.to_string());
        }
        req.send()
    };
    let resp = open(None).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Catch up: the two accounts opened so far.
    let (caught_up, stream) = sse_events(resp, 2).await;
    assert!(caught_up.iter().all(|(_, name, _)| name == "AccountOpened"));
    drop(stream);

    // Follow: a profile made now arrives live.
    let resp = open(Some(caught_up[1].0)).await.unwrap();
    let made = app
        .post("/api/profiles", json!({"name": "Live"}), Some(&viewer))
        .await;
    assert_eq!(made.status, 201);
    let (live, _) = sse_events(resp, 1).await;
    assert_eq!(live[0].1, "ProfileCreated");
    assert_eq!(live[0].0, made.body["position"].as_i64().unwrap());
    assert_eq!(live[0].2["payload"]["ProfileCreated"]["name"], "Live");

    // Resume after the first: exactly the second, then the live one, nothing twice.
    let resp = open(Some(caught_up[0].0)).await.unwrap();
    let (resumed, _) = sse_events(resp, 2).await;
    let ids: Vec<i64> = resumed.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, [caught_up[1].0, live[0].0]);

    // A viewer may not tail the log.
    let refused = app
        .http
        .get(app.url("/api/events/live"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    app.stop();
}

#[tokio::test]
async fn the_dashboard_counts_signups_plays_watch_time_and_revenue() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let analyst = app.signed_in_as("dash@example.com", Role::Analyst).await;
    let (viewer, _) = app.signup_login("watcher@example.com").await;
    app.subscribe(&viewer, "standard").await;
    let profile = app.profile(&viewer, json!({"name": "Dash"})).await;
    let titles = app.get("/api/titles", None).await;
    let title = titles.body["items"][0]["id"].as_str().unwrap().to_string();
    let started = app
        .post(
            &format!("/api/profiles/{profile}/playback"),
            json!({"title_id": title}),
            Some(&viewer),
        )
        .await;
    assert_eq!(started.status, 201, "{:?}", started.body);
    let sid = started.body["session_id"].as_str().unwrap();
    let duration = started.body["duration_secs"].as_f64().unwrap();
    for secs in [duration / 4.0, duration / 2.0, duration * 0.75] {
        let beat = app
            .post(
                &format!("/api/playback/{sid}/heartbeat"),
                json!({"position_secs": secs}),
                Some(&viewer),
            )
            .await;
        assert_eq!(beat.status, 204, "{:?}", beat.body);
    }
    let stop = app
        .post(
            &format!("/api/playback/{sid}/stop"),
            json!({"position_secs": duration}),
            Some(&viewer),
        )
        .await;
    assert_eq!(stop.status, 204);
    let position = app.running.state.projections.log_head().await.unwrap();

    let refused = app.get("/api/stats/dashboard", Some(&viewer)).await;
    assert_eq!(refused.status, 403);
    let d = app
        .get(
            &format!("/api/stats/dashboard?days=7&min_position={position}"),
            Some(&analyst),
        )
        .await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    let days = d.body["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let today = days.last().unwrap();
    assert_eq!(today["signups"], 2);
    assert_eq!(today["plays"], 1);
    assert_eq!(today["activations"], 1);
    let hours = today["watch_hours"].as_f64().unwrap();
    assert!(
        (hours * 3600.0 - duration).abs() < 0.01,
        "{hours} h for {duration} s"
    );
    assert_eq!(d.body["active_by_plan"]["standard"], 1);
    assert_eq!(d.body["mrr_minor"], 1549);
    assert_eq!(d.body["top_titles"][0]["title_id"], title.as_str());
    assert_eq!(d.body["top_titles"][0]["plays"], 1);
    assert_eq!(
        app.get("/api/stats/dashboard?days=0", Some(&analyst))
            .await
            .status,
        422
    );

    // Rebuilt from the log, the dashboard is the same.
    app.running
        .state
        .projections
        .rebuild("stats")
        .await
        .unwrap();
    let again = app.get("/api/stats/dashboard?days=7", Some(&analyst)).await;
    assert_eq!(again.body, d.body);
    app.stop();
}

#[tokio::test]
async fn an_analyst_role_reads_the_analytics_views_and_nothing_else() {
    use sqlx::Connection;
    let app = TestApp::spawn(Backend::Postgres).await;
    let (viewer, _) = app.signup_login("sql@example.com").await;
    app.subscribe(&viewer, "premium").await;
    let url = app.settings.database_url.clone().unwrap();
    let role = format!("analyst_{}", uuid::Uuid::now_v7().simple());
    cinelog_projections::analytics::grant(app.running.state.projections.db(), &role, None)
        .await
        .unwrap();
    let (head, db) = url.rsplit_once('/').unwrap();
    let as_role = format!(
        "{}{role}@{}/{db}",
        &head[..head.find("//").unwrap() + 2],
        head.rsplit_once('@').unwrap().1
    );
    let mut conn = sqlx::PgConnection::connect(&as_role).await.unwrap();

    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM analytics.events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(events as usize, app.log_len().await);
    let hashes: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM analytics.events WHERE payload::text LIKE '%argon2%' OR payload::text LIKE '%refresh_hash%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(hashes, 0, "credentials in the analytics view");
    let premium: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM analytics.subscriptions WHERE plan = 'premium' AND status = 'active'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(premium, 1);
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'analytics' AND table_name = 'users'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(
        !users.iter().any(|c| c == "email" || c == "phone"),
        "{users:?}"
    );

    // Nothing else: no raw tables, no keys, no writes, nothing new.
    for denied in [
        "SELECT COUNT(*) FROM events",
        "SELECT COUNT(*) FROM pii_keys",
        "SELECT COUNT(*) FROM subscriptions",
        "INSERT INTO analytics.daily (day, metric, value) VALUES ('2020-01-01', 'x', 1)",
        "CREATE TABLE analytics.mine (x int)",
        "CREATE TABLE public.mine (x int)",
    ] {
        let refused = sqlx::query(denied).execute(&mut conn).await;
        assert!(refused.is_err(), "{role} could run: {denied}");
    }

    // A rebuilt read model's views are made again, and stay readable.
    app.running
        .state
        .projections
        .rebuild("subscriptions")
        .await
        .unwrap();
    let again: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM analytics.subscriptions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(again, 1);
    conn.close().await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    for cleanup in [
        format!("DROP OWNED BY \"{role}\""),
        format!("DROP ROLE \"{role}\""),
    ] {
        sqlx::query(&cleanup).execute(&mut admin).await.unwrap();
    }
    app.stop();
}
