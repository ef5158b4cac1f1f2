//! The GlucoChain validator service.
//!
//! A validator runs Malachite's Tendermint consensus (through
//! `glucochain-consensus`) with its peers over NATS, builds blocks from the
//! `TXS` stream, checks every block with the shared ledger rules
//! (`glucochain-state`), stores each decided block with its commit
//! certificate before moving on, publishes it on `BLOCKS`, and serves block
//! sync to validators and ledgers that fell behind. See `docs/consensus.md`.

pub mod chain;
pub mod config;
pub mod mempool;
pub mod runtime;

pub use config::ValidatorConfig;
pub use runtime::{Misbehavior, run};

/// Runs the validator with its health and metrics endpoint until a fatal error.
pub async fn serve(cfg: ValidatorConfig, misbehave: Misbehavior) -> anyhow::Result<()> {
    use glucochain_telemetry::http::{Readiness, configure};
    let ready = Readiness::new(&["store", "nats", "consensus"]);
    let r = ready.clone();
    let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(|c| configure(c, r.clone())))
        .workers(1)
        .disable_signals()
        .bind(cfg.http_addr)
        .map_err(|e| anyhow::anyhow!("bind {}: {e}", cfg.http_addr))?
        .run();
    let handle = server.handle();
    let http = tokio::spawn(server);
    let result = run(cfg, misbehave, ready).await;
    handle.stop(false).await;
    let _ = http.await;
    result
}

/// The body of both binaries: telemetry, then [`serve`] until a fatal error.
pub fn main_with(config: ValidatorConfig, misbehave: Misbehavior) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let service = if misbehave.is_honest() { "validator" } else { "validator-byzantine" };
        let _telemetry = glucochain_telemetry::init(&glucochain_telemetry::TelemetryConfig::from_env(service))?;
        if !misbehave.is_honest() {
            tracing::warn!(?misbehave, "TEST ONLY: this validator misbehaves on purpose");
        }
        let result = serve(config, misbehave).await;
        if let Err(e) = &result {
            tracing::error!(error = format!("{e:#}"), "validator stopped");
        }
        result
    })
}
