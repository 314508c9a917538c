//! Generates the gRPC server side of KurrentDB's protocol for the fake server in
//! `src/kurrent.rs`, from the `.proto` files the `kurrentdb` client crate ships (copied
//! unchanged into `proto/`). `protox` compiles them, so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/streams.proto", "proto/serverfeatures.proto"];
    for f in ["streams", "shared", "status", "code", "serverfeatures"] {
        println!("cargo:rerun-if-changed=proto/{f}.proto");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
