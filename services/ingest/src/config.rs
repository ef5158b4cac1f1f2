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
    /// The record vault's key-encryption key: a file (mode 0600) holding 32
    /// bytes as 64 hex digits (`emrctl vault kek` makes one), or the mount
    /// of a secret. Bodies of records are sealed under data keys it wraps
    /// (ADR 0016); without it no record can be accepted.
    #[arg(long, env = "GLUCOCHAIN_KEK_FILE")]
    pub kek_file: PathBuf,
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
    /// Sustained transactions per second of a signer registered less than a
    /// day ago (a new identity costs nothing, so it gets less).
    #[arg(long, env = "GLUCOCHAIN_YOUNG_RATE_PER_SEC", default_value_t = 5.0)]
    pub young_rate_per_sec: f64,
    /// Burst of a signer registered less than a day ago.
    #[arg(long, env = "GLUCOCHAIN_YOUNG_RATE_BURST", default_value_t = 100.0)]
    pub young_rate_burst: f64,
    /// Self-registrations (new identities) per client address and minute, sustained.
    #[arg(long, env = "GLUCOCHAIN_NEW_IDS_PER_IP_PER_MIN", default_value_t = 1.0)]
    pub new_ids_per_ip_per_min: f64,
    /// Burst of self-registrations per client address.
    #[arg(long, env = "GLUCOCHAIN_NEW_IDS_PER_IP_BURST", default_value_t = 20.0)]
    pub new_ids_per_ip_burst: f64,
    /// Sustained transactions per second concerning one patient (whoever signs them).
    #[arg(long, env = "GLUCOCHAIN_PATIENT_RATE_PER_SEC", default_value_t = 20.0)]
    pub patient_rate_per_sec: f64,
    /// Burst of transactions concerning one patient.
    #[arg(long, env = "GLUCOCHAIN_PATIENT_RATE_BURST", default_value_t = 400.0)]
    pub patient_rate_burst: f64,
    /// Sustained transactions per second this ingest takes in all.
    #[arg(long, env = "GLUCOCHAIN_GLOBAL_RATE_PER_SEC", default_value_t = 3000.0)]
    pub global_rate_per_sec: f64,
    /// Burst of all transactions.
    #[arg(long, env = "GLUCOCHAIN_GLOBAL_RATE_BURST", default_value_t = 6000.0)]
    pub global_rate_burst: f64,
    /// Take the client's address from the last `X-Forwarded-For` entry (the
    /// one the ingress in front added); only behind a proxy that sets it.
    #[arg(long, env = "GLUCOCHAIN_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
}

impl IngestConfig {
    /// The write quotas configured.
    pub fn quotas(&self) -> crate::ingest::Quotas {
        crate::ingest::Quotas {
            per_signer: (self.rate_per_sec, self.rate_burst),
            young_signer: (self.young_rate_per_sec, self.young_rate_burst),
            new_ids_per_ip: (self.new_ids_per_ip_per_min / 60.0, self.new_ids_per_ip_burst),
            per_patient: (self.patient_rate_per_sec, self.patient_rate_burst),
            global: (self.global_rate_per_sec, self.global_rate_burst),
        }
    }
}

impl IngestConfig {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("ingest.db").display()))
    }
}
