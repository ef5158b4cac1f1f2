//! Detector settings from flags or the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run the detector.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectorServiceConfig {
    /// The genesis file.
    #[arg(long, env = "GLUCOCHAIN_GENESIS")]
    pub genesis: PathBuf,
    /// Database for the verified chain (care plans): `postgres://...` or
    /// `sqlite://path` (default: `sqlite://<data-dir>/detector.db`).
    #[arg(long, env = "GLUCOCHAIN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the embedded database.
    #[arg(long, env = "GLUCOCHAIN_DATA_DIR", default_value = "./detector-data")]
    pub data_dir: PathBuf,
    /// The record vault's key-encryption key (the file ingest seals under):
    /// CGM readings are opened from the replicated vault (ADR 0016).
    #[arg(long, env = "GLUCOCHAIN_KEK_FILE")]
    pub kek_file: PathBuf,
    /// NATS server URL.
    #[arg(long, env = "GLUCOCHAIN_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "GLUCOCHAIN_HTTP_ADDR", default_value = "127.0.0.1:8083")]
    pub http_addr: SocketAddr,
    /// TLS for the health endpoints (optional).
    #[command(flatten)]
    pub tls: glucochain_api::TlsArgs,
    /// The detector's own key (role `service`, registered on the chain),
    /// which signs each alert event (the notifier takes no unsigned one) and
    /// the `alert.raise` transactions.
    #[arg(long, env = "GLUCOCHAIN_DETECTOR_KEY")]
    pub key: PathBuf,
}

impl DetectorServiceConfig {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("detector.db").display()))
    }
}
