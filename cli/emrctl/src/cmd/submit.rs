//! `emrctl submit`: publish a transaction on the TXS stream and optionally
//! wait for its block or its rejection.

use super::read_input;
use anyhow::{Context, bail};
use futures::StreamExt as _;
use glucochain_bus::streams::StreamSpec;
use glucochain_bus::{Bus, subjects};
use glucochain_types::Transaction;
use glucochain_types::time::Timestamp;
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Publishes `jws` to TXS (msg-id = tx hash); with `wait` > 0 reports the outcome.
pub fn submit(jws: &Path, nats: &str, wait: u64) -> anyhow::Result<ExitCode> {
    let bytes = read_input(jws)?;
    let text = String::from_utf8(bytes).context("the JWS is not UTF-8")?;
    let text = text.trim();
    if text.starts_with('{') {
        anyhow::bail!("a record with a sealed body goes through ingest (--ingest URL), which seals it into the vault");
    }
    let tx = Transaction::parse(text, &Default::default()).context("not a valid transaction")?;
    if tx.payload.body.body_commitment().is_some() {
        anyhow::bail!(
            "{} carries its record off the chain: sign it with emrctl sign-tx and submit through ingest (--ingest URL)",
            tx.payload.tx_type.as_str()
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let bus = Bus::connect(nats, "emrctl").await?;
        bus.ensure_stream(&StreamSpec::txs()).await?;
        let blocks = bus.ensure_stream(&StreamSpec::blocks()).await?;
        // Listen before publishing so a fast outcome is not missed.
        let mut rejected = bus.client().subscribe(subjects::TX_REJECTED).await?;
        let start_seq = blocks.clone().info().await?.state.last_sequence + 1;
        let env = wire::TxEnvelope::received_now(
            text.as_bytes().to_vec(),
            tx.hash.0.to_vec(),
            tx.payload.tx_type.as_str(),
            0,
        );
        let published = bus
            .publish(&subjects::tx(tx.payload.tx_type.as_str()), &tx.hash.to_string(), env.encode_to_vec().into())
            .await?;
        let mut out = serde_json::json!({
            "tx_hash": tx.hash.to_string(),
            "stream_sequence": published.sequence,
            "duplicate": published.duplicate,
        });
        if wait == 0 {
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(ExitCode::SUCCESS);
        }
        let consumer = blocks
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start_seq.saturating_sub(64).max(1),
                },
                ..Default::default()
            })
            .await?;
        let mut committed = consumer.messages().await?;
        let deadline = tokio::time::sleep(Duration::from_secs(wait));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => bail!("no outcome within {wait} s (the transaction may still be pending)"),
                Some(m) = rejected.next() => {
                    let Ok(r) = wire::TxRejected::decode(m.payload.as_ref()) else { continue };
                    if r.tx_hash == tx.hash.0 {
                        out["status"] = "rejected".into();
                        out["code"] = r.code.into();
                        out["reason"] = r.reason.into();
                        println!("{}", serde_json::to_string_pretty(&out)?);
                        return Ok(ExitCode::from(1));
                    }
                }
                Some(m) = committed.next() => {
                    let m = m?;
                    let Ok(c) = wire::CommittedBlock::decode(m.payload.as_ref()) else { continue };
                    let Some(block) = c.block.as_ref() else { continue };
                    if let Some(index) = block.txs.iter().position(|t| t.as_slice() == text.as_bytes()) {
                        let header = block.header.clone().unwrap_or_default();
                        out["status"] = "committed".into();
                        out["height"] = header.height.into();
                        out["index"] = index.into();
                        out["block_time"] = Timestamp::from_unix_ms(header.time_ms).to_rfc3339().into();
                        println!("{}", serde_json::to_string_pretty(&out)?);
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
        }
    })
}
