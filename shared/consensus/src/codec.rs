//! Conversion between the consensus types and their protobuf wire form
//! (`proto/glucochain/v1/consensus.proto`, `wal.proto`), and the exact bytes
//! each kind of message is signed over.

use crate::block::Block;
use crate::context::{Address, BlockRef, GlucoContext, Height, PartContent, Proposal, ProposalPart, Signature, Vote};
use glucochain_crypto::{Domain, Hash32, KeyPair, PublicKey};
use glucochain_types::ParticipantId;
use glucochain_types::block::{BlockHeader, vote_bytes};
use glucochain_wire::v1 as wire;
use malachitebft_core_types::{
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType, RoundSignature,
    SignedProposal, SignedVote, VoteType,
};
use prost::Message as _;

/// Malformed or unverifiable wire data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// Not protobuf of the expected message.
    #[error("decode: {0}")]
    Decode(String),
    /// A field is invalid.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The sender field and the signer of the inner message differ.
    #[error("sender {sender} is not the author {author} of the message")]
    SenderMismatch {
        /// Claimed sender.
        sender: String,
        /// Author inside the message.
        author: String,
    },
}

/// A consensus message as exchanged between validators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsensusMessage {
    /// A signed prevote or precommit.
    Vote(SignedVote<GlucoContext>),
    /// A signed proposal.
    Proposal(SignedProposal<GlucoContext>),
    /// A signed proposal part.
    Part(ProposalPart, Signature),
    /// A vote certificate (polka or round), signed by the validator relaying it.
    PolkaCertificate(PolkaCertificate<GlucoContext>, Address, Signature),
    /// A round certificate, signed by the validator relaying it.
    RoundCertificate(RoundCertificate<GlucoContext>, Address, Signature),
}

fn vote_type_wire(t: VoteType) -> wire::VoteType {
    match t {
        VoteType::Prevote => wire::VoteType::Prevote,
        VoteType::Precommit => wire::VoteType::Precommit,
    }
}

fn vote_type_from(t: i32) -> Result<VoteType, CodecError> {
    match wire::VoteType::try_from(t) {
        Ok(wire::VoteType::Prevote) => Ok(VoteType::Prevote),
        Ok(wire::VoteType::Precommit) => Ok(VoteType::Precommit),
        _ => Err(CodecError::Invalid("vote type")),
    }
}

fn round_u32(r: Round) -> u32 {
    r.as_u32().unwrap_or(0)
}

fn round_i32(r: Round) -> i32 {
    r.as_i64() as i32
}

fn round_from_i32(r: i32) -> Round {
    if r < 0 { Round::Nil } else { Round::new(r as u32) }
}

pub(crate) fn value_id_from(bytes: &[u8]) -> Result<NilOrVal<Hash32>, CodecError> {
    if bytes.is_empty() {
        Ok(NilOrVal::Nil)
    } else {
        Hash32::from_slice(bytes).map(NilOrVal::Val).map_err(|_| CodecError::Invalid("value id"))
    }
}

fn address(s: &str) -> Result<Address, CodecError> {
    ParticipantId::parse(s).map(Address).map_err(|_| CodecError::Invalid("validator address"))
}

fn signature(b: &[u8]) -> Result<Signature, CodecError> {
    b.try_into().map(Signature).map_err(|_| CodecError::Invalid("signature length"))
}

/// The bytes a vote is signed over (without the domain tag): the same
/// encoding commit certificates are checked against.
pub fn vote_sign_bytes(v: &Vote) -> Vec<u8> {
    let value = match &v.value {
        NilOrVal::Nil => None,
        NilOrVal::Val(h) => Some(h),
    };
    vote_bytes(vote_type_wire(v.vote_type), v.height.0, round_u32(v.round), value, &v.validator.0)
}

fn proposal_wire(p: &Proposal) -> wire::Proposal {
    wire::Proposal {
        height: p.height.0,
        round: round_u32(p.round),
        value_id: p.value.0.0.to_vec(),
        pol_round: round_i32(p.pol_round),
        proposer: p.proposer.0.as_str().into(),
    }
}

/// The bytes a proposal is signed over.
pub fn proposal_sign_bytes(p: &Proposal) -> Vec<u8> {
    proposal_wire(p).encode_to_vec()
}

fn part_wire(p: &ProposalPart) -> wire::ProposalPart {
    wire::ProposalPart {
        height: p.height.0,
        round: round_u32(p.round),
        proposer: p.proposer.0.as_str().into(),
        sequence: p.sequence,
        part: Some(match &p.content {
            PartContent::Header(h) => wire::proposal_part::Part::Header(h.to_wire()),
            PartContent::Txs(txs) => wire::proposal_part::Part::Txs(wire::TxChunk { txs: txs.clone() }),
            PartContent::Fin { parts, block_hash } => {
                wire::proposal_part::Part::Fin(wire::ProposalFin { parts: *parts, block_hash: block_hash.0.to_vec() })
            }
        }),
    }
}

