//! keygen, keyinfo, genesis, token.

use anyhow::{Context, bail};
use glucochain_crypto::KeyPair;
use glucochain_crypto::jose::issue_token;
use glucochain_types::genesis::{ConsensusParams, GenesisAdmin, GenesisValidator};
use glucochain_types::time::Timestamp;
use glucochain_types::{ChainId, Genesis, ParticipantId};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn keygen(out: &Path, force: bool) -> anyhow::Result<ExitCode> {
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let kp = KeyPair::generate();
    kp.write_pem_file(out, force)?;
    super::print_json(&json!({
        "participant_id": ParticipantId::from_public_key(&kp.public()).as_str(),
        "public_key": kp.public().to_base64url(),
        "key_file": out.display().to_string(),
    }));
    Ok(ExitCode::SUCCESS)
}

pub fn keyinfo(key: &Path) -> anyhow::Result<ExitCode> {
    let kp = KeyPair::read_pem_file(key)?;
    super::print_json(&json!({
        "participant_id": ParticipantId::from_public_key(&kp.public()).as_str(),
        "public_key": kp.public().to_base64url(),
    }));
    Ok(ExitCode::SUCCESS)
}

fn split_named(spec: &str, what: &str) -> anyhow::Result<(String, String)> {
    let (name, rest) = spec.split_once('=').with_context(|| format!("{what} {spec:?}: expected NAME=KEYFILE"))?;
    if name.is_empty() || rest.is_empty() {
        bail!("{what} {spec:?}: expected NAME=KEYFILE");
    }
    Ok((name.to_string(), rest.to_string()))
}

pub fn genesis(
    chain_id: &str,
    validators: &[String],
    admins: &[String],
    time: Option<&str>,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let chain_id = ChainId::parse(chain_id)?;
    let mut vals = Vec::new();
    for v in validators {
        let (name, rest) = split_named(v, "validator")?;
        let (file, power) = match rest.rsplit_once(':') {
            Some((f, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
                (f.to_string(), p.parse::<u64>().with_context(|| format!("validator {name}: power"))?)
            }
            _ => (rest, 10),
        };
        let kp = KeyPair::read_pem_file(&PathBuf::from(&file))?;
        vals.push(GenesisValidator { name, public_key: kp.public(), power });
    }
    let mut adms = Vec::new();
    for a in admins {
        let (name, file) = split_named(a, "admin")?;
        let kp = KeyPair::read_pem_file(&PathBuf::from(&file))?;
        adms.push(GenesisAdmin { name, public_key: kp.public() });
    }
    let genesis_time = match time {
        Some(t) => Timestamp::parse(t).map_err(anyhow::Error::msg)?,
        None => Timestamp::now(),
    };
    let g = Genesis { chain_id, genesis_time, validators: vals, admins: adms, params: ConsensusParams::default() };
    g.validate()?;
    let mut text = serde_json::to_string_pretty(&g)?;
    text.push('\n');
    super::write_output(out, text.as_bytes())?;
    if out.as_os_str() != "-" {
        eprintln!("wrote {} (genesis hash {})", out.display(), g.hash());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn token(reader: &crate::cli::ReaderArgs, audience: &str, ttl: i64) -> anyhow::Result<ExitCode> {
    if !(1..=3600).contains(&ttl) {
        bail!("--ttl must be 1..=3600 seconds (services accept at most 300)");
    }
    let kp = KeyPair::read_pem_file(&reader.key)?;
    let id = ParticipantId::from_public_key(&kp.public());
    let jti = super::random_nonce();
    println!("{}", issue_token(&kp, id.as_str(), audience, &reader.chain_id, super::unix_now(), ttl, &jti));
    Ok(ExitCode::SUCCESS)
}
