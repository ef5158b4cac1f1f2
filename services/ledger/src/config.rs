//! Ledger settings from flags or the environment. Secrets from files only.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run the ledger store.
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerConfig {
    /// The genesis file.
    #[arg(long, env = "GLUCOCHAIN_GENESIS")]
    pub genesis: PathBuf,
    /// Database URL: `postgres://...` or `sqlite://path` (default: `sqlite://<data-dir>/ledger.db`).
    #[arg(long, env = "GLUCOCHAIN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the embedded database.
    #[arg(long, env = "GLUCOCHAIN_DATA_DIR", default_value = "./ledger-data")]
    pub data_dir: PathBuf,
    /// The record vault's key-encryption key (the file ingest seals under):
    /// records' bodies are read from the replicated vault and opened only
    /// for a reader the access decision allowed (ADR 0016).
    #[arg(long, env = "GLUCOCHAIN_KEK_FILE")]
    pub kek_file: PathBuf,
    /// NATS server URL.
    #[arg(long, env = "GLUCOCHAIN_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// TLS certificate and key (HTTPS); plain HTTP without them.
    #[command(flatten)]
    pub tls: glucochain_api::TlsArgs,
    /// Address of the HTTPS read API (and /healthz, /readyz, /metrics).
    #[arg(long, env = "GLUCOCHAIN_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,
    /// The ledger's own key (role `service`), to commit audit checkpoints; none: no checkpoints.
    #[arg(long, env = "GLUCOCHAIN_LEDGER_KEY")]
    pub key: Option<PathBuf>,
    /// Seconds between audit checkpoints (when the log grew).
    #[arg(long, env = "GLUCOCHAIN_CHECKPOINT_SECS", default_value_t = 60)]
    pub checkpoint_secs: u64,
    /// Who decides reads: `contracts` (the contracts engine over NATS, as
    /// deployed) or `local` (the same rules in this process; single-process setups).
    #[arg(long, env = "GLUCOCHAIN_AUTHZ", default_value = "contracts", value_parser = ["contracts", "local"])]
    pub authz: String,
    /// Sustained reads per second per reader (answers beyond it: 429 with Retry-After).
    #[arg(long, env = "GLUCOCHAIN_READ_RATE_PER_SEC", default_value_t = 50.0)]
    pub read_rate_per_sec: f64,
    /// Burst of reads per reader.
    #[arg(long, env = "GLUCOCHAIN_READ_RATE_BURST", default_value_t = 200.0)]
    pub read_rate_burst: f64,
    /// Ingest's URL, where the web pages forward the transactions participants sign
    /// in the browser (consents, care-plan acceptance, emergency cards); none: pages are read-only.
    #[arg(long, env = "GLUCOCHAIN_INGEST_URL")]
    pub ingest_url: Option<String>,
    /// Mark web session cookies `Secure` (set when a proxy terminates HTTPS;
    /// on by itself when this service serves TLS).
    #[arg(long, env = "GLUCOCHAIN_WEB_SECURE_COOKIES", default_value_t = false)]
    pub web_secure_cookies: bool,
    /// Minutes a web session lasts after signing in.
    #[arg(long, env = "GLUCOCHAIN_WEB_SESSION_MINUTES", default_value_t = 30)]
    pub web_session_minutes: u32,
    /// Audience read tokens must name: this service's own, so that a token
    /// given to another service is refused here (a deployment may use its
    /// public URL instead, e.g. `https://ledger.hospital.example`).
    #[arg(long, env = "GLUCOCHAIN_TOKEN_AUDIENCE", default_value = "glucochain-ledger")]
    pub token_audience: String,
}

impl LedgerConfig {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("ledger.db").display()))
    }
}
