use cinelog_tests::browser::Browser;
use cinelog_tests::{Backend, TempDir, TestApp, settings_for};
use fantoccini::key::Key;

/// Signup → login → profiles (one kids) up to the limit → all in the picker → reload → still there.
#[tokio::test]
async fn chromium_signs_up_creates_profiles_and_keeps_them_after_reload() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let browser = Browser::start().await;

    browser.client.goto(&app.url("/")).await.expect("open page");
    browser.wait_for_text("Sign in").await;
    browser.click("#switch-mode").await;
    browser.wait_for_text("Create your account").await;
    browser.shot("signup.png").await;
    browser.type_into("#email", "ui@example.com").await;
    browser
        .type_into("#password", "Corr3ct-horse-battery")
        .await;
    browser.click("#submit-btn").await;
    browser.wait_for_text("Who's watching?").await;

    browser.type_into("#profile-name", "Grown-up").await;
    browser.click("#add-profile-btn:not([disabled])").await;
    browser.wait_for_text("Grown-up").await;
    browser.type_into("#profile-name", "Little one").await;
    browser.click("#profile-kids").await;
    browser.click("#add-profile-btn:not([disabled])").await;
    let page = browser.wait_for_text("Little one").await;
    assert!(page.contains("Kids"), "kids badge missing:\n{page}");
    assert!(page.contains("2 of 5 profiles"), "count missing:\n{page}");
    browser.shot("profiles.png").await;

    // Up to the limit, then a clear message instead of the form.
    for name in ["Third", "Fourth", "Fifth"] {
        browser.type_into("#profile-name", name).await;
        browser.click("#add-profile-btn:not([disabled])").await;
        browser.wait_for_text(name).await;
    }
    let page = browser
        .wait_for_text("You have 5 profiles, the most an account can have.")
        .await;
    assert!(
        !page.contains("Add a profile"),
        "the add form is still offered at the limit:\n{page}"
    );
    browser.shot("limit.png").await;

    browser.client.refresh().await.expect("reload");
    browser.wait_for_text("Who's watching?").await;
    let page = browser.wait_for_text("Little one").await;
    assert!(page.contains("Grown-up"), "after reload:\n{page}");

    // The profiles the browser created are the account's, in the API too.
    let (token, _) = app.login("ui@example.com", "Corr3ct-horse-battery").await;
    let listed = app.get("/api/profiles", Some(&token)).await;
    let names: Vec<&str> = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Grown-up", "Little one", "Third", "Fourth", "Fifth"]
    );

    // Signing out returns to the sign-in form, and a reload does not bring the session back.
    browser.click("#logout-btn").await;
    browser.wait_for_text("Sign in").await;
    browser.client.refresh().await.expect("reload");
    let page = browser.wait_for_text("Sign in").await;
    assert!(!page.contains("Who's watching?"));
    browser.close().await;
    app.stop();
}

/// Forgot password → link from the email → new password → sign in with it.
#[tokio::test]
async fn chromium_resets_a_forgotten_password() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.signup_login("forgetful@example.com").await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.expect("open page");
    browser.wait_for_text("Sign in").await;
    browser.type_into("#email", "forgetful@example.com").await;
    browser.click("#forgot-btn").await;
    browser.wait_for_text("a reset link is on its way").await;

    let token = app.mailer.wait_for_reset_token().await;
    browser
        .client
        .goto(&app.url(&format!("/?reset={token}")))
        .await
        .expect("open link");
    browser.wait_for_text("Choose a new password").await;
    browser.type_into("#new-password", "Brand-new-pass-1").await;
    browser.click("#reset-btn").await;
    browser.wait_for_text("Your password is changed").await;
    browser.click("#to-signin").await;
    browser.type_into("#email", "forgetful@example.com").await;
    browser.type_into("#password", "Brand-new-pass-1").await;
    browser.click("#submit-btn").await;
    browser.wait_for_text("Who's watching?").await;
    browser.close().await;
    app.stop();
}

/// Pick a profile, then verify a phone with the code the (console) SMS carried.
#[tokio::test]
async fn chromium_verifies_a_phone() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("phoney@example.com").await;
    app.post(
        "/api/profiles",
        serde_json::json!({"name": "Me"}),
        Some(&token),
    )
    .await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.url("/"), "phoney@example.com", "Corr3ct-horse-battery")
        .await;
    browser.click(".profile-card").await;
    browser.wait_for_text("Hi, Me").await;
    // The phone lives under Account, not on a profile's home.
    assert!(
        browser
            .js("return !document.getElementById('phone');")
            .await
            == true
    );
    browser.click("#account-link").await;
    browser.type_into("#phone", "+14155550177").await;
    browser.click("#send-code-btn").await;
    browser.wait_for_text("We sent a code").await;
    let code = app
        .phone
        .code_for(&cinelog_domain::values::Phone::parse("+14155550177").unwrap())
        .expect("code sent");
    browser.type_into("#phone-code", "000000").await;
    browser.click("#verify-phone-btn").await;
    if code != "000000" {
        browser.wait_for_text("That code is not right").await;
    }
    browser.type_into("#phone-code", &code).await;
    browser.click("#verify-phone-btn").await;
    browser.wait_for_text("Verified: +14155550177").await;
    // And the account says so after a reload, once the read model has the verification.
    let mut verified = false;
    for _ in 0..300 {
        verified = app.get("/api/me", Some(&token)).await.body["user"]["phone_verified"] == true;
        if verified {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(verified, "the read model never showed the phone verified");
    browser.client.refresh().await.expect("reload");
    browser.wait_for_text("Verified: +14155550177").await;
    browser.shot("phone-verified.png").await;
    browser.close().await;
    app.stop();
}

/// Access tokens expire (here after a second); the UI refreshes its session and carries on.
#[tokio::test]
async fn chromium_carries_on_after_the_access_token_expires() {
    let dir = cinelog_tests::TempDir::new();
    let mut settings = cinelog_tests::settings_for(Backend::Sqlite, &dir).await;
    settings.access_token_ttl_secs = 1;
    let app = TestApp::spawn_with(settings, dir, Default::default()).await;
    app.signup_login("sleepy@example.com").await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.url("/"), "sleepy@example.com", "Corr3ct-horse-battery")
        .await;
    browser.wait_for_text("Who's watching?").await;

    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    browser.type_into("#profile-name", "Later").await;
    browser.click("#add-profile-btn:not([disabled])").await;
    let page = browser.wait_for_text("1 of 5 profiles").await;
    assert!(
        page.contains("Later") && page.contains("Sign out"),
        "{page}"
    );
    browser.close().await;
    app.stop();
}

