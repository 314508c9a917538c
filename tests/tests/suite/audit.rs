//! Auditors: history queries, state as of a moment, entitlement then, audited reads, and
//! verification that finds each kind of tampering (through direct SQL, triggers disabled) with
//! its stream, version and position, on SQLite and on Postgres.

use cinelog_domain::values::Role;
use cinelog_infra::audit::{AnchorKey, Anchorer};
use cinelog_tests::{Backend, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

fn types(events: &Value) -> Vec<String> {
    events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn auditors_query_history_state_as_of_entitlement_and_their_reads_are_recorded() {
    auditors_read_history_on(Backend::Sqlite).await;
}

/// History by actor, type and stream, paged; state as of a position and a time; entitlement
/// then; traces; audited reads; verification of every chain.
pub(crate) async fn auditors_read_history_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (viewer, _) = app.signup_login("hal@example.com").await;
    let user = app.get("/api/me", Some(&viewer)).await.body["user"]["user_id"]
        .as_str()
        .expect("user id")
        .to_string();
    let account = app.account_id(&viewer).await;
    let made = app
        .post("/api/profiles", json!({"name": "Hal"}), Some(&viewer))
        .await;
    let pid = made.body["profile_id"].as_str().unwrap().to_string();
    let created_at = made.body["position"].as_i64().unwrap();
    let renamed = app
        .call(
            Method::PATCH,
            &format!("/api/profiles/{pid}"),
            Some(json!({"name": "Hal Renamed"})),
            Some(&viewer),
        )
        .await;
    assert_eq!(renamed.status, 200);
    let auditor = app.signed_in_as("aud@example.com", Role::Auditor).await;

    // Viewers and analysts are refused.
    let analyst = app.signed_in_as("ana@example.com", Role::Analyst).await;
    for token in [&viewer, &analyst] {
        let refused = app.get("/api/audit/events", Some(token)).await;
        assert_eq!(refused.status, 403, "{:?}", refused.body);
    }

    // By actor and type, in log order, a page at a time.
    let actor = format!("user:{user}");
    let path = format!("/api/audit/events?actor={actor}&limit=2");
    let first = app.get(&path, Some(&auditor)).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["events"].as_array().unwrap().len(), 2);
    let mut all = first.body["events"].as_array().unwrap().clone();
    let mut cursor = first.body["next_cursor"].clone();
    while let Some(c) = cursor.as_str() {
        let page = app.get(&format!("{path}&cursor={c}"), Some(&auditor)).await;
        all.extend(page.body["events"].as_array().unwrap().iter().cloned());
        cursor = page.body["next_cursor"].clone();
    }
    assert!(all.iter().all(|e| e["actor"] == actor.as_str()));
    // An unfiltered paged read ends at the head its first page saw, though each page is itself
    // recorded in the log.
    let head = app.log_len().await;
    let (mut pages, mut seen, mut next) = (0, 0, None::<String>);
    loop {
        let path = match &next {
            Some(c) => format!("/api/audit/events?limit=100&cursor={c}"),
            None => "/api/audit/events?limit=100".to_string(),
        };
        let page = app.get(&path, Some(&auditor)).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        seen += page.body["events"].as_array().unwrap().len();
        pages += 1;
        assert!(pages < 50, "paging never ends");
        match page.body["next_cursor"].as_str() {
            Some(c) => next = Some(c.to_string()),
            None => break,
        }
    }
    assert!(seen >= head, "{seen} of {head}");
    let bad = app
        .get("/api/audit/events?cursor=banana", Some(&auditor))
        .await;
    assert!(matches!(bad.status.as_u16(), 400 | 422), "{:?}", bad.body);
    let positions: Vec<i64> = all
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    let names = types(&Value::Array(all));
    assert!(names.contains(&"ProfileCreated".to_string()), "{names:?}");
    assert!(names.contains(&"ProfileUpdated".to_string()), "{names:?}");
    let only = app
        .get(
            &format!("/api/audit/events?actor={actor}&type=ProfileCreated"),
            Some(&auditor),
        )
        .await;
    assert_eq!(types(&only.body["events"]), ["ProfileCreated"]);
    // Sealed personal data reads as such; credentials never leave.
    let registered = app
        .get(
            &format!("/api/audit/events?stream_type=user&stream_id={user}&limit=1"),
            Some(&auditor),
        )
        .await;
    let text = registered.body.to_string();
    assert!(
        !text.contains("hal@example.com") && !text.contains("$argon2"),
        "{text}"
    );

    // The account as it was when the profile was made: the domain's own fold.
    let state = app
        .get(
            &format!("/api/audit/streams/account/{account}/state?position={created_at}"),
            Some(&auditor),
        )
        .await;
    assert_eq!(state.status, 200, "{:?}", state.body);
    let shown = state.body["state"].to_string();
    assert!(
        shown.contains("\"Hal\"") && !shown.contains("Hal Renamed"),
        "{shown}"
    );
    assert_eq!(
        state.body["events"].as_array().unwrap().last().unwrap()["position"],
        created_at
    );
    let at = state.body["events"].as_array().unwrap().last().unwrap()["recorded_at"]
        .as_str()
        .unwrap()
        .to_string();
    let by_time = app
        .get(
            &format!("/api/audit/streams/account/{account}/state?at={at}"),
            Some(&auditor),
        )
        .await;
    assert_eq!(by_time.body["state"], state.body["state"]);
    let now = app
        .get(
            &format!("/api/audit/streams/account/{account}/state"),
            Some(&auditor),
        )
        .await;
    assert!(now.body["state"].to_string().contains("Hal Renamed"));
    for bad in [
        format!("/api/audit/streams/account/{account}/state?at=yesterday"),
        format!("/api/audit/streams/account/{account}/state?position=-1"),
        "/api/audit/streams/nonsense/x/state".to_string(),
    ] {
        let refused = app.get(&bad, Some(&auditor)).await;
        assert!(
            matches!(refused.status.as_u16(), 400 | 422) && !refused.error_code().is_empty(),
            "{bad}: {} {:?}",
            refused.status,
            refused.body
        );
    }
    let missing = app
        .get("/api/audit/streams/account/nobody/state", Some(&auditor))
        .await;
    assert_eq!(missing.status, 404);

    // Entitlement then and now: before the subscription none, after it 1080p on standard.
    let before = chrono::Utc::now();
    app.subscribe(&viewer, "standard").await;
    let then = app
        .get(
            &format!(
                "/api/audit/accounts/{account}/entitlement?at={}",
                before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ),
            Some(&auditor),
        )
        .await;
    assert_eq!(then.status, 200, "{:?}", then.body);
    assert_eq!(then.body["entitled"], false, "{:?}", then.body);
    let now = app
        .get(
            &format!("/api/audit/accounts/{account}/entitlement"),
            Some(&auditor),
        )
        .await;
    assert_eq!(
        (&now.body["entitled"], &now.body["max_quality"]),
        (&json!(true), &json!(1080)),
        "{:?}",
        now.body
    );
    assert!(now.body["why"].as_str().unwrap().contains("standard"));

    // A trace of one request: the rename, sent with its own correlation id.
    let correlation = uuid::Uuid::now_v7();
    let traced = app
        .http
        .patch(app.url(&format!("/api/profiles/{pid}")))
        .bearer_auth(&viewer)
        .header("x-correlation-id", correlation.to_string())
        .json(&json!({"name": "Hal Again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(traced.status(), 200);
    let trace = app
        .get(&format!("/api/audit/trace/{correlation}"), Some(&auditor))
        .await;
    assert_eq!(trace.status, 200, "{:?}", trace.body);
    assert_eq!(trace.body["roots"][0]["event_type"], "ProfileUpdated");
    assert!(trace.body["roots"][0]["caused"].is_array());
    // A signup is three commands, each caused by the event before: a tree three deep.
    let signup = uuid::Uuid::now_v7();
    let made = app
        .http
        .post(app.url("/api/auth/signup"))
        .header("x-correlation-id", signup.to_string())
        .json(&json!({"email": "traced@example.com", "password": "Corr3ct-horse-battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let tree = app
        .get(&format!("/api/audit/trace/{signup}"), Some(&auditor))
        .await
        .body;
    let root = &tree["roots"][0];
    assert_eq!(tree["roots"].as_array().unwrap().len(), 1, "{tree}");
    assert_eq!(root["event_type"], "EmailClaimed", "{tree}");
    let registered = &root["caused"][0];
    assert_eq!(registered["event_type"], "UserRegistered", "{tree}");
    assert_eq!(registered["causation_id"], root["event_id"]);
    assert_eq!(
        registered["caused"][0]["event_type"], "AccountOpened",
        "{tree}"
    );
    let unknown = app
        .get(
            &format!("/api/audit/trace/{}", uuid::Uuid::now_v7()),
            Some(&auditor),
        )
        .await;
    assert_eq!(unknown.status, 404);

    // Every read above was recorded: who, what, with which filters.
    let auditor_id = app.get("/api/me", Some(&auditor)).await.body["user"]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let reads = app
        .get(
            &format!("/api/audit/events?stream_type=access&actor=user:{auditor_id}&limit=1000"),
            Some(&auditor),
        )
        .await;
    let what: Vec<String> = reads.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["payload"]["LogRead"]["what"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for kind in [
        "audit.events",
        "audit.state",
        "audit.entitlement",
        "audit.trace",
    ] {
        assert!(
            what.iter().any(|w| w == kind),
            "{kind} not recorded: {what:?}"
        );
    }
    let filtered = reads.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["payload"]["LogRead"]["filters"]["type"] == "ProfileCreated");
    assert!(filtered, "the filters of a read are recorded");

    // Erasure: the viewer's personal data reads as erased; the chain still verifies.
    let erased = app
        .call(
            Method::DELETE,
            "/api/me",
            Some(json!({"password": "Corr3ct-horse-battery"})),
            Some(&viewer),
        )
        .await;
    assert!(erased.status.is_success(), "{:?}", erased.body);
    let user_state = app
        .get(
            &format!("/api/audit/streams/user/{user}/state"),
            Some(&auditor),
        )
        .await;
    assert!(
        user_state.body.to_string().contains("[erased]"),
        "{:?}",
        user_state.body
    );
    let verified = app.get("/api/audit/verify", Some(&auditor)).await;
    assert_eq!(verified.body["intact"], true, "{:?}", verified.body);
    app.stop();
}

/// Runs SQL against the event store with its immutability triggers off.
async fn tamper(app: &TestApp, backend: Backend, statements: &[String]) {
    match backend {
        Backend::Sqlite => {
            let url = format!(
                "sqlite://{}",
                app.settings.data_dir.join("events.db").display()
            );
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let triggers: Vec<(String, String)> = sqlx::query_as(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for (name, _) in &triggers {
                sqlx::query(&format!("DROP TRIGGER \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            for sql in statements {
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            for (_, sql) in &triggers {
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
        }
        Backend::Postgres => {
            let url = app.settings.database_url.clone().unwrap();
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query("ALTER TABLE events DISABLE TRIGGER events_immutable")
                .execute(&mut conn)
                .await
                .unwrap();
            for sql in statements {
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            sqlx::query("ALTER TABLE events ENABLE TRIGGER events_immutable")
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Backend::Kurrent => panic!("these tamperings rewrite SQL rows; KurrentDB has none"),
    }
}

/// The problems verification reports for one stream.
fn problems_of(report: &Value, stream_id: &str) -> Vec<String> {
    report["broken"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["stream_id"] == stream_id)
        .map(|b| {
            format!(
                "v{} @{}: {}",
                b["version"],
                b["position"],
                b["problem"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn verify_finds_every_kind_of_tampering_with_its_position() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let auditor = app.signed_in_as("aud@example.com", Role::Auditor).await;
        // Seven accounts, each with three profile events after its opening.
        let mut accounts = Vec::new();
        for i in 0..7 {
            let (token, _) = app.signup_login(&format!("v{i}@example.com")).await;
            for n in 0..3 {
                app.profile(&token, json!({"name": format!("p{n}")})).await;
            }
            accounts.push(app.account_id(&token).await.to_string());
        }
        let mut anchorer = Anchorer::new(
            app.running.state.store.clone(),
            AnchorKey::load_or_create(&app.settings.anchor_key_file()).unwrap(),
            None,
        )
        .await
        .unwrap();
        let anchor = anchorer.anchor().await.unwrap().expect("an anchor");
        let intact = app.get("/api/audit/verify", Some(&auditor)).await;
        assert_eq!(intact.status, 200);
        assert_eq!(
            intact.body["intact"], true,
            "{backend:?}: {:?}",
            intact.body
        );
        assert!(intact.body["anchors_checked"].as_i64().unwrap() >= 1);

        let row = |a: &str, seq: i64| {
            format!("aggregate_type = 'account' AND aggregate_id = '{a}' AND sequence = {seq}")
        };
        let (payload, metadata) = if backend == Backend::Sqlite {
            (
                "payload = replace(payload, 'p0', 'px')".to_string(),
                "metadata = json_set(metadata, '$.actor', 'system')".to_string(),
            )
        } else {
            (
                "payload = replace(payload::text, 'p0', 'px')::json".to_string(),
                "metadata = jsonb_set(metadata::jsonb, '{actor}', '\"system\"')::json".to_string(),
            )
        };
        let newest_row = "aggregate_type = 'account' AND aggregate_id = '{a}' AND sequence = (SELECT MAX(sequence) FROM events WHERE aggregate_type = 'account' AND aggregate_id = '{a}')";
        let cases: Vec<(&str, Vec<String>, &str)> = vec![
            (
                "payload edited",
                vec![format!(
                    "UPDATE events SET {payload} WHERE {}",
                    row(&accounts[0], 2)
                )],
                "edited",
            ),
            (
                "metadata edited",
                vec![format!(
                    "UPDATE events SET {metadata} WHERE {}",
                    row(&accounts[1], 2)
                )],
                "edited",
            ),
            (
                "middle event deleted",
                vec![format!("DELETE FROM events WHERE {}", row(&accounts[2], 2))],
                "missing",
            ),
            (
                "newest event deleted",
                vec![format!(
                    "DELETE FROM events WHERE {}",
                    newest_row.replace("{a}", &accounts[3])
                )],
                "newer events were deleted",
            ),
            (
                "two events swapped",
                vec![
                    format!(
                        "UPDATE events SET sequence = 100 WHERE {}",
                        row(&accounts[4], 2)
                    ),
                    format!(
                        "UPDATE events SET sequence = 2 WHERE {}",
                        row(&accounts[4], 3)
                    ),
                    format!(
                        "UPDATE events SET sequence = 3 WHERE {}",
                        row(&accounts[4], 100)
                    ),
                ],
                "out of place",
            ),
            (
                "an event inserted",
                vec![if backend == Backend::Sqlite {
                    // Its triggers are off, so the position is given as the trigger would.
                    format!(
                        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, position)
                         SELECT aggregate_type, aggregate_id, 10, event_type, event_version, payload, metadata, (SELECT MAX(position) + 1 FROM events) FROM events WHERE {}",
                        row(&accounts[5], 2)
                    )
                } else {
                    format!(
                        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                         SELECT aggregate_type, aggregate_id, 10, event_type, event_version, payload, metadata FROM events WHERE {}",
                        row(&accounts[5], 2)
                    )
                }],
                "",
            ),
        ];
        for (case, sql, expect) in cases {
            tamper(&app, backend, &sql).await;
            let report = app.get("/api/audit/verify", Some(&auditor)).await.body;
            assert_eq!(report["intact"], false, "{backend:?} {case}: {report}");
            let stream = match case {
                "payload edited" => &accounts[0],
                "metadata edited" => &accounts[1],
                "middle event deleted" => &accounts[2],
                "newest event deleted" => &accounts[3],
                "two events swapped" => &accounts[4],
                _ => &accounts[5],
            };
            let found = problems_of(&report, stream);
            assert!(
                !found.is_empty() && found.iter().any(|p| p.contains(expect)),
                "{backend:?} {case}: {found:?} in {report}"
            );
            assert!(
                found.iter().all(|p| !p.contains("@0")),
                "{backend:?} {case}: every problem has a position: {found:?}"
            );
        }
        // An anchor forged (its digest changed without the key) is found too.
        let forged = format!(
            "UPDATE anchors SET root = '{}' WHERE id = {}",
            "0".repeat(64),
            anchor.id
        );
        tamper(&app, backend, &[forged]).await;
        let report = app.get("/api/audit/verify", Some(&auditor)).await.body;
        let anchors = problems_of(&report, &anchor.id.to_string());
        assert!(
            anchors
                .iter()
                .any(|p| p.contains("not signed by the trusted key")),
            "{backend:?}: {report}"
        );
        app.stop();
    }
}
