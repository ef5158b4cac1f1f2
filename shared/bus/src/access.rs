//! Who may do what on NATS: one NATS user per service kind, authenticated
//! with an NKey (the server holds only public keys), and for each the
//! subjects it may publish and subscribe to — nothing else.
//!
//! The table here is the single source: the devnet writes the server's
//! `authorization` block from it ([`authorization_config`]), and the Helm
//! chart reads the same table from `helm/glucochain/files/nats-permissions.json`
//! (written by `emrctl nats permissions`, checked to be current by a test).
//!
//! What it prevents: a client without a key cannot connect; the ledger, the
//! detector or anything else but the contracts engine cannot receive
//! `emr.authz.decide` requests (so cannot answer them); only the detector and
//! the contracts engine may publish on `emr.alert.*`; only validators may
//! publish consensus messages and blocks; each service reaches the JetStream
//! API only for the streams it uses. Replies to requests go back through
//! `allow_responses`, never through a general right to publish on inboxes.

use serde::Serialize;
use std::path::Path;

/// The environment variable naming the file that holds a service's NKey
/// seed (`SU…`). Unset: the service connects without credentials (a NATS
/// server without authorization, such as the tests').
pub const NKEY_FILE_ENV: &str = "GLUCOCHAIN_NATS_NKEY_FILE";

/// A kind of NATS user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NatsUser {
    /// A consensus validator.
    Validator,
    /// The write API.
    Ingest,
    /// The ledger (reads, proofs, audit).
    Ledger,
    /// The contracts engine (access decisions, reminders, break-glass notices).
    Contracts,
    /// The glucose detector.
    Detector,
    /// The notifier.
    Notifier,
    /// An operator's tools (`emrctl submit`, the benchmark): everything.
    Operator,
}

/// What one user may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permissions {
    /// Subjects it may publish on.
    pub publish: Vec<String>,
    /// Subjects it may not publish on, though `publish` would allow them
    /// (other services' durable consumers, for a user whose own consumers
    /// have names that cannot be listed in advance).
    pub deny_publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Whether it may answer requests it received (on their reply subject only).
    pub allow_responses: bool,
}

/// How a user touches a JetStream stream. Nobody but the operator may
/// change a stream's settings or delete a consumer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Publishes into it (and creates it if missing, with the same settings).
    Publish,
    /// Reads it through its own durable consumer `name` (all subjects).
    Durable(&'static str),
    /// Reads it through its own durable consumer `name` on subject `filter`.
    DurableFiltered(&'static str, &'static str),
    /// Reads single messages by subject (`DIRECT.GET`, or `STREAM.MSG.GET`
    /// where a stream predates direct gets): the vault's readers fetch one
    /// record's sealed row, never the whole stream.
    ReadBySubject,
    /// The vault's owner: publishes, purges what an erasure names, reads by
    /// subject and restores through ordered consumers.
    Own,
    /// Reads it through consumers whose names are made at run time (ordered
    /// consumers, or one durable per validator): any name but the other
    /// services' durables.
    Named,
}

/// Every durable consumer of every stream, by name (a user reading with
/// run-time names is denied these).
const DURABLES: &[(&str, &str)] = &[
    ("BLOCKS", "ledger"),
    ("BLOCKS", "contracts"),
    ("BLOCKS", "detector"),
    ("BLOCKS", "notifier"),
    ("TXS", "detector"),
    ("ALERTS", "notifier-alerts"),
    ("REMINDERS", "notifier-reminders"),
];

