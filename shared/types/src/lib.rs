//! The GlucoChain data model: participants and roles, transactions (one type
//! per DESIGN §3 kind, parsed strictly), a FHIR R4 Observation subset, blocks
//! with their canonical header encoding and commit certificates, the genesis
//! file, and self-contained inclusion proofs that verify offline.
//!
//! Everything here is pure: parsing, validation and hashing only.

pub mod audit;
pub mod block;
pub mod emergency;
pub mod fhir;
pub mod genesis;
pub mod ids;
pub mod proof;
pub mod sealed;
pub mod time;
pub mod tx;

pub use block::{BlockHeader, CertificateError, CommitCertificate, ValidatorSet};
pub use genesis::{Genesis, GenesisError};
pub use ids::{ChainId, DataClass, IdError, ParticipantId, Role};
pub use tx::{Transaction, TxBody, TxError, TxLimits, TxPayload, TxType};
