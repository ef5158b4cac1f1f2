//! GlucoChain's benchmark harness. It prints and records measurements; it
//! never asserts wall time (that is what tests must not do).
//!
//! * [`crypto`]: the per-core ceiling of Ed25519 and SHA-256;
//! * [`load`]: the write path of a devnet under open- and closed-loop load,
//!   and reads under writes;
//! * [`clinical`]: reading → alert event → caregiver email;
//! * [`world`]: signed workloads (patients, CGM observation transactions);
//! * [`stats`], [`procstat`], [`report`], [`plot`]: summaries, `/proc`
//!   counters, tables, SVG plots.
//!
//! Criterion micro-benchmarks of the pure functions are in `benches/micro.rs`.

pub mod clinical;
pub mod crypto;
pub mod load;
pub mod plot;
pub mod procstat;
pub mod report;
pub mod stats;
pub mod world;
