//! Contracts engine settings from flags or the environment. Secrets from files only.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run the contracts engine.
#[derive(Debug, Clone, clap::Args)]
pub struct ContractsConfig {
    /// The genesis file.
    #[arg(long, env = "GLUCOCHAIN_GENESIS")]
    pub genesis: PathBuf,
    /// Database URL: `postgres://...` or `sqlite://path` (default: `sqlite://<data-dir>/contracts.db`).
    #[arg(long, env = "GLUCOCHAIN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the embedded database.
    #[arg(long, env = "GLUCOCHAIN_DATA_DIR", default_value = "./contracts-data")]
    pub data_dir: PathBuf,
    /// The record vault's key-encryption key (the file ingest seals under):
    /// an emergency profile's body is read from the replicated vault and
    /// opened only for a clinician whose break-glass access is committed
    /// (ADR 0016).
    #[arg(long, env = "GLUCOCHAIN_KEK_FILE")]
    pub kek_file: PathBuf,
    /// NATS server URL.
    #[arg(long, env = "GLUCOCHAIN_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// TLS certificate and key (HTTPS); plain HTTP without them.
    #[command(flatten)]
    pub tls: glucochain_api::TlsArgs,
    /// Address of the HTTPS API (and /healthz, /readyz, /metrics).
    #[arg(long, env = "GLUCOCHAIN_HTTP_ADDR", default_value = "127.0.0.1:8082")]
    pub http_addr: SocketAddr,
    /// Seconds between reminder runs.
    #[arg(long, env = "GLUCOCHAIN_REMINDER_TICK_SECS", default_value_t = 30)]
    pub reminder_tick_secs: u64,
    /// Run the reminder clock this many times faster than real time, from
    /// `--clock-start` (demos and tests; 1 = real time).
    #[arg(long, env = "GLUCOCHAIN_CLOCK_SPEED", default_value_t = 1.0)]
    pub clock_speed: f64,
    /// Where the accelerated clock equals real time (RFC 3339; default now).
    /// Give a restarted engine the same start and its time continues.
    #[arg(long, env = "GLUCOCHAIN_CLOCK_START")]
    pub clock_start: Option<String>,
    /// Audience read tokens must name: this service's own, so that a token
    /// given to another service is refused here (a deployment may use its
    /// public URL instead, e.g. `https://contracts.hospital.example`).
    #[arg(long, env = "GLUCOCHAIN_TOKEN_AUDIENCE", default_value = "glucochain-contracts")]
    pub token_audience: String,
}

impl ContractsConfig {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("contracts.db").display()))
    }
}
