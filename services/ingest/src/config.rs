//! Ingest settings from flags or the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run ingest.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestConfig {
    /// The genesis file.
    #[arg(long, env = "GLUCOCHAIN_GENESIS")]
    pub genesis: PathBuf,
    /// Database for transaction status: `postgres://...` or `sqlite://path`
    /// (default: `sqlite://<data-dir>/ingest.db`).
    #[arg(long, env = "GLUCOCHAIN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the embedded database.
    #[arg(long, env = "GLUCOCHAIN_DATA_DIR", default_value = "./ingest-data")]
    pub data_dir: PathBuf,
    /// NATS server URL.
    #[arg(long, env = "GLUCOCHAIN_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// TLS certificate and key (HTTPS); plain HTTP without them.
    #[command(flatten)]
    pub tls: glucochain_api::TlsArgs,
    /// Address of the HTTPS write API (and /healthz, /readyz, /metrics).
    #[arg(long, env = "GLUCOCHAIN_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Sustained transactions per second per signer.
    #[arg(long, env = "GLUCOCHAIN_RATE_PER_SEC", default_value_t = 20.0)]
    pub rate_per_sec: f64,
    /// Burst of transactions per signer.
    #[arg(long, env = "GLUCOCHAIN_RATE_BURST", default_value_t = 200.0)]
    pub rate_burst: f64,
}

impl IngestConfig {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("ingest.db").display()))
    }
}