/// The JetStream API subjects for `stream`: (allowed, denied).
fn jetstream(stream: &str, how: Use) -> (Vec<String>, Vec<String>) {
    let mut v = vec![format!("$JS.API.STREAM.INFO.{stream}"), format!("$JS.API.STREAM.CREATE.{stream}")];
    let own = |name: &str| {
        vec![
            format!("$JS.API.CONSUMER.INFO.{stream}.{name}"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"),
            format!("$JS.ACK.{stream}.{name}.>"),
        ]
    };
    let mut deny = Vec::new();
    match how {
        Use::Publish => {}
        Use::ReadBySubject => {
            v.push(format!("$JS.API.DIRECT.GET.{stream}.>"));
            v.push(format!("$JS.API.STREAM.MSG.GET.{stream}"));
        }
        Use::Own => {
            v.push(format!("$JS.API.DIRECT.GET.{stream}.>"));
            v.push(format!("$JS.API.STREAM.MSG.GET.{stream}"));
            v.push(format!("$JS.API.STREAM.PURGE.{stream}"));
            v.extend(own("*"));
            v.push(format!("$JS.API.CONSUMER.CREATE.{stream}.*"));
            v.push(format!("$JS.API.CONSUMER.CREATE.{stream}"));
        }
        Use::Durable(name) => {
            v.extend(own(name));
            v.push(format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"));
        }
        Use::DurableFiltered(name, filter) => {
            v.extend(own(name));
            v.push(format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.{filter}"));
        }
        Use::Named => {
            v.extend(own("*"));
            // Named by the client, or (an ordered consumer without a name) by the server.
            v.push(format!("$JS.API.CONSUMER.CREATE.{stream}.*"));
            v.push(format!("$JS.API.CONSUMER.CREATE.{stream}"));
            for (_, name) in DURABLES.iter().filter(|(s, _)| *s == stream) {
                deny.extend(own(name));
                deny.push(format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"));
                deny.push(format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.>"));
            }
        }
    }
    (v, deny)
}

impl NatsUser {
    /// Every kind, in a fixed order.
    pub const ALL: [NatsUser; 7] = [
        NatsUser::Validator,
        NatsUser::Ingest,
        NatsUser::Ledger,
        NatsUser::Contracts,
        NatsUser::Detector,
        NatsUser::Notifier,
        NatsUser::Operator,
    ];

    /// The kind named `name` in configuration.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.name() == name)
    }

    /// The name used in configuration (`validator`, `ingest`, …).
    pub fn name(self) -> &'static str {
        match self {
            NatsUser::Validator => "validator",
            NatsUser::Ingest => "ingest",
            NatsUser::Ledger => "ledger",
            NatsUser::Contracts => "contracts",
            NatsUser::Detector => "detector",
            NatsUser::Notifier => "notifier",
            NatsUser::Operator => "operator",
        }
    }

    /// What this user may do.
    pub fn permissions(self) -> Permissions {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let inbox = s(&["_INBOX.>"]);
        let (mut publish, mut subscribe, allow_responses) = match self {
            NatsUser::Validator => (
                s(&[
                    "emr.consensus.>",
                    "emr.voteset",
                    "emr.sync.blocks",
                    "emr.block.committed",
                    "emr.txstatus.rejected",
                ]),
                s(&["emr.consensus.>", "emr.voteset", "emr.sync.blocks"]),
                true,
            ),
            NatsUser::Ingest => {
                (s(&["emr.tx.>", "emr.vault.>", "emr.sync.blocks"]), s(&["emr.txstatus.rejected"]), false)
            }
            NatsUser::Ledger => (
                s(&["emr.tx.audit.checkpoint", "emr.sync.blocks", "emr.authz.decide"]),
                s(&["emr.audit.append", "emr.audit.append.detector", "emr.audit.append.notifier"]),
                true,
            ),
            NatsUser::Contracts => (
                s(&["emr.alert.break_glass", "emr.reminder.>", "emr.sync.blocks", "emr.audit.append"]),
                s(&["emr.authz.decide"]),
                true,
            ),
            NatsUser::Detector => (
                s(&["emr.alert.>", "emr.tx.alert.raise", "emr.sync.blocks", "emr.audit.append.detector"]),
                Vec::new(),
                false,
            ),
            NatsUser::Notifier => {
                (s(&["emr.tx.alert.ack", "emr.sync.blocks", "emr.audit.append.notifier"]), Vec::new(), false)
            }
            NatsUser::Operator => {
                return Permissions {
                    publish: s(&[">"]),
                    deny_publish: Vec::new(),
                    subscribe: s(&[">"]),
                    allow_responses: true,
                };
            }
        };
        let streams: &[(&str, Use)] = match self {
            // One durable per validator (`validator-<id>`); blocks are published, and fetched by sync.
            NatsUser::Validator => &[("TXS", Use::Named), ("BLOCKS", Use::Publish)],
            // The registry is rebuilt from the first block with an ordered consumer.
            // It owns the record vault's replica (bodies sealed, erasures purged).
            NatsUser::Ingest => &[("TXS", Use::Publish), ("BLOCKS", Use::Named), ("VAULT", Use::Own)],
            // The vault's readers fetch one sealed row at a time.
            NatsUser::Ledger => {
                &[("TXS", Use::Publish), ("BLOCKS", Use::Durable("ledger")), ("VAULT", Use::ReadBySubject)]
            }
            // Emergency profiles' bodies, for break-glass reads.
            NatsUser::Contracts => &[
                ("BLOCKS", Use::Durable("contracts")),
                ("ALERTS", Use::Publish),
                ("REMINDERS", Use::Publish),
                ("VAULT", Use::ReadBySubject),
            ],
            NatsUser::Detector => &[
                ("TXS", Use::DurableFiltered("detector", "emr.tx.observation.record")),
                ("BLOCKS", Use::Durable("detector")),
                ("ALERTS", Use::Publish),
                ("VAULT", Use::ReadBySubject),
            ],
            // Contacts' addresses.
            NatsUser::Notifier => &[
                ("TXS", Use::Publish),
                ("BLOCKS", Use::Durable("notifier")),
                ("ALERTS", Use::Durable("notifier-alerts")),
                ("REMINDERS", Use::Durable("notifier-reminders")),
                ("VAULT", Use::ReadBySubject),
            ],
            NatsUser::Operator => &[],
        };
        let mut deny_publish = Vec::new();
        for (stream, how) in streams {
            let (allow, deny) = jetstream(stream, *how);
            publish.extend(allow);
            deny_publish.extend(deny);
        }
        subscribe.extend(inbox);
        Permissions { publish, deny_publish, subscribe, allow_responses }
    }
}

/// The permission table of every user, as JSON (what the Helm chart reads).
pub fn permissions_json() -> String {
    let table: std::collections::BTreeMap<&str, Permissions> =
        NatsUser::ALL.iter().map(|u| (u.name(), u.permissions())).collect();
    serde_json::to_string_pretty(&table).expect("permissions serialize") + "\n"
}

/// A NATS server configuration line `authorization: {…}` (the value in
/// JSON, which the server's format accepts) for `users`: each public NKey
/// (`U…`) with its kind's permissions.
pub fn authorization_config(users: &[(NatsUser, String)]) -> String {
    let entries: Vec<serde_json::Value> = users
        .iter()
        .map(|(kind, nkey)| {
            let p = kind.permissions();
            serde_json::json!({
                "nkey": nkey,
                "permissions": {
                    "publish": { "allow": p.publish, "deny": p.deny_publish },
                    "subscribe": { "allow": p.subscribe },
                    "allow_responses": p.allow_responses,
                }
            })
        })
        .collect();
    let block = serde_json::to_string_pretty(&serde_json::json!({ "users": entries })).expect("config serializes");
    format!("authorization: {block}\n")
}

/// A new user NKey: `(public key "U…", seed "SU…")`.
pub fn new_user_nkey() -> (String, String) {
    let kp = nkeys::KeyPair::new_user();
    (kp.public_key(), kp.seed().expect("a new key pair has a seed"))
}

/// The public key (`U…`) of an NKey seed.
pub fn public_key_of(seed: &str) -> Option<String> {
    nkeys::KeyPair::from_seed(seed).ok().map(|k| k.public_key())
}

/// Whether `key` is a public user NKey (`U…`, checksum included).
pub fn is_user_public_key(key: &str) -> bool {
    key.starts_with('U') && nkeys::KeyPair::from_public_key(key).is_ok()
}

/// The seed in `path`, made (0600) when the file does not exist yet.
pub fn seed_file(path: &Path) -> Result<String, crate::BusError> {
    if !path.exists() {
        write_seed(path, &new_user_nkey().1)?;
    }
    read_seed(path)
}

fn credentials(path: &Path, reason: impl ToString) -> crate::BusError {
    crate::BusError::Credentials { path: path.display().to_string(), reason: reason.to_string() }
}

/// Reads an NKey seed from `path`, refusing a file that group or others may
/// read (the same rule as private keys).
pub fn read_seed(path: &Path) -> Result<String, crate::BusError> {
    let text = glucochain_crypto::read_secret_file(path).map_err(|e| credentials(path, e))?;
    let seed = text.trim().to_string();
    nkeys::KeyPair::from_seed(&seed).map_err(|_| credentials(path, "not an NKey seed"))?;
    Ok(seed)
}

/// Writes `seed` to a new file `path` with mode 0600 (an existing file is
/// not overwritten).
pub fn write_seed(path: &Path, seed: &str) -> Result<(), crate::BusError> {
    glucochain_crypto::write_secret_file(path, format!("{seed}\n").as_bytes(), false).map_err(|e| credentials(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(patterns: &[String], subject: &str) -> bool {
        patterns.iter().any(|p| {
            let (pt, st): (Vec<&str>, Vec<&str>) = (p.split('.').collect(), subject.split('.').collect());
            for (i, t) in pt.iter().enumerate() {
                if *t == ">" {
                    return st.len() > i;
                }
                match st.get(i) {
                    Some(s) if *t == "*" || t == s => continue,
                    _ => return false,
                }
            }
            pt.len() == st.len()
        })
    }

    #[test]
    fn only_the_contracts_engine_receives_access_requests_and_only_services_that_raise_alerts_publish_them() {
        for u in NatsUser::ALL {
            let p = u.permissions();
            let may_decide = matches!(u, NatsUser::Contracts | NatsUser::Operator);
            assert_eq!(allows(&p.subscribe, "emr.authz.decide"), may_decide, "{u:?}");
            let may_alert = matches!(u, NatsUser::Detector | NatsUser::Operator);
            assert_eq!(allows(&p.publish, "emr.alert.urgent_low"), may_alert, "{u:?}");
            let may_vote = matches!(u, NatsUser::Validator | NatsUser::Operator);
            assert_eq!(allows(&p.publish, "emr.consensus.vote.v1"), may_vote, "{u:?}");
            assert_eq!(allows(&p.publish, "emr.block.committed"), may_vote, "{u:?}");
            if u != NatsUser::Operator {
                assert!(!allows(&p.publish, "_INBOX.abc"), "{u:?} answers only through allow_responses");
                assert!(!allows(&p.publish, "$JS.API.STREAM.DELETE.BLOCKS"), "{u:?}");
                // Issue 19, M9: nobody but the operator changes a stream or deletes a consumer.
                for stream in ["TXS", "BLOCKS", "ALERTS", "REMINDERS"] {
                    assert!(!allows(&p.publish, &format!("$JS.API.STREAM.UPDATE.{stream}")), "{u:?} updates {stream}");
                    for c in ["ledger", "notifier-alerts", "validator-x", "detector"] {
                        let del = format!("$JS.API.CONSUMER.DELETE.{stream}.{c}");
                        assert!(!allows(&p.publish, &del), "{u:?} deletes {c} on {stream}");
                    }
                }
                // Nor reads through another service's durable consumer.
                for (stream, name) in DURABLES {
                    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}");
                    let mine = match u {
                        NatsUser::Ledger => *name == "ledger",
                        NatsUser::Contracts => *name == "contracts",
                        NatsUser::Detector => *name == "detector",
                        NatsUser::Notifier => name.starts_with("notifier"),
                        _ => false,
                    };
                    let can = allows(&p.publish, &next) && !allows(&p.deny_publish, &next);
                    assert_eq!(can, mine, "{u:?} reading {stream}/{name}");
                }
            }
        }
        assert!(allows(&NatsUser::Contracts.permissions().publish, "emr.alert.break_glass"));
        // Alerts are read by the notifier alone.
        for u in NatsUser::ALL {
            let reads = allows(&u.permissions().publish, "$JS.API.CONSUMER.MSG.NEXT.ALERTS.notifier-alerts");
            assert_eq!(reads, matches!(u, NatsUser::Notifier | NatsUser::Operator), "{u:?}");
        }
        // Transactions in clear: read by validators, and by the detector only through its filtered consumer.
        for u in [NatsUser::Ledger, NatsUser::Notifier, NatsUser::Contracts, NatsUser::Detector, NatsUser::Ingest] {
            assert!(!allows(&u.permissions().publish, "$JS.API.CONSUMER.CREATE.TXS.x"), "{u:?}");
            assert!(!allows(&u.permissions().publish, "$JS.API.CONSUMER.CREATE.TXS.detector"), "{u:?}");
        }
        let v = NatsUser::Validator.permissions();
        assert!(allows(&v.publish, "$JS.API.CONSUMER.CREATE.TXS.validator-pabc"));
        assert!(allows(&v.deny_publish, "$JS.API.CONSUMER.CREATE.TXS.detector.emr.tx.observation.record"));
        assert!(allows(
            &NatsUser::Detector.permissions().publish,
            "$JS.API.CONSUMER.CREATE.TXS.detector.emr.tx.observation.record"
        ));
        assert!(allows(&NatsUser::Ledger.permissions().publish, "$JS.API.CONSUMER.MSG.NEXT.BLOCKS.ledger"));
        // The record vault (ADR 0016): only ingest writes and purges it; the
        // ledger, the detector, the contracts engine and the notifier read
        // one sealed row by subject; nobody else (validators, the API
        // gateways) reads it at all, and no reader may purge or write.
        for u in NatsUser::ALL {
            let p = u.permissions();
            let owner = matches!(u, NatsUser::Ingest | NatsUser::Operator);
            assert_eq!(allows(&p.publish, "emr.vault.rec.pabc.private.ff"), owner, "{u:?} writes VAULT");
            assert_eq!(allows(&p.publish, "$JS.API.STREAM.PURGE.VAULT"), owner, "{u:?} purges VAULT");
            let reader =
                owner || matches!(u, NatsUser::Ledger | NatsUser::Detector | NatsUser::Contracts | NatsUser::Notifier);
            assert_eq!(allows(&p.publish, "$JS.API.STREAM.MSG.GET.VAULT"), reader, "{u:?} reads VAULT");
            let direct = "$JS.API.DIRECT.GET.VAULT.emr.vault.rec.pabc.private.ff";
            assert_eq!(allows(&p.publish, direct), reader, "{u:?} reads VAULT directly");
            assert!(!allows(&p.publish, "$JS.API.DIRECT.GET.TXS.emr.tx.observation.record") || u == NatsUser::Operator);
            if u != NatsUser::Operator {
                assert!(!allows(&p.publish, "$JS.API.STREAM.PURGE.TXS"), "{u:?} purges TXS");
                assert!(!allows(&p.publish, "$JS.API.STREAM.PURGE.BLOCKS"), "{u:?} purges BLOCKS");
            }
        }
    }

    #[test]
    fn the_server_block_names_each_key_with_its_kinds_permissions() {
        let (public, seed) = new_user_nkey();
        assert!(public.starts_with('U') && seed.starts_with("SU"));
        let text = authorization_config(&[(NatsUser::Ledger, public.clone())]);
        let conf: serde_json::Value = serde_json::from_str(text.strip_prefix("authorization: ").unwrap()).unwrap();
        let user = &conf["users"][0];
        assert_eq!(user["nkey"], public);
        // The ledger hears only the contracts engine's audit appends (and its own replies).
        assert_eq!(
            user["permissions"]["subscribe"]["allow"],
            serde_json::json!([
                "emr.audit.append",
                "emr.audit.append.detector",
                "emr.audit.append.notifier",
                "_INBOX.>"
            ])
        );
    }

    #[test]
    fn a_seed_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seed");
        let (_, seed) = new_user_nkey();
        write_seed(&p, &seed).unwrap();
        assert_eq!(read_seed(&p).unwrap(), seed);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(read_seed(&p).unwrap_err().to_string().contains("chmod 600"));
        }
        std::fs::write(&p, "not a seed").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(read_seed(&p).unwrap_err().to_string().contains("not an NKey seed"));
    }
}
