//! The consensus write-ahead log: what a validator has seen and done at its
//! current height, durable before any vote leaves the node.
//!
//! Records are the consensus inputs Malachite asks to persist
//! ([`Effect::WalAppend`](malachitebft_core_consensus::Effect::WalAppend)), encoded
//! as `WalRecord` protobuf (`proto/glucochain/v1/wal.proto`). Proposed values
//! carry the whole block so a validator restarted after deciding can still
//! commit it. The file format (length, CRC32, data; one file holding one
//! height) and its advisory lock come from `arc-malachitebft-wal`.

use crate::block::Block;
use crate::codec::{Certificate, CodecError, ConsensusMessage, certificate_from_wire, polka_wire};
use crate::context::{Address, BlockRef, GlucoContext, Height};
use glucochain_crypto::Hash32;
use glucochain_types::ParticipantId;
use glucochain_wire::v1 as wire;
use malachitebft_core_consensus::{Input, ProposedValue};
use malachitebft_core_types::{Round, Timeout, TimeoutKind, Validity, ValueOrigin};
use prost::Message as _;
use std::io;
use std::path::Path;

/// A durable, append-only log of one height's consensus inputs.
pub trait Wal {
    /// The height the log currently holds (0 for a fresh log).
    fn height(&self) -> u64;
    /// All records of the current height, in append order. A torn record at
    /// the tail (a crash during a write) ends the list and is dropped.
    fn entries(&mut self) -> io::Result<Vec<Vec<u8>>>;
    /// Appends a record; it is on stable storage when this returns.
    fn append(&mut self, record: &[u8]) -> io::Result<()>;
    /// Empties the log and starts `height`.
    fn reset(&mut self, height: u64) -> io::Result<()>;
}

/// The WAL in a file (fsynced on every append), locked against a second process.
pub struct FileWal {
    log: malachitebft_wal::Log,
}

impl FileWal {
    /// Opens (or creates) the WAL file at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        Ok(FileWal { log: malachitebft_wal::Log::open(path)? })
    }
}

impl Wal for FileWal {
    fn height(&self) -> u64 {
        self.log.sequence()
    }

    fn entries(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut torn = false;
        for entry in self.log.iter()? {
            match entry {
                Ok(bytes) => out.push(bytes),
                Err(e) => {
                    tracing::warn!(error = %e, kept = out.len(), "WAL ends in a torn record; dropping it");
                    torn = true;
                    break;
                }
            }
        }
        if torn {
            self.log.truncate(out.len() as u64)?;
            self.log.flush()?;
        }
        Ok(out)
    }

    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        self.log.append(record)?;
        self.log.flush()
    }

    fn reset(&mut self, height: u64) -> io::Result<()> {
        self.log.reset(height)
    }
}

/// An in-memory WAL for simulations. Clones share one log, so a simulation
/// can drop a node (a crash) and restart it on the same WAL.
#[derive(Clone, Debug, Default)]
pub struct MemWal {
    inner: std::sync::Arc<std::sync::Mutex<(u64, Vec<Vec<u8>>)>>,
}

impl MemWal {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Vec<Vec<u8>>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Wal for MemWal {
    fn height(&self) -> u64 {
        self.lock().0
    }
    fn entries(&mut self) -> io::Result<Vec<Vec<u8>>> {
        Ok(self.lock().1.clone())
    }
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        self.lock().1.push(record.to_vec());
        Ok(())
    }
    fn reset(&mut self, height: u64) -> io::Result<()> {
        *self.lock() = (height, Vec::new());
        Ok(())
    }
}

/// A decoded WAL record: the input to replay and, for proposed values, the block.
#[derive(Debug)]
pub struct WalEntry {
    /// The consensus input.
    pub input: Input<GlucoContext>,
    /// The block of a proposed value, when the record holds one.
    pub block: Option<Block>,
}

fn timeout_kind_code(kind: TimeoutKind) -> Option<u32> {
    match kind {
        TimeoutKind::Propose => Some(1),
        TimeoutKind::Prevote => Some(2),
        TimeoutKind::Precommit => Some(3),
        TimeoutKind::Rebroadcast => Some(4),
        TimeoutKind::FinalizeHeight(_) => None,
    }
}