/// Account page → choose Standard → decline in the sandbox checkout (a message says nothing
/// was charged) → choose again and approve → "Active · Standard" with a toast → cancel, after
/// a confirmation naming the date → access until the period end → keep it after all.
#[tokio::test]
async fn chromium_subscribes_through_the_sandbox_and_cancels() {
    subscribes_and_cancels_on(Backend::Sqlite).await;
}

/// Sign-up in the UI, a declined then an approved sandbox checkout, a confirmed cancel.
pub(crate) async fn subscribes_and_cancels_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.expect("open page");
    browser.wait_for_text("Sign in").await;
    browser.click("#switch-mode").await;
    browser.type_into("#email", "payer@example.com").await;
    browser
        .type_into("#password", "Corr3ct-horse-battery")
        .await;
    browser.click("#submit-btn").await;
    browser.wait_for_text("Who's watching?").await;

    browser.click("#account-link").await;
    browser.wait_for_text("No subscription").await;
    let page = browser.wait_for_text("Premium").await;
    assert!(page.contains("15.49 USD / month"), "plans missing:\n{page}");
    browser.click("#choose-standard:not([disabled])").await;
    browser.find("#decline").await;
    browser.click("#decline").await;
    let said = browser
        .find("#toast")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(said.contains("nothing was charged"), "{said}");
    assert_eq!(
        browser
            .js("return location.pathname + location.search;")
            .await,
        "/account"
    );
    browser.wait_for_text("No subscription").await;
    browser.click("#choose-standard:not([disabled])").await;
    let page = browser.wait_for_text("Sandbox checkout").await;
    assert!(page.contains("Standard plan"), "{page}");
    browser.shot("sandbox-checkout.png").await;
    browser.click("#approve").await;

    let page = browser.wait_for_text("Active · Standard").await;
    let said = browser
        .find("#toast")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(said.starts_with("Payment received"), "{said}");
    assert!(page.contains("Next billing date:"), "{page}");
    assert!(
        page.contains("15.49 USD"),
        "payment history missing:\n{page}"
    );
    browser.shot("account-active.png").await;
    let (token, _) = app
        .login("payer@example.com", "Corr3ct-horse-battery")
        .await;
    let sub = app.get("/api/subscription", Some(&token)).await;
    let period_end: String = sub.body["period_end"]
        .as_str()
        .expect("period end")
        .chars()
        .take(10)
        .collect();

    browser.click("#cancel-btn:not([disabled])").await;
    let asked = browser
        .find("#confirm-change")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        asked.contains(&format!(
            "Cancel your Standard plan? You can watch until {period_end}"
        )),
        "{asked}"
    );
    browser.click("#confirm-yes").await;
    let page = browser
        .wait_for_text(&format!("Canceled: you can watch until {period_end}."))
        .await;
    let said = browser
        .find("#toast")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(said.starts_with("Canceled."), "{said}");
    assert!(page.contains("Active · Standard"), "{page}");
    assert!(!page.contains("Cancel subscription"), "{page}");
    browser.shot("account-canceled.png").await;
    // Still so after a reload.
    browser.client.refresh().await.expect("reload");
    browser.click("#account-link").await;
    browser
        .wait_for_text(&format!("you can watch until {period_end}"))
        .await;
    // Changed their mind: the subscription runs on, and bills on the period end again.
    browser.click("#resume-btn:not([disabled])").await;
    let page = browser
        .wait_for_text(&format!("Next billing date: {period_end}"))
        .await;
    assert!(page.contains("Cancel subscription"), "{page}");
    assert!(!page.contains("you can watch until"), "{page}");
    browser.close().await;
    app.stop();
}

/// Browse → search → title → play a few seconds → switch quality within the plan → leave →
/// continue watching → resume; a full plan's streams refuse another with a clear message; a kids
/// profile cannot find an adult title.
#[tokio::test]
async fn chromium_plays_a_title_switches_quality_and_resumes() {
    plays_switches_and_resumes_on(Backend::Sqlite).await;
}

