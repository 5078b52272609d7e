//! `mooncake_store`: parses flags and runs a store node.

#![forbid(unsafe_code)]

fn main() -> anyhow::Result<()> {
    let cfg = match mc_agent::StoreConfig::try_from_args(std::env::args()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    // `FAILPOINTS=name=actions;...` turns failpoints on (builds with `--features failpoints`).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    mc_agent::node::run(cfg)?;
    Ok(())
}
