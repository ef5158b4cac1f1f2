//! Generates Rust types from `proto/` with prost, compiling the .proto files
//! with protox (pure Rust), so no `protoc` binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "glucochain/v1/ledger.proto",
        "glucochain/v1/consensus.proto",
        "glucochain/v1/clinical.proto",
        "glucochain/v1/wal.proto",
        "glucochain/v1/authz.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
