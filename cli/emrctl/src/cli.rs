//! Command-line syntax and help texts.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// GlucoChain command line: keys, signed transactions, offline verification.
///
/// Every command that reads a file also reads standard input when given `-`.
/// Output is JSON where a program may read it, so `emrctl ... | jq` works.
/// Exit status: 0 success, 1 a verification failed, 2 bad usage or input.
#[derive(Parser, Debug)]
#[command(name = "emrctl", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate an Ed25519 key pair and write it as a PKCS#8 PEM file (mode 0600).
    ///
    /// Prints the participant id derived from the key and the public key
    /// (unpadded base64url), which an admin registers on the chain.
    #[command(after_help = "Example:\n  emrctl keygen --out keys/dr-ada.pem")]
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },

    /// Show the participant id and public key of a private key file.
    Keyinfo {
        /// PKCS#8 PEM private key (must not be readable by group or others).
        #[arg(long)]
        key: PathBuf,
    },

    /// Write a genesis file from validator and admin keys.
    #[command(
        after_help = "Example:\n  emrctl genesis --chain-id glucochain-dev \\\n    --validator v1=keys/v1.pem:10 --validator v2=keys/v2.pem:10 \\\n    --admin root=keys/admin.pem --out genesis.json"
    )]
    Genesis {
        /// Chain id (3-64 characters a-z, 0-9, '-').
        #[arg(long)]
        chain_id: String,
        /// A validator as NAME=KEYFILE[:POWER] (power defaults to 10); repeat.
        #[arg(long = "validator", required = true)]
        validators: Vec<String>,
        /// An admin as NAME=KEYFILE; repeat.
        #[arg(long = "admin", required = true)]
        admins: Vec<String>,
        /// Genesis time (RFC 3339); default now.
        #[arg(long)]
        time: Option<String>,
        /// Output file; `-` for standard output.
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },

    /// Sign a transaction: a JSON body in, a JWS compact serialization out.
    ///
    /// The body is checked with the same strict rules the validators apply
    /// before it is signed, so mistakes show here and not as a rejection.
    /// The signer's participant id (the JWS `kid`) is derived from the key.
    #[command(
        after_help = "Example:\n  echo '{\"consent_id\":\"c1\",\"grantee\":\"p...\",\"scope\":{\"data_classes\":[\"private\"],\"access\":[\"read\"]},\"purpose\":\"TREAT\"}' \\\n    | emrctl sign-tx --key keys/patient.pem --chain-id glucochain-dev \\\n        --type consent.grant --patient p... --body - > tx.jws"
    )]
    SignTx {
        /// Signer's private key.
        #[arg(long)]
        key: PathBuf,
        /// Chain id the transaction is for.
        #[arg(long)]
        chain_id: String,
        /// Transaction type, e.g. observation.record, consent.grant.
        #[arg(long = "type")]
        tx_type: String,
        /// Patient the transaction concerns (for patient transaction types).
        #[arg(long)]
        patient: Option<String>,
        /// JSON body file, or `-` for standard input.
        #[arg(long, default_value = "-")]
        body: PathBuf,
        /// Nonce (default: random); must be unique per signer.
        #[arg(long)]
        nonce: Option<String>,
        /// Creation time (RFC 3339); default now.
        #[arg(long)]
        created_at: Option<String>,
    },

    /// Submit a signed transaction straight to the validators' TXS stream on
    /// NATS (operators and tests; applications use the ingest HTTPS API).
    ///
    /// With --wait, follows the BLOCKS stream and the rejection subject until
    /// the transaction is committed (exit 0) or rejected (exit 1).
    #[command(after_help = "Example:
  emrctl submit --nats nats://127.0.0.1:4222 --wait 30 tx.jws")]
    Submit {
        /// The JWS file, or `-` for standard input.
        #[arg(default_value = "-")]
        jws: PathBuf,
        /// Submit through the ingest HTTPS API at this base URL (what
        /// applications do) instead of straight to NATS.
        #[arg(long, env = "GLUCOCHAIN_INGEST_URL")]
        ingest: Option<String>,
        /// NATS server URL (when not using --ingest).
        #[arg(long, env = "GLUCOCHAIN_NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Wait up to this many seconds for the outcome (0: do not wait).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },

    /// Where a submitted transaction stands (pending, committed, rejected), from ingest.
    #[command(after_help = "Example:\n  emrctl tx 7df2...d74 --ingest http://127.0.0.1:8080")]
    Tx {
        /// The tx hash (hex).
        hash: String,
        /// Ingest base URL.
        #[arg(long, env = "GLUCOCHAIN_INGEST_URL", default_value = "http://127.0.0.1:8080")]
        ingest: String,
    },

    /// A patient's records as a FHIR R4 Bundle, read from the ledger with a
    /// read token signed by --key (the patient, or an admin).
    #[command(
        after_help = "Example:\n  emrctl records p3k... --key keys/patient.pem --code http://loinc.org|99504-3 --date ge2026-11-24"
    )]
    Records {
        /// The patient's id.
        patient: String,
        #[command(flatten)]
        reader: ReaderArgs,
        /// Ledger base URL.
        #[arg(long, env = "GLUCOCHAIN_LEDGER_URL", default_value = "http://127.0.0.1:8081")]
        ledger: String,
        /// FHIR `code` filter, e.g. `http://loinc.org|99504-3`.
        #[arg(long)]
        code: Option<String>,
        /// FHIR `date` filters, e.g. `ge2026-11-01`; repeat for a range.
        #[arg(long)]
        date: Vec<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        count: u32,
        /// Purpose of use (HL7 ActReason), e.g. TREAT.
        #[arg(long)]
        purpose: Option<String>,
    },

    /// Fetch a transaction's inclusion proof from the ledger (then check it
    /// offline with `verify-proof`).
    Proof {
        /// The tx hash (hex).
        hash: String,
        #[command(flatten)]
        reader: ReaderArgs,
        /// Ledger base URL.
        #[arg(long, env = "GLUCOCHAIN_LEDGER_URL", default_value = "http://127.0.0.1:8081")]
        ledger: String,
        /// Where to write the proof JSON; `-` for standard output.
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },

    /// Fetch every block header from the ledger and check the chain from
    /// genesis: heights, hash links, tx roots and every commit certificate.
    VerifyChain {
        /// Genesis file of the chain (its chain id is the read token's).
        #[arg(long)]
        genesis: PathBuf,
        /// Reader's private key (any registered participant).
        #[arg(long)]
        key: PathBuf,
        /// Ledger base URL.
        #[arg(long, env = "GLUCOCHAIN_LEDGER_URL", default_value = "http://127.0.0.1:8081")]
        ledger: String,
    },

    /// Check a patient's access log against the audit checkpoint the chain
    /// committed: every entry of theirs from the segment up to the newest
    /// checkpoint recomputes to its head (others' entries come as hashes
    /// only), and the checkpoint transaction's inclusion proof verifies
    /// offline with the genesis file.
    #[command(
        after_help = "Example:\n  emrctl verify-audit p3k... --key keys/patient.pem --genesis genesis.json --ledger $LEDGER"
    )]
    VerifyAudit {
        /// The patient.
        patient: String,
        /// The patient's (or an admin's) private key.
        #[arg(long)]
        key: PathBuf,
        /// Genesis file of the chain.
        #[arg(long)]
        genesis: PathBuf,
        /// Ledger base URL.
        #[arg(long, env = "GLUCOCHAIN_LEDGER_URL", default_value = "http://127.0.0.1:8081")]
        ledger: String,
        /// First entry of the segment to check (default: the oldest of the patient's newest 100).
        #[arg(long)]
        from: Option<u64>,
    },

    /// Consents: grant or revoke (prints the signed transaction; pipe it to
    /// `emrctl submit`), or list a patient's consents from the contracts engine.
    #[command(subcommand)]
    Consent(ConsentCmd),

    /// Care plans: accept a proposal (patient), or show a patient's plans.
    /// A proposal is `emrctl sign-tx --type careplan.propose --body plan.json`.
    #[command(subcommand)]
    Careplan(CareplanCmd),

    /// Emergency (break-glass) access: make a device token with its QR code,
    /// set the emergency profile, or break the glass as a clinician.
    #[command(subcommand)]
    Emergency(EmergencyCmd),

    /// Tele-health consults: request (patient, sharing records) or respond (clinician).
    #[command(subcommand)]
    Consult(ConsultCmd),

    /// Alerts at the notifier: acknowledge one (signed alert.ack) or see who was told.
    #[command(subcommand)]
    Alert(AlertCmd),

    /// Carry a chain made before the record vault to a new chain: export it
    /// (checked from its genesis), then re-sign each record with its
    /// author's key in the new format (docs/operations.md).
    #[command(subcommand)]
    Chain(ChainCmd),

    /// A local devnet: every service as a process on this machine.
    #[command(subcommand)]
    Devnet(DevnetCmd),

    /// NATS credentials and permissions: one NKey user per service kind.
    #[command(subcommand)]
    Nats(NatsCmd),

    /// Start a devnet and play the whole story end to end: registrations,
    /// consents, care plans, CGM streaming, alerts by email, acknowledgement
    /// and escalation, break-glass, a reminder, chain and proof verification.
    Demo {
        /// Directory for the devnet (keys, logs, data, mail).
        #[arg(long, default_value = "glucochain-demo")]
        dir: PathBuf,
        #[command(flatten)]
        shape: DevnetShape,
        /// Leave the devnet running afterwards (stop it with `emrctl devnet down`).
        #[arg(long)]
        keep: bool,
    },

    /// Run the detector (exactly the service's code) over CGM CSV files
    /// (`patient_id,timestamp,glucose_mg_dl`) and write one JSON alert per
    /// line; with --labels, print the scorer's table too.
    #[command(
        after_help = "Example:\n  emrctl detect --input tests/fixtures/cgm/dev/adult-001.csv --out alerts.jsonl --labels tests/fixtures/cgm/dev/labels.json"
    )]
    Detect {
        /// CSV files (one or more patients each).
        #[arg(long = "input", required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
        /// Where to write the alerts (JSON lines); `-` for standard output.
        #[arg(long, default_value = "-")]
        out: PathBuf,
        /// Ground-truth labels to score against.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Print the score as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Score an alert stream (JSON lines) against labels, as the test set's scorer does.
    Score {
        /// Labels (JSON).
        #[arg(long)]
        labels: PathBuf,
        /// Alerts (JSON lines).
        #[arg(long)]
        alerts: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Check a transaction: strict parsing and, given a key, its signature.
    ///
    /// The key comes from --public-key, or from --genesis when the signer is
    /// a genesis admin or validator. Without either only the syntax and rules
    /// are checked (and the output says the signature was not checked).
    VerifyTx {
        /// JWS file, or `-` for standard input.
        #[arg(default_value = "-")]
        jws: PathBuf,
        /// Signer's public key (unpadded base64url; it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        public_key: Option<String>,
        /// Genesis file to look the signer's key up in.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Also require this chain id.
        #[arg(long)]
        chain_id: Option<String>,
    },

    /// SHA-256 of a file (hex). With --tx, the tx hash of a JWS (surrounding
    /// whitespace, e.g. a trailing newline, is not part of the JWS).
    Hash {
        /// File, or `-` for standard input.
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Treat the input as a transaction JWS.
        #[arg(long)]
        tx: bool,
    },

    /// Issue a short-lived read token (EdDSA JWT) for one service's HTTPS API.
    #[command(
        after_help = "Example:\n  curl -H \"Authorization: Bearer $(emrctl token --key keys/patient.pem --chain-id glucochain-devnet)\" $LEDGER/v1/...\n  emrctl token --key keys/patient.pem --audience glucochain-contracts   # for the contracts engine"
    )]
    Token {
        #[command(flatten)]
        reader: ReaderArgs,
        /// The service the token is for: glucochain-ledger, glucochain-contracts
        /// or glucochain-notifier (or a deployment's own audience). A service
        /// refuses tokens made for another.
        #[arg(long, default_value = "glucochain-ledger")]
        audience: String,
        /// Lifetime in seconds (services accept at most 300).
        #[arg(long, default_value_t = 120)]
        ttl: i64,
    },

    /// Verify an inclusion proof offline, with only the genesis file.
    ///
    /// Checks the Merkle path to the block's tx root, the block hash, and the
    /// commit certificate's signatures (more than 2/3 of the voting power).
    #[command(
        after_help = "Example:\n  curl -s $LEDGER/v1/transactions/$HASH/proof > proof.json\n  emrctl verify-proof --proof proof.json --genesis genesis.json"
    )]
    VerifyProof {
        /// Proof JSON file, or `-` for standard input.
        #[arg(long, default_value = "-")]
        proof: PathBuf,
        /// Genesis file of the chain.
        #[arg(long)]
        genesis: PathBuf,
    },

    /// Offline round trip of the whole cryptographic path, in a directory:
    /// keys, genesis, a signed CGM reading, a block committed by a local
    /// quorum of validator keys, an inclusion proof, and its verification.
    ///
    /// Everything runs on this machine without servers. It does not run
    /// consensus: the validator signatures are made here with the validator
    /// keys it generates, to show what a commit certificate proves.
    Roundtrip {
        /// Working directory (created; keys are written under DIR/keys).
        #[arg(long, default_value = "glucochain-roundtrip")]
        dir: PathBuf,
        /// Number of validators.
        #[arg(long, default_value_t = 4)]
        validators: u8,
    },
}

