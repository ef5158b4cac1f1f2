//! sign-tx, verify-tx, hash.

use anyhow::{Context, bail};
use glucochain_crypto::{KeyPair, PublicKey, sha256};
use glucochain_types::sealed::Submission;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{TxLimits, TxPayload};
use glucochain_types::{ChainId, Genesis, ParticipantId, Transaction};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

pub fn sign_tx(
    key: &Path,
    chain_id: &str,
    tx_type: &str,
    patient: Option<&str>,
    body: &Path,
    nonce: Option<String>,
    created_at: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let kp = KeyPair::read_pem_file(key)?;
    let signer = ParticipantId::from_public_key(&kp.public());
    let body_json: serde_json::Value =
        serde_json::from_slice(&super::read_input(body)?).context("the body is not valid JSON")?;
    let created_at = match created_at {
        Some(t) => Timestamp::parse(t).map_err(anyhow::Error::msg)?,
        None => Timestamp::now(),
    };
    // A record travels off the chain: the envelope is signed, the body sealed beside it.
    let (body_json, sealed) = match glucochain_types::TxType::parse(tx_type).filter(|t| t.sealed()) {
        Some(t) => {
            let (envelope, sealed) = glucochain_types::sealed::split(t, body_json)?;
            (serde_json::to_value(envelope)?, Some(sealed))
        }
        None => (body_json, None),
    };
    let mut payload = json!({
        "type": tx_type,
        "chain_id": ChainId::parse(chain_id)?,
        "nonce": nonce.unwrap_or_else(super::random_nonce),
        "created_at": created_at,
        "body": body_json,
    });
    if let Some(p) = patient {
        payload["patient"] = json!(ParticipantId::parse(p)?);
    }
    // Parse with the validators' rules, then sign the canonical form.
    let parsed = TxPayload::from_json(&serde_json::to_vec(&payload)?, &TxLimits::default())?;
    let jws = parsed.sign(&kp, &signer);
    match sealed {
        // The same checks ingest makes of the body, so mistakes show here.
        Some(sealed) => {
            glucochain_types::sealed::RecordBody::accept(&parsed, &sealed, &TxLimits::default())?;
            println!("{}", String::from_utf8(Submission::sealed(jws, sealed).to_json())?);
        }
        None => println!("{jws}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn lookup_genesis_key(genesis: &Genesis, signer: &ParticipantId) -> Option<PublicKey> {
    genesis
        .admins
        .iter()
        .map(|a| a.public_key)
        .chain(genesis.validators.iter().map(|v| v.public_key))
        .find(|k| &ParticipantId::from_public_key(k) == signer)
}

pub fn verify_tx(
    jws: &Path,
    public_key: Option<&str>,
    genesis: Option<&Path>,
    chain_id: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let text = String::from_utf8(super::read_input(jws)?).context("a JWS is ASCII text")?;
    let tx = Transaction::parse(text.trim(), &TxLimits::default())?;
    let genesis = genesis.map(Genesis::read_file).transpose()?;
    let chain = chain_id.map(ChainId::parse).transpose()?.or_else(|| genesis.as_ref().map(|g| g.chain_id.clone()));
    if let Some(c) = &chain {
        tx.check_chain(c)?;
    }
    let key = match (public_key, &genesis) {
        (Some(k), _) => Some(PublicKey::from_base64url(k)?),
        (None, Some(g)) => lookup_genesis_key(g, &tx.signer),
        (None, None) => None,
    };
    let signature = match &key {
        Some(k) => {
            if ParticipantId::from_public_key(k) != tx.signer {
                bail!(
                    "the public key given is not the signer's ({}): its id is {}",
                    tx.signer,
                    ParticipantId::from_public_key(k)
                );
            }
            match tx.verify_signature(k) {
                Ok(()) => "valid",
                Err(e) => {
                    super::print_json(
                        &json!({ "tx_hash": tx.hash, "signer": tx.signer, "signature": "invalid", "error": e.to_string() }),
                    );
                    return Ok(ExitCode::from(1));
                }
            }
        }
        None if genesis.is_some() => {
            bail!("signer {} is not a genesis participant; pass --public-key", tx.signer)
        }
        None => "not checked (no key given)",
    };
    super::print_json(&json!({
        "tx_hash": tx.hash,
        "type": tx.payload.tx_type.as_str(),
        "chain_id": tx.payload.chain_id,
        "signer": tx.signer,
        "patient": tx.payload.patient,
        "nonce": tx.payload.nonce,
        "created_at": tx.payload.created_at,
        "signature": signature,
    }));
    Ok(ExitCode::SUCCESS)
}

pub fn hash(file: &Path, tx: bool) -> anyhow::Result<ExitCode> {
    let data = super::read_input(file)?;
    let h = if tx {
        let text = std::str::from_utf8(&data).context("a JWS is ASCII text")?;
        sha256(text.trim().as_bytes())
    } else {
        sha256(&data)
    };
    println!("{h}");
    Ok(ExitCode::SUCCESS)
}
