//! The GlucoChain contracts engine: follows the committed chain and keeps
//! the contract state (consents, care plans, emergency profiles, consults)
//! with the same rules the validators apply; answers access decisions over
//! NATS (`emr.authz.decide`) for the ledger's reads; tells patients and
//! caregivers about break-glass accesses; and emits clinical reminders from
//! active care plans on time, across restarts. See `docs/contracts.md`.

pub mod api;
pub mod config;
pub mod engine;
pub mod reminders;

pub use config::ContractsConfig;

use anyhow::Context as _;
use glucochain_api::service::{ended, http_server};
use glucochain_bus::Bus;
use glucochain_crypto::jose::TokenPolicy;
use glucochain_telemetry::http::Readiness;
use glucochain_types::genesis::Genesis;
use glucochain_types::time::Clock;
use std::time::Duration;

/// Runs the engine until a fatal error.
pub async fn serve(cfg: ContractsConfig) -> anyhow::Result<()> {
    let genesis = Genesis::read_file(&cfg.genesis).context("genesis")?;
    let clock = Clock::from_flags(cfg.clock_speed, cfg.clock_start.as_deref()).map_err(anyhow::Error::msg)?;
    let ready = Readiness::new(&["database", "nats"]);
    let store = glucochain_api::service::open_store(&cfg.database_url(), &cfg.data_dir, &ready).await?;
    let engine = engine::Engine::open(store, &genesis).await?;
    tracing::info!(height = engine.chain.height(), "contracts engine opened");
    let bus = Bus::connect(&cfg.nats_url, "contracts").await.context("nats")?;
    ready.set("nats", true);

    let follow = tokio::spawn(engine::follow(engine.clone(), bus.clone()));
    let authz = tokio::spawn(engine::serve_authz(engine.clone(), bus.clone()));
    let notices = tokio::spawn(engine::publish_notices(engine.clone(), bus.clone()));
    let kek = glucochain_vault::keys::FileKek::load(&cfg.kek_file).context("key-encryption key")?;
    let vault =
        glucochain_vault::replica::VaultReader::new(&bus, std::sync::Arc::new(kek)).await.context("VAULT stream")?;
    let tick = Duration::from_secs(cfg.reminder_tick_secs.max(1));
    let reminders = tokio::spawn(engine::run_reminders(engine.clone(), vault.clone(), bus.clone(), tick, clock));
    let state = actix_web::web::Data::new(api::ApiState {
        engine,
        vault,
        audit: api::AuditLog::Ledger(bus.clone()),
        policy: TokenPolicy::new(cfg.token_audience.clone(), genesis.chain_id.as_str()),
    });
    let server = http_server(cfg.http_addr, &cfg.tls, ready, move |c| {
        c.app_data(state.clone());
        api::configure(c);
    })?;
    tokio::select! {
        r = server => r.context("http server"),
        r = follow => Err(ended("following BLOCKS", r)),
        r = authz => Err(ended("access decisions", r)),
        r = notices => Err(ended("break-glass notices", r)),
        r = reminders => Err(ended("reminders", r)),
    }
}

/// The binary's body: telemetry, then [`serve`].
pub fn main_with(cfg: ContractsConfig) -> anyhow::Result<()> {
    glucochain_api::service::run("contracts", || serve(cfg))
}
