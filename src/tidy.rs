//! Tidy: the layering rules of ARCHITECTURE.md, checked over the source tree.
//!
//! - `domain` mentions neither axum, leptos nor sqlx;
//! - SQL (`sqlx::query…`, `sqlx::raw_sql`) lives in `store` only;
//! - "now" comes from the injected clock: `Utc::now()` only in `domain/clock.rs`;
//! - `service` and `auth` do not reach up into `server`;
//! - system operations run as `Operator::Workers` only from the worker loop, the CLI and the
//!   demo seeding (REST and server functions pass the person);
//! - the catalog permissions are checked only where the capability handles are made
//!   (`service/capability.rs`): an admin operation is a method of the handle it needs;
//! - a response status is set in one place per kind of answer: pages (`ui/components.rs`) and
//!   server functions (`server.rs`, from the error's own status) — never as a side effect of
//!   converting an error;
//! - the router mounts only what the authorization sweep (`tests/sweep.rs`) enumerates: the
//!   plain routes (`server::plain_routes`, in one loop), the Leptos routes (pages and server
//!   functions, from `generate_route_list(App)`), the REST API (`rest::router`, every
//!   operation of which is in the OpenAPI document), the client bundle under `/pkg` and the
//!   fallback (static files, the not-found page) — no other `.route(`, `.nest(`, `.merge(`…
//!   anywhere under `src/`;
//! - every server function names its endpoint, and the endpoint is its own name (stable paths
//!   under `/api/`, one per function, that the sweep can name exactly).
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
        name: "catalog permissions are checked where the capability handles are made",
        applies: |p| !matches!(p, "service/capability.rs" | "domain/authz.rs"),
        needles: &[
            "Permission::CreateCatalog",
            "Permission::ManageCatalog",
            "Permission::ManagePackages",
            "Permission::AssignInCatalog",
            "Permission::ReadCatalog",
        ],
        in_tests: false,
    },
    Rule {
        name: "response statuses are set at the boundary only",
        applies: |p| p != "ui/components.rs",
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

/// The lines of a file that are not comments, numbered from 1, each saying whether it is in a
/// test module.
fn code_lines(text: &str) -> Vec<(usize, &str, bool)> {
    let mut out = Vec::new();
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
        if !trimmed.starts_with("//") {
            out.push((n + 1, line, in_tests));
        }
    }
    out
}

/// The violations in one file (`path` relative to `src/`).
fn check(path: &str, text: &str) -> Vec<Violation> {
    let mut found = Vec::new();
    for (n, line, in_tests) in code_lines(text) {
        for rule in RULES {
            if (in_tests && !rule.in_tests) || !(rule.applies)(path) {
                continue;
            }
            if rule.needles.iter().any(|needle| line.contains(needle)) {
                found.push(Violation { file: path.to_owned(), line: n, rule: rule.name, text: line.to_owned() });
            }
        }
    }
    found.extend(stray_mounts(path, text));
    found.extend(unnamed_server_fns(path, text));
    found.extend(unspanned_operations(path, text));
    found
}

const SPAN_RULE: &str = "every public service operation carries a tracing span naming its actor and object";

/// `pub async fn` in the service layer without `#[tracing::instrument(` among the attribute
/// lines right above it.
fn unspanned_operations(path: &str, text: &str) -> Vec<Violation> {
    if !path.starts_with("service/") {
        return Vec::new();
    }
    let lines = code_lines(text);
    let mut found = Vec::new();
    for (i, (n, line, in_tests)) in lines.iter().enumerate() {
        // Operations are the service's methods (`&self` on this line or the next two).
        let signature: String = lines[i..].iter().take(3).map(|(_, l, _)| *l).collect();
        if *in_tests || !line.trim_start().starts_with("pub async fn ") || !signature.contains("&self") {
            continue;
        }
        let spanned = lines[..i]
            .iter()
            .rev()
            // Back to the end of the item before (or the `impl` block's opening).
            .take_while(|(_, l, _)| !matches!(l.trim_end().chars().last(), Some('}' | ';' | '{') | None))
            .any(|(_, l, _)| l.contains("#[tracing::instrument("));
        if !spanned {
            found.push(Violation { file: path.to_owned(), line: *n, rule: SPAN_RULE, text: (*line).to_owned() });
        }
    }
    found
}

