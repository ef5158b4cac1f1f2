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
