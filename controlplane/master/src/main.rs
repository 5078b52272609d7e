//! `mooncake_master`: parses flags and runs the master.

fn main() -> anyhow::Result<()> {
    let cfg = mc_master::MasterConfig::from_args();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    mc_master::run(cfg)?;
    Ok(())
}
