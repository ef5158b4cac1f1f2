//! Validator settings, from command-line flags or the environment. Secrets
//! (the key) come from a file; nothing secret is ever a flag value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How to run one validator.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidatorConfig {
    /// The genesis file (validators, admins, consensus parameters).
    #[arg(long, env = "GLUCOCHAIN_GENESIS")]
    pub genesis: PathBuf,
    /// This validator's consensus key (PKCS#8 PEM, mode 0600).
    #[arg(long, env = "GLUCOCHAIN_VALIDATOR_KEY")]
    pub key: PathBuf,
    /// Directory for the block store and the consensus WAL.
    #[arg(long, env = "GLUCOCHAIN_DATA_DIR")]
    pub data_dir: PathBuf,
    /// NATS server URL.
    #[arg(long, env = "GLUCOCHAIN_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "GLUCOCHAIN_HTTP_ADDR", default_value = "127.0.0.1:9100")]
    pub http_addr: SocketAddr,
    /// Make an empty block after this many idle seconds (0: never; an idle chain stays silent).
    #[arg(long, env = "GLUCOCHAIN_HEARTBEAT_SECS", default_value_t = 0)]
    pub heartbeat_secs: u64,
    /// Least time between two commits, milliseconds: transactions arriving
    /// meanwhile wait and go into the next block together (CometBFT's
    /// `timeout_commit`). Fewer, larger blocks cost less per transaction; each
    /// transaction waits up to this long more. 0: start at once.
    #[arg(long, env = "GLUCOCHAIN_MIN_BLOCK_INTERVAL_MS", default_value_t = 100)]
    pub min_block_interval_ms: u64,
    /// Largest clock difference tolerated in a proposed block's time, seconds.
    #[arg(long, env = "GLUCOCHAIN_MAX_CLOCK_SKEW_SECS", default_value_t = 10)]
    pub max_clock_skew_secs: u64,
    /// Most transactions held in the mempool.
    #[arg(long, env = "GLUCOCHAIN_MEMPOOL_MAX_TXS", default_value_t = 100_000)]
    pub mempool_max_txs: usize,
}

impl ValidatorConfig {
    /// The embedded block store's URL.
    pub fn store_url(&self) -> String {
        format!("sqlite://{}", self.data_dir.join("blocks.db").display())
    }

    /// The consensus WAL file.
    pub fn wal_path(&self) -> PathBuf {
        self.data_dir.join("consensus.wal")
    }

    /// The least time between two commits.
    pub fn min_block_interval(&self) -> Duration {
        Duration::from_millis(self.min_block_interval_ms)
    }

    /// The heartbeat, if any.
    pub fn heartbeat(&self) -> Option<Duration> {
        (self.heartbeat_secs > 0).then(|| Duration::from_secs(self.heartbeat_secs))
    }
}
