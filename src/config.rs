//! Typed configuration: every option is a flag and an environment variable (clap `env`).
//! Secrets are read from the environment or a file, never from a flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "quartermaster", version, about = "Self-hosted access governance portal")]
pub struct Cli {
    /// Database URL: `sqlite://data/quartermaster.db` or `postgres://user@host/db`. A URL that
    /// carries a password belongs in the environment, or in a file named by
    /// `QM_DATABASE_URL_FILE` (which wins when set).
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

impl Cli {
    /// The database URL to use: from the file named by `QM_DATABASE_URL_FILE` when set, else
    /// the flag or `QM_DATABASE_URL`.
    pub fn database_url(&self) -> Result<String, String> {
        match std::env::var("QM_DATABASE_URL_FILE") {
            Ok(path) if !path.trim().is_empty() => std::fs::read_to_string(path.trim())
                .map(|url| url.trim().to_owned())
                .map_err(|e| format!("cannot read QM_DATABASE_URL_FILE {}: {e}", path.trim())),
            _ => {
                // A password on the command line is visible to every user of the machine (`ps`).
                let from_env = std::env::var("QM_DATABASE_URL").is_ok_and(|v| v == self.database_url);
                let has_password = url::Url::parse(&self.database_url).is_ok_and(|u| {
                    u.password().is_some() || u.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password"))
                });
                if has_password && !from_env {
                    return Err("the database URL carries a password: pass it in QM_DATABASE_URL or in the \
                                file named by QM_DATABASE_URL_FILE, never as --database-url (visible to \
                                every user of this machine)"
                        .to_owned());
                }
                Ok(self.database_url.clone())
            }
        }
    }
}

/// A URL with its password (if any) replaced, for logs and `Debug`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("redacted"));
            }
            if url.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k.eq_ignore_ascii_case("password") { "redacted".to_owned() } else { v.into_owned() };
                        (k.into_owned(), v)
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

/// `Debug` never prints a secret: the database URL's password is redacted.
impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("database_url", &redact_url(&self.database_url))
            .field("log_format", &self.log_format)
            .field("database_max_connections", &self.database_max_connections)
            .field("command", &self.command)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
// Parsed once at start; boxing the serve options would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Apply migrations, then serve the portal (and run its background workers).
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Load the demo organisation (people, catalogs, packages) into an empty database.
    SeedDemo,
    /// Prove the audit trail's hash chain and print its head (`ID:HASH`). Keep the head
    /// somewhere the database's writers cannot reach; passing it back as `--anchor` also
    /// catches events cut from the end. Exits 1 when the chain is broken.
    Verify {
        /// A head printed by an earlier `verify`: that event must still be there, unchanged.
        #[arg(long, env = "QM_AUDIT_ANCHOR")]
        anchor: Option<String>,
    },
    /// Fill an empty database with a large organisation for benchmarks (by default 100,000
    /// people, 2,000 packages, 1,000,000 assignments, 20,000 pending requests, 10,000,000 audit
    /// events), through bulk inserts. Refused when the database holds anyone.
    SeedScale(ScaleArgs),
    /// Add people from a CSV: `email,name[,department[,job title[,manager's email]]]`, one per
    /// line (a header line allowed; managers before their reports). Shows what each line would
    /// do; `--apply` adds them, each audited. Exits 1 when any line is refused.
    ImportUsers {
        /// The CSV file.
        file: PathBuf,
        /// Add them (without it, nothing is written).
        #[arg(long)]
        apply: bool,
    },
    /// API tokens for the REST API (`/api/v1`): make one for a person, list theirs, revoke
    /// one. A token acts as its owner with only its scopes.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Make a person an administrator, adding them when they are not here yet (the first
    /// administrator of a new installation, or another). Audited.
    CreateAdmin {
        /// Their email (how they sign in).
        email: String,
        /// Their name, for someone new.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// People: `users disable EMAIL` takes a leaver out (their requests canceled, access taken
    /// back, sessions ended), as an administrator disabling them would.
    #[command(subcommand)]
    Users(UsersCommand),
    /// The audit trail: `audit verify` proves its hash chain (as `verify`), `audit export`
    /// writes its events as CSV or JSON.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Packages as code: `packages export` writes the catalogs, their resources, access
    /// packages and policies as a TOML file; `packages plan FILE` shows what applying it would
    /// change; `packages apply FILE --plan ID --as EMAIL` does that, in one transaction.
    #[command(subcommand)]
    Packages(PackagesCommand),
    /// Copy the database into a new file while the portal serves (SQLite: one consistent
    /// snapshot; PostgreSQL: says what to run instead).
    Backup {
        /// The new file.
        file: PathBuf,
    },
}

