//! What more than one of the multi-process tests needs.

use std::path::{Path, PathBuf};

/// The service binaries (and `emrctl`) under the names the devnet looks
/// for, as symlinks in `dir/bin`.
#[allow(dead_code)]
pub fn bin_dir(dir: &Path) -> PathBuf {
    let bins = dir.join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    for (name, exe) in [
        ("glucochain-validator", env!("CARGO_BIN_EXE_e2e-validator")),
        ("glucochain-ingest", env!("CARGO_BIN_EXE_e2e-ingest")),
        ("glucochain-ledger", env!("CARGO_BIN_EXE_e2e-ledger")),
        ("glucochain-contracts", env!("CARGO_BIN_EXE_e2e-contracts")),
        ("glucochain-detector", env!("CARGO_BIN_EXE_e2e-detector")),
        ("glucochain-notifier", env!("CARGO_BIN_EXE_e2e-notifier")),
        ("emrctl", env!("CARGO_BIN_EXE_e2e-emrctl")),
    ] {
        std::os::unix::fs::symlink(exe, bins.join(name)).unwrap();
    }
    bins
}

/// The sealed bodies of the records [`record`] made, by commitment, until posted.
static SEALED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<glucochain_crypto::Hash32, glucochain_types::sealed::SealedBody>>,
> = std::sync::LazyLock::new(Default::default);

/// The envelope of a patient-private record of `observations` (what is
/// signed); its sealed body is kept for [`posted`].
#[allow(dead_code)]
pub fn record(observations: Vec<glucochain_types::fhir::Observation>) -> glucochain_types::TxBody {
    kept(glucochain_types::sealed::ObservationBody::seal(observations, glucochain_types::DataClass::Private))
}

/// An envelope whose sealed body is kept for [`posted`] (what a type's
/// `seal` returns).
#[allow(dead_code)]
pub fn kept(sealed: (glucochain_types::TxBody, glucochain_types::sealed::SealedBody)) -> glucochain_types::TxBody {
    let (envelope, body) = sealed;
    SEALED.lock().unwrap().insert(*envelope.body_commitment().expect("a sealed type has a commitment"), body);
    envelope
}

/// The sealed body [`record`] made for the record `jws` signs, if it did.
#[allow(dead_code)]
pub fn sealed_of(jws: &str) -> Option<glucochain_types::sealed::SealedBody> {
    glucochain_types::Transaction::parse(jws.trim(), &Default::default())
        .ok()
        .and_then(|tx| tx.payload.body.body_commitment().copied())
        .and_then(|c| SEALED.lock().unwrap().get(&c).cloned())
}

/// What a client POSTs for `jws` to ingest, and its media type: the
/// submission with the record's sealed body when [`record`] made it, else
/// the bare JWS.
#[allow(dead_code)]
pub fn posted(jws: &str) -> (String, &'static str) {
    match sealed_of(jws) {
        Some(s) => (
            String::from_utf8(glucochain_types::sealed::Submission::sealed(jws.trim().to_string(), s).to_json())
                .unwrap(),
            "application/json",
        ),
        None => (jws.to_string(), "application/jose"),
    }
}
