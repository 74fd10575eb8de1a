//! The `quartermaster` binary itself: subcommands, the demo-on-loopback rule, readiness, and a
//! graceful exit on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_quartermaster");

/// What a command printed: (stdout, stderr).
fn printed(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/cli.db", dir.path().display())
}

#[test]
fn migrate_and_seed_demo_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["migrate"][..], &["seed-demo"], &["seed-demo"], &["migrate"]] {
        let out = Command::new(BIN).args(args).env("QM_DATABASE_URL", sqlite_url(&dir)).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn verify_prints_the_head_and_an_anchor_catches_a_cut_tail() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let run = |args: &[&str]| Command::new(BIN).args(args).env("QM_DATABASE_URL", &url).output().unwrap();
    assert!(run(&["seed-demo"]).status.success());
    let out = run(&["verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let head = stdout.trim().rsplit("head ").next().unwrap().to_owned();
    assert!(head.contains(':'), "{stdout}");
    assert!(run(&["verify", "--anchor", &head]).status.success());
    // Cut the newest event: the chain is still intact by itself, the anchor says otherwise.
    let conn = format!("{}/cli.db", dir.path().display());
    let id: i64 = head.split(':').next().unwrap().parse().unwrap();
    let status = Command::new("python3")
        .args(["-c", &format!("import sqlite3; c=sqlite3.connect('{conn}'); c.execute('DELETE FROM audit_events WHERE id = {id}'); c.commit()")])
        .status()
        .unwrap();
    assert!(status.success());
    // The last walk recorded its head in the database: a plain verify catches the cut too
    // (an anchor kept outside also catches a cut made together with that record's).
    let recorded = run(&["verify"]);
    assert!(!recorded.status.success());
    assert!(String::from_utf8_lossy(&recorded.stderr).contains("tail was cut"));
    let cut = run(&["verify", "--anchor", &head]);
    assert!(!cut.status.success());
    assert!(String::from_utf8_lossy(&cut.stderr).contains("tail was cut"), "{}", String::from_utf8_lossy(&cut.stderr));
    let bad = run(&["verify", "--anchor", "12:nothex"]);
    assert!(!bad.status.success());
}

#[test]
fn the_database_url_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db-url");
    std::fs::write(&file, format!("{}\n", sqlite_url(&dir))).unwrap();
    let out = Command::new(BIN)
        .args(["migrate"])
        .env_remove("QM_DATABASE_URL")
        .env("QM_DATABASE_URL_FILE", &file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("cli.db").exists(), "the URL from the file was used");
    let missing =
        Command::new(BIN).args(["migrate"]).env("QM_DATABASE_URL_FILE", dir.path().join("nope")).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("QM_DATABASE_URL_FILE"));
}

#[test]
fn demo_sign_in_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--demo", "--addr", "0.0.0.0:0"])
        .env("QM_DATABASE_URL", sqlite_url(&dir))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only allowed on a loopback address"), "{stderr}");
}

/// Run `serve` and expect it to refuse: exit non-zero within 30 s (a server that starts is
/// killed and fails the test), with `expected` in its error.
fn serve_is_refused(args: &[&str], url: &str, expected: &str) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("QM_DATABASE_URL", url)
        .env("QM_SITE_ROOT", common::site_root())
        .env_remove("QM_OIDC_ISSUER")
        .env_remove("QM_PUBLIC_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    for _ in 0..300 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve {args:?} started instead of refusing");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

#[test]
fn demo_is_refused_beside_a_real_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let demo = ["--demo", "--addr", "127.0.0.1:0"];
    let with = |more: &[&'static str]| -> Vec<&'static str> { demo.iter().chain(more).copied().collect() };
    serve_is_refused(&with(&["--oidc-issuer", "http://127.0.0.1:9/", "--oidc-client-id", "qm"]), &url, "--oidc-issuer");
    serve_is_refused(&with(&["--public-url", "https://access.example.com"]), &url, "--public-url");
    // A database holding a real person (here, one who signed in through a provider).
    let seeded = Command::new(BIN).arg("seed-demo").env("QM_DATABASE_URL", &url).output().unwrap();
    assert!(seeded.status.success());
    let db = format!("{}/cli.db", dir.path().display());
    let status = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import sqlite3; c=sqlite3.connect('{db}'); c.execute(\"INSERT INTO users (email, display_name, \
                 issuer, subject, created_at, updated_at) VALUES ('rita@corp.example', 'Rita Real', \
                 'https://idp.example', 'rita', 0, 0)\"); c.commit()"
            ),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    serve_is_refused(&demo, &url, "not demo people");
}

