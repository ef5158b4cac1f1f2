//! GlucoChain's BFT consensus layer.
//!
//! Consensus itself is Malachite's Tendermint implementation
//! (`arc-malachitebft-core-consensus`); this crate supplies what Malachite asks an application for:
//!
//! * [`context`]: the Malachite [`Context`](malachitebft_core_types::Context) — heights, addresses,
//!   validator sets with voting power, votes, proposals, proposal parts and the ed25519 signing scheme
//!   (domain-separated signatures from `glucochain-crypto`);
//! * [`codec`]: consensus messages as the protobuf of `proto/glucochain/v1/consensus.proto`, signed
//!   by their sender and verified on receipt;
//! * [`block`]: the value consensus agrees on, a hash-linked block;
//! * [`node`]: a deterministic, I/O-free driver that turns Malachite's effects into outputs for the
//!   runtime (broadcast, timers, WAL, decided blocks) so the same code runs in the validator service
//!   and in the in-process network simulation used by the tests.

pub mod block;
pub mod codec;
pub mod context;
mod late;
pub mod node;
pub mod wal;
