//! The validator's own copy of the chain: blocks with their commit
//! certificates in an embedded store (SQLite by default), and the ledger
//! state derived from them. A block is stored, in one database transaction,
//! before the state moves on and before anything is acknowledged.

use glucochain_consensus::block::Block;
use glucochain_crypto::Hash32;
use glucochain_follow::StoredChain;
use glucochain_state::{BlockEffects, BlockError, LedgerState};
use glucochain_store::{InsertOutcome, Store, StoreError};
use glucochain_types::block::CommitCertificate;
use glucochain_types::genesis::Genesis;
use glucochain_wire::v1 as wire;

/// Why the chain could not be loaded or extended.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored or decided block does not follow the state: the store is
    /// corrupt or this validator's state diverged. Never continue past this.
    #[error("block {height}: {reason}")]
    Invalid {
        /// Height.
        height: u64,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(height: u64, reason: impl ToString) -> ChainError {
    ChainError::Invalid { height, reason: reason.to_string() }
}

/// Blocks and state.
pub struct Chain {
    store: Store,
    state: LedgerState,
    /// Effects of blocks already checked against the current state (built
    /// here or validated as a proposal), so the commit does not check every
    /// transaction again. Cleared whenever the state moves.
    checked: std::collections::HashMap<Hash32, BlockEffects>,
}

impl Chain {
    /// Opens the store and rebuilds the state by re-checking every stored
    /// block (hash links, certificates, transactions) from genesis.
    pub async fn open(store: Store, genesis: &Genesis) -> Result<Self, ChainError> {
        let stored = StoredChain::open(store.clone(), genesis).await.map_err(|e| invalid(0, e))?;
        Ok(Chain { store, state: stored.into_state(), checked: Default::default() })
    }

    /// The committed state.
    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Checks a proposed block (header and transactions) against the state
    /// and keeps its effects for the commit.
    pub fn check(&mut self, block: &Block) -> Result<(), BlockError> {
        let effects = self.state.check_block(&block.header, &block.txs)?.finish();
        self.checked.insert(block.hash(), effects);
        Ok(())
    }

    /// Records the effects of a block this validator built from transactions
    /// it admitted one by one against the current state.
    pub fn built(&mut self, block: &Block, effects: BlockEffects) {
        self.checked.insert(block.hash(), effects);
    }

    /// Stores a decided block with its certificate, then applies it. The
    /// block must follow the state: a certified block that does not is a
    /// divergence this validator must not continue past.
    pub async fn commit(
        &mut self,
        block: &Block,
        cert: &CommitCertificate,
    ) -> Result<wire::CommittedBlock, ChainError> {
        let height = block.header.height;
        let effects = match self.checked.remove(&block.hash()) {
            // Checked against this very state (header included) when proposed or built.
            Some(effects) => effects,
            // Decided without being seen whole here (block sync): check it now.
            None => self.state.check_block(&block.header, &block.txs).map_err(|e| invalid(height, e))?.finish(),
        };
        let committed = committed_wire(block, cert);
        let stored = to_stored(block, cert).map_err(|e| invalid(height, e))?;
        match self.store.insert_block(&stored).await? {
            InsertOutcome::Inserted | InsertOutcome::AlreadyPresent => {}
        }
        self.state.apply(&block.header, effects);
        self.checked.clear();
        Ok(committed)
    }
}

/// Committed blocks `from..from+max` read from `store` (used by the sync server task).
/// Committed blocks from `from`, at most `max` of them and, past the first,
/// no more than `max_bytes` encoded in all (a sync reply is one NATS message).
pub async fn committed_range(
    store: &Store,
    from: u64,
    max: u64,
    max_bytes: usize,
) -> Result<Vec<wire::CommittedBlock>, ChainError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for height in from..from.saturating_add(max) {
        let Some(stored) = store.block(height).await? else { break };
        let (block, cert) = from_stored(&stored).map_err(|e| invalid(height, e))?;
        let c = committed_wire(&block, &cert);
        bytes += prost::Message::encoded_len(&c) + 8;
        if !out.is_empty() && bytes > max_bytes {
            break;
        }
        out.push(c);
    }
    Ok(out)
}

pub use glucochain_follow::{committed_wire, decode_committed, from_stored, to_stored};
