//! A patient's records as a FHIR R4 `Bundle` (searchset): observations and
//! documents from committed transactions, each carrying its provenance (tx
//! hash, block height), filtered by `code` and `date` and paged.

use glucochain_crypto::Hash32;
use glucochain_store::StoredTx;
use glucochain_types::DataClass;
use glucochain_types::Transaction;
use glucochain_types::fhir::Observation;
use glucochain_types::sealed::RecordBody;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{DocumentAdd, RecordType, TxBody, TxPayload};
use glucochain_vault::VaultError;
use glucochain_vault::record_vault::Lookup;
use glucochain_vault::replica::{VaultReader, Wanted};
use serde_json::{Value, json};

/// Default and largest page size.
pub const DEFAULT_COUNT: usize = 50;
/// Largest `_count`.
pub const MAX_COUNT: usize = 500;

/// A search over one patient's records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordQuery {
    /// `code` tokens: (system, code); any matches.
    pub codes: Vec<(Option<String>, String)>,
    /// Inclusive lower bound on the effective time.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound on the effective time.
    pub until: Option<Timestamp>,
    /// Page size.
    pub count: usize,
    /// Entries skipped (paging).
    pub offset: usize,
}

fn parse_instant(s: &str, end_of_day: bool) -> Result<Timestamp, String> {
    if s.len() == 10 {
        let t = Timestamp::parse(&format!("{s}T00:00:00Z"))?;
        return Ok(if end_of_day { Timestamp::from_unix_ms(t.unix_ms() + 86_400_000) } else { t });
    }
    Timestamp::parse(s)
}

impl RecordQuery {
    /// Parses FHIR search parameters: `code=[system|]code` (repeatable, or
    /// comma-separated), `date=` with `ge`/`gt`/`le`/`lt`/`eq` prefixes
    /// (repeatable; a bare date means that day), `_count`, `_offset`.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut q = RecordQuery { count: DEFAULT_COUNT, ..Default::default() };
        for (k, v) in pairs {
            match k.as_str() {
                "code" => {
                    for token in v.split(',').filter(|t| !t.is_empty()) {
                        match token.split_once('|') {
                            Some((system, code)) => {
                                q.codes.push(((!system.is_empty()).then(|| system.to_string()), code.to_string()))
                            }
                            None => q.codes.push((None, token.to_string())),
                        }
                    }
                }
                "date" => {
                    let (prefix, rest) = if v.len() > 2 && v.as_bytes()[..2].iter().all(u8::is_ascii_alphabetic) {
                        v.split_at(2)
                    } else {
                        ("eq", v.as_str())
                    };
                    let bad = |e: String| format!("date={v}: {e}");
                    match prefix {
                        "ge" => q.from = Some(parse_instant(rest, false).map_err(bad)?),
                        "gt" => {
                            q.from = Some(Timestamp::from_unix_ms(
                                parse_instant(rest, true).map_err(bad)?.unix_ms()
                                    + if rest.len() == 10 { 0 } else { 1 },
                            ))
                        }
                        "lt" => q.until = Some(parse_instant(rest, false).map_err(bad)?),
                        "le" => {
                            q.until = Some(Timestamp::from_unix_ms(
                                parse_instant(rest, true).map_err(bad)?.unix_ms()
                                    + if rest.len() == 10 { 0 } else { 1 },
                            ))
                        }
                        "eq" => {
                            q.from = Some(parse_instant(rest, false).map_err(bad)?);
                            q.until = Some(Timestamp::from_unix_ms(
                                parse_instant(rest, true).map_err(bad)?.unix_ms()
                                    + if rest.len() == 10 { 0 } else { 1 },
                            ));
                        }
                        p => return Err(format!("date: unsupported prefix {p:?} (use ge, gt, le, lt, eq)")),
                    }
                }
                "_count" => {
                    q.count = v.parse().map_err(|_| format!("_count={v} is not a number"))?;
                    if q.count == 0 || q.count > MAX_COUNT {
                        return Err(format!("_count must be 1..={MAX_COUNT}"));
                    }
                }
                "_offset" => q.offset = v.parse().map_err(|_| format!("_offset={v} is not a number"))?,
                other => return Err(format!("unsupported search parameter {other:?}")),
            }
        }
        Ok(q)
    }

    fn matches(&self, e: &RecordEntry) -> bool {
        let code_ok = self.codes.is_empty()
            || self.codes.iter().any(|(system, code)| {
                e.codes.iter().any(|(s, c)| c == code && system.as_ref().is_none_or(|sys| s.as_deref() == Some(sys)))
            });
        code_ok && self.from.is_none_or(|f| e.effective >= f) && self.until.is_none_or(|u| e.effective < u)
    }
}

