//! Notifier settings from flags or the environment. Secrets (SMTP password,
//! SMS gateway token) come from files or the environment, never from flags.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTls {
    /// Plain SMTP (only for a local mail sink).
    None,
    /// STARTTLS, required (port 587 by default).
    Starttls,
    /// Implicit TLS (port 465 by default).
    Tls,
}

/// How to run the notifier.
#[derive(Debug, Clone, clap::Args)]
pub struct NotifierConfig {
    /// The genesis file.
    #[arg(long, env = "GLUCOCHAIN_GENESIS")]
    pub genesis: PathBuf,
    /// Database (outbox and verified chain): `postgres://...` or `sqlite://path`
    /// (default: `sqlite://<data-dir>/notifier.db`).
    #[arg(long, env = "GLUCOCHAIN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the embedded database.
    #[arg(long, env = "GLUCOCHAIN_DATA_DIR", default_value = "./notifier-data")]
    pub data_dir: PathBuf,
    /// The record vault's key-encryption key (the file ingest seals under):
    /// contacts' addresses are read from the replicated vault (ADR 0016).
    #[arg(long, env = "GLUCOCHAIN_KEK_FILE")]
    pub kek_file: PathBuf,
    /// NATS server URL.
    #[arg(long, env = "GLUCOCHAIN_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Address of the HTTPS API (and /healthz, /readyz, /metrics).
    #[arg(long, env = "GLUCOCHAIN_HTTP_ADDR", default_value = "127.0.0.1:8084")]
    pub http_addr: SocketAddr,
    /// TLS certificate and key (HTTPS); plain HTTP without them.
    #[command(flatten)]
    pub tls: glucochain_api::TlsArgs,
    /// Base URL of this API as contacts reach it, for acknowledge links
    /// (default: http(s)://<http-addr>).
    #[arg(long, env = "GLUCOCHAIN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The notifier's own key (role `service`): signs acknowledge links and
    /// the `alert.ack` transactions it relays for link and SMS acknowledgements.
    #[arg(long, env = "GLUCOCHAIN_NOTIFIER_KEY")]
    pub key: PathBuf,
    /// Contact directory (JSON): names and channels of people the care plan
    /// does not give channels for (patients, responsible clinicians).
    #[arg(long, env = "GLUCOCHAIN_DIRECTORY")]
    pub directory: Option<PathBuf>,

    /// SMTP server host; email is off without it.
    #[arg(long, env = "GLUCOCHAIN_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port (default by --smtp-tls: 587, 465 or 25).
    #[arg(long, env = "GLUCOCHAIN_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// SMTP security.
    #[arg(long, env = "GLUCOCHAIN_SMTP_TLS", value_enum, default_value = "starttls")]
    pub smtp_tls: SmtpTls,
    /// Extra CA certificate (PEM) to trust for the SMTP server.
    #[arg(long, env = "GLUCOCHAIN_SMTP_CA_CERT")]
    pub smtp_ca_cert: Option<PathBuf>,
    /// SMTP AUTH user name.
    #[arg(long, env = "GLUCOCHAIN_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// File holding the SMTP password (or set GLUCOCHAIN_SMTP_PASSWORD).
    #[arg(long, env = "GLUCOCHAIN_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// SMTP connect and command timeout, seconds.
    #[arg(long, env = "GLUCOCHAIN_SMTP_TIMEOUT_SECS", default_value_t = 10)]
    pub smtp_timeout_secs: u64,
    /// Sender address.
    #[arg(long, env = "GLUCOCHAIN_MAIL_FROM", default_value = "GlucoChain <alerts@glucochain.invalid>")]
    pub mail_from: String,

    /// SMS gateway Messages endpoint (form POST of To, From, Body); SMS is off without it.
    #[arg(long, env = "GLUCOCHAIN_SMS_URL")]
    pub sms_url: Option<String>,
    /// Sender number or id for SMS.
    #[arg(long, env = "GLUCOCHAIN_SMS_FROM", default_value = "GlucoChain")]
    pub sms_from: String,
    /// SMS gateway account (HTTP basic auth user).
    #[arg(long, env = "GLUCOCHAIN_SMS_ACCOUNT")]
    pub sms_account: Option<String>,
    /// File holding the SMS gateway token (or set GLUCOCHAIN_SMS_TOKEN).
    #[arg(long, env = "GLUCOCHAIN_SMS_TOKEN_FILE")]
    pub sms_token_file: Option<PathBuf>,
    /// File holding the secret the SMS gateway signs inbound replies with
    /// (or set GLUCOCHAIN_SMS_WEBHOOK_SECRET). Without it, SMS replies are
    /// not taken at all: `POST /v1/sms/inbound` answers 404.
    #[arg(long, env = "GLUCOCHAIN_SMS_WEBHOOK_SECRET_FILE")]
    pub sms_webhook_secret_file: Option<PathBuf>,
    /// Timeout for SMS gateway and webhook requests, seconds.
    #[arg(long, env = "GLUCOCHAIN_HTTP_TIMEOUT_SECS", default_value_t = 10)]
    pub http_timeout_secs: u64,

    /// Milliseconds between outbox and escalation passes.
    #[arg(long, env = "GLUCOCHAIN_NOTIFY_TICK_MS", default_value_t = 1000)]
    pub tick_ms: u64,
    /// Seconds a send may take before another pass may retry it (after a crash).
    #[arg(long, env = "GLUCOCHAIN_NOTIFY_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,
    /// Run the escalation clock this many times faster than real time, from
    /// `--clock-start` (demos and tests; 1 = real time).
    #[arg(long, env = "GLUCOCHAIN_CLOCK_SPEED", default_value_t = 1.0)]
    pub clock_speed: f64,
    /// Where the accelerated clock equals real time (RFC 3339; default now).
    /// Give a restarted notifier the same start and its time continues.
    #[arg(long, env = "GLUCOCHAIN_CLOCK_START")]
    pub clock_start: Option<String>,
    /// Audience read tokens must name: this service's own, so that a token
    /// given to another service is refused here (a deployment may use its
    /// public URL instead, e.g. `https://notifier.hospital.example`).
    #[arg(long, env = "GLUCOCHAIN_TOKEN_AUDIENCE", default_value = "glucochain-notifier")]
    pub token_audience: String,
}

impl NotifierConfig {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("notifier.db").display()))
    }

    /// The base URL for links.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let scheme = if self.tls.tls_cert.is_some() { "https" } else { "http" };
                format!("{scheme}://{}", self.http_addr)
            }
        }
    }
}

/// A secret from `file` (trimmed) or else the environment variable `env`.
pub fn secret(file: &Option<PathBuf>, env: &str) -> anyhow::Result<Option<String>> {
    if let Some(f) = file {
        let s = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        return Ok(Some(s.trim().to_string()));
    }
    Ok(std::env::var(env).ok().filter(|s| !s.is_empty()))
}