/// Playing in the UI: a profile, a title, the quality menu, leaving and resuming.
pub(crate) async fn plays_switches_and_resumes_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = app.signup_login("watcher@example.com").await;
    let viewer = app
        .profile(&token, serde_json::json!({"name": "Viewer"}))
        .await;
    app.profile(
        &token,
        serde_json::json!({"name": "Kid", "kids": true, "maturity_rating": "7+"}),
    )
    .await;
    app.subscribe(&token, "standard").await;
    let browser = Browser::start().await;
    browser
        .sign_in(
            &app.url("/"),
            "watcher@example.com",
            "Corr3ct-horse-battery",
        )
        .await;
    browser.wait_for_text("Who's watching?").await;
    browser.click("[data-profile='Viewer']").await;
    browser.wait_for_text("Hi, Viewer").await;
    browser.wait_for_text("Science Fiction").await;
    browser.shot("home.png").await;

    browser.type_into("#search", "lantern keeper").await;
    browser.click("#search-btn").await;
    browser.wait_for_text("Results for").await;
    browser
        .click("#search-results [data-title='the-lantern-keeper-of-brackwater']")
        .await;
    browser
        .wait_for_text("Someone has to keep the light.")
        .await;
    browser.click("#play-btn").await;
    browser
        .wait_until(
            "the video plays past 2 s",
            "const v = document.getElementById('player'); return !!v && v.currentTime > 2;",
        )
        .await;
    let options = browser
        .js("return [...document.querySelectorAll('#quality option')].map(o => o.value);")
        .await;
    assert_eq!(
        options,
        serde_json::json!(["auto", "240p", "480p", "720p", "1080p"])
    );
    browser
        .find("#quality")
        .await
        .select_by_value("480p")
        .await
        .expect("choose 480p");
    browser
        .wait_until(
            "the player shows 480p pictures",
            "const h = window.cinelogHls; const v = document.getElementById('player');
             return !!h && h.currentLevel >= 0 && h.levels[h.currentLevel].height === 480 && v.videoHeight === 480;",
        )
        .await;
    browser.shot("player.png").await;
    browser.click("#leave-player").await;
    browser
        .wait_for_text("Someone has to keep the light.")
        .await;
    browser.click("#back-home").await;
    let page = browser.wait_for_text("Continue watching").await;
    assert!(page.contains("Resume at 0:0"), "{page}");

    // The API agrees: a position above zero.
    let cw = app
        .get(
            &format!("/api/profiles/{viewer}/continue-watching"),
            Some(&token),
        )
        .await;
    let resume = cw.body[0]["position_secs"].as_f64().expect("position");
    assert_eq!(
        cw.body[0]["title"]["id"],
        "the-lantern-keeper-of-brackwater"
    );
    assert!(resume > 0.0, "{resume}");

    // Coming back, the continue-watching card plays on from there.
    browser
        .click("#continue-watching [data-title='the-lantern-keeper-of-brackwater']")
        .await;
    browser
        .wait_until(
            "playback resumes",
            &format!("const v = document.getElementById('player'); return !!v && v.currentTime >= {} && !v.paused;", resume - 0.5),
        )
        .await;
    browser.click("#leave-player").await;
    browser
        .wait_for_text("Someone has to keep the light.")
        .await;

    // Standard plays on two screens: with two busy elsewhere, this one is refused clearly.
    for _ in 0..2 {
        let busy = app
            .post(
                &format!("/api/profiles/{viewer}/playback"),
                serde_json::json!({"title_id": "marmalade-station"}),
                Some(&token),
            )
            .await;
        assert_eq!(busy.status, reqwest::StatusCode::CREATED, "{:?}", busy.body);
    }
    browser.click("#play-btn").await;
    browser
        .wait_for_text("You're already watching on as many screens as your plan allows.")
        .await;
    browser.shot("stream-limit.png").await;

    // The kids profile finds no adult title.
    browser.click("#leave-player").await;
    browser.click("#profiles-link").await;
    browser.click("[data-profile='Kid']").await;
    browser.wait_for_text("Hi, Kid").await;
    let adult = app.get("/api/titles?genre=Horror", None).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["maturity_rating"] == "18+")
        .cloned()
        .expect("an adult title");
    browser
        .type_into("#search", adult["name"].as_str().unwrap())
        .await;
    browser.click("#search-btn").await;
    let page = browser.wait_for_text("Results for").await;
    assert!(
        !page.contains(
            adult["name"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .last()
                .unwrap()
        ) || page.contains("Nothing matches"),
        "{page}"
    );
    assert_eq!(
        browser
            .js(&format!(
                "return !!document.querySelector(\"[data-title='{}']\");",
                adult["id"].as_str().unwrap()
            ))
            .await,
        serde_json::Value::Bool(false)
    );
    browser.close().await;
    app.stop();
}

