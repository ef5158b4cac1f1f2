//! docs/transactions.md stays true: every JSON example parses under the
//! validators' strict rules as the type it documents, every type has an
//! example, and the table of signer roles matches the code.

use glucochain_types::sealed::{RecordBody, SealedBody};
use glucochain_types::tx::{TxLimits, TxPayload, TxType};
use std::collections::BTreeSet;

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/transactions.md")).unwrap()
}

#[test]
fn every_example_parses_as_its_type() {
    let text = doc();
    let mut seen = BTreeSet::new();
    let mut section = String::new();
    let mut last: Option<TxPayload> = None;
    let mut sealed = 0;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h.trim().to_string();
        }
        if line.trim() == "```json" {
            let block: String = lines.by_ref().take_while(|l| l.trim() != "```").collect::<Vec<_>>().join("\n");
            let p = TxPayload::from_json(block.as_bytes(), &TxLimits::default())
                .unwrap_or_else(|e| panic!("example under {section:?} does not parse: {e}"));
            assert_eq!(p.tx_type.as_str(), section, "example under the wrong heading");
            seen.insert(section.clone());
            last = Some(p);
        }
        if line.trim() == "```json sealed" {
            let block: String = lines.by_ref().take_while(|l| l.trim() != "```").collect::<Vec<_>>().join("\n");
            let body: SealedBody = serde_json::from_str(&block).unwrap();
            let p = last.as_ref().expect("a sealed body follows its envelope");
            RecordBody::accept(p, &body, &TxLimits::default())
                .unwrap_or_else(|e| panic!("the sealed body under {section:?} is not its envelope's: {e}"));
            sealed += 1;
        }
    }
    let all: BTreeSet<String> = TxType::ALL.iter().map(|t| t.as_str().to_string()).collect();
    assert_eq!(seen, all, "every transaction type has exactly one documented example");
    let with_body = TxType::ALL.iter().filter(|t| t.sealed()).count();
    assert_eq!(sealed, with_body, "every type with a sealed body shows one, checked against its commitment");
}

#[test]
fn role_table_matches_the_code() {
    let text = doc();
    let mut rows = 0;
    for line in text.lines().filter(|l| l.starts_with("| [`")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].split('`').nth(1).unwrap();
        let t = TxType::parse(name).unwrap_or_else(|| panic!("unknown type {name} in table"));
        assert_eq!(cells[2] == "yes", t.concerns_patient(), "patient column of {name}");
        let roles: Vec<&str> = cells[3].split(", ").collect();
        let code: Vec<&str> = t.signer_roles().iter().map(|r| r.as_str()).collect();
        assert_eq!(roles, code, "signer roles of {name}");
        rows += 1;
    }
    assert_eq!(rows, TxType::ALL.len());
}
