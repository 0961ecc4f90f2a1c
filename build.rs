//! Compiles `proto/` with protox (no system protoc) and writes the descriptor set for reflection.
//!
//! This is the build script of the `flinkbroker-proto` crate (`crates/proto`), kept at the top
//! level beside the `proto/` directory it compiles.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    let file_descriptors = protox::compile(["flinkbroker/v1/broker.proto"], [&proto_dir])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("flinkbroker_descriptor.bin"),
        prost::Message::encode_to_vec(&file_descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(file_descriptors)?;
    Ok(())
}
