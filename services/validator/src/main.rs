//! `glucochain-validator`: one BFT validator. Configuration from flags or
//! the environment (`--help`).

use clap::Parser;
use glucochain_validator::{Misbehavior, ValidatorConfig, serve};

#[derive(Parser)]
#[command(name = "glucochain-validator", version, about = "GlucoChain BFT validator (Malachite over NATS)")]
struct Cli {
    #[command(flatten)]
    config: ValidatorConfig,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = glucochain_telemetry::init(&glucochain_telemetry::TelemetryConfig::from_env("validator"))?;
    let result = serve(cli.config, Misbehavior::None).await;
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "validator stopped");
    }
    result
}