/// `audit …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Prove the hash chain and print its head (`ID:HASH`); exits 1 naming the first broken
    /// event. The same as `verify`.
    Verify {
        /// A head printed by an earlier walk: that event must still be there, unchanged.
        #[arg(long, env = "QM_AUDIT_ANCHOR")]
        anchor: Option<String>,
    },
    /// Write the events (newest first) as CSV, the audit log's download, or as a JSON array,
    /// narrowed as the audit log page narrows them. Exits 1 on a bad filter, writing nothing.
    Export {
        /// `csv` or `json`.
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// From this day on (`YYYY-MM-DD`, UTC).
        #[arg(long, default_value = "")]
        from: String,
        /// Up to and including this day (`YYYY-MM-DD`, UTC).
        #[arg(long, default_value = "")]
        to: String,
        /// Only what this person did (email or id).
        #[arg(long, default_value = "")]
        who: String,
        /// Only events about this kind of object (`request`, `assignment`, `user`, …).
        #[arg(long, default_value = "")]
        object_type: String,
        /// Only events about the object with this id.
        #[arg(long, default_value = "")]
        object_id: String,
        /// Only this action (`request.submitted`, `assignment.expired`, …).
        #[arg(long, default_value = "")]
        action: String,
        /// Write into this new file instead of standard output (an existing file is refused).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// How `audit export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// `packages …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PackagesCommand {
    /// Write every catalog (with its resources, access packages and their policies) as TOML:
    /// people by email, groups, organizations and systems by name.
    Export {
        /// Write into this new file instead of standard output (an existing file is refused).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Show what applying FILE would change: each object added, changed (field by field) or
    /// disabled (left out of the file), what that does to requests and assignments under way,
    /// and the plan's id. Writes nothing. Exits 1 when the file is not valid.
    Plan {
        /// The file (as `export` writes it).
        file: PathBuf,
    },
    /// Apply FILE as the plan with this id showed it, in one transaction, audited as the
    /// administrator named; refused (nothing written) when the database or the file changed
    /// since the plan.
    Apply {
        file: PathBuf,
        /// The id `plan` printed.
        #[arg(long)]
        plan: String,
        /// The administrator applying it (their email): the audit trail names them.
        #[arg(long = "as")]
        as_admin: String,
    },
}

/// `users …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum UsersCommand {
    /// Disable a person: the leaver path, audited. Exits 0 when they already were disabled.
    Disable {
        /// Their email.
        email: String,
    },
}

/// `token …`: each is audited as done at the command line.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token for a person; prints its secret, which cannot be shown again.
    Create {
        /// The owner's email.
        #[arg(long)]
        user: String,
        /// What the token is for, to know it by.
        #[arg(long)]
        name: String,
        /// Some of read, request, decide, admin, metrics, scim (comma-separated).
        #[arg(long, default_value = "read")]
        scopes: String,
        /// How many days it lasts (at most 366).
        #[arg(long, default_value_t = 90)]
        days: u32,
    },
    /// A person's tokens, newest first.
    List {
        /// The owner's email.
        #[arg(long)]
        user: String,
    },
    /// Revoke a token by its id (as `list` shows it).
    Revoke { id: i64 },
}