/// The bytes a proposal part is signed over.
pub fn part_sign_bytes(p: &ProposalPart) -> Vec<u8> {
    part_wire(p).encode_to_vec()
}

fn cert_wire(
    kind: wire::CertificateKind,
    height: Height,
    round: Round,
    value_id: Option<&Hash32>,
    sigs: Vec<wire::CertificateSignature>,
) -> wire::VoteCertificate {
    wire::VoteCertificate {
        kind: kind as i32,
        height: height.0,
        round: round_u32(round),
        value_id: value_id.map(|h| h.0.to_vec()).unwrap_or_default(),
        signatures: sigs,
    }
}

/// A vote certificate of either kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Certificate {
    /// 2f+1 prevotes for one value.
    Polka(PolkaCertificate<GlucoContext>),
    /// Votes that move a validator to a round.
    Round(RoundCertificate<GlucoContext>),
}

/// Decodes a vote certificate (signatures not verified).
pub fn certificate_from_wire(c: &wire::VoteCertificate) -> Result<Certificate, CodecError> {
    let kind = wire::CertificateKind::try_from(c.kind).map_err(|_| CodecError::Invalid("certificate kind"))?;
    match kind {
        wire::CertificateKind::Polka => {
            let value_id = Hash32::from_slice(&c.value_id).map_err(|_| CodecError::Invalid("polka value"))?;
            let polka_signatures = c
                .signatures
                .iter()
                .map(|s| {
                    if s.vote_type != wire::VoteType::Prevote as i32 || s.value_id != c.value_id {
                        return Err(CodecError::Invalid("polka signature"));
                    }
                    Ok(PolkaSignature::new(address(&s.validator)?, signature(&s.signature)?))
                })
                .collect::<Result<Vec<_>, CodecError>>()?;
            Ok(Certificate::Polka(PolkaCertificate {
                height: Height(c.height),
                round: Round::new(c.round),
                value_id,
                polka_signatures,
            }))
        }
        wire::CertificateKind::RoundSkip | wire::CertificateKind::RoundPrecommit => {
            let round_signatures = c
                .signatures
                .iter()
                .map(|s| {
                    Ok(RoundSignature::new(
                        vote_type_from(s.vote_type)?,
                        value_id_from(&s.value_id)?,
                        address(&s.validator)?,
                        signature(&s.signature)?,
                    ))
                })
                .collect::<Result<Vec<_>, CodecError>>()?;
            let cert_type = if kind == wire::CertificateKind::RoundSkip {
                RoundCertificateType::Skip
            } else {
                RoundCertificateType::Precommit
            };
            Ok(Certificate::Round(RoundCertificate {
                height: Height(c.height),
                round: Round::new(c.round),
                cert_type,
                round_signatures,
            }))
        }
        wire::CertificateKind::Unspecified => Err(CodecError::Invalid("certificate kind")),
    }
}

/// The protobuf form of a polka certificate.
pub fn polka_wire(c: &PolkaCertificate<GlucoContext>) -> wire::VoteCertificate {
    let sigs = c
        .polka_signatures
        .iter()
        .map(|s| wire::CertificateSignature {
            validator: s.address.0.as_str().into(),
            vote_type: wire::VoteType::Prevote as i32,
            value_id: c.value_id.0.to_vec(),
            signature: s.signature.0.to_vec(),
        })
        .collect();
    cert_wire(wire::CertificateKind::Polka, c.height, c.round, Some(&c.value_id), sigs)
}

fn round_cert_wire(c: &RoundCertificate<GlucoContext>) -> wire::VoteCertificate {
    let kind = match c.cert_type {
        RoundCertificateType::Skip => wire::CertificateKind::RoundSkip,
        RoundCertificateType::Precommit => wire::CertificateKind::RoundPrecommit,
    };
    let sigs = c
        .round_signatures
        .iter()
        .map(|s| wire::CertificateSignature {
            validator: s.address.0.as_str().into(),
            vote_type: vote_type_wire(s.vote_type) as i32,
            value_id: match &s.value_id {
                NilOrVal::Nil => vec![],
                NilOrVal::Val(h) => h.0.to_vec(),
            },
            signature: s.signature.0.to_vec(),
        })
        .collect();
    cert_wire(kind, c.height, c.round, None, sigs)
}

/// The bytes a relayed certificate is signed over by its relayer.
fn certificate_sign_bytes(relayer: &Address, c: &wire::VoteCertificate) -> Vec<u8> {
    // The relayer is bound into the signature: a relayed certificate cannot be
    // re-attributed to another sender.
    let id = relayer.0.as_str().as_bytes();
    let mut out = Vec::with_capacity(1 + id.len() + 256);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    c.encode(&mut out).expect("a Vec grows");
    out
}

