//! Contract commands: consents, care plans, emergency tokens and break-glass.

use super::http::{answer, client, outcome, post_and_follow, print, read_token, runtime};
use super::random_nonce;
use crate::cli::{AlertCmd, CareplanCmd, ConsentCmd, ConsultCmd, EmergencyCmd, ReaderArgs, SignArgs};
use anyhow::{Context, bail};
use glucochain_crypto::jose::{CONTRACTS_AUDIENCE, NOTIFIER_AUDIENCE};
use glucochain_crypto::{Hash32, KeyPair};
use glucochain_types::emergency::EmergencyCard;
use glucochain_types::sealed::Submission;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{EmergencyReason, EmergencyReasonBody, TxPayload};
use glucochain_types::{ChainId, ParticipantId};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

/// Builds, checks with the validators' parsing rules, and signs a transaction
/// (for a type whose record is sealed: the submission with its body beside it).
fn sign(args: &SignArgs, tx_type: &str, body: Value) -> anyhow::Result<String> {
    let kp = KeyPair::read_pem_file(&args.key)?;
    let signer = ParticipantId::from_public_key(&kp.public());
    let (body, sealed) = super::tx::envelope_of(tx_type, body)?;
    let payload = json!({
        "type": tx_type,
        "chain_id": ChainId::parse(&args.chain_id)?,
        "nonce": random_nonce(),
        "created_at": Timestamp::now(),
        "patient": ParticipantId::parse(&args.patient)?,
        "body": body,
    });
    let parsed = TxPayload::from_json(&serde_json::to_vec(&payload)?, &Default::default())?;
    let jws = parsed.sign(&kp, &signer);
    super::tx::submission_text(&parsed, jws, sealed)
}

fn get_json(url: String, reader: &ReaderArgs) -> anyhow::Result<ExitCode> {
    let token = read_token(reader, CONTRACTS_AUDIENCE)?;
    runtime()?.block_on(async move {
        let (status, body) =
            answer(client()?.get(&url).bearer_auth(token).send().await.with_context(|| format!("GET {url}"))?).await?;
        outcome(status, &body)
    })
}

/// `emrctl consent ...`
pub fn consent(cmd: ConsentCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConsentCmd::Grant { sign: s, id, grantee, classes, access, types, codes, purpose, until } => {
            let body = json!({
                "consent_id": id,
                "grantee": grantee,
                "scope": { "data_classes": classes, "record_types": types, "codes": codes, "access": access },
                "purpose": purpose,
                "valid_until": until,
            });
            let mut body = body;
            if body["valid_until"].is_null() {
                body.as_object_mut().expect("object").remove("valid_until");
            }
            println!("{}", sign(&s, "consent.grant", body)?);
            Ok(ExitCode::SUCCESS)
        }
        ConsentCmd::Revoke { sign: s, id } => {
            let body = json!({ "consent_id": id });
            println!("{}", sign(&s, "consent.revoke", body)?);
            Ok(ExitCode::SUCCESS)
        }
        ConsentCmd::List { patient, reader, contracts } => {
            get_json(format!("{}/v1/patients/{patient}/consents", contracts.trim_end_matches('/')), &reader)
        }
    }
}

/// `emrctl careplan ...`
pub fn careplan(cmd: CareplanCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CareplanCmd::Accept { sign: s, plan_id, plan_version, proposal_tx } => {
            let proposal = Hash32::from_hex(&proposal_tx).context("--proposal-tx is not a hex hash")?;
            let body = json!({ "plan_id": plan_id, "version": plan_version, "proposal_tx": proposal.to_string() });
            println!("{}", sign(&s, "careplan.accept", body)?);
            Ok(ExitCode::SUCCESS)
        }
        CareplanCmd::Show { patient, reader, contracts } => {
            get_json(format!("{}/v1/patients/{patient}/careplan", contracts.trim_end_matches('/')), &reader)
        }
    }
}

