//! Test-only: a validator that double-votes and sends forged signatures, so
//! the fault tests can check that the others neither fork nor stall, and
//! record the evidence. Not part of any deployment.

use clap::Parser;
use glucochain_validator::{Misbehavior, ValidatorConfig, serve};

#[derive(Parser)]
#[command(name = "glucochain-validator-byzantine", about = "TEST ONLY: an equivocating validator")]
struct Cli {
    #[command(flatten)]
    config: ValidatorConfig,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry =
        glucochain_telemetry::init(&glucochain_telemetry::TelemetryConfig::from_env("validator-byzantine"))?;
    tracing::warn!("TEST ONLY: this validator equivocates on purpose");
    serve(cli.config, Misbehavior::Equivocate).await
}
