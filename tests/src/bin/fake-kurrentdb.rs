//! The fake KurrentDB server of the tests, on its own, for trying `cinelog serve
//! --eventstore-url` by hand: `cargo run -p cinelog-tests --bin fake-kurrentdb -- --port 2113`.

use cinelog_tests::kurrent::FakeKurrent;
use clap::Parser;

/// A KurrentDB gRPC server keeping its log in memory (see `tests/src/kurrent.rs` for what it
/// covers).
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 2113)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let running = FakeKurrent::start((args.host, args.port).into()).await?;
    println!("fake KurrentDB listening: {}", running.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
