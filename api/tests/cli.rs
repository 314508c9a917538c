//! The `cinelog` binary's operator commands, run as an operator would.

use std::path::Path;
use std::process::Command;

fn cinelog(data_dir: &Path, args: &[&str]) -> String {
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
    assert!(out.status.success(), "cinelog {args:?} failed:\n{text}");
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
