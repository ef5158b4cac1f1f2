//! The Merkle tree of RFC 9162 (Certificate Transparency 2.0), §2.1.
//!
//! Leaves are hashed as `SHA-256(0x00 || entry)` and interior nodes as
//! `SHA-256(0x01 || left || right)`; a tree of `n` leaves splits at the largest
//! power of two below `n`. The same tree is built here bottom-up, promoting a
//! lone last node unchanged to the level above, which yields the same root.
//! Blocks use it over their transaction hashes (`tx_root`), and the audit log
//! over its entries. Proof verification follows the RFC's algorithms step by
//! step (§2.1.3.2 and §2.1.4.2).

use crate::hash::{Hash32, sha256, sha256_parts};

/// Hash of a leaf: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash32 {
    sha256_parts(&[&[0x00], entry])
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    sha256_parts(&[&[0x01], &left.0, &right.0])
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash32 {
    sha256(b"")
}

/// Why a proof was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// Index given.
        index: u64,
        /// Tree size given.
        size: u64,
    },
    /// The proof has the wrong number of hashes for the sizes given.
    #[error("proof has the wrong length for these tree sizes")]
    WrongLength,
    /// The first tree is larger than the second.
    #[error("first tree size {first} is larger than second tree size {second}")]
    SizesOutOfOrder {
        /// First size.
        first: u64,
        /// Second size.
        second: u64,
    },
    /// The recomputed root differs from the expected one.
    #[error("recomputed root does not match")]
    RootMismatch,
}

/// A Merkle tree with all its levels kept, so proofs cost O(log n).
#[derive(Debug, Clone)]
pub struct MerkleTree {
    /// levels[0] = leaf hashes; the last level holds the root alone.
    levels: Vec<Vec<Hash32>>,
}

impl MerkleTree {
    /// Builds the tree over `entries` (each hashed as a leaf).
    pub fn from_entries<T: AsRef<[u8]>>(entries: &[T]) -> Self {
        Self::from_leaf_hashes(entries.iter().map(|e| leaf_hash(e.as_ref())).collect())
    }