/// Values from the query string reach the log without control characters: a newline in the
/// provider's error description cannot forge a log line.
#[tokio::test]
async fn query_values_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--log-format", "text"])
        .args(["--oidc-issuer", "http://127.0.0.1:9/", "--oidc-client-id", "qm"])
        .env("QM_DATABASE_URL", sqlite_url(&dir))
        .env("QM_SITE_ROOT", common::site_root())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut answered = None;
    for _ in 0..100 {
        let url = format!(
            "{base}/auth/callback?error=access_denied&error_description=no%0A2030-01-01T00:00:00.000000Z%20%20INFO%20forged%3A%20grace%20is%20admin%0D"
        );
        if let Ok(res) = reqwest::get(url).await {
            answered = Some(res.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered, Some(reqwest::StatusCode::BAD_REQUEST));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains("forged"), "the refusal was logged: {out}");
    for line in out.lines() {
        assert!(!line.starts_with("2030-01-01"), "a forged log line: {line:?}");
        assert!(!line.contains('\r'), "a carriage return in the log: {line:?}");
    }
}

#[test]
fn a_bad_database_url_says_what_is_wrong() {
    let out = Command::new(BIN).args(["migrate", "--database-url", "mysql://nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite:// or postgres://"));
}

#[tokio::test]
async fn serves_until_sigterm_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--demo", "--addr", &format!("127.0.0.1:{port}"), "--log-format", "json"])
        .env("QM_DATABASE_URL", sqlite_url(&dir))
        .env("QM_SITE_ROOT", common::site_root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(res) = reqwest::get(format!("{base}/readyz")).await {
            ready = res.status() == 200;
            if ready {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server became ready");
    // Demo data was seeded into the empty database.
    let signin = reqwest::get(format!("{base}/signin")).await.unwrap().text().await.unwrap();
    assert!(signin.contains("Grace Hopper"));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exited = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("did not stop on SIGTERM")
    });
    assert!(exited.success(), "exit status {exited:?}");
    // JSON logs on standard error: one object per line, each request line carrying its request id.
    let mut out = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut out).unwrap();
    let lines: Vec<serde_json::Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "JSON log lines");
    assert!(lines.iter().any(|l| l.to_string().contains("request_id")), "request ids in the logs");
}

/// `import-users` shows first, then adds with `--apply`: each line's outcome, a refused line
/// changes nothing and makes the exit code 1; a second run finds everyone already there.
#[test]
fn import_users_shows_then_adds_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let run = |args: &[&str]| Command::new(BIN).args(args).env("QM_DATABASE_URL", &url).output().unwrap();
    assert!(run(&["seed-demo"]).status.success());
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "email,name,department,job title,manager\n\
         ada@contoso.example,Ada Lovelace,Engineering,Engineer,linus@quartermaster.example\n\
         not-an-email,Nobody\n\
         bob@contoso.example,Bob Lee,Engineering,Engineer,ada@contoso.example\n",
    )
    .unwrap();
    let file = csv.to_str().unwrap();
    let users = || {
        let out = Command::new("python3")
            .args(["-c", &format!("import sqlite3; print(sqlite3.connect('{}/cli.db').execute(\"SELECT COUNT(*) FROM users WHERE email LIKE '%@contoso.example'\").fetchone()[0])", dir.path().display())])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let shown = run(&["import-users", file]);
    let text = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(!shown.status.success(), "a refused line fails the run: {text}");
    assert!(text.contains("line 2: ada@contoso.example would be added"), "{text}");
    assert!(text.contains("line 3: not-an-email refused: not an email address"), "{text}");
    assert!(
        text.contains("line 4: bob@contoso.example would be added"),
        "Ada, listed before him, is his manager: {text}"
    );
    assert_eq!(users(), "0", "nothing written without --apply");
    let applied = run(&["import-users", file, "--apply"]);
    let text = String::from_utf8_lossy(&applied.stdout).to_string();
    assert!(text.contains("2 added, 0 already there, 1 refused"), "{text}");
    assert_eq!(users(), "2");
    let again = run(&["import-users", file, "--apply"]);
    let again_text = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again_text.contains("ada@contoso.example is already there"), "{again_text}");
    assert_eq!(users(), "2");
}

