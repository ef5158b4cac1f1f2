//! The mempool: transactions from the `TXS` stream waiting for a block, in
//! arrival order, each with the handle that acknowledges its stream message
//! once the transaction is committed or finally rejected (so a crash before
//! then redelivers it).

use glucochain_crypto::Hash32;
use std::collections::{BTreeMap, HashMap};

/// One waiting transaction.
#[derive(Debug)]
pub struct Pending<A> {
    /// The JWS bytes.
    pub jws: Vec<u8>,
    /// The stream acknowledgement handle.
    pub ack: A,
    /// The transaction's span, from admission to commit, in the submitter's
    /// trace (only while spans are exported).
    pub span: Option<tracing::Span>,
    seq: u64,
}

/// Waiting transactions by hash, iterated in arrival order.
#[derive(Debug)]
pub struct Mempool<A> {
    by_hash: HashMap<Hash32, Pending<A>>,
    order: BTreeMap<u64, Hash32>,
    next_seq: u64,
    bytes: usize,
    max_txs: usize,
}

/// What [`Mempool::insert`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A new transaction.
    New,
    /// Already waiting (a redelivery): the newer ack handle replaced the old one.
    Redelivered,
    /// The pool is full; the caller should not acknowledge (the stream keeps it).
    Full,
}

impl<A> Mempool<A> {
    /// An empty pool holding at most `max_txs`.
    pub fn new(max_txs: usize) -> Self {
        Mempool { by_hash: HashMap::new(), order: BTreeMap::new(), next_seq: 0, bytes: 0, max_txs }
    }

    /// Adds a transaction.
    pub fn insert(&mut self, hash: Hash32, jws: Vec<u8>, ack: A) -> (Inserted, Option<A>) {
        if let Some(p) = self.by_hash.get_mut(&hash) {
            let old = std::mem::replace(&mut p.ack, ack);
            return (Inserted::Redelivered, Some(old));
        }
        if self.by_hash.len() >= self.max_txs {
            return (Inserted::Full, Some(ack));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += jws.len();
        self.order.insert(seq, hash);
        self.by_hash.insert(hash, Pending { jws, ack, span: None, seq });
        (Inserted::New, None)
    }

    /// Removes a transaction (committed or rejected), returning it.
    pub fn remove(&mut self, hash: &Hash32) -> Option<Pending<A>> {
        let p = self.by_hash.remove(hash)?;
        self.order.remove(&p.seq);
        self.bytes -= p.jws.len();
        Some(p)
    }

    /// A waiting transaction.
    pub fn get_mut(&mut self, hash: &Hash32) -> Option<&mut Pending<A>> {
        self.by_hash.get_mut(hash)
    }

    /// Whether `hash` is waiting.
    pub fn contains(&self, hash: &Hash32) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Waiting transactions, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&Hash32, &Pending<A>)> {
        self.order.values().map(|h| (h, &self.by_hash[h]))
    }

    /// Number waiting.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_crypto::sha256;

    #[test]
    fn keeps_arrival_order_dedups_and_bounds() {
        let mut m: Mempool<u32> = Mempool::new(3);
        let (a, b, c, d) = (sha256(b"a"), sha256(b"b"), sha256(b"c"), sha256(b"d"));
        assert_eq!(m.insert(b, b"bb".to_vec(), 1), (Inserted::New, None));
        assert_eq!(m.insert(a, b"a".to_vec(), 2), (Inserted::New, None));
        assert_eq!(m.insert(b, b"bb".to_vec(), 3), (Inserted::Redelivered, Some(1)));
        assert_eq!(m.insert(c, b"c".to_vec(), 4), (Inserted::New, None));
        assert_eq!(m.insert(d, b"d".to_vec(), 5), (Inserted::Full, Some(5)));
        assert_eq!(m.iter().map(|(h, _)| *h).collect::<Vec<_>>(), vec![b, a, c]);
        assert_eq!(m.bytes(), 4);
        assert_eq!(m.remove(&b).map(|p| p.ack), Some(3), "the newest ack handle is kept");
        assert_eq!(m.iter().map(|(h, _)| *h).collect::<Vec<_>>(), vec![a, c]);
        assert_eq!((m.len(), m.bytes()), (2, 2));
        assert!(m.remove(&b).is_none());
    }
}