    /// Builds the tree over already computed leaf hashes.
    pub fn from_leaf_hashes(leaves: Vec<Hash32>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().map(|l| l.len() > 1).unwrap_or(false) {
            let prev = levels.last().expect("non-empty");
            let mut next = Vec::with_capacity(prev.len().div_ceil(2));
            for pair in prev.chunks(2) {
                match pair {
                    [l, r] => next.push(node_hash(l, r)),
                    [lone] => next.push(*lone),
                    _ => unreachable!("chunks(2)"),
                }
            }
            levels.push(next);
        }
        MerkleTree { levels }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// The tree head (root hash); [`empty_root`] for no leaves.
    pub fn root(&self) -> Hash32 {
        match self.levels.last().and_then(|l| l.first()) {
            Some(r) if !self.levels[0].is_empty() => *r,
            _ => empty_root(),
        }
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash32> {
        self.levels[0].get(index as usize).copied()
    }

    /// The inclusion proof (audit path) of leaf `index`, bottom-up.
    pub fn inclusion_proof(&self, index: u64) -> Result<Vec<Hash32>, ProofError> {
        if index >= self.size() {
            return Err(ProofError::IndexOutOfRange { index, size: self.size() });
        }
        let mut path = Vec::new();
        let mut i = index as usize;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            if sibling < level.len() {
                path.push(level[sibling]);
            }
            i >>= 1;
        }
        Ok(path)
    }

    /// Root of the leaves `[start, end)` (a subtree in the RFC's recursion).
    fn subtree_root(&self, start: usize, end: usize) -> Hash32 {
        let n = end - start;
        if n == 1 {
            return self.levels[0][start];
        }
        // A complete, aligned subtree is stored in the levels.
        if n.is_power_of_two() && start.is_multiple_of(n) {
            return self.levels[n.trailing_zeros() as usize][start / n];
        }
        let k = largest_power_of_two_below(n as u64) as usize;
        node_hash(&self.subtree_root(start, start + k), &self.subtree_root(start + k, end))
    }

    /// The consistency proof that the tree of the first `first_size` leaves
    /// is a prefix of this tree (RFC 9162 §2.1.4.1).
    pub fn consistency_proof(&self, first_size: u64) -> Result<Vec<Hash32>, ProofError> {
        let n = self.size();
        if first_size > n {
            return Err(ProofError::SizesOutOfOrder { first: first_size, second: n });
        }
        if first_size == 0 || first_size == n {
            return Ok(Vec::new());
        }
        let mut proof = Vec::new();
        self.subproof(first_size as usize, 0, n as usize, true, &mut proof);
        Ok(proof)
    }

    fn subproof(&self, m: usize, start: usize, end: usize, complete: bool, out: &mut Vec<Hash32>) {
        let n = end - start;
        if m == n {
            if !complete {
                out.push(self.subtree_root(start, end));
            }
            return;
        }
        let k = largest_power_of_two_below(n as u64) as usize;
        if m <= k {
            self.subproof(m, start, start + k, complete, out);
            out.push(self.subtree_root(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree_root(start, start + k));
        }
    }
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash32,
    index: u64,
    size: u64,
    proof: &[Hash32],
    root: &Hash32,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `first_size` leaves with root `first_root` is a
/// prefix of the tree of `second_size` leaves with root `second_root`
/// (RFC 9162 §2.1.4.2). An empty first tree is a prefix of every tree.
pub fn verify_consistency(
    first_size: u64,
    second_size: u64,
    first_root: &Hash32,
    second_root: &Hash32,
    proof: &[Hash32],
) -> Result<(), ProofError> {
    if first_size > second_size {
        return Err(ProofError::SizesOutOfOrder { first: first_size, second: second_size });
    }
    if first_size == second_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first_root == second_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if first_size == 0 {
        return if proof.is_empty() { Ok(()) } else { Err(ProofError::WrongLength) };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash32> = Vec::with_capacity(proof.len() + 1);
    if first_size.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (first_size - 1, second_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *first_root || sr != *second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC's recursive definition of the tree head, written independently
    /// of the level-based construction above.
    fn reference_mth(entries: &[Vec<u8>]) -> Hash32 {
        match entries.len() {
            0 => sha256(b""),
            1 => leaf_hash(&entries[0]),
            n => {
                let k = largest_power_of_two_below(n as u64) as usize;
                node_hash(&reference_mth(&entries[..k]), &reference_mth(&entries[k..]))
            }
        }
    }

    /// The RFC's recursive definition of PATH(m, D[n]).
    fn reference_path(m: usize, entries: &[Vec<u8>]) -> Vec<Hash32> {
        let n = entries.len();
        if n <= 1 {
            return vec![];
        }
        let k = largest_power_of_two_below(n as u64) as usize;
        if m < k {
            let mut p = reference_path(m, &entries[..k]);
            p.push(reference_mth(&entries[k..]));
            p
        } else {
            let mut p = reference_path(m - k, &entries[k..]);
            p.push(reference_mth(&entries[..k]));
            p
        }
    }

    fn entries(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("tx-{i}").into_bytes()).collect()
    }

    /// Test vectors of Certificate Transparency's reference implementation
    /// (RFC 6962/9162 tree): roots of the first 1..=8 of these leaves.
    #[test]
    fn certificate_transparency_vectors() {
        let leaves: Vec<Vec<u8>> =
            ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
                .iter()
                .map(|h| hex::decode(h).unwrap())
                .collect();
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for n in 1..=8 {
            assert_eq!(MerkleTree::from_entries(&leaves[..n]).root().to_hex(), roots[n - 1], "size {n}");
        }
        assert_eq!(
            MerkleTree::from_entries::<Vec<u8>>(&[]).root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn roots_and_inclusion_proofs_for_every_leaf_of_sizes_1_to_64() {
        for n in 1..=64usize {
            let e = entries(n);
            let tree = MerkleTree::from_entries(&e);
            let root = tree.root();
            assert_eq!(root, reference_mth(&e), "root of size {n}");
            for m in 0..n {
                let proof = tree.inclusion_proof(m as u64).unwrap();
                assert_eq!(proof, reference_path(m, &e), "path {m} of {n}");
                let leaf = leaf_hash(&e[m]);
                verify_inclusion(&leaf, m as u64, n as u64, &proof, &root).unwrap();
                // The wrong index, a wrong leaf, a truncated or padded proof all fail.
                if n > 1 {
                    let other = (m + 1) % n;
                    assert!(verify_inclusion(&leaf, other as u64, n as u64, &proof, &root).is_err());
                    assert!(verify_inclusion(&leaf_hash(&e[other]), m as u64, n as u64, &proof, &root).is_err());
                    assert!(verify_inclusion(&leaf, m as u64, n as u64, &proof[..proof.len() - 1], &root).is_err());
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert!(verify_inclusion(&leaf, m as u64, n as u64, &longer, &root).is_err());
                // Note: the same proof can verify for another tree size (the
                // proof's hashes are opaque); the size is bound by the signed
                // head instead, which is why block headers carry `tx_count`.
            }
            assert!(tree.inclusion_proof(n as u64).is_err());
        }
    }

    #[test]
    fn consistency_proofs_for_every_pair_of_sizes_up_to_64() {
        let all = entries(64);
        let trees: Vec<MerkleTree> = (0..=64).map(|n| MerkleTree::from_entries(&all[..n])).collect();
        for n in 1..=64usize {
            for m in 0..=n {
                let proof = trees[n].consistency_proof(m as u64).unwrap();
                let (r1, r2) = (trees[m].root(), trees[n].root());
                verify_consistency(m as u64, n as u64, &r1, &r2, &proof)
                    .unwrap_or_else(|e| panic!("consistency {m} -> {n}: {e}"));
                if 0 < m && m < n {
                    // A tampered first root, second root or proof hash fails.
                    let bad = sha256(b"bad");
                    assert!(verify_consistency(m as u64, n as u64, &bad, &r2, &proof).is_err());
                    assert!(verify_consistency(m as u64, n as u64, &r1, &bad, &proof).is_err());
                    for i in 0..proof.len() {
                        let mut p = proof.clone();
                        p[i] = bad;
                        assert!(verify_consistency(m as u64, n as u64, &r1, &r2, &p).is_err(), "{m}->{n} at {i}");
                    }
                    // A tree that is not an extension fails.
                    let mut forked = all[..n].to_vec();
                    forked[m - 1] = b"forked".to_vec();
                    let fork_root = MerkleTree::from_entries(&forked).root();
                    assert!(verify_consistency(m as u64, n as u64, &r1, &fork_root, &proof).is_err());
                }
            }
        }
        assert!(trees[3].consistency_proof(4).is_err());
        assert!(verify_consistency(5, 4, &trees[5].root(), &trees[4].root(), &[]).is_err());
    }
}