/// A fresh profile sees popular titles; liking two titles on their pages brings a
/// "Because you liked …" row; My List keeps what was added.
#[tokio::test]
async fn chromium_likes_titles_and_sees_why_recommendations_change() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("fan@example.com").await;
    app.profile(&token, serde_json::json!({"name": "Fan"}))
        .await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.url("/"), "fan@example.com", "Corr3ct-horse-battery")
        .await;
    browser.click("[data-profile='Fan']").await;
    let page = browser.wait_for_text("Popular on Cinelog").await;
    assert!(!page.contains("Because you liked"), "{page}");

    for (query, id, button) in [
        ("tin foxes", "tin-foxes", "#rate-like"),
        ("ironbark", "ironbark-pass", "#rate-love"),
    ] {
        browser.type_into("#search", query).await;
        browser.click("#search-btn").await;
        browser
            .click(&format!("#search-results [data-title='{id}'] .card-open"))
            .await;
        browser.wait_for_text("Not for me").await;
        browser.click(button).await;
        browser
            .wait_until(
                "the rating shows as pressed",
                &format!("return document.querySelector('{button}')?.getAttribute('aria-pressed') === 'true';"),
            )
            .await;
        if id == "tin-foxes" {
            browser.click("#list-toggle").await;
            browser.wait_for_text("✓ On My List").await;
        }
        browser.click("#back-home").await;
    }
    let page = browser.wait_for_text("Because you liked Tin Foxes").await;
    assert!(
        page.contains("Because you loved Ironbark Pass")
            && page.contains("Because you liked Tin Foxes"),
        "{page}"
    );
    assert!(page.contains("Top picks for Fan"), "{page}");
    assert!(page.contains("My List"), "{page}");
    browser.shot("recommendations.png").await;
    browser.click("#my-list-link").await;
    browser.find("#my-list [data-title]").await;
    assert_eq!(
        browser
            .js("return [...document.querySelectorAll('#my-list [data-title]')].map(e => e.dataset.title);")
            .await,
        serde_json::json!(["tin-foxes"])
    );
    browser.close().await;
    app.stop();
}

/// Account page → "Delete my account" → a wrong password is refused → the right one erases the
/// account and signs out → the same address signs up again.
#[tokio::test]
async fn chromium_deletes_an_account_and_frees_its_address() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.signup_login("leaving@example.com").await;
    let browser = Browser::start().await;
    browser
        .sign_in(
            &app.url("/"),
            "leaving@example.com",
            "Corr3ct-horse-battery",
        )
        .await;
    browser.wait_for_text("Who's watching?").await;
    browser.click("#account-link").await;
    browser.wait_for_text("Delete my account").await;
    browser.click("#delete-account").await;
    browser
        .wait_for_text("Enter your password to confirm")
        .await;
    browser
        .type_into("#delete-password", "not-the-password")
        .await;
    browser.click("#delete-confirm:not([disabled])").await;
    browser.wait_for_text("That password is not right.").await;
    browser.shot("delete-refused.png").await;
    browser
        .type_into("#delete-password", "Corr3ct-horse-battery")
        .await;
    browser.click("#delete-confirm:not([disabled])").await;
    // The sign-in form's own marker: the account page also says "Sign out".
    browser.wait_until("the sign-in form", "return !!document.querySelector('#submit-btn') && !document.querySelector('#account-link');").await;
    let page = browser.wait_for_text("Sign in").await;
    assert!(!page.contains("Delete my account"), "{page}");
    browser.close().await;
    // Erased: the address is free again.
    app.signup_login("leaving@example.com").await;
    app.stop();
}

/// An analyst opens the dashboard and sees its charts; a signup and a play in another session
/// move the numbers without a reload.
#[tokio::test]
async fn chromium_shows_an_analyst_the_dashboard_moving_live() {
    use cinelog_domain::values::Role;
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.running
        .state
        .identity
        .signup(
            "analyst@example.com",
            "Corr3ct-horse-battery",
            None,
            Role::Analyst,
            &cinelog_commands::CommandMeta::new(cinelog_domain::Actor::System),
        )
        .await
        .unwrap();
    let browser = Browser::start().await;
    browser
        .sign_in(
            &app.url("/"),
            "analyst@example.com",
            "Corr3ct-horse-battery",
        )
        .await;
    browser.wait_for_text("Who's watching?").await;
    browser.click("#dashboard-link").await;
    browser
        .wait_until(
            "the dashboard's charts",
            "return document.querySelectorAll('#chart-activity polyline, #chart-watch rect').length > 0;",
        )
        .await;
    browser
        .wait_until(
            "one signup today",
            "return document.querySelector('#signups-today')?.textContent === '1';",
        )
        .await;
    browser.shot("dashboard-before.png").await;

    // Elsewhere, a viewer signs up, subscribes and plays.
    let (viewer, _) = app.signup_login("mover@example.com").await;
    app.subscribe(&viewer, "premium").await;
    let profile = app
        .profile(&viewer, serde_json::json!({"name": "Mover"}))
        .await;
    let titles = app.get("/api/titles", None).await;
    let title = titles.body["items"][0]["id"].as_str().unwrap().to_string();
    let started = app
        .post(
            &format!("/api/profiles/{profile}/playback"),
            serde_json::json!({"title_id": title}),
            Some(&viewer),
        )
        .await;
    assert_eq!(started.status, 201, "{:?}", started.body);

    browser
        .wait_until(
            "two signups today",
            "return document.querySelector('#signups-today')?.textContent === '2';",
        )
        .await;
    browser
        .wait_until(
            "a play today",
            "return document.querySelector('#plays-today')?.textContent === '1';",
        )
        .await;
    browser.wait_until("a premium subscriber", "return document.querySelector('#active-subs')?.textContent === '1' && document.querySelector('#mrr')?.textContent.startsWith('22.99');").await;
    let page = browser.wait_for_text("Top titles today").await;
    assert!(page.contains("1 plays"), "{page}");
    browser.shot("dashboard-after.png").await;
    browser.close().await;
    app.stop();
}

