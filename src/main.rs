//! The `quartermaster` binary: configuration in, one subcommand out.

use std::process::ExitCode;

use clap::Parser;
use quartermaster::config::{AuditCommand, Cli, Command, PackagesCommand, TokenCommand, UsersCommand};
use quartermaster::domain::authz::Operator;
use quartermaster::service::{AuditAnchor, ChainCheck, Service};
use quartermaster::store::{Checkpoints, Db};
use quartermaster::{demo, scale, server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("quartermaster: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    if let Command::Serve(args) = &cli.command {
        // Refuse bad combinations before touching anything.
        args.check()?;
    }
    let url = cli.database_url()?;
    // The server checkpoints SQLite's log in the background, out of its writers' way; the
    // short-lived commands leave it to their commits.
    let checkpoints = match cli.command {
        Command::Serve(_) => Checkpoints::Background,
        _ => Checkpoints::OnCommit,
    };
    let db = Db::connect_with(&url, cli.database_max_connections, checkpoints)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    db.migrate().await.map_err(|e| format!("migrations failed: {e}"))?;
    match cli.command {
        Command::Migrate => {
            tracing::info!(backend = db.backend().name(), "migrations applied");
            Ok(())
        }
        Command::SeedDemo => {
            let seeded = demo::seed_if_empty(&db).await.map_err(|e| format!("seeding failed: {e}"))?;
            tracing::info!(seeded, "demo data");
            Ok(())
        }
        Command::Verify { anchor } | Command::Audit(AuditCommand::Verify { anchor }) => {
            verify(db, anchor.as_deref()).await
        }
        Command::Audit(AuditCommand::Export { format, from, to, who, object_type, object_id, action, output }) => {
            let filter = quartermaster::views::AuditFilter { who, object_type, object_id, action, from, to };
            audit_export(db, &filter, format, output.as_deref()).await
        }
        Command::SeedScale(args) => seed_scale(db, &args).await,
        Command::ImportUsers { file, apply } => import_users(db, &file, apply).await,
        Command::Token(command) => token(db, command).await,
        Command::CreateAdmin { email, name } => create_admin(db, &email, &name).await,
        Command::Users(UsersCommand::Disable { email }) => disable(db, &email).await,
        Command::Packages(command) => packages(db, command).await,
        Command::Backup { file } => {
            Service::new(db).backup(&Operator::Workers, &file).await.map_err(|e| format!("backup: {e}"))?;
            println!("backed up into {}", file.display());
            Ok(())
        }
        Command::Serve(args) => {
            if args.demo {
                demo::seed_if_empty(&db).await.map_err(|e| format!("seeding failed: {e}"))?;
            }
            let pool = db.pool().clone();
            let app = server::Application::build(db, args).await.map_err(|e| format!("cannot start: {e}"))?;
            tracing::info!(addr = %app.local_addr(), "serving");
            let served = app.run_until_stopped(server::shutdown_signal()).await.map_err(|e| e.to_string());
            // Closing the pool ends the checkpointer, and the last connection's close copies
            // the rest of SQLite's log into the database file, unless another process (a
            // command) has the file open: then the log stays, and the next open reads it.
            // Bounded: a connection some task still holds must not keep the process from
            // stopping.
            let closing = tokio::time::timeout(std::time::Duration::from_secs(10), pool.close()).await;
            if closing.is_err() {
                tracing::warn!("the database pool did not close within 10 s");
            }
            served
        }
    }
}

/// `quartermaster seed-scale`: fill an empty database, print the summary (and write it as
/// JSON when asked).
async fn seed_scale(db: Db, args: &quartermaster::config::ScaleArgs) -> Result<(), String> {
    use quartermaster::domain::clock::{Clock, SystemClock};
    let options = scale::ScaleOptions { scale: args.scale, people: args.people, seed: args.seed, progress: true };
    let summary = scale::seed_scale(&db, &options, SystemClock.now()).await.map_err(|e| format!("seed-scale: {e}"))?;
    println!("{summary}");
    if let Some(path) = &args.summary {
        let json = summary.to_json().map_err(|e| format!("seed-scale: {e}"))?;
        std::fs::write(path, json).map_err(|e| format!("cannot write the summary to {}: {e}", path.display()))?;
    }
    Ok(())
}

/// `quartermaster import-users`: each line's outcome, then a summary; fails when a line was refused.
async fn import_users(db: Db, file: &std::path::Path, apply: bool) -> Result<(), String> {
    use quartermaster::service::Imported;
    let csv = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let lines = Service::new(db)
        .import_people(&Operator::Workers, &csv, apply)
        .await
        .map_err(|e| format!("import-users: {e}"))?;
    for line in &lines {
        println!("{line}");
    }
    let refused = lines.iter().filter(|l| matches!(l.outcome, Imported::Refused(_))).count();
    let there = lines.iter().filter(|l| l.outcome == Imported::AlreadyThere).count();
    let done = lines.len() - refused - there;
    let verb = if apply { "added" } else { "would be added (run again with --apply)" };
    println!("{done} {verb}, {there} already there, {refused} refused");
    if refused > 0 {
        return Err(format!("{refused} line(s) refused"));
    }
    Ok(())
}