/// Encodes an input for the WAL; `None` for inputs that are not persisted.
pub fn encode_record(height: Height, input: &Input<GlucoContext>, block: Option<&Block>) -> Option<Vec<u8>> {
    use wire::wal_record::Entry;
    let entry = match input {
        Input::Vote(v) => Entry::Message(ConsensusMessage::Vote(v.clone()).to_wire()),
        Input::Proposal(p) => Entry::Message(ConsensusMessage::Proposal(p.clone()).to_wire()),
        Input::PolkaCertificate(c) => Entry::PolkaCertificate(polka_wire(c)),
        Input::TimeoutElapsed(t) => {
            Entry::Timeout(wire::TimeoutRecord { kind: timeout_kind_code(t.kind)?, round: t.round.as_u32()? })
        }
        Input::ProposedValue(pv, origin) => Entry::ProposedValue(wire::ProposedValueRecord {
            height: pv.height.0,
            round: pv.round.as_u32().unwrap_or(0),
            valid_round: pv.valid_round.as_i64() as i32,
            proposer: pv.proposer.0.as_str().into(),
            block_hash: pv.value.0.0.to_vec(),
            valid: pv.validity == Validity::Valid,
            from_sync: *origin == ValueOrigin::Sync,
            block: block.map(Block::to_wire),
        }),
        Input::StartHeight(..) | Input::RoundCertificate(_) | Input::Propose(_) | Input::SyncValueResponse(_) => {
            return None;
        }
    };
    Some(wire::WalRecord { height: height.0, entry: Some(entry) }.encode_to_vec())
}

/// Decodes a WAL record.
pub fn decode_record(bytes: &[u8]) -> Result<WalEntry, CodecError> {
    use wire::wal_record::Entry;
    let rec = wire::WalRecord::decode(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    let entry = rec.entry.ok_or(CodecError::Invalid("empty WAL record"))?;
    let plain = |input| Ok(WalEntry { input, block: None });
    match entry {
        Entry::Message(m) => match ConsensusMessage::from_wire(&m)? {
            ConsensusMessage::Vote(v) => plain(Input::Vote(v)),
            ConsensusMessage::Proposal(p) => plain(Input::Proposal(p)),
            _ => Err(CodecError::Invalid("WAL message kind")),
        },
        Entry::PolkaCertificate(c) => match certificate_from_wire(&c)? {
            Certificate::Polka(p) => plain(Input::PolkaCertificate(p)),
            Certificate::Round(_) => Err(CodecError::Invalid("WAL certificate kind")),
        },
        Entry::Timeout(t) => {
            let round = Round::new(t.round);
            let timeout = match t.kind {
                1 => Timeout::propose(round),
                2 => Timeout::prevote(round),
                3 => Timeout::precommit(round),
                4 => Timeout::rebroadcast(round),
                _ => return Err(CodecError::Invalid("timeout kind")),
            };
            plain(Input::TimeoutElapsed(timeout))
        }
        Entry::ProposedValue(p) => {
            let block_hash = Hash32::from_slice(&p.block_hash).map_err(|_| CodecError::Invalid("block hash"))?;
            let proposer = ParticipantId::parse(&p.proposer).map_err(|_| CodecError::Invalid("proposer"))?;
            let block = match &p.block {
                Some(b) => Some(Block::from_wire(b).ok_or(CodecError::Invalid("WAL block"))?),
                None => None,
            };
            if block.as_ref().is_some_and(|b| b.hash() != block_hash) {
                return Err(CodecError::Invalid("WAL block does not match its hash"));
            }
            let pv = ProposedValue {
                height: Height(p.height),
                round: Round::new(p.round),
                valid_round: if p.valid_round < 0 { Round::Nil } else { Round::new(p.valid_round as u32) },
                proposer: Address(proposer),
                value: BlockRef(block_hash),
                validity: if p.valid { Validity::Valid } else { Validity::Invalid },
            };
            let origin = if p.from_sync { ValueOrigin::Sync } else { ValueOrigin::Consensus };
            Ok(WalEntry { input: Input::ProposedValue(pv, origin), block })
        }
    }
}
