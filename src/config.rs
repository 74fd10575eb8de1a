//! Typed configuration: every option is a flag and an environment variable (clap `env`).
//! Secrets are read from the environment or a file, never from a flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "quartermaster", version, about = "Self-hosted access governance portal")]
pub struct Cli {
    /// Database URL: `sqlite://data/quartermaster.db` or `postgres://user@host/db`.
    #[arg(long, env = "QM_DATABASE_URL", default_value = "sqlite://data/quartermaster.db", global = true)]
    pub database_url: String,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, env = "QM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Largest number of pooled database connections.
    #[arg(long, env = "QM_DATABASE_MAX_CONNECTIONS", default_value_t = 10, global = true)]
    pub database_max_connections: u32,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve the portal (and run its background workers).
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Load the demo organisation (people, catalogs, packages) into an empty database.
    SeedDemo,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "QM_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Offer demo sign-in (pick a person) and seed demo data into an empty database.
    /// Refused unless the address is a loopback address.
    #[arg(long, env = "QM_DEMO", default_value_t = false)]
    pub demo: bool,

    /// Folder holding the built client (`pkg/` with the wasm, JS and CSS, and public assets).
    #[arg(long, env = "QM_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// The URL people use to reach the portal; `https://…` turns on secure cookies and HSTS.
    #[arg(long, env = "QM_PUBLIC_URL")]
    pub public_url: Option<String>,
}

impl ServeArgs {
    /// The one rule for demo mode: it exists for trying the portal on a laptop.
    pub fn check(&self) -> Result<(), String> {
        if self.demo && !self.addr.ip().is_loopback() {
            return Err(format!(
                "--demo offers sign-in without a password, so it is only allowed on a loopback \
                 address; {} is not one. Bind to 127.0.0.1 or drop --demo.",
                self.addr.ip()
            ));
        }
        Ok(())
    }

    pub fn is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: &str, demo: bool) -> ServeArgs {
        ServeArgs {
            addr: addr.parse().unwrap(),
            demo,
            site_root: PathBuf::from("target/site"),
            public_url: None,
        }
    }

    #[test]
    fn demo_only_on_loopback() {
        assert!(args("127.0.0.1:3000", true).check().is_ok());
        assert!(args("[::1]:3000", true).check().is_ok());
        let err = args("0.0.0.0:3000", true).check().unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(args("0.0.0.0:3000", false).check().is_ok());
    }
}