/// An auditor drives the console: searches by actor and type, opens a stream's timeline and a
/// request's trace, reads a state as of a moment with the date and time picker, and verifies.
#[tokio::test]
async fn chromium_drives_the_audit_console() {
    use cinelog_domain::values::Role;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (viewer, _) = app.signup_login("watched@example.com").await;
    let user = app.get("/api/me", Some(&viewer)).await.body["user"]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let account = app.account_id(&viewer).await;
    let made = app
        .post(
            "/api/profiles",
            serde_json::json!({"name": "Before"}),
            Some(&viewer),
        )
        .await;
    let pid = made.body["profile_id"].as_str().unwrap().to_string();
    // The moment to look back at: after the profile was made, before its rename.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let between = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let renamed = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/profiles/{pid}"),
            Some(serde_json::json!({"name": "After"})),
            Some(&viewer),
        )
        .await;
    assert_eq!(renamed.status, 200);
    app.signed_in_as("auditor@example.com", Role::Auditor).await;

    let browser = Browser::start().await;
    browser
        .sign_in(
            &app.url("/"),
            "auditor@example.com",
            "Corr3ct-horse-battery",
        )
        .await;
    browser.wait_for_text("Who's watching?").await;
    browser.click("#audit-link").await;
    browser.find("#audit-search-form").await;

    // Search: the viewer's profile creations.
    browser
        .type_into("#audit-actor", &format!("user:{user}"))
        .await;
    browser.type_into("#audit-type", "ProfileCreated").await;
    browser.click("#audit-search-btn").await;
    browser
        .wait_until(
            "one ProfileCreated in the results",
            "const rows = document.querySelectorAll('#audit-results .audit-event');
             return rows.length === 1 && rows[0].querySelector('.event-type').textContent === 'ProfileCreated';",
        )
        .await;
    browser.shot("audit-search.png").await;

    // Its stream's timeline, with the chain checked.
    browser.click("#audit-results .stream-link").await;
    browser
        .wait_until(
            "the account's timeline",
            "return document.querySelectorAll('#audit-timeline .timeline-event').length >= 3
                 && document.querySelector('#timeline-chain')?.textContent === 'Hash chain intact';",
        )
        .await;

    // The trace of the request that made the profile.
    browser.click("#audit-search-btn").await;
    browser.find("#audit-results .trace-link").await;
    browser.click("#audit-results .trace-link").await;
    browser
        .wait_until(
            "the trace tree",
            "return [...document.querySelectorAll('#audit-trace .trace-node .event-type')].some(e => e.textContent === 'ProfileCreated');",
        )
        .await;
    browser.shot("audit-trace.png").await;

    // The account as it was between the creation and the rename.
    browser.type_into("#state-id", &account.to_string()).await;
    browser
        .js(&format!(
            "const i = document.querySelector('#state-at');
             const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
             set.call(i, '{between}');
             i.dispatchEvent(new Event('input', {{ bubbles: true }}));
             return true;"
        ))
        .await;
    browser.click("#state-btn").await;
    browser
        .wait_until(
            "the old name in the state",
            "const s = document.querySelector('#state-json')?.textContent || '';
             return s.includes('\"Before\"') && !s.includes('\"After\"');",
        )
        .await;
    browser.shot("audit-state.png").await;

    // Verify: intact.
    browser.click("#verify-btn").await;
    browser
        .wait_until(
            "an intact verdict",
            "return document.querySelector('#verify-verdict')?.textContent === 'Intact';",
        )
        .await;
    browser.shot("audit-verify.png").await;
    browser.close().await;
    app.stop();
}

