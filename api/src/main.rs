use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc hands freed memory back to the system, so a burst (argon2's 19 MiB per password
/// hash, a large import) does not stay in the process after it ends.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CINELOG_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    match cinelog_api::cli::run(cinelog_api::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cinelog: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