impl ConsensusMessage {
    /// The validator that signed (and sent) this message.
    pub fn sender(&self) -> &Address {
        match self {
            ConsensusMessage::Vote(v) => &v.message.validator,
            ConsensusMessage::Proposal(p) => &p.message.proposer,
            ConsensusMessage::Part(p, _) => &p.proposer,
            ConsensusMessage::PolkaCertificate(_, a, _) | ConsensusMessage::RoundCertificate(_, a, _) => a,
        }
    }

    /// The domain and bytes the sender's signature covers.
    pub fn signed_bytes(&self) -> (Domain, Vec<u8>) {
        match self {
            ConsensusMessage::Vote(v) => (Domain::Vote, vote_sign_bytes(&v.message)),
            ConsensusMessage::Proposal(p) => (Domain::Proposal, proposal_sign_bytes(&p.message)),
            ConsensusMessage::Part(p, _) => (Domain::ProposalPart, part_sign_bytes(p)),
            ConsensusMessage::PolkaCertificate(c, a, _) => {
                (Domain::Certificate, certificate_sign_bytes(a, &polka_wire(c)))
            }
            ConsensusMessage::RoundCertificate(c, a, _) => {
                (Domain::Certificate, certificate_sign_bytes(a, &round_cert_wire(c)))
            }
        }
    }

    /// The sender's signature.
    pub fn signature(&self) -> &Signature {
        match self {
            ConsensusMessage::Vote(v) => &v.signature,
            ConsensusMessage::Proposal(p) => &p.signature,
            ConsensusMessage::Part(_, s)
            | ConsensusMessage::PolkaCertificate(_, _, s)
            | ConsensusMessage::RoundCertificate(_, _, s) => s,
        }
    }

    /// Whether the sender's signature verifies with `key`.
    pub fn verify(&self, key: &PublicKey) -> bool {
        let (domain, bytes) = self.signed_bytes();
        key.verify(domain, &bytes, &self.signature().0).is_ok()
    }

    /// Round of the message (of the certificate, for relayed certificates).
    pub fn round(&self) -> Round {
        match self {
            ConsensusMessage::Vote(v) => v.message.round,
            ConsensusMessage::Proposal(p) => p.message.round,
            ConsensusMessage::Part(p, _) => p.round,
            ConsensusMessage::PolkaCertificate(c, _, _) => c.round,
            ConsensusMessage::RoundCertificate(c, _, _) => c.round,
        }
    }

    /// Height of the message.
    pub fn height(&self) -> u64 {
        match self {
            ConsensusMessage::Vote(v) => v.message.height.0,
            ConsensusMessage::Proposal(p) => p.message.height.0,
            ConsensusMessage::Part(p, _) => p.height.0,
            ConsensusMessage::PolkaCertificate(c, _, _) => c.height.0,
            ConsensusMessage::RoundCertificate(c, _, _) => c.height.0,
        }
    }

    /// The protobuf envelope.
    pub fn to_wire(&self) -> wire::SignedConsensusMessage {
        use wire::signed_consensus_message::Message as M;
        let message = match self {
            ConsensusMessage::Vote(v) => {
                let m = &v.message;
                M::Vote(wire::Vote {
                    r#type: vote_type_wire(m.vote_type) as i32,
                    height: m.height.0,
                    round: round_u32(m.round),
                    value_id: match &m.value {
                        NilOrVal::Nil => vec![],
                        NilOrVal::Val(h) => h.0.to_vec(),
                    },
                    validator: m.validator.0.as_str().into(),
                })
            }
            ConsensusMessage::Proposal(p) => M::Proposal(proposal_wire(&p.message)),
            ConsensusMessage::Part(p, _) => M::ProposalPart(part_wire(p)),
            ConsensusMessage::PolkaCertificate(c, _, _) => M::Certificate(polka_wire(c)),
            ConsensusMessage::RoundCertificate(c, _, _) => M::Certificate(round_cert_wire(c)),
        };
        wire::SignedConsensusMessage {
            sender: self.sender().0.as_str().into(),
            message: Some(message),
            signature: self.signature().0.to_vec(),
        }
    }

    /// Encoded bytes for the network.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// Decodes bytes from the network (signature not yet verified).
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let w = wire::SignedConsensusMessage::decode(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
        Self::from_wire(&w)
    }