/// Every screen has a URL. A link opened signed out survives signing in (submitted with Enter);
/// a reload keeps the screen and the profile; a search typed (no button) runs and shows in the
/// URL; Back and Forward walk the screens; a server restart under the open page shows
/// "Reconnecting…", and the page comes back on the same screen and works.
#[tokio::test]
async fn chromium_screens_have_urls_that_reload_go_back_and_survive_a_restart() {
    let dir = TempDir::new();
    let mut settings = settings_for(Backend::Sqlite, &dir).await;
    let app = TestApp::spawn_with(settings.clone(), dir, Default::default()).await;
    let (token, _) = app.signup_login("ivy@example.com").await;
    app.profile(&token, serde_json::json!({"name": "Ivy"}))
        .await;
    let browser = Browser::start().await;
    let on = |url: &str, marker: &str| {
        format!(
            "return location.pathname + location.search === {url:?} && !!document.querySelector({marker:?});"
        )
    };
    let title_is = |name: &str| format!("[id='title-name'][data-name={name:?}]");

    browser
        .client
        .goto(&app.url("/title/ironbark-pass"))
        .await
        .expect("open a title's link");
    browser.find("#password").await;
    browser.type_into("#email", "ivy@example.com").await;
    browser
        .type_into(
            "#password",
            &format!("Corr3ct-horse-battery{}", char::from(Key::Enter)),
        )
        .await;
    browser.find("[data-profile='Ivy']").await;
    browser
        .wait_until(
            "the picker has its URL",
            &on("/profiles", "[data-profile='Ivy']"),
        )
        .await;
    browser.click("[data-profile='Ivy']").await;
    browser
        .wait_until(
            "the link opened before signing in opens after picking the profile",
            &on("/title/ironbark-pass", &title_is("Ironbark Pass")),
        )
        .await;

    browser.js("window.beforeReload = true; return true;").await;
    browser.client.refresh().await.expect("reload");
    browser
        .wait_until(
            "the same title, for the same profile, after a reload",
            &format!(
                "return !window.beforeReload && {}",
                on("/title/ironbark-pass", &title_is("Ironbark Pass"))
                    .trim_start_matches("return ")
            ),
        )
        .await;

    browser.click("#back-home").await;
    browser
        .wait_until("home has its URL", &on("/browse", "#search"))
        .await;
    browser
        .find("#search")
        .await
        .send_keys("tin")
        .await
        .expect("type a search");
    let results = "#search-results [data-title='tin-foxes']";
    browser
        .wait_until(
            "the search runs as it is typed and shows in the URL",
            &on("/search?q=tin", results),
        )
        .await;
    browser.shot("search.png").await;
    browser.click(&format!("{results} .card-open")).await;
    browser
        .wait_until(
            "the second title",
            &on("/title/tin-foxes", &title_is("Tin Foxes")),
        )
        .await;
    browser.client.back().await.expect("back");
    browser
        .wait_until(
            "Back returns to the search, its field filled",
            &format!(
                "return document.getElementById('search')?.value === 'tin' && {}",
                on("/search?q=tin", results).trim_start_matches("return ")
            ),
        )
        .await;
    browser.client.back().await.expect("back");
    browser
        .wait_until(
            "Back again returns to the first title",
            &on("/title/ironbark-pass", &title_is("Ironbark Pass")),
        )
        .await;
    browser.client.forward().await.expect("forward");
    browser
        .wait_until(
            "Forward returns to the search",
            &on("/search?q=tin", results),
        )
        .await;

    // The server stops under the open page, and a new one starts on the same address.
    app.stop();
    browser.find("#reconnecting").await;
    browser.shot("reconnecting.png").await;
    while !app.running.server.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    settings.addr = app.running.addr;
    let again = TestApp::spawn_with(settings, app.dir, Default::default()).await;
    browser
        .wait_until(
            "the page reconnects on the same screen",
            &format!(
                "return !document.getElementById('reconnecting') && {}",
                on("/search?q=tin", results).trim_start_matches("return ")
            ),
        )
        .await;
    browser.click(&format!("{results} .card-open")).await;
    browser
        .wait_until(
            "the reconnected page answers clicks",
            &on("/title/tin-foxes", &title_is("Tin Foxes")),
        )
        .await;

    // Emptying the search field takes its results away, and the URL goes back to home's.
    browser.click("#back-home").await;
    browser
        .wait_until("home again", &on("/browse", "#search"))
        .await;
    let field = browser.find("#search").await;
    field.send_keys("tin").await.expect("type");
    browser
        .wait_until("results for the new search", &on("/search?q=tin", results))
        .await;
    let erase = char::from(Key::Backspace).to_string().repeat(3);
    field.send_keys(&erase).await.expect("erase");
    browser
        .wait_until(
            "no results once the field is empty",
            "return location.pathname + location.search === '/browse' && !document.getElementById('search-results');",
        )
        .await;
    browser.close().await;
    again.stop();
}

/// However the player is left — the top bar's Profiles link, signing out — its session stops
/// at once: a Basic viewer (one screen) can start playing again straight away.
#[tokio::test]
async fn chromium_leaving_the_player_any_way_stops_its_session() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("solo@example.com").await;
    let pid = app
        .profile(&token, serde_json::json!({"name": "Solo"}))
        .await;
    app.subscribe(&token, "basic").await;
    let browser = Browser::start().await;
    let title = "the-lantern-keeper-of-brackwater";
    let plays = "const v = document.getElementById('player'); return !!v && v.currentTime > 1;";
    // Another screen starting the title answers 2xx once the browser's session has stopped.
    let screen_is_free = || async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let other = app
                .post(
                    &format!("/api/profiles/{pid}/playback"),
                    serde_json::json!({"title_id": title}),
                    Some(&token),
                )
                .await;
            if other.status.is_success() {
                let sid = other.body["session_id"]
                    .as_str()
                    .expect("session id")
                    .to_string();
                let stopped = app
                    .post(
                        &format!("/api/playback/{sid}/stop"),
                        serde_json::json!({"position_secs": 0}),
                        Some(&token),
                    )
                    .await;
                assert!(stopped.status.is_success(), "{:?}", stopped.body);
                return;
            }
            assert_eq!(
                other.error_code(),
                "stream_limit_reached",
                "{:?}",
                other.body
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "the browser's playback session was never stopped"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };

    browser
        .sign_in(&app.url("/"), "solo@example.com", "Corr3ct-horse-battery")
        .await;
    browser.pick_profile("Solo").await;
    browser
        .client
        .goto(&app.url(&format!("/watch/{title}")))
        .await
        .expect("open the player's URL");
    browser.wait_until("the video plays", plays).await;
    browser.click("#profiles-link").await;
    browser.find("[data-profile='Solo']").await;
    screen_is_free().await;

    browser.pick_profile("Solo").await;
    browser
        .client
        .goto(&app.url(&format!("/watch/{title}")))
        .await
        .expect("open the player's URL");
    browser.wait_until("the video plays again", plays).await;
    browser.click("#logout-btn").await;
    browser.find("#password").await;
    screen_is_free().await;

    // Closing the page (here: going elsewhere) ends its socket, and with it the session.
    browser
        .sign_in(&app.url("/"), "solo@example.com", "Corr3ct-horse-battery")
        .await;
    browser.pick_profile("Solo").await;
    browser
        .client
        .goto(&app.url(&format!("/watch/{title}")))
        .await
        .expect("open the player's URL");
    browser
        .wait_until("the video plays a third time", plays)
        .await;
    browser
        .client
        .goto("about:blank")
        .await
        .expect("leave the page");
    screen_is_free().await;
    // Every page this browser left has ended its session on the server.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while app.running.state.metrics.live_ui_sessions() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} UI sessions outlived their pages",
            app.running.state.metrics.live_ui_sessions()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.close().await;
    app.stop();
}

