//! Storage for GlucoChain services: one code path over PostgreSQL (for
//! deployments) and SQLite (the embedded default for local runs), chosen by
//! the URL (`postgres://...` or `sqlite://path`), with versioned migrations
//! per backend applied at connect.
//!
//! Queries are written once in SQL that both backends accept and run through
//! sqlx's `Any` driver. Writes that belong together happen in one database
//! transaction, and block inserts are idempotent, so a consumer that is
//! redelivered a block it already stored does no harm.

pub mod audit;
pub mod chain;
pub mod evidence;
pub mod sessions;
pub mod status;
pub mod vault;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection};
use std::time::Duration;

pub use audit::AuditRow;
pub use chain::{InsertOutcome, StoredBlock, StoredTx};
pub use evidence::StoredEvidence;
pub use sessions::SessionRefused;
pub use status::{CommittedTxStatus, NewTxStatus, TxState, TxStatus};
pub use vault::{ClassErased, ErasedRow, VaultRecordRow};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL (use postgres://... or sqlite://...): {0}")]
    Url(String),
    /// Connecting failed.
    #[error("connect to {backend}: {source}")]
    Connect {
        /// Backend.
        backend: Backend,
        /// Cause.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("migrate: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A block at this height with another hash is already stored: a fork
    /// or corruption, never overwritten.
    #[error("block {height} already stored with another hash")]
    Conflict {
        /// Height.
        height: u64,
    },
    /// Stored data is not what this version expects.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Most rows a caller should hand to one batch write (the statements split
/// them further as the backend prefers).
pub const MAX_ROWS_PER_WRITE: usize = 1000;

/// `($1, ..., $k), ($k+1, ...), ...`: `rows` rows of `per_row` bound values.
pub(crate) fn values_placeholders(rows: usize, per_row: usize) -> String {
    let mut out = String::with_capacity(rows * (per_row * 6 + 4));
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for i in 1..=per_row {
            if i > 1 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * per_row + i).to_string());
        }
        out.push(')');
    }
    out
}

/// Which database is behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        })
    }
}

/// A connection pool with migrations applied.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

impl Store {
    /// Connects to `url` and applies pending migrations. SQLite files are
    /// created when missing and use WAL mode.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            let sep = if rest.contains('?') { '&' } else { '?' };
            let url = if rest.contains("mode=") || rest == ":memory:" {
                url.to_string()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            (Backend::Sqlite, url)
        } else {
            return Err(StoreError::Url(url.split('@').next_back().unwrap_or("").to_string()));
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        opts = match backend {
            // One writer at a time is how SQLite works; in-memory needs one connection.
            Backend::Sqlite => opts.max_connections(1),
            Backend::Postgres => opts.max_connections(16),
        };
        let pool = opts.connect(&url).await.map_err(|source| StoreError::Connect { backend, source })?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode=WAL").execute(&pool).await?;
            sqlx::query("PRAGMA foreign_keys=ON").execute(&pool).await?;
            sqlx::query("PRAGMA synchronous=FULL").execute(&pool).await?;
        }
        let mut conn = pool.acquire().await?;
        match backend {
            Backend::Postgres => PG_MIGRATIONS.run(&mut *conn).await?,
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&mut *conn).await?,
        }
        conn.ping().await?;
        drop(conn);
        Ok(Store { pool, backend })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Rows per multi-row `INSERT` (at most 9 values a row here). PostgreSQL
    /// takes 65,535 bound values a statement and gains from large ones; with
    /// SQLite, binding looks each parameter up by name in a list (quadratic in
    /// the parameters of a statement), so its statements stay small.
    pub(crate) fn rows_per_statement(&self) -> usize {
        match self.backend {
            Backend::Postgres => 1000,
            Backend::Sqlite => 64,
        }
    }

    /// The pool, for repositories in service crates.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
