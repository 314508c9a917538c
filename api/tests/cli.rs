//! The `cinelog` binary's operator commands, run as an operator would.

use std::path::Path;
use std::process::Command;

/// Runs `cinelog` on `data_dir` with no config file and no database URL from the
/// environment; answers whether it succeeded and what it printed.
fn run(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cinelog"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("CINELOG_CONFIG", data_dir.join("none.toml"))
        .env_remove("CINELOG_DATABASE_URL")
        .output()
        .expect("cinelog runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn cinelog(data_dir: &Path, args: &[&str]) -> String {
    let (ok, text) = run(data_dir, args);
    assert!(ok, "cinelog {args:?} failed:\n{text}");
    text
}

#[test]
fn migrate_create_user_rebuild_and_erase() {
    let dir = std::env::temp_dir().join(format!("cinelog-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(cinelog(&dir, &["migrate"]).contains("projections accounts"));
    assert!(dir.join("events.db").exists() && dir.join("read.db").exists());

    let created = cinelog(
        &dir,
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "Corr3ct-horse-battery",
            "--role",
            "auditor",
        ],
    );
    assert!(created.contains("created auditor user"), "{created}");
    let rebuilt = cinelog(&dir, &["rebuild", "accounts"]);
    assert!(
        rebuilt.contains("rebuilt accounts: generation 2 is live"),
        "{rebuilt}"
    );
    let erased = cinelog(&dir, &["user", "erase", "--email", "ops@example.com"]);
    assert!(erased.contains("erased the personal data"), "{erased}");

    let bad = Command::new(env!("CARGO_BIN_EXE_cinelog"))
        .args(["rebuild", "nope", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no projection named"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// precision@10 and recall@10 of both rankers from the evaluation's table.
fn scores(table: &str) -> ((f64, f64), (f64, f64)) {
    let row = |name: &str| {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap();
        let cells: Vec<f64> = line
            .split('|')
            .filter_map(|c| c.trim().parse().ok())
            .collect();
        (cells[0], cells[1])
    };
    (row("local recommender"), row("popularity baseline"))
}

#[test]
fn the_recommender_beats_popularity_offline_and_reads_outside_data() {
    let dir = std::env::temp_dir().join(format!("cinelog-recs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for seed in ["42", "7"] {
        let out = cinelog(&dir, &["recs", "evaluate", "--seed", seed]);
        let ((rp, rr), (pp, pr)) = scores(&out);
        assert!(rp > pp && rr > pr, "seed {seed}:\n{out}");
    }
    // An outside data set, with items the catalog does not know and a header line.
    let mut csv = String::from("user,item,rating,timestamp\n");
    for u in 0..30 {
        for (t, item) in ["m1", "m2", "m3", "m4", "m5", "x9"].iter().enumerate() {
            let rating = if (u + t) % 4 == 0 { 2 } else { 5 };
            csv.push_str(&format!("user{u},{item},{rating},{}\n", u * 10 + t));
        }
    }
    let file = dir.join("ratings.csv");
    std::fs::write(&file, csv).unwrap();
    let out = cinelog(
        &dir,
        &["recs", "evaluate", "--interactions", file.to_str().unwrap()],
    );
    assert!(out.contains("30 users, 180 interactions"), "{out}");
    std::fs::write(&file, "user,item,rating,timestamp\nu,i,five,1\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_cinelog"))
        .args(["recs", "evaluate", "--interactions"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `events export` writes the log in log order as NDJSON, CloudEvents and Parquet; pyarrow
/// (installed by `./scripts/test`, found through `CINELOG_PYTHON`) reads the Parquet file back.
#[test]
fn the_log_exports_to_ndjson_cloudevents_and_parquet_that_pyarrow_reads() {
    let dir = std::env::temp_dir().join(format!("cinelog-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for email in ["one@example.com", "two@example.com"] {
        cinelog(
            &dir,
            &[
                "user",
                "create",
                "--email",
                email,
                "--password",
                "Corr3ct-horse-battery",
            ],
        );
    }
    let out = |name: &str| dir.join(name).to_string_lossy().to_string();
    let ndjson = cinelog(&dir, &["events", "export", "--out", &out("log.ndjson")]);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("log.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        ndjson.contains(&format!("exported {} events", lines.len())),
        "{ndjson}"
    );
    let positions: Vec<i64> = lines
        .iter()
        .map(|l| l["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(
        !std::fs::read_to_string(dir.join("log.ndjson"))
            .unwrap()
            .contains("argon2")
    );

    cinelog(
        &dir,
        &[
            "events",
            "export",
            "--format",
            "cloudevents",
            "--types",
            "UserRegistered,AccountOpened",
            "--out",
            &out("ce.ndjson"),
        ],
    );
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("ce.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["specversion"], "1.0");
    assert_eq!(events[0]["type"], "cinelog.user.UserRegistered");
    assert!(
        events
            .iter()
            .all(|e| e["id"].is_string() && e["position"].is_i64())
    );

    cinelog(
        &dir,
        &[
            "events",
            "export",
            "--format",
            "parquet",
            "--out",
            &out("log.parquet"),
        ],
    );
    let python = std::env::var("CINELOG_PYTHON").unwrap_or_else(|_| "python3".into());
    let read = Command::new(&python)
        .args([
            "-c",
            "import sys, pyarrow.parquet as pq\n\
             t = pq.read_table(sys.argv[1])\n\
             pos = t.column('position').to_pylist()\n\
             assert pos == sorted(pos), pos\n\
             assert str(t.schema.field('recorded_at').type) == 'timestamp[us, tz=UTC]', t.schema\n\
             print(t.num_rows, t.column('event_type')[0])",
            &out("log.parquet"),
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("{python} with pyarrow is needed (./scripts/test installs it): {e}")
        });
    let said = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "pyarrow could not read the export: {said}{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(
        said.split_whitespace().next(),
        Some(lines.len().to_string().as_str()),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `cinelog` expecting it to fail; answers what it printed.
fn cinelog_fails(data_dir: &Path, args: &[&str]) -> String {
    let (ok, text) = run(data_dir, args);
    assert!(!ok, "cinelog {args:?} succeeded:\n{text}");
    text
}

/// An export and its proof, handed with the public key to a process that has no database,
/// verify; the same file edited or cut short does not; and an export made after the database
/// was tampered with names the edited event.
#[test]
fn an_export_verifies_offline_with_the_public_key_alone() {
    let dir = std::env::temp_dir().join(format!("cinelog-proof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for email in ["one@example.com", "two@example.com", "three@example.com"] {
        cinelog(
            &dir,
            &[
                "user",
                "create",
                "--email",
                email,
                "--password",
                "Corr3ct-horse-battery",
            ],
        );
    }
    assert!(cinelog(&dir, &["audit", "anchor"]).contains("anchor 1 signed"));
    let key = cinelog(&dir, &["audit", "public-key"]).trim().to_string();
    assert_eq!(key.len(), 64, "{key}");
    let file = dir.join("log.ndjson");
    let exported = cinelog(&dir, &["events", "export", "--out", file.to_str().unwrap()]);
    assert!(exported.contains("proof in"), "{exported}");

    // A third party: its own empty folder, the file, its proof and the key.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let copy = elsewhere.join("log.ndjson");
    std::fs::copy(&file, &copy).unwrap();
    std::fs::copy(
        dir.join("log.ndjson.proof.json"),
        elsewhere.join("log.ndjson.proof.json"),
    )
    .unwrap();
    let third_party = elsewhere.join("home");
    let verify = |f: &Path| {
        vec![
            "audit".to_string(),
            "verify".into(),
            "--export".into(),
            f.to_string_lossy().to_string(),
            "--public-key".into(),
            key.clone(),
        ]
    };
    let args = verify(&copy);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ok = cinelog(&third_party, &args);
    assert!(ok.contains("intact"), "{ok}");
    assert!(
        !third_party.join("events.db").exists(),
        "offline verification opened no database"
    );

    // Edited: one event's type changed.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&copy, text.replacen("AccountOpened", "AccountClosed", 1)).unwrap();
    let edited = cinelog_fails(&third_party, &args);
    assert!(edited.contains("edited or truncated"), "{edited}");
    // Truncated: the last event cut off.
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&copy, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let cut = cinelog_fails(&third_party, &args);
    assert!(cut.contains("edited or truncated"), "{cut}");
    // Another key: refused.
    let mut wrong = args.clone();
    let other = "11".repeat(32);
    *wrong.last_mut().unwrap() = &other;
    std::fs::copy(&file, &copy).unwrap();
    assert!(cinelog_fails(&third_party, &wrong).contains("not signed by the trusted key"));

    // The database edited after the anchor, then exported: the proof is signed, yet the
    // chain names the edited event.
    let db = dir.join("events.db");
    let conn = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; db = sqlite3.connect({:?}); \
             t = db.execute(\"select name, sql from sqlite_master where type='trigger' and tbl_name='events'\").fetchall(); \
             [db.execute(f'drop trigger \"{{n}}\"') for n, _ in t]; \
             db.execute(\"update events set metadata = json_set(metadata, '$.actor', 'anonymous') where position = (select min(position) from events where event_type = 'AccountOpened')\"); \
             [db.execute(s) for _, s in t]; db.commit()",
            db.to_string_lossy()
        ))
        .status()
        .unwrap();
    assert!(conn.success());
    let tampered = dir.join("tampered.ndjson");
    cinelog(
        &dir,
        &["events", "export", "--out", tampered.to_str().unwrap()],
    );
    let args = verify(&tampered);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let found = cinelog_fails(&third_party, &args);
    assert!(
        found.contains("BROKEN account/") && found.contains("edited"),
        "{found}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
