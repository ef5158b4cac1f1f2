//! Protobuf messages that cross NATS, generated from `proto/glucochain/v1`.
//!
//! The `.proto` files are the wire truth; this crate only includes the code
//! prost generates from them (see `build.rs`). Encoding is canonical for our
//! messages: prost writes fields in field-number order and omits defaults, so
//! equal messages always encode to equal bytes.

/// Version 1 of the GlucoChain wire format.
pub mod v1 {
    #![allow(missing_docs, clippy::doc_lazy_continuation)]
    include!(concat!(env!("OUT_DIR"), "/glucochain.v1.rs"));
}

pub use prost::Message;

impl v1::TxEnvelope {
    /// An envelope for `jws` (its SHA-256 `tx_hash`, payload type `tx_type`)
    /// stamped with the current time, as the sender hands it to `TXS`;
    /// `chain_height` is the committed height the sender's view held (0 when
    /// it has none).
    pub fn received_now(jws: Vec<u8>, tx_hash: Vec<u8>, tx_type: &str, chain_height: u64) -> Self {
        let received_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        v1::TxEnvelope { jws, tx_hash, received_at_ms, tx_type: tx_type.to_string(), chain_height }
    }
}