/// Who reads: the key that signs the read token, and the chain it is for.
#[derive(clap::Args, Debug, Clone)]
pub struct ReaderArgs {
    /// Reader's private key (signs a 2-minute read token; never sent).
    #[arg(long)]
    pub key: PathBuf,
    /// The chain's id (from its genesis file): tokens name it, and a
    /// service of another chain refuses them.
    #[arg(long, env = "GLUCOCHAIN_CHAIN_ID", default_value = "glucochain-devnet")]
    pub chain_id: String,
}

/// Signing options shared by the contract commands.
#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// Signer's private key.
    #[arg(long)]
    pub key: PathBuf,
    /// Chain id.
    #[arg(long, env = "GLUCOCHAIN_CHAIN_ID")]
    pub chain_id: String,
    /// The patient concerned.
    #[arg(long)]
    pub patient: String,
}

/// `emrctl consent ...`
#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// Sign a consent.grant (patient, or an admin on their behalf).
    #[command(
        after_help = "Example:\n  emrctl consent grant --key keys/patient.pem --chain-id glucochain-dev --patient p... \\\n    --id dr-ada --grantee p... --classes private --access read,write --purpose TREAT | emrctl submit --ingest http://127.0.0.1:8080 -"
    )]
    Grant {
        #[command(flatten)]
        sign: SignArgs,
        /// Consent id (unique for the patient).
        #[arg(long)]
        id: String,
        /// Who may access: a participant or an institution id.
        #[arg(long)]
        grantee: String,
        /// Data classes: institution, private (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        classes: Vec<String>,
        /// read and/or write (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        access: Vec<String>,
        /// Record types (observation, document, careplan, alert, medication); default all.
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Codes (e.g. LOINC 99504-3); default all.
        #[arg(long, value_delimiter = ',')]
        codes: Vec<String>,
        /// Purpose (HL7 ActReason): TREAT, ETREAT, CAREMGT, FAMRQT, PATRQT, HRESCH.
        #[arg(long, default_value = "TREAT")]
        purpose: String,
        /// Valid until (RFC 3339).
        #[arg(long)]
        until: Option<String>,
    },
    /// Sign a consent.revoke.
    Revoke {
        #[command(flatten)]
        sign: SignArgs,
        /// Consent id (no reason is asked for: consent is withdrawn without one).
        #[arg(long)]
        id: String,
    },
    /// A patient's consents and their status, from the contracts engine.
    List {
        /// The patient.
        patient: String,
        /// The patient or an admin.
        #[command(flatten)]
        reader: ReaderArgs,
        /// Contracts engine base URL.
        #[arg(long, env = "GLUCOCHAIN_CONTRACTS_URL", default_value = "http://127.0.0.1:8082")]
        contracts: String,
    },
}

