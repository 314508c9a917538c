//! The catalog: the bundled catalog, browse and search with any input, kids' limits everywhere
//! (browsing and playing), the cache, and the TMDB import.

use cinelog_api::Outside;
use cinelog_tests::{Backend, TempDir, TestApp, ids, settings_for};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

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
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Sqlite, &dir).await;
    settings.tmdb_images = format!("{}/t/p", tmdb.fake.base);
    let app = TestApp::spawn_with(settings, dir, Outside::default()).await;
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
    assert!(app.reaches(cinelog_projections::catalog::NAME, head).await);
    let matrix = app.get("/api/titles/tmdb-movie-603", None).await;
    assert_eq!(
        matrix.body["synopsis"],
        "A hacker learns the truth, now in 4K."
    );
    assert_eq!(matrix.body["runtime_mins"], 136);
    assert_eq!(matrix.body["genres"], json!(["Action", "Science Fiction"]));
    assert_eq!(matrix.body["playable"], false);
    // TMDB's pictures are this server's copies, fetched from TMDB once.
    assert_eq!(matrix.body["poster"], "/images/tmdb/w342/m.jpg");
    assert_eq!(matrix.body["backdrop"], "/images/tmdb/w1280/mb.jpg");
    let fetches = (0..3).map(|_| async {
        let got = app
            .client
            .http
            .get(app.url("/images/tmdb/w342/m.jpg"))
            .send()
            .await
            .expect("image answers");
        (got.status(), got.bytes().await.expect("image bytes"))
    });
    for (status, bytes) in futures::future::join_all(fetches).await {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&bytes[..], "\u{ff}\u{d8}image w342 m.jpg".as_bytes());
    }
    assert_eq!(tmdb.requests("/t/p/w342/m.jpg"), 1, "fetched once");
    let outside = app
        .client
        .http
        .get(app.url("/images/tmdb/w342/..%2F..%2Fjwt.key"))
        .send()
        .await
        .expect("answers");
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
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
    // TMDB's lists end at page 500: asking for more is refused before anything is fetched.
    let discovers = tmdb.requests("/discover/");
    let events = app.log_len().await;
    let refused = cinelog_api::app::import_tmdb(&app.running.state, &client, 501)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("at most 500 pages"),
        "{refused:#}"
    );
    assert_eq!(
        (tmdb.requests("/discover/"), app.log_len().await),
        (discovers, events)
    );
    app.stop();
}
