fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sluice.proto");
    tonic_prost_build::configure().btree_map(".").compile_protos(&["proto/sluice.proto"], &["proto"])?;
    Ok(())
}