/// The player screen names the title and the episode; at an episode's end a countdown leads to
/// the next one, which then plays at the volume chosen before; leaving, the title page offers
/// to resume that episode, with a bar of how much is watched.
#[tokio::test]
async fn chromium_player_names_the_episode_plays_the_next_and_offers_resume() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("binge@example.com").await;
    app.profile(&token, serde_json::json!({"name": "Binge"}))
        .await;
    app.subscribe(&token, "standard").await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.url("/"), "binge@example.com", "Corr3ct-horse-battery")
        .await;
    browser.pick_profile("Binge").await;
    let series = "harbor-lights-detective-agency";
    browser
        .client
        .goto(&app.url(&format!("/watch/{series}?episode=s1e1")))
        .await
        .expect("open an episode's URL");
    browser
        .wait_until(
            "the player names the title and the episode",
            "return document.getElementById('player-title')?.textContent === 'Harbor Lights Detective Agency'
                 && document.getElementById('player-episode')?.textContent === 'S1:E1 · The Case of the Missing Gull';",
        )
        .await;
    browser
        .wait_until(
            "the episode plays",
            "const v = document.getElementById('player'); return !!v && v.currentTime > 1;",
        )
        .await;
    browser
        .js("document.getElementById('player').volume = 0.35; return true;")
        .await;
    browser.find("#up-next").await;
    browser.shot("up-next.png").await;
    assert!(
        browser
            .find("#up-next")
            .await
            .text()
            .await
            .unwrap_or_default()
            .contains("Next: S1:E2 · Sand Castle Saboteur")
    );
    browser
        .wait_until(
            "the next episode plays after the countdown",
            &format!(
                "const v = document.getElementById('player');
                 return location.pathname + location.search === '/watch/{series}?episode=s1e2'
                   && document.getElementById('player-episode')?.textContent === 'S1:E2 · Sand Castle Saboteur'
                   && !!v && v.currentTime > 0.5;"
            ),
        )
        .await;
    browser
        .wait_until(
            "the volume chosen is kept",
            "const v = document.getElementById('player'); return !!v && Math.abs(v.volume - 0.35) < 0.01;",
        )
        .await;
    browser
        .wait_until(
            "the video has played a second of the new episode",
            "const v = document.getElementById('player'); return !!v && v.currentTime > 1.5;",
        )
        .await;
    browser.click("#leave-player").await;
    let resume = browser.find("#resume-btn").await;
    let label = resume.text().await.unwrap_or_default();
    assert!(label.starts_with("▶ Resume S1:E2 at 0:0"), "{label}");
    browser.find(".resume [role='progressbar']").await;
    browser.shot("title-resume.png").await;
    browser.close().await;
    app.stop();
}

/// Profiles are edited (name, avatar), locked with a PIN, deleted after a confirmation; a
/// locked profile opens only with its PIN; from a kids profile, Account and an unlocked adult
/// profile ask for the account password.
#[tokio::test]
async fn chromium_manages_profiles_with_avatars_pins_and_a_kids_lock() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("family@example.com").await;
    for body in [
        serde_json::json!({"name": "Mum"}),
        serde_json::json!({"name": "Dad"}),
        serde_json::json!({"name": "Kid", "kids": true}),
        serde_json::json!({"name": "Spare"}),
    ] {
        app.profile(&token, body).await;
    }
    let browser = Browser::start().await;
    browser
        .sign_in(&app.url("/"), "family@example.com", "Corr3ct-horse-battery")
        .await;
    browser.find("[data-profile='Spare']").await;

    // Manage: rename Mum and give her the teal avatar.
    browser.click("#manage-profiles").await;
    browser.click("[data-profile='Mum']").await;
    browser.type_into("#edit-name", "Mama").await;
    browser.click("[aria-label='teal avatar']").await;
    browser.click("#save-profile").await;
    browser.find("[data-profile='Mama'] .avatar-teal").await;
    // Lock her with a PIN.
    browser.click("[data-profile='Mama']").await;
    browser.type_into("#new-pin", "2468").await;
    browser.click("#set-pin").await;
    browser.find("[data-profile='Mama'] .lock").await;
    // Delete Spare, after saying yes.
    browser.click("[data-profile='Spare']").await;
    browser.click("#delete-profile").await;
    browser.find("#confirm-delete").await;
    browser.shot("profile-delete-confirm.png").await;
    browser.click("#confirm-delete").await;
    browser
        .wait_until(
            "Spare is gone",
            "return !document.querySelector(\"[data-profile='Spare']\");",
        )
        .await;
    browser.click("#done-managing").await;

    // A kids profile, then back to the picker: Mama asks for her PIN.
    browser.pick_profile("Kid").await;
    browser.click("#profiles-link").await;
    browser.click("[data-profile='Mama']").await;
    browser.find("#gate-secret").await;
    browser.type_into("#gate-secret", "1357").await;
    browser.click("#gate-ok").await;
    browser.wait_for_text("That PIN is not right.").await;
    browser.shot("pin-gate.png").await;
    browser.click("#gate-cancel").await;
    // Escape closes the dialog too.
    browser.click("[data-profile='Mama']").await;
    browser
        .find("#gate-secret")
        .await
        .send_keys(&char::from(Key::Escape).to_string())
        .await
        .expect("escape");
    browser
        .wait_until(
            "the dialog closes on Escape",
            "return !document.getElementById('gate');",
        )
        .await;
    // Dad has no PIN, but leaving a kids profile for him takes the account password.
    browser.click("[data-profile='Dad']").await;
    browser.find("#gate-secret").await;
    browser
        .type_into(
            "#gate-secret",
            &format!("Corr3ct-horse-battery{}", char::from(Key::Enter)),
        )
        .await;
    browser
        .wait_until(
            "Dad's home after the password",
            "return location.pathname === '/browse' && !!document.getElementById('search') && document.body.innerText.includes('Hi, Dad');",
        )
        .await;
    // From an adult profile, Mama still needs her PIN — and opens with it.
    browser.click("#profiles-link").await;
    browser.click("[data-profile='Mama']").await;
    browser
        .type_into("#gate-secret", &format!("2468{}", char::from(Key::Enter)))
        .await;
    browser
        .wait_until(
            "Mama's home after her PIN",
            "return location.pathname === '/browse' && document.body.innerText.includes('Hi, Mama');",
        )
        .await;

    // Kids cannot open Account without the password.
    browser.click("#profiles-link").await;
    browser.click("[data-profile='Kid']").await;
    browser
        .wait_until(
            "Kid's home",
            "return location.pathname === '/browse' && document.body.innerText.includes('Hi, Kid');",
        )
        .await;
    browser.click("#account-link").await;
    browser.find("#gate-secret").await;
    browser.type_into("#gate-secret", "wrong-password").await;
    browser.click("#gate-ok").await;
    browser.wait_for_text("That password is not right.").await;
    assert_eq!(browser.js("return location.pathname;").await, "/browse");
    browser
        .type_into(
            "#gate-secret",
            &format!("Corr3ct-horse-battery{}", char::from(Key::Enter)),
        )
        .await;
    browser
        .wait_until(
            "the account page",
            "return location.pathname === '/account' && !!document.getElementById('subscription-status');",
        )
        .await;
    // Typing Account's URL on a kids profile asks too.
    browser.click("#profiles-link").await;
    browser.pick_profile("Kid").await;
    browser
        .client
        .goto(&app.url("/account"))
        .await
        .expect("open Account's URL");
    browser.find("#gate-secret").await;
    assert_eq!(
        browser
            .js("return !!document.getElementById('subscription-status');")
            .await,
        false
    );
    browser.close().await;
    app.stop();
}

