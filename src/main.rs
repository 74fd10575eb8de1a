//! The `quartermaster` binary: configuration in, one subcommand out.

use std::process::ExitCode;

use clap::Parser;
use quartermaster::config::{Cli, Command};
use quartermaster::{demo, server, store::Db, telemetry};

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
    let db = Db::connect(&cli.database_url, cli.database_max_connections)
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
        Command::Serve(args) => {
            if args.demo {
                demo::seed_if_empty(&db).await.map_err(|e| format!("seeding failed: {e}"))?;
            }
            let app = server::Application::build(db, args).await.map_err(|e| format!("cannot start: {e}"))?;
            tracing::info!(addr = %app.local_addr(), "serving");
            app.run_until_stopped(server::shutdown_signal()).await.map_err(|e| e.to_string())
        }
    }
}
