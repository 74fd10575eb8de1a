//! Tidy: the layering rules of ARCHITECTURE.md, checked over the source tree.
//!
//! - `domain` mentions neither axum, leptos nor sqlx;
//! - SQL (`sqlx::query…`, `sqlx::raw_sql`) lives in `store` only;
//! - "now" comes from the injected clock: `Utc::now()` only in `domain/clock.rs`;
//! - `service` and `auth` do not reach up into `server`;
//! - system operations run as `Operator::Workers` only from the worker loop, the CLI and the
//!   demo seeding (REST and server functions pass the person);
//! - a response status is set in one place per kind of answer: pages (`ui/pages.rs`) and
//!   server functions (`server.rs`, from the error's own status) — never as a side effect of
//!   converting an error.
//!
//! Test modules are exempt from all but the first: everything after a `#[cfg(test)]` (or
//! `#[cfg(all(test, …))]`) item that is not a one-line declaration (`mod golden;`) is
//! ignored. Comment lines are ignored by every rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

struct Rule {
    name: &'static str,
    /// Does the rule apply to this file (path relative to `src/`, with `/`)?
    applies: fn(&str) -> bool,
    /// Any of these substrings on a line is a violation.
    needles: &'static [&'static str],
    /// Test modules are checked too.
    in_tests: bool,
}

const RULES: &[Rule] = &[
    Rule {
        name: "domain imports no web, UI or database framework",
        applies: |p| p.starts_with("domain/"),
        needles: &["axum", "leptos", "sqlx"],
        in_tests: true,
    },
    Rule {
        name: "SQL lives in store/",
        applies: |p| !p.starts_with("store/"),
        needles: &["sqlx::query", "sqlx::raw_sql"],
        in_tests: false,
    },
    Rule {
        name: "time comes from the injected Clock",
        applies: |p| p != "domain/clock.rs",
        needles: &["Utc::now()"],
        in_tests: false,
    },
    Rule {
        name: "service and auth do not reach up into server",
        applies: |p| p.starts_with("service/") || p.starts_with("auth/"),
        needles: &["crate::server::", "crate::server;", "super::server"],
        in_tests: false,
    },
    Rule {
        name: "only the worker loop, the CLI and the demo seeding act as the workers",
        applies: |p| !matches!(p, "service/mod.rs" | "main.rs" | "demo.rs" | "domain/authz.rs"),
        needles: &["Operator::Workers"],
        in_tests: false,
    },
    Rule {
        name: "response statuses are set at the boundary only",
        applies: |p| p != "ui/pages.rs",
        needles: &[".set_status("],
        in_tests: false,
    },
];

/// The files this test itself is made of: it names every needle.
const SELF: &str = "tidy.rs";

#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    rule: &'static str,
    text: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "src/{}:{}: {} — {}", self.file, self.line, self.rule, self.text.trim())
    }
}

fn is_test_cfg(line: &str) -> bool {
    let l = line.trim();
    l.starts_with("#[cfg(") && l.contains("test") && !l.contains("not(test")
}

/// The violations in one file (`path` relative to `src/`).
fn check(path: &str, text: &str) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut in_tests = false;
    let mut test_cfg_pending = false;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if is_test_cfg(line) {
            test_cfg_pending = true;
        } else if test_cfg_pending && !trimmed.starts_with("#[") && !trimmed.is_empty() {
            // `#[cfg(test)] mod golden;` only declares a file; a test module's body follows.
            test_cfg_pending = false;
            in_tests |= !trimmed.ends_with(';');
        }
        if trimmed.starts_with("//") {
            continue;
        }
        for rule in RULES {
            if (in_tests && !rule.in_tests) || !(rule.applies)(path) {
                continue;
            }
            if rule.needles.iter().any(|needle| line.contains(needle)) {
                found.push(Violation { file: path.to_owned(), line: n + 1, rule: rule.name, text: line.to_owned() });
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_source_tree_keeps_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "found only {} files under {}", files.len(), src.display());
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        if rel == SELF {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        violations.extend(check(&rel, &text));
    }
    assert!(
        violations.is_empty(),
        "{} layering violation(s):\n{}",
        violations.len(),
        violations.iter().map(|v| format!("  {v}")).collect::<Vec<_>>().join("\n")
    );
}

/// The checker itself catches each rule, and spares test modules and comments.
#[test]
fn each_rule_catches_what_it_names() {
    let lines = |path: &str, text: &str| check(path, text).iter().map(|v| (v.line, v.rule)).collect::<Vec<_>>();
    assert_eq!(lines("domain/x.rs", "use sqlx::Row;\nuse leptos::prelude::*;\nfn f() {}\n").len(), 2);
    assert_eq!(lines("domain/x.rs", "fn f() {}\n#[cfg(test)]\nmod tests { use axum::Router; }\n").len(), 1);
    assert_eq!(lines("service/x.rs", "let n = sqlx::query_scalar(\"SELECT 1\");\n"), vec![(1, RULES[1].name)]);
    assert!(lines("store/x.rs", "let n = sqlx::query_as(\"SELECT 1\");\n").is_empty());
    assert_eq!(lines("auth/mod.rs", "let t = chrono::Utc::now();\n"), vec![(1, RULES[2].name)]);
    assert!(lines("domain/clock.rs", "Utc::now()\n").is_empty());
    assert!(lines("ui/x.rs", "#[cfg(test)]\nmod tests { fn t() { Utc::now(); } }\n").is_empty());
    assert!(lines("ui/x.rs", "#[cfg(test)]\nmod tests {\n    fn t() { Utc::now(); }\n}\n").is_empty());
    assert_eq!(lines("ui/x.rs", "#[cfg(test)]\nmod golden;\nfn f() { Utc::now(); }\n"), vec![(3, RULES[2].name)]);
    assert!(lines("ui/x.rs", "// Utc::now() is not called here\n").is_empty());
    assert_eq!(lines("auth/mod.rs", "use crate::server::AppState;\n"), vec![(1, RULES[3].name)]);
    assert_eq!(lines("service/mod.rs", "tick(crate::server::WORKER_INTERVAL)\n"), vec![(1, RULES[3].name)]);
    assert!(lines("ui/api.rs", "use crate::server::AppState;\n").is_empty());
    assert_eq!(lines("ui/api.rs", "s.deliver_pending(&Operator::Workers, 10)\n"), vec![(1, RULES[4].name)]);
    assert!(lines("service/mod.rs", "s.deliver_pending(&Operator::Workers, 10)\n").is_empty());
    assert_eq!(lines("ui/error.rs", "res.set_status(code);\n"), vec![(1, RULES[5].name)]);
    assert!(lines("ui/pages.rs", "res.set_status(code);\n").is_empty());
}
