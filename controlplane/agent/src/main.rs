//! `mooncake_store`: parses flags and runs a store node: the supervisor with its
//! `dataplane` and `agent` children (`mc_agent::split`), one of those children, or the
//! whole node in one process (`--single_process`).

#![forbid(unsafe_code)]

use mc_agent::split::{self, Role};

fn main() -> anyhow::Result<()> {
    let (role, args) = split::role_of(std::env::args().collect());
    let cfg = match mc_agent::StoreConfig::try_from_args(args.clone()) {
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
    if role == Role::Supervisor && cfg.single_process {
        mc_agent::node::run(cfg)?;
    } else {
        split::run(role, cfg, args)?;
    }
    Ok(())
}