/// `seed-scale`: how big, which organisation, where the summary goes.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Every count times this: 0.01 gives 1,000 people, 10,000 assignments, 100,000 audit events.
    #[arg(long, env = "QM_SCALE", default_value_t = 1.0)]
    pub scale: f64,
    /// The number of people, whatever the scale.
    #[arg(long, env = "QM_SCALE_PEOPLE")]
    pub people: Option<u32>,
    /// The random seed: the same seed gives the same organisation.
    #[arg(long, env = "QM_SCALE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Also write the summary (counts, timings, ids for benchmarks) as JSON to this file.
    #[arg(long, env = "QM_SCALE_SUMMARY")]
    pub summary: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "QM_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Offer demo sign-in (pick a person) and seed demo data into an empty database.
    /// Refused unless the address is a loopback address; refused with an identity provider or
    /// a public URL, and over a database holding anyone but the demo people.
    #[arg(long, env = "QM_DEMO", default_value_t = false)]
    pub demo: bool,

    /// Folder holding the built client (`pkg/` with the wasm, JS and CSS, and public assets).
    #[arg(long, env = "QM_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// The URL people use to reach the portal; `https://…` turns on secure cookies and HSTS.
    /// When set, only its host is served and only its origin may post.
    #[arg(long, env = "QM_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Serve pages only: this instance runs no background workers (delivery, time-outs,
    /// expiry, session clean-up). At least one instance on the database must run them.
    #[arg(long, env = "QM_NO_WORKERS", default_value_t = false)]
    pub no_workers: bool,

    /// Also serve `/metrics` (Prometheus) without a token on this address, for a scraper on a
    /// network only operators reach (e.g. `127.0.0.1:9464`). Without it, `/metrics` on the
    /// portal's address takes an administrator's API token with the `metrics` scope.
    #[arg(long, env = "QM_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    #[command(flatten)]
    pub oidc: OidcArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub mail: MailArgs,
}

/// Email notifications. Without an SMTP server none are sent (nor queued). The SMTP password
/// is read from `QM_SMTP_PASSWORD` or the file named by `QM_SMTP_PASSWORD_FILE`, never a flag.
#[derive(Debug, Clone, clap::Args)]
pub struct MailArgs {
    /// The SMTP server notifications go through: `smtp://host:25` (plain; add `?tls=required`
    /// for STARTTLS) or `smtps://host:465` (TLS from the start).
    #[arg(long = "smtp-url", env = "QM_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The user to sign in to the SMTP server as (with the password from the environment).
    #[arg(long = "smtp-user", env = "QM_SMTP_USER")]
    pub smtp_user: Option<String>,
    /// Who notifications come from: `Quartermaster <access@example.com>`.
    #[arg(long = "mail-from", env = "QM_MAIL_FROM", default_value = "Quartermaster <quartermaster@localhost>")]
    pub from: String,
    /// Days before an assignment ends that its holder is emailed (comma-separated).
    #[arg(long = "notify-expiring-days", env = "QM_NOTIFY_EXPIRING_DAYS", value_delimiter = ',', default_values_t = [14, 3])]
    pub expiring_days: Vec<u32>,
}

impl Default for MailArgs {
    /// The command line's defaults: no mail server.
    fn default() -> Self {
        Self {
            smtp_url: None,
            smtp_user: None,
            from: "Quartermaster <quartermaster@localhost>".to_owned(),
            expiring_days: crate::service::DEFAULT_EXPIRY_WARNINGS.to_vec(),
        }
    }
}

impl MailArgs {
    /// The mailer these settings describe (none without an SMTP URL); links in emails start
    /// at `base_url`, the portal as people reach it.
    pub fn mailer(&self, base_url: &str) -> Result<Option<crate::notify::Mailer>, String> {
        let Some(url) = self.smtp_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let credentials = match &self.smtp_user {
            Some(user) if !user.trim().is_empty() => Some((user.trim().to_owned(), smtp_password()?)),
            _ => None,
        };
        crate::notify::Mailer::new(url, credentials, &self.from, base_url).map(Some)
    }
}

/// The SMTP password: from the file named by `QM_SMTP_PASSWORD_FILE` when set, else
/// `QM_SMTP_PASSWORD`.
fn smtp_password() -> Result<String, String> {
    match std::env::var("QM_SMTP_PASSWORD_FILE") {
        Ok(path) if !path.trim().is_empty() => std::fs::read_to_string(path.trim())
            .map(|p| p.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("cannot read QM_SMTP_PASSWORD_FILE {}: {e}", path.trim())),
        _ => std::env::var("QM_SMTP_PASSWORD").map_err(|_| {
            "--smtp-user is set: give its password in QM_SMTP_PASSWORD or QM_SMTP_PASSWORD_FILE".to_owned()
        }),
    }
}