/// `quartermaster create-admin EMAIL [--name NAME]`.
async fn create_admin(db: Db, email: &str, name: &str) -> Result<(), String> {
    use quartermaster::service::AdminMade;
    match Service::new(db)
        .create_admin(&Operator::Workers, email, name)
        .await
        .map_err(|e| format!("create-admin: {e}"))?
    {
        AdminMade::NewPerson(id) => println!("{email} added (person {}) and made an administrator", id.0),
        AdminMade::Granted(id) => println!("{email} (person {}) is now an administrator", id.0),
        AdminMade::AlreadyAdmin(id) => println!("{email} (person {}) already is an administrator", id.0),
    }
    Ok(())
}

/// `quartermaster audit export`: the filter is checked before anything is written (a bad one
/// leaves no file behind); then the events, a thousand at a time.
async fn audit_export(
    db: Db,
    filter: &quartermaster::views::AuditFilter,
    format: quartermaster::config::ExportFormat,
    output: Option<&std::path::Path>,
) -> Result<(), String> {
    let export =
        Service::new(db).audit_export(&Operator::Workers, filter).await.map_err(|e| format!("audit export: {e}"))?;
    let write = async |mut out: &mut dyn std::io::Write| match format {
        quartermaster::config::ExportFormat::Csv => server::write_csv(export, &mut out).await,
        quartermaster::config::ExportFormat::Json => write_json(export, out).await,
    };
    let Some(path) = output else {
        // Not locked across the reads: a line at a time.
        let mut out = std::io::BufWriter::new(std::io::stdout());
        return write(&mut out).await.map_err(|e| format!("audit export: {e}"));
    };
    if path.exists() {
        return Err(format!("audit export: {} exists already", path.display()));
    }
    // Written beside it under another name, readable by its owner only, then linked into place
    // (never over a file): an export that fails leaves nothing behind.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // Only a file this run made is removed afterwards.
    let file = options.open(&partial).map_err(|e| format!("audit export: cannot create {}: {e}", partial.display()))?;
    let made = async {
        let mut out = std::io::BufWriter::new(file);
        write(&mut out).await?;
        let file = out.into_inner().map_err(|e| format!("cannot write: {e}"))?;
        file.sync_all().map_err(|e| format!("cannot write: {e}"))?;
        std::fs::hard_link(&partial, path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    }
    .await;
    let _ = std::fs::remove_file(&partial);
    made.map_err(|e| format!("audit export: {e}"))
}

/// The events as one JSON array, an event per line; `before` and `after` as the JSON they are.
async fn write_json(
    mut export: quartermaster::service::AuditExport,
    out: &mut dyn std::io::Write,
) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot write: {e}");
    let mut first = true;
    out.write_all(b"[").map_err(failed)?;
    while let Some(events) = export.next_page().await.map_err(|e| e.to_string())? {
        for e in events {
            let json = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::String(text.to_owned()));
            let at = chrono::DateTime::from_timestamp_millis(e.at).map(|t| t.to_rfc3339()).unwrap_or_default();
            let event = serde_json::json!({
                "id": e.id, "at": at, "actor_id": e.actor_id, "actor": e.actor, "action": e.action,
                "object_type": e.object_type, "object_id": e.object_id, "reason": e.reason,
                "before": json(&e.before), "after": json(&e.after), "token_id": e.token,
            });
            out.write_all(if first { b"\n" } else { b",\n" }).map_err(failed)?;
            first = false;
            out.write_all(event.to_string().as_bytes()).map_err(failed)?;
        }
    }
    out.write_all(b"\n]\n").map_err(failed)?;
    out.flush().map_err(failed)
}

/// `quartermaster users disable EMAIL`.
async fn disable(db: Db, email: &str) -> Result<(), String> {
    match Service::new(db).disable_person(&Operator::Workers, email).await.map_err(|e| format!("users disable: {e}"))? {
        Some(gone) => println!(
            "{email} disabled: {} request(s) canceled, {} assignment(s) ended, {} approval(s) passed on, {} session(s) \
             ended, {} API token(s) revoked",
            gone.requests_canceled, gone.assignments_ended, gone.approvals_reassigned, gone.sessions_ended, gone.tokens_revoked
        ),
        None => println!("{email} already was disabled"),
    }
    Ok(())
}

