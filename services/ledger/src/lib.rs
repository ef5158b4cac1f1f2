//! The GlucoChain ledger store: follows the committed chain (verifying every
//! certificate and hash link), keeps it in PostgreSQL (SQLite embedded by
//! default) and serves audited reads: blocks, transactions, inclusion
//! proofs, a patient's records as FHIR R4 and their access log.

pub mod api;
pub mod config;
pub mod fhir;
pub mod ledger;
pub mod web;

pub use config::LedgerConfig;

use anyhow::Context as _;
use glucochain_api::service::{ended, http_server};
use glucochain_bus::Bus;
use glucochain_crypto::jose::TokenPolicy;
use glucochain_telemetry::http::Readiness;
use glucochain_types::genesis::Genesis;
use std::sync::Arc;
use std::time::Duration;

/// Runs the ledger until a fatal error.
pub async fn serve(cfg: LedgerConfig) -> anyhow::Result<()> {
    let genesis = Genesis::read_file(&cfg.genesis).context("genesis")?;
    let key = match &cfg.key {
        Some(p) => Some(Arc::new(glucochain_crypto::KeyPair::read_pem_file(p).context("ledger key")?)),
        None => None,
    };
    let ready = Readiness::new(&["database", "nats"]);
    let store = glucochain_api::service::open_store(&cfg.database_url(), &cfg.data_dir, &ready).await?;
    let ledger = ledger::Ledger::open(store, genesis).await?;
    tracing::info!(height = ledger.height(), "ledger opened");
    let bus = Bus::connect(&cfg.nats_url, "ledger").await.context("nats")?;
    ready.set("nats", true);

    let follow = tokio::spawn(ledger::follow_blocks(ledger.clone(), bus.clone()));
    let appends = tokio::spawn(ledger::serve_audit_appends(ledger.clone(), bus.clone()));
    let checkpoints = match &key {
        Some(k) => tokio::spawn(ledger::checkpoint_audit(
            ledger.clone(),
            bus.clone(),
            k.clone(),
            Duration::from_secs(cfg.checkpoint_secs.max(1)),
        )),
        None => {
            tracing::warn!("no --key: audit checkpoints are not committed to the chain");
            tokio::spawn(std::future::pending())
        }
    };
    let web_state = actix_web::web::Data::new(web::WebState {
        session_ms: i64::from(cfg.web_session_minutes.max(1)) * 60_000,
        secure_cookies: cfg.web_secure_cookies || cfg.tls.tls_cert.is_some(),
        ingest_url: cfg.ingest_url.clone(),
        http: {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().context("http client")?
        },
    });
    let policy = TokenPolicy::new(cfg.token_audience.clone(), ledger.genesis.chain_id.as_str());
    let kek = glucochain_vault::keys::FileKek::load(&cfg.kek_file).context("key-encryption key")?;
    let vault = glucochain_vault::replica::VaultReader::new(&bus, Arc::new(kek)).await.context("VAULT stream")?;
    let state = actix_web::web::Data::new(api::ApiState {
        ledger,
        vault,
        policy,
        authz: if cfg.authz == "local" { api::Authz::Local } else { api::Authz::Contracts(Box::new(bus.clone())) },
        limiter: std::sync::Mutex::new(glucochain_api::rate::RateLimiter::new(
            cfg.read_rate_per_sec,
            cfg.read_rate_burst,
        )),
    });
    let server = http_server(cfg.http_addr, &cfg.tls, ready, move |c| {
        c.app_data(state.clone()).app_data(web_state.clone());
        web::configure(c);
        api::configure(c);
    })?;
    tokio::select! {
        r = server => r.context("http server"),
        r = follow => Err(ended("following BLOCKS", r)),
        r = checkpoints => Err(ended("audit checkpoints", r)),
        r = appends => Err(ended("audit appends", r)),
    }
}

/// The binary's body: telemetry, then [`serve`].
pub fn main_with(cfg: LedgerConfig) -> anyhow::Result<()> {
    glucochain_api::service::run("ledger", || serve(cfg))
}