/// One FHIR resource from a committed transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEntry {
    /// The transaction.
    pub tx_hash: Hash32,
    /// Its block.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// Clinically relevant time.
    pub effective: Timestamp,
    /// Codes (system, code).
    pub codes: Vec<(Option<String>, String)>,
    /// Institution or patient-private data.
    pub class: DataClass,
    /// Kind of record (for consent scopes).
    pub record_type: RecordType,
    /// The FHIR resource with provenance (`Null` while the body is sealed).
    pub resource: Value,
    /// A record whose body is in the vault, not yet opened: the envelope
    /// (one entry for the whole record; `effective` its start, `codes` the
    /// union of its code lists) and its transaction.
    pub sealed: Option<Box<(TxPayload, StoredTx)>>,
}

impl RecordEntry {
    /// Whether a sealed record's period meets `[from, until)` (always, for an opened entry).
    pub fn may_meet(&self, from: Option<Timestamp>, until: Option<Timestamp>) -> bool {
        match &self.sealed {
            Some(b) => match &b.0.body {
                TxBody::ObservationRecord(r) => r.effective.meets(from, until),
                _ => from.is_none_or(|f| self.effective >= f) && until.is_none_or(|u| self.effective < u),
            },
            None => from.is_none_or(|f| self.effective >= f) && until.is_none_or(|u| self.effective < u),
        }
    }
}

/// The vault's answer for one record, as a FHIR entry.
fn opened(e: RecordEntry, found: Lookup) -> Vec<RecordEntry> {
    let Some(sealed) = e.sealed.as_ref() else { return vec![e] };
    let (payload, tx) = (&sealed.0, &sealed.1);
    let hash = e.tx_hash;
    let outcome = |code: &str, text: String| {
        let mut o = e.clone();
        o.sealed = None;
        o.resource = json!({
            "resourceType": "OperationOutcome",
            "id": format!("{hash}-outcome"),
            "issue": [{ "severity": if code == "deleted" { "information" } else { "warning" }, "code": code, "diagnostics": text }],
            "extension": provenance(tx, &hash),
        });
        vec![o]
    };
    match found {
        Lookup::Body(kept) => match RecordBody::open(payload, &kept) {
            Ok(RecordBody::Observations(b)) => {
                let TxBody::ObservationRecord(env) = &payload.body else { return Vec::new() };
                observation_entries(tx, &hash, env.data_class, &b.observations)
            }
            Ok(RecordBody::Document(b)) => {
                let TxBody::DocumentAdd(d) = &payload.body else { return Vec::new() };
                vec![document_entry(tx, &hash, payload.created_at, d, &b.title)]
            }
            // Not records of the history (no record entry is made for them):
            // the profile is served by the emergency page and break-glass,
            // care plans by their page and the contracts engine.
            Ok(
                RecordBody::EmergencyProfile(_)
                | RecordBody::ConsultRequest(_)
                | RecordBody::ConsultResponse(_)
                | RecordBody::ParticipantName(_)
                | RecordBody::ContactChannels(_)
                | RecordBody::Careplan(_)
                | RecordBody::MedicationTaken(_)
                | RecordBody::EmergencyReason(_),
            ) => Vec::new(),
            Err(err) => {
                tracing::error!(tx = %hash, error = %err, "a vault body does not open against its commitment");
                outcome("processing", "the record's body does not match its commitment on the chain".into())
            }
        },
        Lookup::Erased { by_tx, at_ms } => outcome(
            "deleted",
            format!(
                "erased at the patient's request by transaction {by_tx} ({})",
                Timestamp::from_unix_ms(at_ms).to_rfc3339()
            ),
        ),
        Lookup::Missing => outcome("not-found", "the record's body is not in the vault".into()),
    }
}

