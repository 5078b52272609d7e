//! `mooncake_client`: Mooncake's real client. Parses flags and runs
//! [`mc_dummy::server::run`].

fn main() -> anyhow::Result<()> {
    let flags = match mc_dummy::server::ClientFlags::try_from_args(std::env::args()) {
        Ok(f) => f,
        Err(e) => e.exit(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    mc_dummy::server::run(&flags)?;
    Ok(())
}