const MOUNTS_RULE: &str = "the router mounts only what the authorization sweep enumerates";

/// Calls that mount something on a router (or serve one).
const MOUNTS: &[&str] = &[
    ".route(",
    ".route_service(",
    ".nest(",
    ".nest_service(",
    ".merge(",
    ".fallback(",
    ".fallback_service(",
    ".leptos_routes(",
    ".leptos_routes_with_context(",
    ".leptos_routes_with_handler(",
    "Router::new(",
    "Router::<",
    "axum::serve(",
];

/// The sanctioned mounts, each allowed once, in the router's file only: (the code around it,
/// whitespace removed; the mount inside it; code that must also be in the file).
const SANCTIONED_MOUNTS: &[(&str, &str, Option<&str>)] = &[
    ("letmutrouter=Router::new();", "Router::new(", None),
    // The plain routes, from the one list the sweep enumerates.
    ("for(path,_,handler)inplain_routes(){router=router.route(path,handler);}", ".route(", None),
    // The SCIM service provider's routes.
    ("for(path,handler)inscim_routes(){router=router.route(path,handler);}", ".route(", None),
    // Its methods not taken answer a SCIM error (405).
    ("letonly=|r:axum::routing::MethodRouter<AppState>|r.fallback(scim::method_not_allowed);", ".fallback(", None),
    // Pages and server functions, from the route list the sweep enumerates.
    (
        ".leptos_routes_with_context(&state,routes,",
        ".leptos_routes_with_context(",
        Some("letroutes=generate_route_list(App);"),
    ),
    // The client bundle.
    (".nest_service(\"/pkg\",", ".nest_service(", None),
    // The REST API, whose every operation the sweep reads from its OpenAPI document.
    (".merge(crate::rest::router())", ".merge(", None),
    // Static files from the site root, and the not-found page.
    (".fallback(leptos_axum::file_and_error_handler_with_context::<AppState,_>(", ".fallback(", None),
    ("axum::serve(listener,self.router.", "axum::serve(", None),
    // `/metrics` alone, on the operators' address (`--metrics-addr`).
    ("letmetrics_router=Router::new().route(\"/metrics\",get(crate::metrics::scrape_unguarded))", "Router::new(", None),
    ("letmetrics_router=Router::new().route(\"/metrics\",get(crate::metrics::scrape_unguarded))", ".route(", None),
    ("axum::serve(metrics_listener,metrics_router)", "axum::serve(", None),
];

fn is_router_file(path: &str) -> bool {
    matches!(path, "server.rs" | "server/mod.rs")
}