/// `emrctl careplan ...`
#[derive(Subcommand, Debug)]
pub enum CareplanCmd {
    /// Sign a careplan.accept for a proposal (the patient's second signature).
    Accept {
        #[command(flatten)]
        sign: SignArgs,
        /// Plan id.
        #[arg(long)]
        plan_id: String,
        /// Version accepted.
        #[arg(long)]
        plan_version: u32,
        /// Hash of the careplan.propose transaction (hex).
        #[arg(long)]
        proposal_tx: String,
    },
    /// A patient's care plans (active version, proposals), from the contracts engine.
    Show {
        /// The patient.
        patient: String,
        /// The patient, an admin, or the care team.
        #[command(flatten)]
        reader: ReaderArgs,
        /// Contracts engine base URL.
        #[arg(long, env = "GLUCOCHAIN_CONTRACTS_URL", default_value = "http://127.0.0.1:8082")]
        contracts: String,
    },
}

/// `emrctl emergency ...`
#[derive(Subcommand, Debug)]
pub enum EmergencyCmd {
    /// Make a new emergency card for a patient (on the patient's own
    /// machine): prints the card and its public key, writes its QR code as
    /// SVG. Keep the card itself off any shared system: it unlocks the profile.
    Card {
        /// The patient.
        #[arg(long)]
        patient: String,
        /// Where to write the QR code (SVG).
        #[arg(long)]
        qr: PathBuf,
    },
    /// Sign an emergency.profile.set (patient): the profile and the card's public key.
    Profile {
        #[command(flatten)]
        sign: SignArgs,
        /// Blood group: O-, O+, A-, A+, B-, B+, AB-, AB+, unknown.
        #[arg(long)]
        blood_group: String,
        /// Diabetes type: type1, type2, gestational, other.
        #[arg(long)]
        diabetes_type: String,
        /// Allergies (comma-separated).
        #[arg(long, value_delimiter = ',')]
        allergies: Vec<String>,
        /// Current medication (comma-separated).
        #[arg(long, value_delimiter = ',')]
        medications: Vec<String>,
        /// The card's public key (from `emrctl emergency card`; unpadded
        /// base64url, so it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        card_key: String,
    },
    /// Break the glass (clinician): commit access.emergency with a proof of
    /// the scanned card through ingest, then read the emergency profile.
    Access {
        /// The clinician.
        #[command(flatten)]
        reader: ReaderArgs,
        /// The card as scanned (`gce1:<patient>:<code>`); it names the patient.
        #[arg(long)]
        card: String,
        /// Why: unconscious, cannot_communicate, life_threatening or other.
        #[arg(long)]
        reason_code: String,
        /// More detail in your words (sealed off the chain, shown to the patient on their emergency page); needed with `other`.
        #[arg(long)]
        reason: Option<String>,
        /// Ingest base URL.
        #[arg(long, env = "GLUCOCHAIN_INGEST_URL", default_value = "http://127.0.0.1:8080")]
        ingest: String,
        /// Contracts engine base URL.
        #[arg(long, env = "GLUCOCHAIN_CONTRACTS_URL", default_value = "http://127.0.0.1:8082")]
        contracts: String,
    },
}

