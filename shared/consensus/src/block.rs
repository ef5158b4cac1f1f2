//! A block as consensus handles it: the header and the transactions.

use glucochain_crypto::{Hash32, sha256};
use glucochain_types::block::{BlockHeader, tx_root};
use glucochain_wire::v1 as wire;

/// A block: header plus transactions (JWS bytes), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions.
    pub txs: Vec<Vec<u8>>,
}

impl Block {
    /// A block over `txs` with the header's `tx_root` and `tx_count` computed.
    pub fn new(mut header: BlockHeader, txs: Vec<Vec<u8>>) -> Self {
        let hashes: Vec<Hash32> = txs.iter().map(|t| sha256(t)).collect();
        header.tx_root = tx_root(&hashes);
        header.tx_count = txs.len() as u32;
        Block { header, txs }
    }

    /// The block hash (the header's).
    pub fn hash(&self) -> Hash32 {
        self.header.hash()
    }

    /// Whether `tx_root` and `tx_count` match the transactions.
    pub fn is_well_formed(&self) -> bool {
        let hashes: Vec<Hash32> = self.txs.iter().map(|t| sha256(t)).collect();
        self.header.tx_count as usize == self.txs.len() && self.header.tx_root == tx_root(&hashes)
    }

    /// The protobuf form.
    pub fn to_wire(&self) -> wire::Block {
        wire::Block { header: Some(self.header.to_wire()), txs: self.txs.clone() }
    }

    /// From the protobuf form.
    pub fn from_wire(w: &wire::Block) -> Option<Self> {
        let header = BlockHeader::from_wire(w.header.as_ref()?).ok()?;
        Some(Block { header, txs: w.txs.clone() })
    }
}
