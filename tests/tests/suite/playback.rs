//! Playback: entitled, plan-capped, signed HLS with byte ranges, the stream limit, sessions that
//! end with the subscription, resume and continue watching, and media ingest.

use chrono::Duration;
use cinelog_api::Outside;
use cinelog_tests::{Answer, Backend, PlaybackStarted, TempDir, TestApp, ids, settings_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn play(app: &TestApp, token: &str, pid: &str, title: &str, episode: Option<&str>) -> Answer {
    let mut body = json!({"title_id": title});
    if let Some(e) = episode {
        body["episode_id"] = json!(e);
    }
    app.post(&format!("/api/profiles/{pid}/playback"), body, Some(token))
        .await
}

/// Starts playback, which must succeed; answers the start answer.
async fn started(
    app: &TestApp,
    token: &str,
    pid: &str,
    title: &str,
    episode: Option<&str>,
) -> PlaybackStarted {
    let a = play(app, token, pid, title, episode).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    a.decode()
}

async fn stop_at(app: &TestApp, token: &str, sid: &str, at: f64) -> i64 {
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

    let played = started(&app, &token, &pid, &movie, None).await;
    assert_eq!(played.max_quality, 720);
    assert_eq!(played.qualities, ["240p", "480p", "720p"]);
    assert_eq!(played.resume_position_secs, 0.0);
    let master_url = played.master_playlist_url.clone();
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
    let sid = &played.session_id;
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
    let third: PlaybackStarted = third.decode();
    // The first session's progress is where the profile resumes.
    assert_eq!(third.resume_position_secs, 3.5);
    // The quiet session's URLs no longer play; the new session's do, until it stops.
    let lapsed = fetch(&app, &seg_url, None).await;
    assert_eq!(lapsed.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        lapsed.json::<Value>().await.unwrap()["error"],
        "session_ended"
    );
    let third_master = &third.master_playlist_url;
    assert_eq!(
        fetch(&app, third_master, None).await.status(),
        StatusCode::OK
    );
    let sid3 = &third.session_id;
    let stopped = app
        .post(
            &format!("/api/playback/{sid3}/stop"),
            json!({"position_secs": 2}),
            Some(&token),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT);
    assert_eq!(
        fetch(&app, third_master, None).await.status(),
        StatusCode::FORBIDDEN
    );
    let third = started(&app, &token, &pid, &movie, None).await;

    // Stream URLs expire.
    clock.advance(Duration::hours(7));
    assert_eq!(
        fetch(&app, &master_url, None).await.status(),
        StatusCode::FORBIDDEN
    );

    // Another account cannot drive this account's sessions.
    let (other, _) = app.signup_login("other@example.com").await;
    let sid3 = &third.session_id;
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
        .subscription(&token, Some(canceled.body["position"].as_i64().unwrap()))
        .await;
    assert!(seen.cancel_at_period_end, "{seen:?}");
    let until =
        chrono::DateTime::parse_from_rfc3339(canceled.body["access_until"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    clock.set(until - Duration::minutes(10));
    let last = started(&app, &token, &pid, &movie, None).await;
    let sid = &last.session_id;
    let heartbeat = format!("/api/playback/{sid}/heartbeat");
    let beat = |at: f64| app.post(&heartbeat, json!({"position_secs": at}), Some(&token));
    assert_eq!(beat(2.0).await.status, StatusCode::NO_CONTENT);
    clock.set(until + Duration::seconds(1));
    let ended = beat(4.0).await;
    assert_eq!(
        (ended.status, ended.error_code()),
        (StatusCode::PAYMENT_REQUIRED, "subscription_ended")
    );
    let refused = fetch(&app, &last.master_playlist_url, None).await;
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

    let m = started(&app, &token, &pid, &movie, None).await;
    assert_eq!(m.max_quality, 2160);
    assert_eq!(m.qualities.len(), 4);
    let duration = m.duration_secs;
    let at = stop_at(&app, &token, &m.session_id, 2.5).await;
    let e = started(&app, &token, &pid, &series, None).await;
    assert_eq!(e.episode_id.as_deref(), Some("s1e1"));
    assert_eq!(
        play(&app, &token, &pid, &series, Some("s9e9")).await.status,
        StatusCode::NOT_FOUND
    );
    let at2 = stop_at(&app, &token, &e.session_id, duration).await;
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
        started(&app, &token, &pid, &movie, None)
            .await
            .resume_position_secs,
        2.5
    );
    let history = app
        .get(&format!("/api/profiles/{pid}/history"), Some(&token))
        .await;
    assert_eq!(history.body.as_array().unwrap().len(), 2);
    assert_eq!(history.body[0]["finished"], true);

    // Watched to the end (90%), a movie leaves continue watching.
    let again = started(&app, &token, &pid, &movie, None).await;
    let at3 = stop_at(&app, &token, &again.session_id, duration * 0.95).await;
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
        app.reaches(cinelog_projections::catalog::NAME, position)
            .await
    );
    let (token, _) = app.signup_login("studio@example.com").await;
    let pid = app.profile(&token, json!({"name": "Studio"})).await;
    app.subscribe(&token, "premium").await;
    let played = started(&app, &token, &pid, "marmalade-station", None).await;
    assert_eq!(played.qualities, ["240p", "480p", "720p", "1080p"]);
    let master = fetch(&app, &played.master_playlist_url, None)
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
