//! The catalog and playback: the bundled catalog, browse and search with any input, kids'
//! limits everywhere, plan-capped signed HLS, byte ranges, the stream limit, resume, the cache.

use chrono::Duration;
use cinelog_api::Outside;
use cinelog_tests::{Backend, TempDir, TestApp, settings_for};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_bundled_catalog_browses_searches_and_survives_restarts() {
    let dir = TempDir::new();
    let settings = settings_for(Backend::Sqlite, &dir).await;
    let app = TestApp::spawn_with(settings.clone(), dir, Outside::default()).await;
    let first = app.get("/api/titles", None).await;
    assert_eq!(first.status, StatusCode::OK);
    let total = first.body["total"].as_i64().unwrap();
    assert!(total >= 40, "{total}");
    assert_eq!(first.body["has_more"], true);
    // Pages cover every title once, most popular first.
    let mut seen = HashSet::new();
    let mut page = 1;
    loop {
        let a = app.get(&format!("/api/titles?page={page}"), None).await;
        for id in ids(&a.body) {
            assert!(seen.insert(id));
        }
        if a.body["has_more"] != true {
            break;
        }
        page += 1;
    }
    assert_eq!(seen.len() as i64, total);
    let pops: Vec<f64> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["popularity"].as_f64().unwrap())
        .collect();
    assert!(pops.windows(2).all(|w| w[0] >= w[1]));

    let genres = app.get("/api/genres", None).await;
    assert!(genres.body.as_array().unwrap().len() >= 10);
    let series = app.get("/api/titles?kind=series", None).await;
    assert!(
        series.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["kind"] == "series")
    );
    let horror = app.get("/api/titles?genre=Horror", None).await;
    assert!(horror.body["total"].as_i64().unwrap() > 0);
    assert!(
        horror.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["genres"].as_array().unwrap().contains(&json!("Horror")))
    );

    // Details of a series carry its seasons and episodes; the poster is an SVG.
    let sid = ids(&series.body)[0].clone();
    let details = app.get(&format!("/api/titles/{sid}"), None).await;
    assert_eq!(details.status, StatusCode::OK);
    assert!(
        details.body["seasons"][0]["episodes"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
    let poster = app
        .http
        .get(app.url(details.body["poster"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(poster.headers()["content-type"], "image/svg+xml");
    assert!(poster.text().await.unwrap().starts_with("<svg"));
    assert_eq!(
        app.get("/api/titles/no-such-title", None).await.status,
        StatusCode::NOT_FOUND
    );
    for odd in ["%00", "a%00b", "%0A"] {
        assert_eq!(
            app.get(&format!("/api/titles/{odd}"), None).await.status,
            StatusCode::NOT_FOUND,
            "{odd}"
        );
        let a = app
            .get(
                &format!("/api/titles?query={odd}&genre={odd}&kind={odd}"),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{odd}: {:?}", a.body);
    }
    assert_eq!(
        app.get("/api/titles?genre=horror", None).await.body["total"],
        app.get("/api/titles?genre=Horror", None).await.body["total"]
    );

    assert_searches_any_text(&app).await;
    assert_eq!(
        app.get("/api/titles?page=abc", None).await.status,
        StatusCode::BAD_REQUEST
    );

    // A restart loads nothing twice.
    let events = app.log_len().await;
    app.stop();
    drop(app.running);
    let again = TestApp::spawn_with(settings, app.dir, Outside::default()).await;
    assert_eq!(again.log_len().await, events);
    assert_eq!(
        again.get("/api/titles", None).await.body["total"].as_i64(),
        Some(total)
    );
    again.stop();
}

/// Anything a person can type answers results or an empty list.
async fn assert_searches_any_text(app: &TestApp) {
    let long = "é".repeat(10_000);
    for text in [
        "\"",
        "'; DROP TABLE titles; --",
        "\") OR 1=1 -- NEAR(",
        "%",
        "_",
        "\\",
        "a AND b OR NOT c*",
        "lighthouse:* & !brackwater | (",
        "🎬🍿",
        "NULL",
        "\u{0}",
        long.as_str(),
        "   ",
    ] {
        let a = app
            .call(
                reqwest::Method::GET,
                &format!("/api/titles?query={}", urlencode(text)),
                None,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{text:.40}: {:?}", a.body);
        assert!(a.body["items"].is_array());
    }
    for nothing in ["%", "🎬🍿", "ghthouse"] {
        let a = app
            .get(&format!("/api/titles?query={}", urlencode(nothing)), None)
            .await;
        assert_eq!(a.body["total"], 0, "{nothing}");
    }
}

/// The ids a search finds, in order.
async fn search(app: &TestApp, text: &str) -> Vec<String> {
    let a = app
        .get(&format!("/api/titles?query={}", urlencode(text)), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{text}: {:?}", a.body);
    ids(&a.body)
}

#[tokio::test]
async fn search_is_full_text_by_word_prefix_with_names_first() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        // Every word must match, case-insensitively, each as the start of a word.
        assert_eq!(
            search(&app, "LIGHTHOUSE brackwater").await,
            ["the-lantern-keeper-of-brackwater"],
            "{backend:?}"
        );
        assert!(
            search(&app, "lighth")
                .await
                .contains(&"the-lantern-keeper-of-brackwater".to_string()),
            "{backend:?}"
        );
        assert!(
            search(&app, "lighthouse zebra").await.is_empty(),
            "{backend:?}"
        );
        // A word may also match by its stem: a plural finds the singular.
        assert_eq!(
            search(&app, "keepers brackwater").await,
            ["the-lantern-keeper-of-brackwater"],
            "{backend:?}"
        );
        // Titles named by the words come before those that only mention them, even more popular ones.
        assert_eq!(
            search(&app, "station").await,
            [
                "marmalade-station",
                "relay-station-nine",
                "coldwater-precinct"
            ],
            "{backend:?}"
        );
        assert_eq!(
            search(&app, "winter").await,
            ["winter-apiary", "the-lantern-keeper-of-brackwater"],
            "{backend:?}"
        );
        // Operators and quotes are not syntax: they separate words.
        assert_eq!(
            search(&app, "\"lighthouse\" AND (brackwater*)").await,
            ["the-lantern-keeper-of-brackwater"],
            "{backend:?}"
        );
        assert_searches_any_text(&app).await;

        // The index follows the title: a new name is found, the old one no longer is.
        let state = &app.running.state;
        let mut info = cinelog_infra::media::bundled_catalog()
            .unwrap()
            .into_iter()
            .find(|t| t.id == "winter-apiary")
            .unwrap()
            .info;
        info.name = "Noël: The Beekeeper's Almanac".into();
        let meta = cinelog_commands::CommandMeta::new(cinelog_domain::Actor::System);
        let (_, position) = state
            .catalog
            .import("winter-apiary", info, &meta)
            .await
            .unwrap();
        // Reads wait for the position a write answered.
        let renamed = app
            .get(
                &format!("/api/titles?query=almanac&min_position={position}"),
                None,
            )
            .await;
        assert_eq!(ids(&renamed.body), ["winter-apiary"], "{backend:?}");
        let details = app
            .get(
                &format!("/api/titles/winter-apiary?min_position={position}"),
                None,
            )
            .await;
        assert_eq!(details.body["name"], "Noël: The Beekeeper's Almanac");
        let ahead = app
            .get(
                &format!("/api/titles?min_position={}", position + 1_000_000),
                None,
            )
            .await;
        assert_eq!(
            (ahead.status, ahead.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_query")
        );
        assert_eq!(
            search(&app, "almanac beekeep").await,
            ["winter-apiary"],
            "{backend:?}"
        );
        assert!(search(&app, "apiary").await.is_empty(), "{backend:?}");
        // Accents do not matter, either way round.
        for text in ["noel", "NOËL", "nöel"] {
            assert_eq!(
                search(&app, text).await,
                ["winter-apiary"],
                "{backend:?} {text}"
            );
        }
        // Its synopsis still says winter, but its name no longer does.
        assert_eq!(
            search(&app, "winter").await,
            ["the-lantern-keeper-of-brackwater", "winter-apiary"],
            "{backend:?}"
        );

        // A rebuild makes the same index beside the live one.
        state
            .projections
            .rebuild(cinelog_projections::catalog::NAME)
            .await
            .unwrap();
        assert_eq!(
            search(&app, "almanac").await,
            ["winter-apiary"],
            "{backend:?}"
        );
        assert_eq!(
            search(&app, "station").await,
            [
                "marmalade-station",
                "relay-station-nine",
                "coldwater-precinct"
            ],
            "{backend:?}"
        );
        app.stop();
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn kids_profiles_never_see_or_play_titles_above_their_rating() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("family@example.com").await;
    let kid = app
        .profile(
            &token,
            json!({"name": "Kid", "kids": true, "maturity_rating": "7+"}),
        )
        .await;
    let adult = app.profile(&token, json!({"name": "Adult"})).await;
    app.subscribe(&token, "standard").await;

    let ratings_of = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["maturity_rating"].as_str().unwrap().to_string())
            .collect()
    };
    let all = app
        .get(
            &format!("/api/titles?profile_id={adult}&page=1"),
            Some(&token),
        )
        .await;
    let kids = app
        .get(&format!("/api/titles?profile_id={kid}"), Some(&token))
        .await;
    assert!(kids.body["total"].as_i64() < all.body["total"].as_i64());
    assert!(
        ratings_of(&kids.body)
            .iter()
            .all(|r| r == "all" || r == "7+"),
        "{:?}",
        ratings_of(&kids.body)
    );
    // Find an adult title and try every door.
    let adult_titles = app
        .get(
            &format!("/api/titles?profile_id={adult}&genre=Horror"),
            Some(&token),
        )
        .await;
    let scary = adult_titles.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["maturity_rating"] == "18+")
        .expect("an 18+ horror title")
        .clone();
    let (id, name) = (
        scary["id"].as_str().unwrap(),
        scary["name"].as_str().unwrap(),
    );
    let search = app
        .get(
            &format!("/api/titles?profile_id={kid}&query={}", urlencode(name)),
            Some(&token),
        )
        .await;
    assert!(ids(&search.body).iter().all(|i| i != id));
    assert_eq!(
        app.get(&format!("/api/titles/{id}?profile_id={kid}"), Some(&token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Rating it or listing it as the kid is refused as unknown, and nothing is recorded.
    let before = app.log_len().await;
    let rated = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/profiles/{kid}/ratings/{id}"),
            Some(json!({"rating": "like"})),
            Some(&token),
        )
        .await;
    assert_eq!(rated.status, StatusCode::NOT_FOUND);
    let listed = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/profiles/{kid}/list/{id}"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(listed.status, StatusCode::NOT_FOUND);
    assert_eq!(app.log_len().await, before);
    let play = app
        .post(
            &format!("/api/profiles/{kid}/playback"),
            json!({"title_id": id}),
            Some(&token),
        )
        .await;
    assert_eq!(
        (play.status, play.error_code()),
        (StatusCode::FORBIDDEN, "maturity_blocked")
    );
    assert_eq!(
        app.post(
            &format!("/api/profiles/{adult}/playback"),
            json!({"title_id": id}),
            Some(&token)
        )
        .await
        .status,
        StatusCode::CREATED
    );
    // Another account's profile, or no token, is not a way around it.
    let (other, _) = app.signup_login("stranger@example.com").await;
    assert_eq!(
        app.get(&format!("/api/titles?profile_id={kid}"), Some(&other))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/api/titles?profile_id={kid}"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    app.stop();
}

async fn play(
    app: &TestApp,
    token: &str,
    pid: &str,
    title: &str,
    episode: Option<&str>,
) -> cinelog_tests::Answer {
    let mut body = json!({"title_id": title});
    if let Some(e) = episode {
        body["episode_id"] = json!(e);
    }
    app.post(&format!("/api/profiles/{pid}/playback"), body, Some(token))
        .await
}

async fn stop_at(app: &TestApp, token: &str, sid: &Value, at: f64) -> i64 {
    let sid = sid.as_str().expect("session id");
    let a = app
        .post(
            &format!("/api/playback/{sid}/stop"),
            json!({"position_secs": at}),
            Some(token),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    a.headers["x-position"]
        .to_str()
        .unwrap()
        .parse::<i64>()
        .unwrap()
}

async fn fetch(app: &TestApp, url: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn playback_is_entitled_plan_capped_signed_and_ranged() {
    let dir = TempDir::new();
    let settings = settings_for(Backend::Sqlite, &dir).await;
    let (app, clock) = TestApp::spawn_on_clock(settings, dir).await;
    let (token, _) = app.signup_login("viewer@example.com").await;
    let pid = app.profile(&token, json!({"name": "Me"})).await;
    let movie = ids(&app.get("/api/titles?kind=movie", None).await.body)[0].clone();

    let unpaid = play(&app, &token, &pid, &movie, None).await;
    assert_eq!(
        (unpaid.status, unpaid.error_code()),
        (StatusCode::PAYMENT_REQUIRED, "subscription_required")
    );
    app.subscribe(&token, "basic").await;
    assert_eq!(
        play(&app, &token, &pid, "no-such-title", None).await.status,
        StatusCode::NOT_FOUND
    );
    let bad = app
        .post(
            &format!("/api/profiles/{pid}/playback"),
            json!({"title": 1}),
            Some(&token),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    let played = play(&app, &token, &pid, &movie, None).await;
    assert_eq!(played.status, StatusCode::CREATED, "{:?}", played.body);
    assert_eq!(played.body["max_quality"], 720);
    assert_eq!(played.body["qualities"], json!(["240p", "480p", "720p"]));
    assert_eq!(played.body["resume_position_secs"], 0.0);
    let master_url = played.body["master_playlist_url"]
        .as_str()
        .unwrap()
        .to_string();
    let master = fetch(&app, &master_url, None).await;
    assert_eq!(master.status(), StatusCode::OK);
    assert_eq!(
        master.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    let text = master.text().await.unwrap();
    assert!(text.starts_with("#EXTM3U"));
    assert_eq!(text.matches("#EXT-X-STREAM-INF").count(), 3, "{text}");
    assert!(
        text.contains("RESOLUTION=1280x720") && !text.contains("1080"),
        "{text}"
    );

    let base = master_url.trim_end_matches("master.m3u8");
    let playlist = fetch(&app, &format!("{base}720p/index.m3u8"), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD") && playlist.contains("#EXT-X-ENDLIST"),
        "{playlist}"
    );
    let segment = playlist
        .lines()
        .find(|l| l.ends_with(".ts"))
        .unwrap()
        .to_string();
    // Above the plan, or tampered, or expired: 403.
    let above = fetch(&app, &format!("{base}1080p/index.m3u8"), None).await;
    assert_eq!(above.status(), StatusCode::FORBIDDEN);
    let token_part = master_url
        .split("/stream/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let mut tampered = token_part.to_string().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered_url = master_url.replace(token_part, std::str::from_utf8(&tampered).unwrap());
    assert_eq!(
        fetch(&app, &tampered_url, None).await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(
        fetch(&app, &format!("{base}720p/../../x"), None)
            .await
            .status()
            .is_client_error()
    );

    // Whole segment, a range, an open range, a suffix, one past the end, and ignored ones.
    let seg_url = format!("{base}720p/{segment}");
    let whole = fetch(&app, &seg_url, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.headers()["content-type"], "video/mp2t");
    let bytes = whole.bytes().await.unwrap();
    let size = bytes.len();
    let part = fetch(&app, &seg_url, Some("bytes=188-375")).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 188-375/{size}").as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(188..376));
    let tail = fetch(&app, &seg_url, Some("bytes=-100")).await;
    assert_eq!(tail.bytes().await.unwrap(), bytes.slice(size - 100..));
    let beyond = fetch(&app, &seg_url, Some(&format!("bytes={size}-"))).await;
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );
    let refused: Value = beyond.json().await.unwrap();
    assert_eq!(refused["error"], "range_not_satisfiable");
    // Ranges this server does not serve (several at once, another unit) get the whole segment.
    for ignored in ["bytes=0-1,4-5", "items=0-1"] {
        let all = fetch(&app, &seg_url, Some(ignored)).await;
        assert_eq!(all.status(), StatusCode::OK, "{ignored}");
        assert_eq!(all.bytes().await.unwrap(), bytes, "{ignored}");
    }

    // Basic plays on one screen: a second session is refused until the first stops or goes quiet.
    let second = play(&app, &token, &pid, &movie, None).await;
    assert_eq!(
        (second.status, second.error_code()),
        (StatusCode::CONFLICT, "stream_limit_reached")
    );
    let sid = played.body["session_id"].as_str().unwrap().to_string();
    let beat = app
        .post(
            &format!("/api/playback/{sid}/heartbeat"),
            json!({"position_secs": 3.5}),
            Some(&token),
        )
        .await;
    assert_eq!(beat.status, StatusCode::NO_CONTENT);
    for beyond in [json!(-1), json!(1e9), json!(1e308)] {
        assert_eq!(
            app.post(
                &format!("/api/playback/{sid}/heartbeat"),
                json!({ "position_secs": beyond }),
                Some(&token)
            )
            .await
            .error_code(),
            "invalid_field",
            "{beyond}"
        );
    }
    assert_eq!(
        app.post(
            "/api/playback/not-a-session/heartbeat",
            json!({"position_secs": 1}),
            Some(&token)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    clock.advance(Duration::seconds(61));
    let third = play(&app, &token, &pid, &movie, None).await;
    assert_eq!(
        third.status,
        StatusCode::CREATED,
        "a quiet session still counted: {:?}",
        third.body
    );
    // The first session's progress is where the profile resumes.
    assert_eq!(third.body["resume_position_secs"], 3.5);
    // The quiet session's URLs no longer play; the new session's do, until it stops.
    let lapsed = fetch(&app, &seg_url, None).await;
    assert_eq!(lapsed.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        lapsed.json::<Value>().await.unwrap()["error"],
        "session_ended"
    );
    let third_master = third.body["master_playlist_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        fetch(&app, &third_master, None).await.status(),
        StatusCode::OK
    );
    let sid3 = third.body["session_id"].as_str().unwrap().to_string();
    let stopped = app
        .post(
            &format!("/api/playback/{sid3}/stop"),
            json!({"position_secs": 2}),
            Some(&token),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT);
    assert_eq!(
        fetch(&app, &third_master, None).await.status(),
        StatusCode::FORBIDDEN
    );
    let third = play(&app, &token, &pid, &movie, None).await;
    assert_eq!(third.status, StatusCode::CREATED);

    // Stream URLs expire.
    clock.advance(Duration::hours(7));
    assert_eq!(
        fetch(&app, &master_url, None).await.status(),
        StatusCode::FORBIDDEN
    );

    // Another account cannot drive this account's sessions.
    let (other, _) = app.signup_login("other@example.com").await;
    let sid3 = third.body["session_id"].as_str().unwrap();
    assert_eq!(
        app.post(
            &format!("/api/playback/{sid3}/stop"),
            json!({"position_secs": 1}),
            Some(&other)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    // A subscription that ends while a session plays ends the session at its next heartbeat:
    // the position is kept and the stream stops.
    let canceled = app
        .post("/api/subscription/cancel", json!({}), Some(&token))
        .await;
    assert_eq!(canceled.status, StatusCode::OK, "{:?}", canceled.body);
    let seen = app
        .get(
            &format!(
                "/api/subscription?min_position={}",
                canceled.body["position"].as_i64().unwrap()
            ),
            Some(&token),
        )
        .await;
    assert_eq!(seen.body["cancel_at_period_end"], true, "{:?}", seen.body);
    let until =
        chrono::DateTime::parse_from_rfc3339(canceled.body["access_until"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    clock.set(until - Duration::minutes(10));
    let last = play(&app, &token, &pid, &movie, None).await;
    assert_eq!(last.status, StatusCode::CREATED, "{:?}", last.body);
    let sid = last.body["session_id"].as_str().unwrap();
    let heartbeat = format!("/api/playback/{sid}/heartbeat");
    let beat = |at: f64| app.post(&heartbeat, json!({"position_secs": at}), Some(&token));
    assert_eq!(beat(2.0).await.status, StatusCode::NO_CONTENT);
    clock.set(until + Duration::seconds(1));
    let ended = beat(4.0).await;
    assert_eq!(
        (ended.status, ended.error_code()),
        (StatusCode::PAYMENT_REQUIRED, "subscription_ended")
    );
    let refused = fetch(
        &app,
        last.body["master_playlist_url"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "session_ended"
    );
    let stopped = app.log().await;
    assert!(
        matches!(stopped.last(), Some(e) if e.event_type == "PlaybackStopped"),
        "{:?}",
        stopped.last().map(|e| &e.event_type)
    );
    app.stop();
}

#[tokio::test]
async fn continue_watching_resumes_and_offers_the_next_episode() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (token, _) = app.signup_login("binge@example.com").await;
    let pid = app.profile(&token, json!({"name": "Binge"})).await;
    app.subscribe(&token, "premium").await;
    let movie = ids(&app.get("/api/titles?kind=movie", None).await.body)[1].clone();
    // Text Postgres cannot store (NUL) is an unknown title or an empty result, not a failure.
    assert_eq!(
        app.get("/api/titles/%00", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/titles?query=%00&genre=%00", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/titles?profile_id=%00", Some(&token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        play(&app, &token, &pid, "\u{0}", None).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/profiles/{pid}/list/a%00b"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(listed.status, StatusCode::NOT_FOUND);
    let series = ids(&app.get("/api/titles?kind=series", None).await.body)[0].clone();

    let m = play(&app, &token, &pid, &movie, None).await;
    assert_eq!(m.body["max_quality"], 2160);
    assert_eq!(m.body["qualities"].as_array().unwrap().len(), 4);
    let duration = m.body["duration_secs"].as_f64().unwrap();
    let at = stop_at(&app, &token, &m.body["session_id"], 2.5).await;
    let e = play(&app, &token, &pid, &series, None).await;
    assert_eq!(e.body["episode_id"], "s1e1");
    assert_eq!(
        play(&app, &token, &pid, &series, Some("s9e9")).await.status,
        StatusCode::NOT_FOUND
    );
    let at2 = stop_at(&app, &token, &e.body["session_id"], duration).await;
    assert!(at2 > at);

    let cw = app
        .get(
            &format!("/api/profiles/{pid}/continue-watching?min_position={at2}"),
            Some(&token),
        )
        .await;
    assert_eq!(cw.status, StatusCode::OK, "{:?}", cw.body);
    let items = cw.body.as_array().unwrap();
    // Most recent first: the series, at its next episode; then the movie, at 2.5 s.
    assert_eq!(items[0]["title"]["id"], series.as_str());
    assert_eq!(
        (
            items[0]["episode_id"].as_str(),
            items[0]["position_secs"].as_f64()
        ),
        (Some("s1e2"), Some(0.0))
    );
    assert_eq!(
        (
            items[1]["title"]["id"].as_str(),
            items[1]["position_secs"].as_f64()
        ),
        (Some(movie.as_str()), Some(2.5))
    );
    assert_eq!(
        play(&app, &token, &pid, &movie, None).await.body["resume_position_secs"],
        2.5
    );
    let history = app
        .get(&format!("/api/profiles/{pid}/history"), Some(&token))
        .await;
    assert_eq!(history.body.as_array().unwrap().len(), 2);
    assert_eq!(history.body[0]["finished"], true);

    // Watched to the end (90%), a movie leaves continue watching.
    let again = play(&app, &token, &pid, &movie, None).await;
    let at3 = stop_at(&app, &token, &again.body["session_id"], duration * 0.95).await;
    let cw = app
        .get(
            &format!("/api/profiles/{pid}/continue-watching?min_position={at3}"),
            Some(&token),
        )
        .await;
    assert!(
        cw.body
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["title"]["id"] != movie.as_str())
    );
    app.stop();
}

#[tokio::test]
async fn cached_catalog_answers_never_outlive_the_event_that_changed_them() {
    let dir = TempDir::new();
    let prefix = format!("cinelog-test-{}", uuid::Uuid::now_v7().simple());
    let settings = cinelog_infra::Settings {
        redis_url: Some("redis://127.0.0.1:6379".into()),
        redis_prefix: prefix.clone(),
        ..settings_for(Backend::Postgres, &dir).await
    };
    let app = TestApp::spawn_with(settings, dir, Outside::default()).await;
    let state = &app.running.state;
    let search = || app.get("/api/titles?query=brackwater", None);
    let details = || app.get("/api/titles/the-lantern-keeper-of-brackwater", None);
    let before = search().await;
    assert_eq!(
        before.body["items"][0]["name"],
        "The Lantern Keeper of Brackwater"
    );
    let page = details().await;
    assert_eq!(page.body["name"], "The Lantern Keeper of Brackwater");
    let genres = app.get("/api/genres", None).await.body;
    // Served again (from the cache now), identical.
    assert_eq!(search().await.body, before.body);
    assert_eq!(details().await.body, page.body);
    assert_eq!(app.get("/api/genres", None).await.body, genres);
    let redis = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let cached: Vec<String> = redis::AsyncCommands::keys(&mut conn, format!("{prefix}:catalog:*"))
        .await
        .unwrap();
    for kind in ["browse", "details", "genres"] {
        assert!(
            cached.iter().any(|k| k.contains(&format!(":{kind}:"))),
            "{kind}: {cached:?}"
        );
    }

    // The title is renamed: once the read model has the event, no cached answer shows the old name.
    let mut info = cinelog_infra::media::bundled_catalog()
        .unwrap()
        .into_iter()
        .find(|t| t.id == "the-lantern-keeper-of-brackwater")
        .unwrap()
        .info;
    info.name = "The Lamplighter of Brackwater".into();
    let meta = cinelog_commands::CommandMeta::new(cinelog_domain::Actor::System);
    let (_, position) = state
        .catalog
        .import("the-lantern-keeper-of-brackwater", info, &meta)
        .await
        .unwrap();
    assert!(
        state
            .projections
            .wait_for(
                cinelog_projections::catalog::NAME,
                position,
                std::time::Duration::from_secs(10)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        search().await.body["items"][0]["name"],
        "The Lamplighter of Brackwater"
    );
    assert_eq!(
        details().await.body["name"],
        "The Lamplighter of Brackwater"
    );
    // Withdrawn, it is gone from every cached list at once.
    let position = state
        .catalog
        .set_published("the-lantern-keeper-of-brackwater", false, &meta)
        .await
        .unwrap();
    assert!(
        state
            .projections
            .wait_for(
                cinelog_projections::catalog::NAME,
                position,
                std::time::Duration::from_secs(10)
            )
            .await
            .unwrap()
    );
    assert_eq!(search().await.body["total"], 0);
    assert_eq!(details().await.status, StatusCode::NOT_FOUND);
    app.stop();
}

#[tokio::test]
async fn tmdb_import_backs_off_adds_then_updates_only_what_changed() {
    let tmdb = cinelog_tests::fakes::fake_tmdb().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = cinelog_infra::tmdb::TmdbClient::new(cinelog_infra::settings::TmdbSettings {
        api_base: tmdb.fake.base.clone(),
        token: cinelog_infra::Secret::new(cinelog_tests::fakes::TMDB_TOKEN),
    })
    .with_backoff(std::time::Duration::from_millis(20));
    let first = cinelog_api::app::import_tmdb(&app.running.state, &client, 1)
        .await
        .unwrap();
    assert_eq!((first.added, first.updated, first.unchanged), (3, 0, 0));
    // The first discover call was rate limited and retried.
    assert_eq!(tmdb.requests("/discover/movie"), 2);
    let events = app.log_len().await;
    let again = cinelog_api::app::import_tmdb(&app.running.state, &client, 1)
        .await
        .unwrap();
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 3));
    assert_eq!(
        app.log_len().await,
        events,
        "an unchanged re-import appended events"
    );
    tmdb.set_overview("A hacker learns the truth, now in 4K.");
    let changed = cinelog_api::app::import_tmdb(&app.running.state, &client, 1)
        .await
        .unwrap();
    assert_eq!(
        (changed.added, changed.updated, changed.unchanged),
        (0, 1, 2)
    );
    assert_eq!(app.log_len().await, events + 1);

    let head = app.log().await.last().unwrap().position;
    assert!(
        app.running
            .state
            .projections
            .wait_for(
                cinelog_projections::catalog::NAME,
                head,
                std::time::Duration::from_secs(10)
            )
            .await
            .unwrap()
    );
    let matrix = app.get("/api/titles/tmdb-movie-603", None).await;
    assert_eq!(
        matrix.body["synopsis"],
        "A hacker learns the truth, now in 4K."
    );
    assert_eq!(matrix.body["runtime_mins"], 136);
    assert_eq!(matrix.body["genres"], json!(["Action", "Science Fiction"]));
    assert_eq!(matrix.body["playable"], false);
    let got = app.get("/api/titles/tmdb-tv-1399", None).await;
    assert_eq!(got.body["kind"], "series");
    assert_eq!(
        got.body["seasons"].as_array().unwrap().len(),
        2,
        "specials are left out"
    );
    assert_eq!(
        app.get("/api/titles/tmdb-movie-862", None).await.body["maturity_rating"],
        "7+"
    );

    // A wrong token is a clear error, not a panic or a partial import.
    let wrong = cinelog_infra::tmdb::TmdbClient::new(cinelog_infra::settings::TmdbSettings {
        api_base: tmdb.fake.base.clone(),
        token: cinelog_infra::Secret::new("nope"),
    });
    let err = cinelog_api::app::import_tmdb(&app.running.state, &wrong, 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Invalid API key"), "{err}");
    app.stop();
}

#[tokio::test]
async fn media_ingest_makes_a_ladder_with_shared_segments_and_plays_it() {
    let dir = TempDir::new();
    let settings = settings_for(Backend::Sqlite, &dir).await;
    let app = TestApp::spawn_with(settings.clone(), dir, Outside::default()).await;
    let source = app.dir.0.join("source.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=1280x720:r=25:d=5",
            "-f",
            "lavfi",
            "-i",
            "sine=d=5",
            "-shortest",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
        ])
        .arg(&source)
        .status()
        .expect("ffmpeg is installed (./scripts/test installs it)");
    assert!(made.success());
    let (media, position) =
        cinelog_api::app::ingest_media(&app.running.state, &source, "marmalade-station")
            .await
            .unwrap();
    let names: Vec<&str> = media.renditions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["240p", "480p", "720p", "1080p"],
        "240p to 1080p, and nothing above a source below 1440p"
    );
    assert!((media.duration_secs - 5.0).abs() < 0.2);
    // Every rendition is cut at the same instants.
    let folder = media.ladder.strip_prefix("ingested/").unwrap();
    let dir = app.dir.0.join("media").join(folder);
    let cuts = |r: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(r).join("index.m3u8"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("#EXTINF"))
            .map(str::to_string)
            .collect()
    };
    assert!(cuts("240p").len() >= 3);
    assert_eq!(cuts("240p"), cuts("480p"));
    assert_eq!(cuts("480p"), cuts("720p"));
    assert_eq!(cuts("720p"), cuts("1080p"));
    // The title now plays the ingested ladder.
    assert!(
        app.running
            .state
            .projections
            .wait_for(
                cinelog_projections::catalog::NAME,
                position,
                std::time::Duration::from_secs(10)
            )
            .await
            .unwrap()
    );
    let (token, _) = app.signup_login("studio@example.com").await;
    let pid = app.profile(&token, json!({"name": "Studio"})).await;
    app.subscribe(&token, "premium").await;
    let played = play(&app, &token, &pid, "marmalade-station", None).await;
    assert_eq!(
        played.body["qualities"],
        json!(["240p", "480p", "720p", "1080p"])
    );
    let master = fetch(
        &app,
        played.body["master_playlist_url"].as_str().unwrap(),
        None,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(master.contains("RESOLUTION=1920x1080"), "{master}");
    // Unknown titles, missing files and files ffmpeg cannot read are clear errors, and leave the
    // title's ladder as it was, with no half-made folder beside it.
    let broken = app.dir.0.join("broken.mp4");
    std::fs::write(&broken, b"not a video").unwrap();
    for (file, title) in [
        (source.clone(), "no-such-title"),
        (app.dir.0.join("missing.mp4"), "marmalade-station"),
        (broken, "marmalade-station"),
    ] {
        assert!(
            cinelog_api::app::ingest_media(&app.running.state, &file, title)
                .await
                .is_err(),
            "{title}"
        );
    }
    assert_eq!(
        std::fs::read_dir(app.dir.0.join("media")).unwrap().count(),
        1
    );
    let ladder_now = |app: &TestApp| {
        let db = app.running.state.projections.db().clone();
        async move {
            cinelog_projections::catalog::details(&db, "marmalade-station", None)
                .await
                .unwrap()
                .unwrap()
                .media
                .unwrap()
                .ladder
        }
    };
    assert_eq!(ladder_now(&app).await, media.ladder);

    // A restart loads the bundled catalog again; its demo media never replaces the ladder.
    app.stop();
    drop(app.running);
    let again = TestApp::spawn_with(settings, app.dir, Outside::default()).await;
    assert_eq!(ladder_now(&again).await, media.ladder);
    again.stop();
}