    /// From the protobuf envelope (signature not yet verified).
    pub fn from_wire(w: &wire::SignedConsensusMessage) -> Result<Self, CodecError> {
        use wire::signed_consensus_message::Message as M;
        let sender = address(&w.sender)?;
        let sig = signature(&w.signature)?;
        let msg = match w.message.as_ref().ok_or(CodecError::Invalid("empty message"))? {
            M::Vote(v) => ConsensusMessage::Vote(SignedVote::new(
                Vote {
                    vote_type: vote_type_from(v.r#type)?,
                    height: Height(v.height),
                    round: Round::new(v.round),
                    value: value_id_from(&v.value_id)?,
                    validator: address(&v.validator)?,
                    extension: None,
                },
                sig,
            )),
            M::Proposal(p) => ConsensusMessage::Proposal(SignedProposal::new(
                Proposal {
                    height: Height(p.height),
                    round: Round::new(p.round),
                    value: BlockRef(
                        Hash32::from_slice(&p.value_id).map_err(|_| CodecError::Invalid("proposal value"))?,
                    ),
                    pol_round: round_from_i32(p.pol_round),
                    proposer: address(&p.proposer)?,
                },
                sig,
            )),
            M::ProposalPart(p) => {
                use wire::proposal_part::Part;
                let content = match p.part.as_ref().ok_or(CodecError::Invalid("empty part"))? {
                    Part::Header(h) => {
                        PartContent::Header(BlockHeader::from_wire(h).map_err(|_| CodecError::Invalid("part header"))?)
                    }
                    Part::Txs(t) => PartContent::Txs(t.txs.clone()),
                    Part::Fin(f) => PartContent::Fin {
                        parts: f.parts,
                        block_hash: Hash32::from_slice(&f.block_hash).map_err(|_| CodecError::Invalid("fin hash"))?,
                    },
                };
                ConsensusMessage::Part(
                    ProposalPart {
                        height: Height(p.height),
                        round: Round::new(p.round),
                        proposer: address(&p.proposer)?,
                        sequence: p.sequence,
                        content,
                    },
                    sig,
                )
            }
            M::Certificate(c) => match certificate_from_wire(c)? {
                Certificate::Polka(p) => ConsensusMessage::PolkaCertificate(p, sender.clone(), sig),
                Certificate::Round(r) => ConsensusMessage::RoundCertificate(r, sender.clone(), sig),
            },
        };
        if msg.sender() != &sender {
            return Err(CodecError::SenderMismatch { sender: sender.to_string(), author: msg.sender().to_string() });
        }
        Ok(msg)
    }

    /// Signs a relayed certificate as `relayer`.
    pub fn sign_polka(key: &KeyPair, relayer: Address, c: PolkaCertificate<GlucoContext>) -> Self {
        let sig = key.sign(Domain::Certificate, &certificate_sign_bytes(&relayer, &polka_wire(&c)));
        ConsensusMessage::PolkaCertificate(c, relayer, Signature(sig))
    }

    /// Signs a relayed round certificate as `relayer`.
    pub fn sign_round(key: &KeyPair, relayer: Address, c: RoundCertificate<GlucoContext>) -> Self {
        let sig = key.sign(Domain::Certificate, &certificate_sign_bytes(&relayer, &round_cert_wire(&c)));
        ConsensusMessage::RoundCertificate(c, relayer, Signature(sig))
    }
}

/// Signs a vote.
pub fn sign_vote(key: &KeyPair, vote: Vote) -> SignedVote<GlucoContext> {
    let sig = key.sign(Domain::Vote, &vote_sign_bytes(&vote));
    SignedVote::new(vote, Signature(sig))
}

/// Signs a proposal.
pub fn sign_proposal(key: &KeyPair, p: Proposal) -> SignedProposal<GlucoContext> {
    let sig = key.sign(Domain::Proposal, &proposal_sign_bytes(&p));
    SignedProposal::new(p, Signature(sig))
}

/// Signs a proposal part.
pub fn sign_part(key: &KeyPair, p: ProposalPart) -> ConsensusMessage {
    let sig = key.sign(Domain::ProposalPart, &part_sign_bytes(&p));
    ConsensusMessage::Part(p, Signature(sig))
}

/// Splits a block into signed-ready proposal parts: header, tx chunks of at
/// most `chunk_txs` transactions, fin.
pub fn block_parts(
    block: &Block,
    height: Height,
    round: Round,
    proposer: &Address,
    chunk_txs: usize,
) -> Vec<ProposalPart> {
    let mut parts = vec![PartContent::Header(block.header.clone())];
    for chunk in block.txs.chunks(chunk_txs.max(1)) {
        parts.push(PartContent::Txs(chunk.to_vec()));
    }
    let n = parts.len() as u32 + 1;
    parts.push(PartContent::Fin { parts: n, block_hash: block.hash() });
    parts
        .into_iter()
        .enumerate()
        .map(|(i, content)| ProposalPart { height, round, proposer: proposer.clone(), sequence: i as u32, content })
        .collect()
}