/// `quartermaster packages …`: export and plan as the operator, apply as an administrator.
async fn packages(db: Db, command: PackagesCommand) -> Result<(), String> {
    let service = Service::new(db);
    let read = |file: &std::path::Path| {
        std::fs::read_to_string(file).map_err(|e| format!("packages: cannot read {}: {e}", file.display()))
    };
    match command {
        PackagesCommand::Export { output } => {
            let text =
                service.export_packages(&Operator::Workers).await.map_err(|e| format!("packages export: {e}"))?;
            match output {
                Some(path) => {
                    use std::io::Write;
                    let mut file = std::fs::File::create_new(&path)
                        .map_err(|e| format!("packages export: cannot create {}: {e}", path.display()))?;
                    file.write_all(text.as_bytes())
                        .map_err(|e| format!("packages export: cannot write {}: {e}", path.display()))?;
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        PackagesCommand::Plan { file } => {
            let text = read(&file)?;
            let plan =
                service.plan_packages(&Operator::Workers, &text).await.map_err(|e| format!("packages plan: {e}"))?;
            print!("{}", plan.render());
            if !plan.changes.is_empty() {
                println!(
                    "\nTo apply it: quartermaster packages apply {} --plan {} --as ADMINISTRATOR-EMAIL",
                    file.display(),
                    plan.id
                );
            }
            Ok(())
        }
        PackagesCommand::Apply { file, plan, as_admin } => {
            let text = read(&file)?;
            let failed = |e: quartermaster::domain::DomainError| format!("packages apply: {e}");
            let user = service.person_id_by_email(&Operator::Workers, &as_admin).await.map_err(failed)?;
            let actor = service
                .actor(user)
                .await
                .map_err(failed)?
                .ok_or_else(|| format!("packages apply: {as_admin} is disabled"))?;
            let applied = service.apply_packages(&actor, &text, &plan).await.map_err(failed)?;
            println!("applied plan {}: {} change(s), {} audit event(s)", applied.plan, applied.changes, applied.events);
            Ok(())
        }
    }
}

/// `quartermaster token …`, as the operator.
async fn token(db: Db, command: TokenCommand) -> Result<(), String> {
    use quartermaster::domain::token::Scopes;
    use quartermaster::service::tokens::TokenBy;
    let service = Service::new(db);
    let failed = |e: quartermaster::domain::DomainError| format!("token: {e}");
    let when = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M UTC").to_string())
    };
    match command {
        TokenCommand::Create { user, name, scopes, days } => {
            let scopes = Scopes::parse(&scopes)?;
            let owner = service.person_by_email(&Operator::Workers, &user).await.map_err(failed)?;
            let (token, secret) =
                service.create_token(TokenBy::CommandLine, &owner, &name, &scopes, days).await.map_err(failed)?;
            println!("token {} for {user} ({}), until {}", token.id, token.scopes.join(" "), when(token.expires_at));
            println!("{secret}");
            eprintln!("Keep the secret now: it is not stored and cannot be shown again.");
            Ok(())
        }
        TokenCommand::List { user } => {
            let owner = service.person_id_by_email(&Operator::Workers, &user).await.map_err(failed)?;
            let tokens = service.tokens(TokenBy::CommandLine, owner).await.map_err(failed)?;
            for t in &tokens {
                let state = match (t.active, t.revoked_at) {
                    (true, _) => format!("until {}", when(t.expires_at)),
                    (false, Some(at)) => format!("revoked {}", when(at)),
                    (false, None) => format!("expired {}", when(t.expires_at)),
                };
                let used =
                    t.last_used_at.map_or_else(|| "never used".to_owned(), |at| format!("last used {}", when(at)));
                println!("{}\t{}\t{}\t{state}\t{used}", t.id, t.name, t.scopes.join(" "));
            }
            println!("{} token(s)", tokens.len());
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            service.revoke_token(TokenBy::CommandLine, id).await.map_err(failed)?;
            println!("token {id} revoked");
            Ok(())
        }
    }
}

/// `quartermaster verify`: walk the chain (from the command line, as the operator), print the
/// head to keep, and fail on the first broken link.
async fn verify(db: Db, anchor: Option<&str>) -> Result<(), String> {
    let anchor = anchor.map(str::parse::<AuditAnchor>).transpose()?;
    let service = Service::new(db);
    let check = match anchor {
        // An anchor kept outside: checked as given (the walk is not recorded).
        Some(anchor) => service.verify_audit_chain_against(&Operator::Workers, Some(&anchor)).await,
        // Otherwise against the head the last intact walk recorded, and recorded for the audit log.
        None => service.verify_and_record_audit_chain(&Operator::Workers).await,
    }
    .map_err(|e| format!("cannot read the audit trail: {e:?}"))?;
    match check {
        ChainCheck::Intact { events, head } => {
            let head = head.map_or_else(|| "none (no events yet)".to_owned(), |h| h.to_string());
            println!("audit chain intact: {events} events; head {head}");
            Ok(())
        }
        ChainCheck::Broken { event_id, why } => Err(format!("audit chain broken at event {event_id}: {why}")),
    }
}