/// Session lifetimes, request limits and rate limits. Over a rate limit the answer is 429
/// with `Retry-After`; over the body limit, 413; nothing is changed either way.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// A session ends after this many minutes without a request (real idle time: activity
    /// extends it, at most every tenth of the timeout, so an active session is not written
    /// on every request).
    #[arg(long, env = "QM_SESSION_IDLE_MINUTES", default_value_t = 480, value_parser = clap::value_parser!(u32).range(1..))]
    pub session_idle_minutes: u32,
    /// A session ends this many hours after sign-in, however active.
    #[arg(long, env = "QM_SESSION_MAX_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..))]
    pub session_max_hours: u32,
    /// The largest request body accepted, in KiB.
    #[arg(long, env = "QM_MAX_BODY_KIB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_body_kib: u32,
    /// Sign-in attempts (`/auth/*`) per client address per minute; bursts up to the same
    /// number. 0 turns the limit off.
    #[arg(long, env = "QM_RATE_SIGN_IN_PER_MINUTE", default_value_t = 60)]
    pub rate_sign_in_per_minute: u32,
    /// Server-function calls (`/api/*`) per session per second; bursts up to ten times that.
    /// 0 turns the limit off.
    #[arg(long, env = "QM_RATE_API_PER_SESSION", default_value_t = 10)]
    pub rate_api_per_session: u32,
    /// Server-function calls per client address per second; bursts up to ten times that.
    /// 0 turns the limit off.
    #[arg(long, env = "QM_RATE_API_PER_ADDRESS", default_value_t = 50)]
    pub rate_api_per_address: u32,
    /// Reverse proxies in front of the portal (comma-separated addresses or CIDR blocks, e.g.
    /// `10.0.0.0/8`): from these peers the client's address is read from `X-Forwarded-For`
    /// (the nearest address that is not a trusted proxy), for the per-address limits.
    #[arg(long, env = "QM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
}

impl Default for LimitArgs {
    /// The same values as the command line's defaults.
    fn default() -> Self {
        Self {
            session_idle_minutes: 480,
            session_max_hours: 12,
            max_body_kib: 256,
            rate_sign_in_per_minute: 60,
            rate_api_per_session: 10,
            rate_api_per_address: 50,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for ServeArgs {
    /// The command line's defaults (tests start from these).
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            demo: false,
            site_root: PathBuf::from("target/site"),
            public_url: None,
            no_workers: false,
            metrics_addr: None,
            oidc: OidcArgs::default(),
            limits: LimitArgs::default(),
            mail: MailArgs::default(),
        }
    }
}

/// Sign-in through the company's OpenID Connect provider. The client secret is read from
/// `QM_OIDC_CLIENT_SECRET` or the file named by `QM_OIDC_CLIENT_SECRET_FILE`, never a flag.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OidcArgs {
    /// The provider's issuer URL (discovery at `{issuer}/.well-known/openid-configuration`).
    #[arg(long = "oidc-issuer", env = "QM_OIDC_ISSUER")]
    pub issuer: Option<String>,
    #[arg(long = "oidc-client-id", env = "QM_OIDC_CLIENT_ID")]
    pub client_id: Option<String>,
    #[arg(long = "oidc-scopes", env = "QM_OIDC_SCOPES", default_value = "openid email profile", value_delimiter = ' ')]
    pub scopes: Vec<String>,
    /// Shown on the sign-in button: "Sign in with …".
    #[arg(long = "oidc-display-name", env = "QM_OIDC_DISPLAY_NAME", default_value = "your company account")]
    pub display_name: String,
    #[arg(long = "oidc-claim-email", env = "QM_OIDC_CLAIM_EMAIL", default_value = "email")]
    pub claim_email: String,
    #[arg(long = "oidc-claim-name", env = "QM_OIDC_CLAIM_NAME", default_value = "name")]
    pub claim_name: String,
    #[arg(long = "oidc-claim-groups", env = "QM_OIDC_CLAIM_GROUPS", default_value = "groups")]
    pub claim_groups: String,
    #[arg(long = "oidc-claim-department", env = "QM_OIDC_CLAIM_DEPARTMENT", default_value = "department")]
    pub claim_department: String,
    #[arg(long = "oidc-claim-job-title", env = "QM_OIDC_CLAIM_JOB_TITLE", default_value = "job_title")]
    pub claim_job_title: String,
    /// A claim holding the manager's email address, from a source the operator trusts to
    /// say who manages whom. Empty (the default): managers are not taken from sign-in.
    #[arg(long = "oidc-claim-manager", env = "QM_OIDC_CLAIM_MANAGER", default_value = "")]
    pub claim_manager: String,
    /// People who become administrators when they sign in (comma-separated emails).
    #[arg(long = "admin-emails", env = "QM_ADMIN_EMAILS", value_delimiter = ',')]
    pub admin_emails: Vec<String>,
    /// Members of this group (from the groups claim) become administrators when they sign in.
    #[arg(long = "admin-group", env = "QM_ADMIN_GROUP")]
    pub admin_group: Option<String>,
    /// Email domains whose existing accounts (imported, SCIM, demo) may be linked to a provider
    /// identity at first sign-in, when the provider says the email is verified
    /// (comma-separated). Empty: an existing account is never linked by email.
    #[arg(long = "oidc-link-domains", env = "QM_OIDC_LINK_DOMAINS", value_delimiter = ',')]
    pub link_domains: Vec<String>,
    /// The sign-in gate: only people whose verified email is in one of these domains may sign
    /// in as members (comma-separated). Guests, whose domain is a connected organization's,
    /// arrive as that organization's external users instead. Empty: any member domain.
    #[arg(long = "sign-in-domains", env = "QM_SIGN_IN_DOMAINS", value_delimiter = ',')]
    pub sign_in_domains: Vec<String>,
    /// The sign-in gate: only members of this group (from the groups claim) may sign in as
    /// members. Guests are not held to it.
    #[arg(long = "sign-in-group", env = "QM_SIGN_IN_GROUP")]
    pub sign_in_group: Option<String>,
    /// Every email the provider sends is verified (for providers that send no
    /// `email_verified` claim, such as Entra ID for its own tenant's domains). Off: a sign-in
    /// without a verified email is refused.
    #[arg(long = "oidc-trust-email", env = "QM_OIDC_TRUST_EMAIL", default_value_t = false)]
    pub trust_email: bool,
}