/// Opens the sealed entries of `all` from the vault (fetched together),
/// keeping the others as they are.
pub async fn open_all(vault: &VaultReader, all: Vec<RecordEntry>) -> Result<Vec<RecordEntry>, VaultError> {
    let wanted: Vec<Wanted> = all
        .iter()
        .filter(|e| e.sealed.is_some())
        .map(|e| Wanted {
            tx_hash: e.tx_hash.to_string(),
            patient: e.sealed.as_ref().and_then(|s| s.1.patient.clone()).unwrap_or_default(),
            class: e.class.as_str().to_string(),
        })
        .collect();
    let mut found = vault.get_many(&wanted).await?.into_iter();
    let mut out = Vec::with_capacity(all.len());
    for e in all {
        if e.sealed.is_some() {
            out.extend(opened(e, found.next().unwrap_or(Lookup::Missing)));
        } else {
            out.push(e);
        }
    }
    Ok(out)
}

fn observation_entries(
    tx: &StoredTx,
    hash: &Hash32,
    class: DataClass,
    observations: &[Observation],
) -> Vec<RecordEntry> {
    observations
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
            v["id"] = json!(o.id.clone().unwrap_or_else(|| format!("{hash}-{i}")));
            v["extension"] = provenance(tx, hash);
            v["meta"] = json!({ "source": format!("urn:glucochain:tx:{hash}"), "tag": [{ "code": class }] });
            RecordEntry {
                tx_hash: *hash,
                height: tx.height,
                index: tx.index,
                effective: o.effective_date_time,
                codes: o.code.coding.iter().map(|c| (Some(c.system.clone()), c.code.clone())).collect(),
                class,
                record_type: RecordType::Observation,
                resource: v,
                sealed: None,
            }
        })
        .collect()
}

/// A document's FHIR DocumentReference, once its title is opened.
fn document_entry(tx: &StoredTx, hash: &Hash32, created_at: Timestamp, d: &DocumentAdd, title: &str) -> RecordEntry {
    let code = d.code.clone();
    let v = json!({
        "resourceType": "DocumentReference",
        "id": d.document_id.as_str(),
        "status": "current",
        "type": code.as_ref().map(|c| json!({ "coding": [{ "system": "http://loinc.org", "code": c }] })),
        "subject": { "reference": format!("Patient/{}", tx.patient.clone().unwrap_or_default()) },
        "date": created_at.to_rfc3339(),
        "description": title,
        "content": [{ "attachment": {
            "contentType": d.content_type,
            "size": d.size_bytes,
            "title": title,
            "extension": [{ "url": "urn:glucochain:fhir:content-sha256", "valueString": d.content_sha256.to_string() }],
        }}],
        "extension": provenance(tx, hash),
        "meta": { "source": format!("urn:glucochain:tx:{hash}"), "tag": [{ "code": d.data_class }] },
    });
    RecordEntry {
        tx_hash: *hash,
        height: tx.height,
        index: tx.index,
        effective: created_at,
        codes: code.map(|c| vec![(Some("http://loinc.org".to_string()), c)]).unwrap_or_default(),
        class: d.data_class,
        record_type: RecordType::Document,
        resource: v,
        sealed: None,
    }
}

fn provenance(tx: &StoredTx, hash: &Hash32) -> Value {
    json!([{
        "url": "urn:glucochain:fhir:provenance",
        "extension": [
            { "url": "tx_hash", "valueString": hash.to_string() },
            { "url": "block_height", "valueInteger": tx.height },
            { "url": "tx_index", "valueInteger": tx.index },
            { "url": "signer", "valueString": tx.signer },
        ]
    }])
}

