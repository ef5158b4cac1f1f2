//! Command implementations.

mod contracts;
mod demo;
mod detect;
pub mod devnet;
pub mod http;
mod keys;
pub mod migrate;
mod roundtrip;
mod submit;
mod tx;
mod verify;

use crate::cli::{Cli, Command};
use anyhow::Context;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keygen { out, force } => keys::keygen(&out, force),
        Command::Keyinfo { key } => keys::keyinfo(&key),
        Command::Genesis { chain_id, validators, admins, time, out } => {
            keys::genesis(&chain_id, &validators, &admins, time.as_deref(), &out)
        }
        Command::SignTx { key, chain_id, tx_type, patient, body, nonce, created_at } => {
            tx::sign_tx(&key, &chain_id, &tx_type, patient.as_deref(), &body, nonce, created_at.as_deref())
        }
        Command::VerifyTx { jws, public_key, genesis, chain_id } => {
            tx::verify_tx(&jws, public_key.as_deref(), genesis.as_deref(), chain_id.as_deref())
        }
        Command::Submit { jws, ingest: Some(url), wait, .. } => http::submit(&jws, &url, wait),
        Command::Submit { jws, ingest: None, nats, wait } => submit::submit(&jws, &nats, wait),
        Command::Tx { hash, ingest } => http::tx(&hash, &ingest),
        Command::Records { patient, reader, ledger, code, date, count, purpose } => {
            http::records(&patient, &reader, &ledger, code.as_deref(), &date, count, purpose.as_deref())
        }
        Command::Proof { hash, reader, ledger, out } => http::proof(&hash, &reader, &ledger, &out),
        Command::VerifyChain { genesis, key, ledger } => http::verify_chain(&genesis, &key, &ledger),
        Command::VerifyAudit { patient, key, genesis, ledger, from } => {
            http::verify_audit(&patient, &key, &genesis, &ledger, from)
        }
        Command::Consent(c) => contracts::consent(c),
        Command::Careplan(c) => contracts::careplan(c),
        Command::Emergency(c) => contracts::emergency(c),
        Command::Consult(c) => contracts::consult(c),
        Command::Alert(c) => contracts::alert(c),
        Command::Chain(crate::cli::ChainCmd::Export { genesis, store, out }) => migrate::export(&genesis, &store, &out),
        Command::Chain(crate::cli::ChainCmd::Import { archive, keys, chain_id, ingest }) => {
            migrate::import(&archive, &keys, &chain_id, &ingest)
        }
        Command::Devnet(c) => match c {
            crate::cli::DevnetCmd::Up { dir, shape, nats_port, clock_speed } => {
                let net = devnet::up(&devnet::UpOptions { dir, shape, nats_port, clock_speed })?;
                println!("devnet up in {} (emrctl devnet status --dir {0})", net.dir.display());
                println!("{}", serde_json::to_string_pretty(&net)?);
                Ok(ExitCode::SUCCESS)
            }
            crate::cli::DevnetCmd::Status { dir } => devnet::status(&dir),
            crate::cli::DevnetCmd::Down { dir } => devnet::down(&dir),
            crate::cli::DevnetCmd::Mail { dir, show } => devnet::mail(&dir, show),
            crate::cli::DevnetCmd::Signal { dir, name, signal } => {
                devnet::signal_service(&dir, &name, &signal.trim_start_matches("SIG").to_uppercase())?;
                println!("{name}: SIG{}", signal.trim_start_matches("SIG").to_uppercase());
                Ok(ExitCode::SUCCESS)
            }
            crate::cli::DevnetCmd::Start { dir, name } => {
                let pid = devnet::start_service(&dir, &name, &devnet::Restart::default())?;
                println!("{name} started (pid {pid})");
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Nats(c) => nats(c),
        Command::Demo { dir, shape, keep } => demo::run(&demo::DemoOptions { dir, shape, keep }),
        Command::Detect { inputs, out, labels, json } => detect::detect(&inputs, &out, labels.as_deref(), json),
        Command::Score { labels, alerts, json } => detect::score(&labels, &alerts, json),
        Command::Hash { file, tx } => tx::hash(&file, tx),
        Command::Token { reader, audience, ttl } => keys::token(&reader, &audience, ttl),
        Command::VerifyProof { proof, genesis } => verify::verify_proof(&proof, &genesis),
        Command::Roundtrip { dir, validators } => roundtrip::run(&dir, validators),
    }
}

/// Reads a file, or standard input for `-`.
pub(crate) fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).context("read standard input")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("read {}", path.display()))
    }
}

/// Writes to a file, or standard output for `-`.
pub(crate) fn write_output(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    if path.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(data)?;
        Ok(())
    } else {
        std::fs::write(path, data).with_context(|| format!("write {}", path.display()))
    }
}

/// Prints a JSON value on standard output.
pub(crate) fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A random nonce (16 bytes, hex).
pub(crate) fn random_nonce() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// `emrctl nats ...`.
fn nats(c: crate::cli::NatsCmd) -> anyhow::Result<ExitCode> {
    use glucochain_bus::access::{self, NatsUser};
    match c {
        crate::cli::NatsCmd::Keygen { out } => {
            let (public, seed) = access::new_user_nkey();
            access::write_seed(&out, &seed)?;
            println!("{public}");
        }
        crate::cli::NatsCmd::Permissions => print!("{}", access::permissions_json()),
        crate::cli::NatsCmd::Authorization { users } => {
            let mut parsed = Vec::new();
            for u in &users {
                let (kind, key) = u.split_once('=').with_context(|| format!("{u:?}: expected KIND=PUBLIC_NKEY"))?;
                let kind = NatsUser::from_name(kind).with_context(|| format!("{kind:?} is not a NATS user kind"))?;
                if !access::is_user_public_key(key) {
                    anyhow::bail!("{key:?} is not a public user NKey (emrctl nats keygen prints one)");
                }
                parsed.push((kind, key.to_string()));
            }
            print!("{}", access::authorization_config(&parsed));
        }
    }
    Ok(ExitCode::SUCCESS)
}