/// What a devnet runs and where its programs are (`devnet up` and `demo`).
#[derive(clap::Args, Debug, Clone)]
pub struct DevnetShape {
    /// Validators.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// PostgreSQL server URL, e.g. postgres://postgres@127.0.0.1:5432 (one database per
    /// service is created); default embedded SQLite.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Where the service binaries are (default: next to emrctl).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// `emrctl nats ...`
#[derive(Subcommand, Debug)]
pub enum NatsCmd {
    /// Generate a NATS user NKey: the seed goes to a file (mode 0600) for the
    /// service's Secret (`GLUCOCHAIN_NATS_NKEY_FILE`); the public key (U…),
    /// printed, goes into the server's authorization (Helm:
    /// `nats.auth.publicKeys.<user>`).
    Keygen {
        /// Where to write the seed.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print every user's permissions as JSON (the table the Helm chart
    /// carries in `files/nats-permissions.json`).
    Permissions,
    /// Print a NATS server `authorization` block for the given users.
    Authorization {
        /// A user as KIND=PUBLIC_NKEY (kinds: validator, ingest, ledger,
        /// contracts, detector, notifier, operator); repeat.
        #[arg(long = "user", required = true)]
        users: Vec<String>,
    },
}

/// `emrctl devnet ...`
#[derive(Subcommand, Debug)]
pub enum DevnetCmd {
    /// Start NATS, validators, ingest, ledger, contracts, detector, notifier and
    /// a mail sink; write keys, genesis and devnet.json under DIR; wait until ready.
    #[command(after_help = "Example:\n  emrctl devnet up --dir /tmp/devnet && emrctl devnet status --dir /tmp/devnet")]
    Up {
        /// Directory (created).
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        shape: DevnetShape,
        /// NATS port (default: a free one).
        #[arg(long)]
        nats_port: Option<u16>,
        /// Run the escalation and reminder clocks this many times faster.
        #[arg(long, default_value_t = 1.0)]
        clock_speed: f64,
    },
    /// Height, validators, services and lag.
    Status {
        /// Directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stop every process of the devnet.
    Down {
        /// Directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Send a signal to one of the devnet's processes (fault drills): KILL
    /// (a crash), TERM (a stop), STOP/CONT (a hang and its end).
    #[command(after_help = "Example:\n  emrctl devnet signal --dir /tmp/devnet validator-1 KILL")]
    Signal {
        /// Directory.
        #[arg(long)]
        dir: PathBuf,
        /// Process name as in `devnet status` (validator-1, ingest, nats, smtp, ...).
        name: String,
        /// Signal name.
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Start a stopped or crashed process of the devnet again, as it was first started.
    Start {
        /// Directory.
        #[arg(long)]
        dir: PathBuf,
        /// Process name.
        name: String,
    },
    /// The mail sink's inbox; `--show N` prints message N.
    Mail {
        /// Directory.
        #[arg(long)]
        dir: PathBuf,
        /// Message number to print.
        #[arg(long)]
        show: Option<usize>,
    },
}

/// `emrctl chain ...`
#[derive(Subcommand, Debug)]
pub enum ChainCmd {
    /// Check an old chain from its genesis file through its ledger's store
    /// (every block's link, transaction root and commit certificate) and
    /// write every committed transaction, as signed, to an archive. The
    /// archive holds what the old chain held, personal data in clear: keep
    /// it as its files were kept, and delete it once imported.
    #[command(
        after_help = "Example:\n  emrctl chain export --genesis old/genesis.json --store sqlite:old/data/ledger.db --out old-chain.jsonl"
    )]
    Export {
        /// The old chain's genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// The old ledger's database (`postgres://...` or `sqlite:<file>`;
        /// this version's additive migrations are applied to it, so export
        /// from a copy if it must stay untouched).
        #[arg(long)]
        store: String,
        /// The archive to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-sign the archive's transactions with their authors' keys, in chain
    /// order and in this version's format (bodies sealed beside envelopes),
    /// and commit them through the new chain's ingest. Transactions whose
    /// signer's key is not in `--keys` are skipped and counted; so are
    /// break-glass accesses, audit checkpoints and validator changes (see
    /// docs/operations.md). Prints what was carried, skipped and refused.
    #[command(
        after_help = "Example:\n  emrctl chain import --archive old-chain.jsonl --keys old/keys --chain-id glucochain-devnet --ingest $INGEST"
    )]
    Import {
        /// The archive `emrctl chain export` wrote.
        #[arg(long)]
        archive: PathBuf,
        /// A directory of the authors' key files (`*.pem`).
        #[arg(long)]
        keys: PathBuf,
        /// The new chain's id.
        #[arg(long)]
        chain_id: String,
        /// The new chain's ingest.
        #[arg(long, env = "GLUCOCHAIN_INGEST_URL", default_value = "http://127.0.0.1:8080")]
        ingest: String,
    },
}

/// `emrctl alert ...`
#[derive(Subcommand, Debug)]
pub enum AlertCmd {
    /// Acknowledge an alert as a care-team member: signs `alert.ack` and hands
    /// it to the notifier, which stops escalation at once and forwards it to the chain.
    #[command(
        after_help = "Example:\n  emrctl alert ack --key keys/parent.pem --chain-id glucochain-dev --patient p... \\\n    --id a-3f2c... --notifier http://127.0.0.1:8084"
    )]
    Ack {
        #[command(flatten)]
        sign: SignArgs,
        /// Alert id.
        #[arg(long)]
        id: String,
        /// The notifier's base URL.
        #[arg(long, env = "GLUCOCHAIN_NOTIFIER_URL")]
        notifier: String,
    },
    /// Who was told about an alert, on which channel, whether it was sent and who acknowledged.
    Status {
        /// You (a short read token for the notifier).
        #[command(flatten)]
        reader: ReaderArgs,
        /// Alert id.
        #[arg(long)]
        id: String,
        /// The notifier's base URL.
        #[arg(long, env = "GLUCOCHAIN_NOTIFIER_URL")]
        notifier: String,
    },
}

/// `emrctl consult ...`
#[derive(Subcommand, Debug)]
pub enum ConsultCmd {
    /// Sign a consult.request: the clinician may read the shared records until they answer.
    Request {
        #[command(flatten)]
        sign: SignArgs,
        /// Consult id.
        #[arg(long)]
        id: String,
        /// The clinician asked.
        #[arg(long)]
        clinician: String,
        /// Data classes shared: institution, private.
        #[arg(long, value_delimiter = ',', required = true)]
        classes: Vec<String>,
        /// Codes shared (default all).
        #[arg(long, value_delimiter = ',')]
        codes: Vec<String>,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Sign a consult.respond (the clinician asked): a note, optionally a prescription.
    Respond {
        #[command(flatten)]
        sign: SignArgs,
        /// Consult id.
        #[arg(long)]
        id: String,
        /// The answer.
        #[arg(long)]
        note: String,
        /// Prescribed medication, dose and instructions, as `NAME;DOSE;INSTRUCTIONS`.
        #[arg(long)]
        prescription: Option<String>,
    },
}