/// The FHIR resources a committed transaction holds (observations, document references).
pub fn entries(tx: &StoredTx) -> Vec<RecordEntry> {
    let Ok(parsed) = Transaction::parse(&tx.jws, &Default::default()) else { return Vec::new() };
    let hash = parsed.hash;
    let base = |effective, codes, class, record_type, resource| RecordEntry {
        tx_hash: hash,
        height: tx.height,
        index: tx.index,
        effective,
        codes,
        class,
        record_type,
        resource,
        sealed: None,
    };
    match &parsed.payload.body {
        TxBody::ObservationRecord(r) => vec![RecordEntry {
            sealed: Some(Box::new((parsed.payload.clone(), tx.clone()))),
            ..base(r.effective.start, r.codings().concat(), r.data_class, RecordType::Observation, Value::Null)
        }],
        TxBody::DocumentAdd(d) => {
            // The title is sealed: the resource is made when the body is opened.
            let codes = d.code.clone().map(|c| vec![(Some("http://loinc.org".to_string()), c)]).unwrap_or_default();
            vec![RecordEntry {
                sealed: Some(Box::new((parsed.payload.clone(), tx.clone()))),
                ..base(parsed.payload.created_at, codes, d.data_class, RecordType::Document, Value::Null)
            }]
        }
        _ => Vec::new(),
    }
}