/// `emrctl emergency ...`
pub fn emergency(cmd: EmergencyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EmergencyCmd::Card { patient, qr } => {
            let card = EmergencyCard::generate(ParticipantId::parse(&patient)?);
            let code = qrcode::QrCode::new(card.text().as_bytes()).context("QR code")?;
            let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).build();
            std::fs::write(&qr, svg).with_context(|| format!("write {}", qr.display()))?;
            print(&json!({ "card": card.text(), "card_key": card.public_key(), "qr_svg": qr }))?;
            Ok(ExitCode::SUCCESS)
        }
        EmergencyCmd::Profile { sign: s, blood_group, diabetes_type, allergies, medications, card_key } => {
            let card_key: glucochain_crypto::PublicKey =
                card_key.parse().map_err(|_| anyhow::anyhow!("--card-key is not a public key"))?;
            let body = json!({
                "blood_group": blood_group,
                "allergies": allergies,
                "diabetes_type": diabetes_type,
                "medications": medications,
                "emergency_contacts": [],
                "card_key": card_key,
            });
            println!("{}", sign(&s, "emergency.profile.set", body)?);
            Ok(ExitCode::SUCCESS)
        }
        EmergencyCmd::Access { reader, card, reason_code, reason, ingest, contracts } => {
            let card = EmergencyCard::parse(&card)?;
            let reason_code: EmergencyReason = serde_json::from_value(json!(reason_code))
                .context("--reason-code: unconscious, cannot_communicate, life_threatening or other")?;
            let kp = KeyPair::read_pem_file(&reader.key)?;
            let me = ParticipantId::from_public_key(&kp.public());
            let chain = ChainId::parse(&reader.chain_id)?;
            let (nonce, at) = (random_nonce(), Timestamp::now());
            // The clinician's words are sealed beside the access (issue 21).
            let (body, sealed) = EmergencyReasonBody::seal(card.prove(&chain, &me, &nonce, at), reason_code, reason);
            let payload = TxPayload::new(chain, nonce, at, Some(card.patient.clone()), body);
            payload.validate(&Default::default())?;
            let signed = payload.sign(&kp, &me);
            let jws = match sealed {
                Some(s) => String::from_utf8(Submission::sealed(signed, s).to_json())?,
                None => signed,
            };
            let read = read_token(&reader, CONTRACTS_AUDIENCE)?;
            let (ingest, contracts) =
                (ingest.trim_end_matches('/').to_string(), contracts.trim_end_matches('/').to_string());
            runtime()?.block_on(async move {
                let c = client()?;
                let (status, body) = post_and_follow(&c, &ingest, &jws, 60).await?;
                // An access of this clinician to this patient still open: read under it.
                let open = status == 409 && body["detail"].as_str().is_some_and(|d| d.contains("already open"));
                if open {
                    eprintln!("a break-glass access to this patient is already open; reading under it");
                } else if status >= 300 || body["status"] == "rejected" {
                    print(&body)?;
                    return Ok(ExitCode::from(1));
                }
                // Committed; the contracts engine may trail by a block.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let r = c
                        .post(format!("{contracts}/v1/emergency-access"))
                        .bearer_auth(&read)
                        .json(&json!({ "card": card.text() }))
                        .send()
                        .await?;
                    let (status, profile) = answer(r).await?;
                    if status == 200 || tokio::time::Instant::now() >= deadline {
                        return outcome(status, &profile);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        }
    }
}

/// `emrctl consult ...`
pub fn consult(cmd: ConsultCmd) -> anyhow::Result<ExitCode> {
    let jws = match cmd {
        ConsultCmd::Request { sign: s, id, clinician, classes, codes, reason } => {
            let body = json!({
                "consult_id": id,
                "clinician": clinician,
                "shared": { "data_classes": classes, "codes": codes, "access": ["read"] },
                "reason": reason,
            });
            sign(&s, "consult.request", body)?
        }
        ConsultCmd::Respond { sign: s, id, note, prescription } => {
            let mut body = json!({ "consult_id": id, "note": note });
            if let Some(p) = prescription {
                let parts: Vec<&str> = p.splitn(3, ';').collect();
                let [name, dose, instructions] = parts[..] else {
                    bail!("--prescription is NAME;DOSE;INSTRUCTIONS");
                };
                body["prescription"] = json!({ "medication": name, "dose": dose, "instructions": instructions });
            }
            sign(&s, "consult.respond", body)?
        }
    };
    println!("{jws}");
    Ok(ExitCode::SUCCESS)
}

/// `emrctl alert ack|status`.
pub fn alert(cmd: AlertCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AlertCmd::Ack { sign: s, id, notifier } => {
            let body = json!({ "alert_id": id });
            let jws = sign(&s, "alert.ack", body)?;
            let url = format!("{}/v1/alerts/{id}/ack", notifier.trim_end_matches('/'));
            runtime()?.block_on(async move {
                let r = client()?.post(url).json(&json!({ "tx": jws })).send().await?;
                let (status, body) = answer(r).await?;
                outcome(status, &body)
            })
        }
        AlertCmd::Status { reader, id, notifier } => {
            let read = read_token(&reader, NOTIFIER_AUDIENCE)?;
            let url = format!("{}/v1/alerts/{id}", notifier.trim_end_matches('/'));
            runtime()?.block_on(async move {
                let r = client()?.get(url).bearer_auth(read).send().await?;
                let (status, body) = answer(r).await?;
                outcome(status, &body)
            })
        }
    }
}
