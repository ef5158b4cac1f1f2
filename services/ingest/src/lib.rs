//! The GlucoChain ingest service: the HTTPS write API. A signed transaction
//! is checked against the committed state with the validators' own rules,
//! then stored in the `TXS` stream (message id = tx hash) before the client
//! hears `202` (the detector reads observations from there at once). A
//! record's body comes beside the transaction, is checked against the
//! commitment the transaction carries, and is sealed into the record vault
//! before anything is published (ADR 0016); committed erasures are carried
//! out in the vault as their blocks arrive. Status comes from `BLOCKS` and
//! the validators' rejections.

pub mod api;
pub mod config;
pub mod ingest;
pub mod rejections;

pub use config::IngestConfig;

use anyhow::Context as _;
use glucochain_api::service::{ended, http_server};
use glucochain_bus::Bus;
use glucochain_bus::streams::StreamSpec;
use glucochain_telemetry::http::Readiness;
use glucochain_types::genesis::Genesis;
use std::sync::Arc;
use std::time::Duration;

/// Runs ingest until a fatal error.
pub async fn serve(cfg: IngestConfig) -> anyhow::Result<()> {
    let genesis = Genesis::read_file(&cfg.genesis).context("genesis")?;
    let ready = Readiness::new(&["database", "nats", "registry"]);
    let store = glucochain_api::service::open_store(&cfg.database_url(), &cfg.data_dir, &ready).await?;
    let bus = Bus::connect(&cfg.nats_url, "ingest").await.context("nats")?;
    bus.ensure_stream(&StreamSpec::txs()).await?;
    ready.set("nats", true);
    let kek = glucochain_vault::keys::FileKek::load(&cfg.kek_file).context("key-encryption key")?;
    let replica = glucochain_vault::replica::Replica::new(bus.clone()).await.context("VAULT stream")?;
    let vault = glucochain_vault::record_vault::RecordVault::new(store.clone(), Arc::new(kek)).with_replica(replica);
    let ingest = Arc::new(ingest::Ingest::new(bus, store, vault, &genesis, cfg.quotas()));

    let (i1, i2, r) = (ingest.clone(), ingest.clone(), ready.clone());
    let blocks = tokio::spawn(async move { i1.follow_blocks().await });
    let rejections = tokio::spawn(async move { i2.follow_rejections().await });
    let watcher = ingest.clone();
    tokio::spawn(async move {
        loop {
            r.set("registry", watcher.is_caught_up());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let data = actix_web::web::Data::new(ingest);
    let client_address = actix_web::web::Data::new(api::ClientAddress { trust_forwarded_for: cfg.trust_forwarded_for });
    let server = http_server(cfg.http_addr, &cfg.tls, ready, move |c| {
        c.app_data(data.clone()).app_data(client_address.clone());
        api::configure(c);
    })?;
    tokio::select! {
        r = server => r.context("http server"),
        r = blocks => Err(ended("following BLOCKS", r)),
        r = rejections => Err(ended("following rejections", r)),
    }
}

/// The binary's body: telemetry, then [`serve`].
pub fn main_with(cfg: IngestConfig) -> anyhow::Result<()> {
    glucochain_api::service::run("ingest", || serve(cfg))
}