#[test]
fn token_create_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let run = |args: &[&str]| Command::new(BIN).args(args).env("QM_DATABASE_URL", &url).output().unwrap();
    let text = printed;
    assert!(run(&["seed-demo"]).status.success());
    let omar = "omar@quartermaster.example";

    // Made: its id, scopes and end on one line, the secret alone on the next.
    let out = run(&["token", "create", "--user", omar, "--name", "laptop", "--scopes", "read,request", "--days", "30"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout} {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("token ") && lines[0].contains("read request"), "{stdout}");
    assert!(lines[1].starts_with("qm_") && lines[1].len() == 46, "{stdout}");
    assert!(stderr.contains("cannot be shown again"), "{stderr}");
    let id: String = lines[0].trim_start_matches("token ").split(' ').next().unwrap().to_owned();

    // Refused, saying why: an unknown scope, an unknown person, the admin scope for someone
    // without a role, too long.
    for (args, why) in [
        (vec!["--scopes", "read,root"], "\"root\" is not a scope"),
        (vec!["--days", "1000"], "1 to 366 days"),
        (vec!["--scopes", "admin"], "admin scope"),
    ] {
        let mut all = vec!["token", "create", "--user", omar, "--name", "x"];
        all.extend(args);
        let out = run(&all);
        assert!(!out.status.success());
        assert!(text(&out).1.contains(why), "{why}: {}", text(&out).1);
    }
    let out = run(&["token", "create", "--user", "nobody@example.com", "--name", "x"]);
    assert!(!out.status.success() && text(&out).1.contains("not found"), "{}", text(&out).1);

    // Listed; revoked once.
    let out = run(&["token", "list", "--user", omar]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("laptop") && stdout.contains("never used") && stdout.contains("1 token(s)"), "{stdout}");
    assert!(run(&["token", "revoke", &id]).status.success());
    let again = run(&["token", "revoke", &id]);
    assert!(!again.status.success() && text(&again).1.contains("already revoked"), "{}", text(&again).1);
    assert!(text(&run(&["token", "list", "--user", omar])).0.contains("revoked"));
    assert!(!run(&["token", "revoke", "999"]).status.success());
}

#[test]
fn create_admin_users_disable_and_backup() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let run = |args: &[&str]| Command::new(BIN).args(args).env("QM_DATABASE_URL", &url).output().unwrap();
    let out_of = printed;
    let db = format!("{}/cli.db", dir.path().display());
    let sql = |q: &str| {
        let out = Command::new("python3")
            .args(["-c", &format!("import sqlite3; print(sqlite3.connect('{db}').execute(\"{q}\").fetchone()[0])")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert!(run(&["seed-demo"]).status.success());

    // A new person, made an administrator; again: nothing changes; someone here: granted.
    let out = run(&["create-admin", "Ada@Example.com", "--name", "Ada Lovelace"]);
    assert!(out.status.success(), "{:?}", out_of(&out));
    assert!(out_of(&out).0.contains("added"), "{:?}", out_of(&out));
    let admins = "SELECT COUNT(*) FROM role_assignments r JOIN users u ON u.id = r.user_id \
                  WHERE u.email = 'ada@example.com' AND r.role = 'administrator' AND r.catalog_id IS NULL";
    assert_eq!(sql(admins), "1");
    let again = run(&["create-admin", "ada@example.com"]);
    assert!(again.status.success() && out_of(&again).0.contains("already"), "{:?}", out_of(&again));
    assert_eq!(sql(admins), "1");
    let maya = run(&["create-admin", "maya@quartermaster.example"]);
    assert!(maya.status.success() && out_of(&maya).0.contains("is now an administrator"), "{:?}", out_of(&maya));
    assert_eq!(sql("SELECT COUNT(*) FROM audit_events WHERE action = 'role.granted' AND actor_id IS NULL"), "2");
    let bad = run(&["create-admin", "not an address"]);
    assert!(!bad.status.success() && out_of(&bad).1.contains("not an email address"), "{:?}", out_of(&bad));

    // A leaver: disabled, their access ended and audited; again: said, exit 0.
    let held = "SELECT COUNT(*) FROM assignments a JOIN users u ON u.id = a.user_id \
                WHERE u.email = 'omar@quartermaster.example' AND a.state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')";
    let before: i64 = sql(held).parse().unwrap();
    let out = run(&["users", "disable", "omar@quartermaster.example"]);
    assert!(out.status.success(), "{:?}", out_of(&out));
    assert!(out_of(&out).0.contains(&format!("{before} assignment(s) ended")), "{:?}", out_of(&out));
    assert_eq!(sql("SELECT state FROM users WHERE email = 'omar@quartermaster.example'"), "disabled");
    assert_eq!(sql("SELECT COUNT(*) FROM audit_events WHERE action = 'user.disabled' AND actor_id IS NULL"), "1");
    let again = run(&["users", "disable", "omar@quartermaster.example"]);
    assert!(again.status.success() && out_of(&again).0.contains("already was disabled"), "{:?}", out_of(&again));
    let nobody = run(&["users", "disable", "nobody@example.com"]);
    assert!(!nobody.status.success() && out_of(&nobody).1.contains("not found"), "{:?}", out_of(&nobody));

    // A backup: a database of its own with the same people; never over an existing file.
    let copy = dir.path().join("copy.db");
    let out = run(&["backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", out_of(&out));
    let people = sql("SELECT COUNT(*) FROM users");
    let copied = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import sqlite3; print(sqlite3.connect('{}').execute('SELECT COUNT(*) FROM users').fetchone()[0])",
                copy.display()
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&copied.stdout).trim(), people);
    let twice = run(&["backup", copy.to_str().unwrap()]);
    assert!(!twice.status.success() && out_of(&twice).1.contains("exists already"), "{:?}", out_of(&twice));
}

/// The number of CSV records (RFC 4180: a line break inside quotes belongs to its field).
fn csv_records(text: &str) -> usize {
    let mut quoted = false;
    let mut records = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\r' if !quoted && chars.peek() == Some(&'\n') => {
                chars.next();
                records += 1;
            }
            _ => {}
        }
    }
    records
}