/// Every main screen, at 1366 and at 390 px wide, has no serious or critical axe-core
/// violation, and home is walkable by keyboard (Tab reaches the search, the featured title's
/// Play and the cards). Screenshots of each screen at both widths land in the test output.
#[tokio::test]
async fn chromium_main_screens_are_accessible_at_1366_and_390() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("ada@example.com").await;
    app.profile(&token, serde_json::json!({"name": "Ada"}))
        .await;
    app.subscribe(&token, "standard").await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.url("/"), "ada@example.com", "Corr3ct-horse-battery")
        .await;
    browser.click("[data-profile='Ada']").await;
    browser.find("#hero").await;

    let screens = [
        ("/profiles", "[data-profile='Ada']", "profiles"),
        ("/browse", "#hero", "home"),
        ("/search?q=tin", "#search-results [data-title]", "search"),
        (
            "/title/harbor-lights-detective-agency",
            "#title-name",
            "title",
        ),
        ("/my-list", "#my-list-empty", "my-list"),
        ("/account", "#subscription-status", "account"),
        (
            "/watch/the-lantern-keeper-of-brackwater",
            "#player-title",
            "player",
        ),
    ];
    let mut problems = Vec::new();
    for (width, height) in [(1366, 900), (390, 844)] {
        browser
            .client
            .set_window_size(width, height)
            .await
            .expect("resize");
        for (path, marker, name) in screens {
            browser.client.goto(&app.url(path)).await.expect("open");
            browser.find(marker).await;
            // Let lazy parts (rows, artwork) settle before judging the page.
            browser
                .wait_until(
                    "the page is idle",
                    "return document.readyState === 'complete' && !document.body.innerText.includes('Loading…');",
                )
                .await;
            browser.shot(&format!("{name}-{width}.png")).await;
            for p in browser.accessibility_problems().await {
                problems.push(format!("{path} at {width}px: {p}"));
            }
        }
    }
    // The sign-in screen, signed out.
    browser.click("#logout-btn").await;
    browser.find("#password").await;
    for p in browser.accessibility_problems().await {
        problems.push(format!("/signin: {p}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Keyboard: Tab from the top of home reaches the search, Play and a card.
    browser
        .client
        .set_window_size(1366, 900)
        .await
        .expect("resize");
    browser
        .sign_in(&app.url("/"), "ada@example.com", "Corr3ct-horse-battery")
        .await;
    browser.click("[data-profile='Ada']").await;
    browser.find("#hero").await;
    let mut reached = Vec::new();
    for _ in 0..40 {
        browser
            .client
            .active_element()
            .await
            .expect("focus")
            .send_keys(&char::from(Key::Tab).to_string())
            .await
            .expect("tab");
        let at = browser
            .js("const e = document.activeElement; return e.id || e.className || e.tagName;")
            .await;
        reached.push(at.as_str().unwrap_or_default().to_string());
    }
    for wanted in ["search", "hero-play", "card-open"] {
        assert!(
            reached.iter().any(|r| r == wanted),
            "Tab never reached {wanted}: {reached:?}"
        );
    }
    browser.close().await;
    app.stop();
}
