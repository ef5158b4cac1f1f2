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
    let (body_json, sealed) = envelope_of(tx_type, body_json)?;
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
    println!("{}", submission_text(&parsed, jws, sealed)?);
    Ok(ExitCode::SUCCESS)
}

/// A record travels off the chain: for a sealed type, the envelope to sign
/// and the body to send beside it (split from the body written whole);
/// other types as they are.
pub(crate) fn envelope_of(
    tx_type: &str,
    body_json: serde_json::Value,
) -> anyhow::Result<(serde_json::Value, Option<glucochain_types::sealed::SealedBody>)> {
    match glucochain_types::TxType::parse(tx_type).filter(|t| t.sealed()) {
        Some(t) => {
            let (envelope, sealed) = glucochain_types::sealed::split(t, body_json)?;
            Ok((serde_json::to_value(envelope)?, sealed))
        }
        None => Ok((body_json, None)),
    }
}

/// What to send ingest: the JWS alone, or the submission with its sealed
/// body, checked first as ingest checks it so mistakes show here.
pub(crate) fn submission_text(
    parsed: &TxPayload,
    jws: String,
    sealed: Option<glucochain_types::sealed::SealedBody>,
) -> anyhow::Result<String> {
    match sealed {
        Some(sealed) => {
            glucochain_types::sealed::RecordBody::accept(parsed, &sealed, &TxLimits::default())?;
            Ok(String::from_utf8(Submission::sealed(jws, sealed).to_json())?)
        }
        None => Ok(jws),
    }
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
    // A bare JWS, or a submission with a record's sealed body (what `sign-tx`
    // prints for a record): then the body is checked against the commitment.
    let (jws_text, sealed) = if text.trim_start().starts_with('{') {
        let s: Submission = serde_json::from_str(&text).context("a submission {\"jws\": ..., \"sealed\": ...}")?;
        (s.jws, s.sealed)
    } else {
        (text.trim().to_string(), None)
    };
    let tx = Transaction::parse(&jws_text, &TxLimits::default())?;
    let sealed_body = match &sealed {
        Some(s) => {
            glucochain_types::sealed::RecordBody::accept(&tx.payload, s, &TxLimits::default())?;
            Some("matches the signed commitment")
        }
        None if tx.payload.body.body_commitment().is_some() => Some("not given (the envelope alone)"),
        None => None,
    };
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
        "sealed_body": sealed_body,
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