#[test]
fn audit_export_writes_the_trail_narrowed_and_audit_verify_names_a_broken_event() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let run = |args: &[&str]| Command::new(BIN).args(args).env("QM_DATABASE_URL", &url).output().unwrap();
    assert!(run(&["seed-demo"]).status.success());
    let db = format!("{}/cli.db", dir.path().display());
    let sql = |q: &str| -> String {
        let out = Command::new("python3")
            .args(["-c", &format!("import sqlite3; c=sqlite3.connect('{db}'); r=c.execute(\"{q}\").fetchall(); c.commit(); print(r[0][0] if r else '')")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let all: usize = sql("SELECT COUNT(*) FROM audit_events").parse().unwrap();
    assert!(all > 10, "{all}");

    // Everything, as CSV: the audit log's download.
    let out = run(&["audit", "export"]);
    let (csv, err) = printed(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        csv.starts_with("id,at,actor_id,actor,action,object_type,object_id,reason,before,after,token_id\r\n"),
        "{csv}"
    );
    assert_eq!(csv_records(&csv), all + 1, "a header and every event");

    // As JSON, into a new file: the same events, newest first, before/after as JSON.
    let file = dir.path().join("trail.json");
    let out = run(&["audit", "export", "--format", "json", "--output", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", printed(&out).1);
    let events: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(events.len(), all);
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(events.iter().any(|e| e["after"].is_object()), "after as JSON, not a string");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the trail is readable by its owner only");
    }
    // An existing file is not overwritten, and nothing is left beside it.
    let again = run(&["audit", "export", "--output", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(printed(&again).1.contains("exists already"), "{}", printed(&again).1);
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("partial"))
            .count(),
        0
    );

    // Narrowed: by action, by person, by days.
    let action = sql("SELECT action FROM audit_events ORDER BY id LIMIT 1");
    let of_action: usize =
        sql(&format!("SELECT COUNT(*) FROM audit_events WHERE action = '{action}'")).parse().unwrap();
    let out = run(&["audit", "export", "--format", "json", "--action", &action]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(events.len(), of_action);
    assert!(events.iter().all(|e| e["action"] == action.as_str()));
    // The older events moved three days back (ids and times still in the same order): each
    // range gives exactly its own.
    let newest: i64 = sql("SELECT MAX(id) FROM audit_events").parse().unwrap();
    let first: i64 = sql("SELECT MIN(id) FROM audit_events").parse().unwrap();
    let recent = newest - 5;
    sql(&format!("UPDATE audit_events SET at = at - 3 * 86400000 WHERE id < {recent}"));
    let then: i64 = sql(&format!("SELECT MAX(at) FROM audit_events WHERE id < {recent}")).parse().unwrap();
    let day = chrono::DateTime::from_timestamp_millis(then).unwrap().format("%Y-%m-%d").to_string();
    let ids_of = |args: &[&str]| -> Vec<i64> {
        let out = run(&[&["audit", "export", "--format", "json"][..], args].concat());
        assert!(out.status.success(), "{args:?}: {}", printed(&out).1);
        let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
    };
    let older: Vec<i64> = (first..recent).rev().collect();
    assert_eq!(ids_of(&["--from", &day, "--to", &day]), older, "that day only");
    assert_eq!(ids_of(&["--to", &day]), older, "up to that day");
    let later = chrono::DateTime::from_timestamp_millis(then + 86_400_000).unwrap().format("%Y-%m-%d").to_string();
    let today: Vec<i64> = (recent..=newest).rev().collect();
    assert_eq!(ids_of(&["--from", &later]), today, "from the day after");

    // A bad filter says which field, and writes nothing (not even an empty file).
    let refused = dir.path().join("refused.csv");
    let out =
        run(&["audit", "export", "--from", "2026-12-02", "--to", "2026-12-01", "--output", refused.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(printed(&out).1.contains("the end comes before the start"), "{}", printed(&out).1);
    assert!(!refused.exists());
    let out = run(&["audit", "export", "--who", "nobody@nowhere.example"]);
    assert!(!out.status.success());
    assert!(printed(&out).1.contains("nobody has that email address"), "{}", printed(&out).1);

    // `audit verify`: the moved events break the chain, and the first of them is named.
    let out = run(&["audit", "verify"]);
    assert!(!out.status.success());
    let (_, err) = printed(&out);
    assert!(err.contains(&format!("audit chain broken at event {first}")), "{err}");
}

#[test]
fn packages_export_plan_and_apply() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let run = |args: &[&str]| Command::new(BIN).args(args).env("QM_DATABASE_URL", &url).output().unwrap();
    assert!(run(&["seed-demo"]).status.success());
    let file = dir.path().join("catalogs.toml");
    let path = file.to_str().unwrap();
    let out = run(&["packages", "export", "--output", path]);
    assert!(out.status.success(), "{:?}", printed(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("[[catalog.package.policy]]"), "{text}");
    // An existing file is not written over.
    let again = run(&["packages", "export", "--output", path]);
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    std::fs::write(&file, text.replacen("\"Payments and invoicing\"", "\"Payments\"", 1)).unwrap();
    let out = run(&["packages", "plan", path]);
    let (stdout, stderr) = printed(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("1 to change"), "{stdout}");
    assert!(
        stdout.contains("~ catalog \"Finance\"\n    description: \"Payments and invoicing\" -> \"Payments\"\n"),
        "{stdout}"
    );
    let id = stdout.split_whitespace().nth(1).unwrap().trim_end_matches(':').to_owned();
    assert!(stdout.contains(&format!("--plan {id}")), "{stdout}");

    // Only an administrator applies, and only the plan as it was.
    let not_admin = run(&["packages", "apply", path, "--plan", &id, "--as", "maya@quartermaster.example"]);
    assert!(!not_admin.status.success());
    let wrong = run(&["packages", "apply", path, "--plan", "0000000000000000", "--as", "grace@quartermaster.example"]);
    assert!(!wrong.status.success());
    assert!(printed(&wrong).1.contains("plan again"), "{:?}", printed(&wrong));
    let out = run(&["packages", "apply", path, "--plan", &id, "--as", "grace@quartermaster.example"]);
    assert!(out.status.success(), "{:?}", printed(&out));
    assert!(printed(&out).0.contains(&format!("applied plan {id}: 1 change(s)")), "{:?}", printed(&out));
    let out = run(&["packages", "plan", path]);
    assert!(printed(&out).0.contains("no changes"), "{:?}", printed(&out));

    // A file that is not valid is refused, saying where.
    std::fs::write(&file, "[[catalog]]\nname = \"Finance\"\nowner = 3\n").unwrap();
    let out = run(&["packages", "plan", path]);
    assert!(!out.status.success());
    assert!(printed(&out).1.contains("owner"), "{:?}", printed(&out));
    assert!(run(&["packages", "apply", "--help"]).status.success());
}
