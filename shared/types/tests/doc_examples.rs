//! docs/transactions.md stays true: every JSON example parses under the
//! validators' strict rules as the type it documents, every type has an
//! example, and the table of signer roles matches the code.

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
        }
    }
    let all: BTreeSet<String> = TxType::ALL.iter().map(|t| t.as_str().to_string()).collect();
    assert_eq!(seen, all, "every transaction type has exactly one documented example");
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