impl ServeArgs {
    /// The rules for demo mode: it exists for trying the portal on a laptop, never beside a
    /// real deployment (a provider, a public URL). The database is checked when the server is
    /// built (`demo::check_demo_database`).
    pub fn check(&self) -> Result<(), String> {
        self.public_origin()?;
        if !self.demo {
            // Without a public URL only loopback hosts are served (DNS rebinding): a server
            // others can reach must say the one name it answers to.
            if !self.addr.ip().is_loopback() && self.public_url.is_none() {
                return Err(format!(
                    "{} is reachable from other computers: name the URL people use with --public-url \
                     (QM_PUBLIC_URL); only that host is served",
                    self.addr
                ));
            }
            return Ok(());
        }
        if !self.addr.ip().is_loopback() {
            return Err(format!(
                "--demo offers sign-in without a password, so it is only allowed on a loopback \
                 address; {} is not one. Bind to 127.0.0.1 or drop --demo.",
                self.addr.ip()
            ));
        }
        if self.oidc.issuer.is_some() {
            return Err("--demo offers sign-in without a password, so it cannot be combined with an \
                        identity provider (--oidc-issuer / QM_OIDC_ISSUER): that is a real deployment. \
                        Drop --demo."
                .to_owned());
        }
        if self.public_url.is_some() {
            return Err("--demo offers sign-in without a password, so it cannot be combined with a \
                        public URL (--public-url / QM_PUBLIC_URL): that is a real deployment. Drop --demo."
                .to_owned());
        }
        Ok(())
    }