/// The searchset bundle for `query` over `all` (sorted by effective time,
/// then chain order), with `self`/`next`/`previous` links built from `base`.
pub fn bundle(base: &str, all: &[RecordEntry], query: &RecordQuery, raw_query: &[(String, String)]) -> Value {
    let mut hits: Vec<&RecordEntry> = all.iter().filter(|e| query.matches(e)).collect();
    hits.sort_by_key(|e| (e.effective, e.height, e.index));
    let total = hits.len();
    let page: Vec<&RecordEntry> = hits.into_iter().skip(query.offset).take(query.count).collect();
    let link = |relation: &str, offset: usize| {
        let mut params: Vec<String> = raw_query
            .iter()
            .filter(|(k, _)| k != "_offset" && k != "_count")
            .map(|(k, v)| format!("{k}={}", url_escape(v)))
            .collect();
        params.push(format!("_count={}", query.count));
        params.push(format!("_offset={offset}"));
        json!({ "relation": relation, "url": format!("{base}?{}", params.join("&")) })
    };
    let mut links = vec![link("self", query.offset)];
    if query.offset + page.len() < total {
        links.push(link("next", query.offset + query.count));
    }
    if query.offset > 0 {
        links.push(link("previous", query.offset.saturating_sub(query.count)));
    }
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": page.iter().map(|e| json!({
            "fullUrl": format!("urn:glucochain:tx:{}#{}", e.tx_hash, e.resource["id"].as_str().unwrap_or("")),
            "resource": e.resource,
            "search": { "mode": if e.resource["resourceType"] == "OperationOutcome" { "outcome" } else { "match" } },
        })).collect::<Vec<_>>(),
    })
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<RecordQuery, String> {
        RecordQuery::parse(&pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>())
    }

    fn entry(minute: i64, code: &str) -> RecordEntry {
        RecordEntry {
            tx_hash: glucochain_crypto::sha256(&minute.to_be_bytes()),
            height: 1,
            index: minute as u32,
            effective: Timestamp::from_unix_ms(1_790_000_000_000 + minute * 60_000),
            codes: vec![(Some("http://loinc.org".into()), code.into())],
            class: DataClass::Private,
            record_type: RecordType::Observation,
            resource: json!({ "resourceType": "Observation", "id": format!("o{minute}") }),
            sealed: None,
        }
    }

    /// A committed observation record of two readings, and what ingest's vault kept of its body.
    fn sealed_record() -> (StoredTx, Vec<u8>) {
        use glucochain_types::sealed::{ObservationBody, RecordBody};
        let key = glucochain_crypto::KeyPair::from_seed([9; 32]);
        let patient = glucochain_types::ParticipantId::from_public_key(&key.public());
        let at = |m: i64| Timestamp::from_unix_ms(1_790_000_000_000 + m * 300_000);
        let readings = vec![
            glucochain_types::fhir::cgm_observation(patient.as_str(), at(0), 101.25, None),
            glucochain_types::fhir::cgm_observation(patient.as_str(), at(1), 99.5, None),
        ];
        let (envelope, sealed) = ObservationBody::seal(readings, DataClass::Private);
        let payload = TxPayload::new(
            glucochain_types::ChainId::parse("glucochain-test").unwrap(),
            "nonce-0001".into(),
            at(2),
            Some(patient.clone()),
            envelope,
        );
        let (_, kept) = RecordBody::accept(&payload, &sealed, &Default::default()).unwrap();
        let jws = payload.sign(&key, &patient);
        let tx = StoredTx {
            hash: glucochain_crypto::sha256(jws.as_bytes()).0.to_vec(),
            height: 7,
            index: 0,
            tx_type: "observation.record".into(),
            signer: patient.to_string(),
            patient: Some(patient.to_string()),
            jws,
            ok: true,
            code: String::new(),
        };
        (tx, kept)
    }

    #[test]
    fn a_documents_title_is_sealed_and_opens_into_its_document_reference() {
        use glucochain_types::sealed::{RecordBody, split};
        let key = glucochain_crypto::KeyPair::from_seed([9; 32]);
        let patient = glucochain_types::ParticipantId::from_public_key(&key.public());
        let whole = json!({
            "document_id": "d1", "data_class": "institution", "kind": "lab_report", "title": "Discharge letter, oncology",
            "content_type": "application/pdf", "content_sha256": "ab".repeat(32), "size_bytes": 1200, "code": "11502-2",
        });
        let (envelope, sealed) = split(glucochain_types::TxType::DocumentAdd, whole).unwrap();
        let at = Timestamp::from_unix_ms(1_790_000_000_000);
        let chain = glucochain_types::ChainId::parse("glucochain-test").unwrap();
        let payload = TxPayload::new(chain, "nonce-0002".into(), at, Some(patient.clone()), envelope);
        let (_, kept) = RecordBody::accept(&payload, sealed.as_ref().unwrap(), &Default::default()).unwrap();
        let jws = payload.sign(&key, &patient);
        assert!(!String::from_utf8(payload.to_json()).unwrap().contains("oncology"), "no title on the chain");
        let tx = StoredTx {
            hash: glucochain_crypto::sha256(jws.as_bytes()).0.to_vec(),
            height: 8,
            index: 1,
            tx_type: "document.add".into(),
            signer: patient.to_string(),
            patient: Some(patient.to_string()),
            jws,
            ok: true,
            code: String::new(),
        };
        let listed = entries(&tx);
        assert_eq!(listed.len(), 1);
        assert!(listed[0].sealed.is_some() && listed[0].resource.is_null());
        assert_eq!((listed[0].class, listed[0].record_type), (DataClass::Institution, RecordType::Document));
        assert!(listed[0].may_meet(Some(at), None) && !listed[0].may_meet(None, Some(at)));
        let doc = opened(listed[0].clone(), Lookup::Body(kept));
        assert_eq!(doc[0].resource["resourceType"], "DocumentReference");
        assert_eq!(doc[0].resource["description"], "Discharge letter, oncology");
        assert_eq!(doc[0].resource["content"][0]["attachment"]["size"], 1200);
        assert_eq!(doc[0].codes, vec![(Some("http://loinc.org".to_string()), "11502-2".to_string())]);
    }

    #[test]
    fn a_sealed_record_opens_into_its_observations_or_says_it_was_erased() {
        let (tx, kept) = sealed_record();
        let listed = entries(&tx);
        assert_eq!(listed.len(), 1, "one entry per record until its body is opened");
        assert!(listed[0].sealed.is_some() && listed[0].resource.is_null(), "nothing but the envelope yet");
        assert!(listed[0].may_meet(Some(listed[0].effective), None));
        assert!(!listed[0].may_meet(None, Some(listed[0].effective)), "ends before the record starts");
        let obs = opened(listed[0].clone(), Lookup::Body(kept.clone()));
        let values: Vec<f64> = obs.iter().map(|e| e.resource["valueQuantity"]["value"].as_f64().unwrap()).collect();
        assert_eq!(values, vec![101.25, 99.5]);
        assert!(
            obs.iter()
                .all(|e| e.sealed.is_none() && e.resource["extension"][0]["url"] == "urn:glucochain:fhir:provenance")
        );
        let erased = opened(listed[0].clone(), Lookup::Erased { by_tx: "ab12".into(), at_ms: 1_790_000_000_000 });
        assert_eq!(erased.len(), 1);
        assert_eq!(erased[0].resource["resourceType"], "OperationOutcome");
        assert_eq!(erased[0].resource["issue"][0]["code"], "deleted");
        assert!(erased[0].resource["issue"][0]["diagnostics"].as_str().unwrap().contains("ab12"));
        let b = bundle("/x", &erased, &RecordQuery { count: 10, ..Default::default() }, &[]);
        assert_eq!(b["entry"][0]["search"]["mode"], "outcome");
        // A body that is not the committed one is not served.
        let mut altered = kept;
        let n = altered.len();
        altered[n - 3] ^= 1;
        let refused = opened(listed[0].clone(), Lookup::Body(altered));
        assert_eq!(refused[0].resource["resourceType"], "OperationOutcome");
        assert!(!refused[0].resource.to_string().contains("101.25"));
    }

    #[test]
    fn parses_fhir_search_parameters() {
        let p = q(&[
            ("code", "http://loinc.org|99504-3,4548-4"),
            ("date", "ge2026-11-01"),
            ("date", "lt2026-11-02T06:00:00Z"),
            ("_count", "10"),
        ])
        .unwrap();
        assert_eq!(p.codes, vec![(Some("http://loinc.org".into()), "99504-3".into()), (None, "4548-4".into())]);
        assert_eq!(p.from, Some(Timestamp::parse("2026-11-01T00:00:00Z").unwrap()));
        assert_eq!(p.until, Some(Timestamp::parse("2026-11-02T06:00:00Z").unwrap()));
        assert_eq!(p.count, 10);
        let day = q(&[("date", "2026-11-01")]).unwrap();
        assert_eq!(day.until.unwrap().unix_ms() - day.from.unwrap().unix_ms(), 86_400_000);
        assert!(q(&[("_count", "0")]).is_err());
        assert!(q(&[("date", "xx2026-11-01")]).is_err());
        assert!(q(&[("patient", "x")]).unwrap_err().contains("unsupported"));
    }

    #[test]
    fn filters_sorts_and_pages_with_links() {
        let all: Vec<RecordEntry> =
            (0..7).rev().map(|m| entry(m, if m % 2 == 0 { "99504-3" } else { "4548-4" })).collect();
        let raw = vec![("code".to_string(), "99504-3".to_string())];
        let mut query = RecordQuery::parse(&raw).unwrap();
        query.count = 2;
        let b = bundle("/v1/patients/p/records", &all, &query, &raw);
        assert_eq!(b["total"], 4);
        let ids: Vec<&str> =
            b["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["o0", "o2"], "sorted by effective time");
        let links = b["link"].as_array().unwrap();
        assert!(links.iter().any(
            |l| l["relation"] == "next" && l["url"].as_str().unwrap().ends_with("code=99504-3&_count=2&_offset=2")
        ));
        query.offset = 2;
        let b = bundle("/v1/patients/p/records", &all, &query, &raw);
        let ids: Vec<&str> =
            b["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["o4", "o6"]);
        assert!(!b["link"].as_array().unwrap().iter().any(|l| l["relation"] == "next"));
        // Date window.
        let w = RecordQuery {
            from: Some(all[6].effective),
            until: Some(all[3].effective),
            count: 50,
            ..Default::default()
        };
        assert_eq!(bundle("/x", &all, &w, &[])["total"], 3);
    }
}