/// Mounting calls outside [`SANCTIONED_MOUNTS`] (test modules and comment lines aside).
fn stray_mounts(path: &str, text: &str) -> Vec<Violation> {
    // The code without whitespace, and the line of each of its bytes.
    let mut code = String::new();
    let mut line_of = Vec::new();
    let mut lines = std::collections::HashMap::new();
    for (n, line, in_tests) in code_lines(text) {
        if in_tests {
            continue;
        }
        lines.insert(n, line);
        for ch in line.chars().filter(|c| !c.is_whitespace()) {
            code.push(ch);
            line_of.extend(std::iter::repeat_n(n, ch.len_utf8()));
        }
    }
    // Where each sanctioned mount is (once at most; a second copy is a stray).
    let mut sanctioned = Vec::new();
    if is_router_file(path) {
        for (around, mount, requires) in SANCTIONED_MOUNTS {
            if requires.is_some_and(|r| !code.contains(r)) {
                continue;
            }
            if let Some(at) = code.find(around) {
                sanctioned.push(at + around.find(mount).unwrap_or_default());
            }
        }
    }
    let mut found = Vec::new();
    for mount in MOUNTS {
        for (at, _) in code.match_indices(mount) {
            if !sanctioned.contains(&at) {
                let line = line_of[at];
                found.push(Violation {
                    file: path.to_owned(),
                    line,
                    rule: MOUNTS_RULE,
                    text: lines.get(&line).copied().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    found.sort_by_key(|v| v.line);
    found
}

const ENDPOINT_RULE: &str = "every server function names its endpoint, and it is the function's name";

/// Each `#[server]` attribute (test modules aside): its line, its text, the endpoint it names
/// and the function it is on.
fn server_fns(text: &str) -> Vec<(usize, &str, Option<&str>, Option<&str>)> {
    let lines = code_lines(text);
    let mut out = Vec::new();
    for (i, (n, line, in_tests)) in lines.iter().enumerate() {
        let attribute = line.trim();
        if *in_tests || !(attribute.starts_with("#[server]") || attribute.starts_with("#[server(")) {
            continue;
        }
        let endpoint = attribute
            .split("endpoint")
            .nth(1)
            .and_then(|rest| rest.trim_start().strip_prefix('='))
            .and_then(|rest| rest.trim_start().strip_prefix('"'))
            .and_then(|rest| rest.split('"').next());
        let function = lines[i + 1..]
            .iter()
            .find_map(|(_, l, _)| l.split_once("fn ").map(|(_, rest)| rest))
            .and_then(|rest| rest.split(['(', '<']).next())
            .map(str::trim);
        out.push((*n, *line, endpoint, function));
    }
    out
}

/// `#[server]` attributes without `endpoint = "…"`, or naming another endpoint than the
/// function they are on.
fn unnamed_server_fns(path: &str, text: &str) -> Vec<Violation> {
    server_fns(text)
        .into_iter()
        .filter(|(_, _, endpoint, function)| endpoint.is_none() || endpoint != function)
        .map(|(n, line, _, _)| Violation { file: path.to_owned(), line: n, rule: ENDPOINT_RULE, text: line.to_owned() })
        .collect()
}

const DUPLICATE_ENDPOINT_RULE: &str = "no two server functions share an endpoint (one would silently shadow the other)";

/// Endpoints named twice across the files (`(path, text)`): every use after the first.
fn duplicate_endpoints(files: &[(String, String)]) -> Vec<Violation> {
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    for (path, text) in files {
        for (n, line, endpoint, _) in server_fns(text) {
            if let Some(endpoint) = endpoint {
                if !seen.insert(endpoint.to_owned()) {
                    found.push(Violation {
                        file: path.clone(),
                        line: n,
                        rule: DUPLICATE_ENDPOINT_RULE,
                        text: line.to_owned(),
                    });
                }
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
    let mut texts = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        if rel == SELF {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        violations.extend(check(&rel, &text));
        texts.push((rel, text));
    }
    violations.extend(duplicate_endpoints(&texts));
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
    assert_eq!(lines("service/views.rs", "actor.require(Permission::ReadCatalog(c))?;\n"), vec![(1, RULES[5].name)]);
    assert_eq!(lines("ui/api.rs", "if actor.can(Permission::ManagePackages(c)) {\n"), vec![(1, RULES[5].name)]);
    assert!(lines("service/capability.rs", "actor.require(Permission::ReadCatalog(c))?;\n").is_empty());
    assert_eq!(lines("ui/error.rs", "res.set_status(code);\n"), vec![(1, RULES[6].name)]);
    assert!(lines("ui/components.rs", "res.set_status(code);\n").is_empty());
}

/// The router's file as it is mounts only what is sanctioned; anything more is caught.
#[test]
fn service_operations_without_a_span_are_caught() {
    let lines = |path: &str, text: &str| check(path, text).iter().map(|v| (v.line, v.rule)).collect::<Vec<_>>();
    let bare = "impl Service {\n    /// Does it.\n    pub async fn decide(&self) {}\n}\n";
    assert_eq!(lines("service/x.rs", bare), vec![(3, SPAN_RULE)]);
    let spanned = "impl Service {\n    /// Does it.\n    #[tracing::instrument(name = \"decide\", skip_all)]\n    pub async fn decide(&self) {}\n}\n";
    assert!(lines("service/x.rs", spanned).is_empty());
    assert!(lines("store/x.rs", bare).is_empty(), "only the service layer");
    assert!(lines("service/x.rs", "pub(crate) async fn helper() {}\nasync fn private() {}\n").is_empty());
}

#[test]
fn stray_mounts_are_caught() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (file, text) = ["server.rs", "server/mod.rs"]
        .iter()
        .find_map(|f| std::fs::read_to_string(src.join(f)).ok().map(|t| (*f, t)))
        .expect("the router's file");
    let lines = |path: &str, text: &str| check(path, text).iter().map(|v| (v.line, v.rule)).collect::<Vec<_>>();
    assert!(lines(file, &text).is_empty(), "{:?}", check(file, &text));
    // Every sanctioned mount is in the file (else the rule checks nothing).
    let code: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for (around, _, requires) in SANCTIONED_MOUNTS {
        assert!(code.contains(around) && requires.is_none_or(|r| code.contains(r)), "{file} no longer has {around}");
    }
    // A stray route after the sanctioned ones, on its own line or hidden in a chain.
    // (Before the file's test module, if it has one: the checker spares test code.)
    let (head, tests) = text.split_at(text.find("\n#[cfg(test)]").unwrap_or(text.len()));
    let n = head.lines().count();
    let stray = format!("{head}\nfn more(r: Router) -> Router {{\n    r.route(\"/debug\", get(debug))\n}}\n{tests}");
    assert_eq!(lines(file, &stray), vec![(n + 3, MOUNTS_RULE)]);
    let chained = text.replacen(".nest_service(", ".route(\"/x\", get(x))\n        .nest_service(", 1);
    assert_eq!(lines(file, &chained).len(), 1);
    // A second copy of a sanctioned mount, or one in another file, is a stray.
    let twice = format!("{head}\nfn more(r: Router) -> Router {{ r.nest_service(\"/pkg\", x) }}\n{tests}");
    assert_eq!(lines(file, &twice), vec![(n + 2, MOUNTS_RULE)]);
    assert_eq!(lines("ui/x.rs", "fn f(r: Router) -> Router {\n    r.merge(other())\n}\n"), vec![(2, MOUNTS_RULE)]);
    assert_eq!(lines("auth/x.rs", "let r = Router::new()\n    .nest(\"/v2\", api);\n").len(), 2);
    // The plain routes' loop is sanctioned only over plain_routes().
    let other_list = text.replace("in plain_routes()", "in more_routes()");
    assert_eq!(lines(file, &other_list).len(), 1);
    // Test modules may build routers of their own.
    assert!(lines("ui/x.rs", "#[cfg(test)]\nmod tests { fn t() { Router::new().route(\"/\", get(h)); } }\n").is_empty());
}

#[test]
fn server_functions_name_their_endpoints() {
    let lines = |text: &str| check("ui/api.rs", text).iter().map(|v| (v.line, v.rule)).collect::<Vec<_>>();
    assert!(lines("#[server(endpoint = \"decide\")]\npub async fn decide() -> R {}\n").is_empty());
    assert!(lines("/// Doc.\n#[server(endpoint = \"decide\")]\n/// More.\npub async fn decide(id: i64) -> R {}\n")
        .is_empty());
    assert_eq!(lines("#[server]\npub async fn decide() -> R {}\n"), vec![(1, ENDPOINT_RULE)]);
    assert_eq!(lines("#[server(prefix = \"/api\")]\npub async fn decide() -> R {}\n"), vec![(1, ENDPOINT_RULE)]);
    assert_eq!(lines("#[server(endpoint = \"decide2\")]\npub async fn decide() -> R {}\n"), vec![(1, ENDPOINT_RULE)]);
    // Two modules, one endpoint: the second registration would shadow the first.
    let files = [
        ("ui/api.rs".to_owned(), "#[server(endpoint = \"decide\")]\npub async fn decide() -> R {}\n".to_owned()),
        ("ui/more.rs".to_owned(), "\n#[server(endpoint = \"decide\")]\npub async fn decide() -> R {}\n".to_owned()),
    ];
    let dups = duplicate_endpoints(&files);
    assert_eq!(
        dups.iter().map(|v| (v.file.as_str(), v.line, v.rule)).collect::<Vec<_>>(),
        vec![("ui/more.rs", 2, DUPLICATE_ENDPOINT_RULE)]
    );
    assert!(duplicate_endpoints(&files[..1]).is_empty());
}