    /// The public URL's origin (scheme, host, port) with the root path, when one is configured:
    /// the one origin unsafe requests may come from, and the base redirect targets are parsed
    /// against.
    pub fn public_origin(&self) -> Result<Option<url::Url>, String> {
        let Some(raw) = self.public_url.as_deref() else { return Ok(None) };
        let bad = |why: &str| format!("--public-url (QM_PUBLIC_URL) {raw:?} {why}");
        let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("must be an http:// or https:// URL with a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        url::Url::parse(&format!("{}/", url.origin().ascii_serialization())).map(Some).map_err(|e| bad(&e.to_string()))
    }

    /// The portal's own base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.addr),
        }
    }

    /// The OpenID Connect configuration, when an issuer is set.
    pub fn oidc_config(&self) -> Result<Option<crate::auth::oidc::OidcConfig>, String> {
        let Some(issuer) = self.oidc.issuer.clone() else { return Ok(None) };
        let client_id =
            self.oidc.client_id.clone().ok_or("--oidc-client-id (QM_OIDC_CLIENT_ID) is required with an issuer")?;
        let client_secret = match (std::env::var("QM_OIDC_CLIENT_SECRET"), std::env::var("QM_OIDC_CLIENT_SECRET_FILE"))
        {
            (Ok(secret), _) => Some(secret),
            (Err(_), Ok(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read QM_OIDC_CLIENT_SECRET_FILE {path}: {e}"))?
                    .trim()
                    .to_owned(),
            ),
            _ => None,
        };
        let base = self.base_url();
        let o = &self.oidc;
        Ok(Some(crate::auth::oidc::OidcConfig {
            issuer,
            client_id,
            client_secret,
            redirect_uri: format!("{base}/auth/callback"),
            post_logout_redirect_uri: format!("{base}/signin"),
            scopes: o.scopes.clone(),
            claims: crate::auth::oidc::ClaimNames {
                email: o.claim_email.clone(),
                name: o.claim_name.clone(),
                groups: o.claim_groups.clone(),
                department: o.claim_department.clone(),
                job_title: o.claim_job_title.clone(),
                manager: o.claim_manager.clone(),
            },
            display_name: o.display_name.clone(),
        }))
    }

    pub fn is_https(&self) -> bool {
        self.public_url.as_deref().and_then(|u| url::Url::parse(u).ok()).is_some_and(|u| u.scheme() == "https")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_secret() {
        let cli =
            Cli::parse_from(["quartermaster", "--database-url", "postgres://qm:s3cret-pw@db.internal/qm", "migrate"]);
        let shown = format!("{cli:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
        assert_eq!(redact_url("sqlite://data/q.db"), "sqlite://data/q.db");
    }

    fn args(addr: &str, demo: bool) -> ServeArgs {
        ServeArgs {
            addr: addr.parse().unwrap(),
            demo,
            site_root: PathBuf::from("target/site"),
            public_url: None,
            no_workers: false,
            metrics_addr: None,
            oidc: OidcArgs::default(),
            limits: Default::default(),
            mail: MailArgs::default(),
        }
    }

    #[test]
    fn demo_only_on_loopback() {
        assert!(args("127.0.0.1:3000", true).check().is_ok());
        assert!(args("[::1]:3000", true).check().is_ok());
        let err = args("0.0.0.0:3000", true).check().unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        // Reachable from elsewhere: only with the one public URL it answers to.
        let err = args("0.0.0.0:3000", false).check().unwrap_err();
        assert!(err.contains("--public-url"), "{err}");
        let mut public = args("0.0.0.0:3000", false);
        public.public_url = Some("https://access.example.com".into());
        assert!(public.check().is_ok());
    }

    #[test]
    fn https_is_read_from_the_parsed_scheme_and_passwords_are_redacted() {
        let mut a = args("127.0.0.1:3000", false);
        a.public_url = Some("HTTPS://Access.Example.com".into());
        assert!(a.is_https(), "the scheme is case-insensitive");
        let shown = redact_url("postgres://qm@db/qm?sslmode=require&password=hunter2");
        assert!(!shown.contains("hunter2") && shown.contains("sslmode=require"), "{shown}");
    }

    #[test]
    fn demo_never_beside_a_real_deployment() {
        let mut with_provider = args("127.0.0.1:3000", true);
        with_provider.oidc.issuer = Some("https://idp.example".into());
        assert!(with_provider.check().unwrap_err().contains("--oidc-issuer"));
        let mut public = args("127.0.0.1:3000", true);
        public.public_url = Some("https://access.example.com".into());
        assert!(public.check().unwrap_err().contains("--public-url"));
        public.demo = false;
        assert!(public.check().is_ok());
        assert_eq!(public.public_origin().unwrap().unwrap().as_str(), "https://access.example.com/");
        public.public_url = Some("ftp://access.example.com".into());
        assert!(public.check().is_err());
        public.public_url = Some("https://user:pw@access.example.com".into());
        assert!(public.check().is_err());
    }
}
